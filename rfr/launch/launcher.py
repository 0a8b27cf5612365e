"""``rfr launch``: the pipeline's matrix spread over workers, ``dvc repro`` still the judge.

1. ``dvc repro`` of the setup stages (prepare, masks), once, before any worker starts;
2. ``dvc status`` + ``dvc dag``: the out-of-date training and evaluation stages, one job
   per run, longest first (``rfr.launch.plan``);
3. the backend runs each job's stages as ``dvc --wait-for-lock repro -s <stage>`` in this
   workspace (``rfr.launch.local``: one worker per GPU group or CPU share;
   ``rfr.launch.slurm``: a job array);
4. a plain ``dvc repro`` for the rest (recurrence, report): it finds every run done, so
   it trains nothing, and a second one says "Data and pipelines are up to date".

A failed stage skips the rest of its job and the final repro; the launch exits 1 naming
each failed stage and its log. Launching again redoes only what is still out of date,
and an interrupted training resumes from its last checkpoint (its outputs persist)."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from rfr.config import ConfigError
from rfr.launch.config import LaunchConfig, gpu_groups
from rfr.launch.local import LocalBackend, run_repro, worker_environment
from rfr.launch.plan import (
    PER_RUN_GROUPS,
    Job,
    LaunchError,
    Plan,
    check_stage_groups,
    foreach_entries,
    format_plan,
    make_plan,
    matrix_entries,
    read_dvc_stages,
    read_graph,
    read_stale,
    run_costs,
    schedule,
)
from rfr.launch.progress import Progress


def plan_every_run(params: dict[str, Any], stages: Mapping[str, Any]) -> Plan:
    """The plan of a profile from scratch (``--all``), without asking DVC: every run's
    stages, named as DVC names the entries of dvc.yaml's matrices (``stages``, from
    ``read_dvc_stages``) under ``params``. dvc.yaml lists its stages upstream first (its
    header: prepare -> masks -> train -> evaluate -> report): the other stages before
    the first per-run one are the setup, the ones after it the final repro's;
    tests/test_launch.py checks the plan against ``dvc dag``."""
    check_stage_groups(stages)
    costs = run_costs(params)
    by_run: dict[str, list[str]] = {}
    for group in PER_RUN_GROUPS:
        for name in matrix_entries(stages, group, params):
            run = name.partition("@")[2]
            if run not in costs:
                raise LaunchError(f"dvc.yaml stage {name} is run {run!r}, which the profile "
                                  f"does not train (runs: {sorted(costs)})")
            by_run.setdefault(run, []).append(name)
    if missing := sorted(set(costs) - set(by_run)):
        raise LaunchError(f"dvc.yaml has no stage for the profile's runs {missing}")
    order = list(stages)  # within a run: dvc.yaml's order, train before evaluate
    jobs = []
    for run, names in by_run.items():
        names.sort(key=lambda name: order.index(name.partition("@")[0]))
        steps, gpus = costs[run]
        job = Job(run, tuple(names), 0, gpus)
        jobs.append(replace(job, steps=steps) if job.trains else job)
    jobs.sort(key=lambda job: (-job.steps, job.run))
    first = min(order.index(group) for group in PER_RUN_GROUPS)
    # A foreach stage over an empty value (released: {}) is no stage of DVC's: left out.
    others = [name for name in order if name not in PER_RUN_GROUPS
              and not (isinstance(stages[name], Mapping) and "foreach" in stages[name]
                       and not foreach_entries(stages, name, params))]
    return Plan(tuple(n for n in others if order.index(n) < first), tuple(jobs),
                tuple(n for n in others if order.index(n) > first))


def default_log_dir(workspace: Path, params: dict[str, Any]) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return workspace / "logs" / "launch" / f"{params.get('profile', 'params')}-{stamp}"


def worker_count(config: LaunchConfig, per_run_gpus: int) -> int:
    if config.backend == "slurm":
        return config.slurm.array_parallelism
    if config.gpus:
        return len(gpu_groups(config.gpus, per_run_gpus))
    return config.workers


@contextlib.contextmanager
def one_launch_per_workspace(workspace: Path) -> Iterator[None]:
    """Two launches in one workspace would run the same stale stages twice at once."""
    path = workspace / ".dvc" / "tmp" / "rfr-launch.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise LaunchError(f"another rfr launch runs in {workspace} ({handle.read().strip()}"
                              f"); wait for it, or stop it (its trainings resume)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {datetime.datetime.now():%Y-%m-%d %H:%M:%S}")
        handle.flush()
        yield


def launch(config: LaunchConfig, workspace: Path | None = None) -> int:
    """Run (or with ``dry_run`` print) the launch; 0 when every stage succeeded."""
    workspace = Path(workspace or Path.cwd()).resolve()
    if config.dry_run:
        return run_launch(config, workspace)
    with one_launch_per_workspace(workspace):
        return run_launch(config, workspace)


def run_launch(config: LaunchConfig, workspace: Path) -> int:
    from rfr.pipeline import load_params

    params_path = Path(config.params)
    if not params_path.is_absolute():
        params_path = workspace / params_path
    if not config.all_runs and params_path.resolve() != (workspace / "params.yaml").resolve():
        raise ConfigError(f"--params {config.params}: dvc repro reads params.yaml, so a launch "
                          f"does too; switch profiles with `rfr profile NAME`, or add --all "
                          f"--dry-run to plan another profile's runs from scratch")
    params = load_params(params_path, check_roots=not config.all_runs)
    stages = read_dvc_stages(workspace)
    check_stage_groups(stages)  # before DVC's graph is split along these names
    per_run_gpus = int(params["train"].get("gpus", 1))
    if config.all_runs and not config.dry_run:
        raise ConfigError("--all plans every run without asking DVC; use it with --dry-run")
    if config.dry_run:
        plan = (plan_every_run(params, stages) if config.all_runs
                else make_plan(read_graph(workspace), read_stale(workspace), run_costs(params)))
        print(format_plan(plan, schedule(plan.jobs, worker_count(config, per_run_gpus)),
                          config.step_seconds))
        return 0

    log_dir = Path(config.logs) if config.logs else default_log_dir(workspace, params)
    log_dir.mkdir(parents=True, exist_ok=True)
    graph = read_graph(workspace)
    setup = make_plan(graph, set(), {}).setup
    started = time.perf_counter()
    progress = Progress(log_dir, total=0, show_bar=False)
    progress.say(f"launch: profile {params.get('profile')!r}, backend {config.backend}, "
                 f"logs in {log_dir}")
    code = repro(workspace, list(setup), log_dir / "setup.log", progress, "setup")
    if code != 0:
        progress.close({"failed": "setup"})
        return code
    plan = make_plan(graph, read_stale(workspace), run_costs(params))
    progress.close({"phase": "setup"})

    progress = Progress(log_dir, total=sum(len(job.stages) for job in plan.jobs),
                        show_bar=sys.stderr.isatty())
    trainings = sum(job.trains for job in plan.jobs)  # a run has one training stage
    progress.say(f"{len(plan.jobs)} run(s) out of date: {trainings} training and "
                 f"{sum(len(j.stages) for j in plan.jobs) - trainings} other stage(s)")
    backend = make_backend(config, workspace, progress, per_run_gpus, log_dir)
    try:
        results = backend.run(plan.jobs)
    except KeyboardInterrupt:
        progress.close({**{"profile": params.get("profile")}, "interrupted": True})
        print("launch interrupted; launch again to go on (trainings resume from their last "
              "checkpoint)", file=sys.stderr)
        return 130
    failed = progress.failed()
    summary: dict[str, Any] = {"profile": params.get("profile"), "backend": config.backend,
                               "jobs": len(plan.jobs), "seconds": None}
    if results is None:  # submitted without waiting: the final repro is a job too
        progress.close({**summary, "submitted": True})
        return 0
    if failed:
        for result in failed:
            progress.say(f"not done: {result.stage} ({result.outcome}; log {result.log})")
        progress.say("the final dvc repro is skipped; fix the failures and launch again "
                     "(done runs are not redone, interrupted trainings resume)")
        progress.close({**summary, "seconds": time.perf_counter() - started, "final": None})
        return 1
    code = repro(workspace, [], log_dir / "final.log", progress, "final")
    summary.update(seconds=time.perf_counter() - started, final=code)
    path = progress.close(summary)
    print(f"launch {'finished' if code == 0 else 'FAILED in the final dvc repro'} in "
          f"{summary['seconds']:.0f} s; summary {path}")
    return code


def repro(workspace: Path, targets: list[str], log_path: Path, progress: Progress,
          what: str) -> int:
    """``dvc --wait-for-lock repro [targets]`` with its output in ``log_path``."""
    progress.say(f"{what}: dvc repro {' '.join(targets)} (log {log_path})")
    started = time.perf_counter()
    code = run_repro(workspace, targets, log_path)
    word = "done" if code == 0 else f"FAILED (exit {code})"
    progress.say(f"{what}: {word} in {time.perf_counter() - started:.1f} s")
    return code


def make_backend(config: LaunchConfig, workspace: Path, progress: Progress,
                 per_run_gpus: int, log_dir: Path) -> Any:
    if config.backend == "slurm":
        from rfr.launch.slurm import SubmititBackend

        return SubmititBackend(workspace, config.slurm, per_run_gpus, progress, log_dir)
    if config.gpus:
        groups = gpu_groups(config.gpus, per_run_gpus)
        threads = config.threads(len(groups))
        slots = [(f"gpu{','.join(g)}", worker_environment(os.environ, g, threads))
                 for g in groups]
    else:
        threads = config.threads(config.workers)
        slots = [(f"cpu{i}", worker_environment(os.environ, [], threads))
                 for i in range(config.workers)]
    progress.say(f"{len(slots)} local worker(s): "
                 + ", ".join(name for name, _ in slots) + f"; {threads} CPU thread(s) each")
    return LocalBackend(workspace, slots, progress)
