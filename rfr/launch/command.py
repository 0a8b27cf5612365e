"""``rfr launch``'s flags and ``--config`` YAML turned into one ``LaunchConfig``."""

from __future__ import annotations

import argparse
from typing import Any

from rfr.config import from_dict, load_yaml
from rfr.launch.config import LaunchConfig

SLURM_FLAGS = {"partition": "partition", "account": "account", "qos": "qos",
               "constraint": "constraint", "time": "time_min",
               "array_parallelism": "array_parallelism", "cpus_per_task": "cpus_per_task",
               "mem_gb": "mem_gb", "max_requeues": "max_requeues", "cluster": "cluster",
               "submitit_folder": "folder", "setup": "setup"}


def config_from_args(args: argparse.Namespace) -> LaunchConfig:
    """The YAML of ``--config`` (if any), then every flag given on top of it."""
    data: dict[str, Any] = load_yaml(args.config) if args.config is not None else {}
    flags = {"backend": args.backend, "workers": args.workers, "params": args.params,
             "threads_per_worker": args.threads_per_worker, "logs": args.logs,
             "step_seconds": args.step_seconds,
             "gpus": args.gpus.split(",") if args.gpus else None}
    data.update({key: value for key, value in flags.items() if value is not None})
    data.update({key: True for key in ("dry_run", "all_runs") if getattr(args, key)})
    slurm = dict(data.get("slurm") or {})
    slurm.update({field: getattr(args, flag) for flag, field in SLURM_FLAGS.items()
                  if getattr(args, flag) is not None})
    if args.no_wait:
        slurm["wait"] = False
    data["slurm"] = slurm
    return from_dict(LaunchConfig, data, str(args.config or "rfr launch"))
