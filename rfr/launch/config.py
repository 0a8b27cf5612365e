"""How a launch spreads the pipeline: a dataclass per backend, from flags or a YAML file.

A launch setting never changes a number: it decides where and when each stage runs,
never what it computes (that is params.yaml, tracked by DVC). The one exception is a CPU
worker's thread count, which can change the float rounding of a training run (the
reduction order of a convolution); runs compared bit for bit must use the same
``threads_per_worker``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from rfr.config import ConfigError, check_int, check_literal

Backend = Literal["local", "slurm"]
Cluster = Literal["slurm", "local", "debug"]


@dataclass(frozen=True)
class SlurmConfig:
    """Fields (sbatch's own names where there is one):
        partition, account, qos, constraint: passed to sbatch when set.
        time_min: the wall-clock limit of one array task; a run longer than that is
            requeued (``max_requeues`` times) and resumes from its last checkpoint.
        array_parallelism: array tasks running at once (``%N`` of ``--array``).
        cpus_per_task: CPUs of a task (data loading for its GPUs).
        mem_gb: memory of a task; None leaves the cluster's default.
        max_requeues: how often a task may be requeued after a timeout or preemption.
        setup: shell lines run before each task (``module load``, ``source .venv/...``).
        cluster: "slurm"; "local" and "debug" are submitit's executors that run the same
            jobs on this machine (tests, and a check before using the cluster's queue).
        wait: wait for the array and run the final ``dvc repro`` here; False submits the
            final repro as a job that starts when every array task succeeded.
        folder: submitit's folder (sbatch scripts, pickled jobs, task logs); None = the
            launch's log folder.
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time_min: int = 4320
    array_parallelism: int = 64
    cpus_per_task: int = 8
    mem_gb: int | None = None
    max_requeues: int = 30
    setup: list[str] = field(default_factory=list)
    cluster: Cluster = "slurm"
    wait: bool = True
    folder: str | None = None

    def __post_init__(self) -> None:
        check_literal(self, "cluster")
        for name in ("time_min", "array_parallelism", "cpus_per_task"):
            check_int(self, name, 1)
        check_int(self, "max_requeues", 0)
        if self.mem_gb is not None:
            check_int(self, "mem_gb", 1)


@dataclass(frozen=True)
class LaunchConfig:
    """Fields:
        backend: "local" (worker processes on this machine) or "slurm" (a job array).
        gpus: local backend: the GPU ids to use (e.g. ["0", "1"]); each worker gets
            ``train.gpus`` of them through CUDA_VISIBLE_DEVICES. Empty: CPU workers.
        workers: local backend without GPUs: worker processes.
        threads_per_worker: CPU threads of each local worker (OMP/MKL and torch); None =
            the machine's cores split over the workers.
        params: the profile whose runs are planned (``params.yaml``).
        logs: the folder of per-stage logs and the launch summary; None =
            ``logs/launch/<profile>-<time>``.
        dry_run: print the plan (stages, lanes, waves) and run nothing.
        all_runs: plan every run of the profile as if none were done (no DVC call),
            e.g. to estimate the paper profile on a machine that lacks its data.
        step_seconds: seconds per training step for the dry run's wall-clock estimate.
        slurm: the slurm backend's settings.
    """

    backend: Backend = "local"
    gpus: list[str] = field(default_factory=list)
    workers: int = 1
    threads_per_worker: int | None = None
    params: str = "params.yaml"
    logs: str | None = None
    dry_run: bool = False
    all_runs: bool = False
    step_seconds: float | None = None
    slurm: SlurmConfig = field(default_factory=SlurmConfig)

    def __post_init__(self) -> None:
        check_literal(self, "backend")
        check_int(self, "workers", 1)
        if self.threads_per_worker is not None:
            check_int(self, "threads_per_worker", 1)
        if len(set(self.gpus)) != len(self.gpus):
            raise ConfigError(f"gpus lists a GPU twice: {self.gpus}")
        if self.step_seconds is not None and not self.step_seconds > 0:
            raise ConfigError(f"step_seconds must be positive, got {self.step_seconds}")

    def threads(self, workers: int) -> int:
        if self.threads_per_worker is not None:
            return self.threads_per_worker
        return max(1, (os.cpu_count() or 1) // workers)


def gpu_groups(gpus: list[str], per_run: int) -> list[list[str]]:
    """The GPUs of each local worker: consecutive groups of ``train.gpus``."""
    if not gpus:
        return []
    if per_run < 1 or len(gpus) % per_run:
        raise ConfigError(f"--gpus lists {len(gpus)} GPU(s) ({','.join(gpus)}), which do not "
                          f"split into workers of train.gpus = {per_run}; list a multiple "
                          f"of {per_run}")
    return [gpus[i:i + per_run] for i in range(0, len(gpus), per_run)]
