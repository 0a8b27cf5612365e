"""The slurm backend: one array task per job through submitit, requeued on timeout or
preemption, each task running its stages as ``dvc repro -s`` in the shared workspace.

A multi-day run outlives any partition's time limit: SLURM signals the task
(``--signal=USR2@90``) before killing it, submitit calls ``StageJob.checkpoint``, which
stops the running stage (the training keeps its last checkpoint, written every
``runtime.checkpoint_every`` steps) and requeues the task with the same stages; the
requeued task's ``dvc repro -s`` skips the stages that finished and the training resumes
from ``last.pth`` (its outputs persist). Work since the last checkpoint is redone.

The workspace (and ``.dvc/``) must be on a file system every node sees. DVC's
``.dvc/tmp/rwlock`` records the PID of each stage's process; a node that crashes leaves
its entries behind, and DVC on another node cannot tell a dead PID there from a live one
(``README``: "Limits").

``cluster`` "local" and "debug" run the same ``StageJob`` objects with submitit's
executors on this machine, which is how the tests run this path without a cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rfr.atomic import write_json_atomic
from rfr.config import ConfigError
from rfr.launch.config import SlurmConfig
from rfr.launch.local import run_repro, run_stage, stage_log, stop_stage, worker_environment
from rfr.launch.plan import Job, LaunchError
from rfr.launch.progress import Progress, StageResult

try:  # an optional extra: pip install -e '.[slurm]'
    import submitit
    from submitit.helpers import Checkpointable, DelayedSubmission
except ImportError:  # pragma: no cover - the message below says what to install
    submitit = None
    Checkpointable = object
    DelayedSubmission = None

STOP_GRACE_S = 60


def require_submitit() -> None:
    if submitit is None:
        raise LaunchError("the slurm backend needs submitit: pip install 'submitit>=1.5,<2' "
                          "(or pip install -e '.[slurm]')")


def job_record(log_dir: Path, run: str) -> Path:
    return log_dir / f"job-{run}.json"


class StageFailedError(RuntimeError):
    """A stage of an array task failed; the task fails, so dependent jobs do not start."""


class StageJob(Checkpointable):
    """One array task: the stages of one run, in order. Picklable, and resubmitted with
    the same stages on timeout or preemption."""

    def __init__(self, workspace: str, run: str, stages: Sequence[str], log_dir: str,
                 raise_on_failure: bool) -> None:
        self.workspace = workspace
        self.run = run
        self.stages = list(stages)
        self.log_dir = log_dir
        self.raise_on_failure = raise_on_failure
        self._child: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_child"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _child=None)

    def __call__(self) -> list[dict[str, Any]]:
        log_dir = Path(self.log_dir)
        env = worker_environment(os.environ)
        worker = os.environ.get("SLURM_JOB_ID", os.environ.get("SUBMITIT_EXECUTOR", "debug"))
        results: list[dict[str, Any]] = []
        failed = False
        for stage in self.stages:
            log_path = stage_log(log_dir, stage)
            if failed:
                results.append(vars(StageResult(stage, "skipped", None, 0.0, str(log_path),
                                                worker)))
                continue
            result = run_stage(stage, self.workspace, env, log_path, worker, self._track)
            failed = result.outcome != "done"
            results.append(vars(result))
            write_record(job_record(log_dir, self.run), results)
        write_record(job_record(log_dir, self.run), results)
        if failed and self.raise_on_failure:
            bad = next(r for r in results if r["outcome"] == "failed")
            raise StageFailedError(f"{bad['stage']} failed (exit {bad['returncode']}); "
                                   f"log {bad['log']}")
        return results

    def _track(self, child: subprocess.Popen, running: bool) -> None:
        self._child = child if running else None

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Stop the running stage (SIGTERM to its process group: the training keeps its
        last checkpoint) and requeue the same stages."""
        child = self._child
        if child is not None:
            stop_stage(child, STOP_GRACE_S)
        return DelayedSubmission(StageJob(self.workspace, self.run, self.stages, self.log_dir,
                                          self.raise_on_failure))


class FinalRepro:
    """The last job of a ``--no-wait`` launch: ``dvc repro`` once the array succeeded."""

    def __init__(self, workspace: str, log_dir: str) -> None:
        self.workspace = workspace
        self.log_dir = log_dir

    def __call__(self) -> int:
        code = run_repro(self.workspace, [], Path(self.log_dir) / "final.log")
        if code != 0:
            raise StageFailedError(f"the final dvc repro failed (exit {code}); log "
                                   f"{Path(self.log_dir) / 'final.log'}")
        return code


def write_record(path: Path, results: list[dict[str, Any]]) -> None:
    write_json_atomic(path, results, indent=2)


def slurm_parameters(config: SlurmConfig, gpus_per_run: int) -> dict[str, Any]:
    """sbatch settings of every array task (submitit's names)."""
    parameters: dict[str, Any] = {
        "job_name": "rfr-launch",
        "time": config.time_min,
        "nodes": 1,
        "ntasks_per_node": 1,  # one process per task: `rfr train` starts torchrun itself
        "cpus_per_task": config.cpus_per_task,
        "array_parallelism": config.array_parallelism,
        "additional_parameters": {"requeue": True},
    }
    if gpus_per_run:
        parameters["gpus_per_node"] = gpus_per_run
    for name in ("partition", "account", "qos", "constraint"):
        if getattr(config, name) is not None:
            parameters[name] = getattr(config, name)
    if config.mem_gb is not None:
        parameters["mem"] = f"{config.mem_gb}GB"
    if config.setup:
        parameters["setup"] = list(config.setup)
    return parameters


def make_executor(config: SlurmConfig, folder: Path, gpus_per_run: int,
                  dependency: str | None = None) -> Any:
    require_submitit()
    if config.cluster == "slurm":
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=config.max_requeues)
        parameters = slurm_parameters(config, gpus_per_run)
        if dependency is not None:
            parameters["dependency"] = dependency
        executor.update_parameters(**parameters)
    elif config.cluster == "local":
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=config.max_requeues)
        executor.update_parameters(timeout_min=config.time_min)
    else:
        executor = submitit.DebugExecutor(folder=folder)
    return executor


class SubmititBackend:
    """Submits one task per job (a job array on SLURM) and, unless ``wait`` is False,
    follows them, reporting each stage as its task ends."""

    def __init__(self, workspace: Path, config: SlurmConfig, gpus_per_run: int,
                 progress: Progress, log_dir: Path, poll_s: float = 10.0) -> None:
        if not config.wait and config.cluster != "slurm":
            raise ConfigError(f"--no-wait needs the slurm cluster (its final job waits on the "
                              f"array); the {config.cluster} executor runs here, so wait")
        self.workspace = workspace
        self.config = config
        self.gpus_per_run = gpus_per_run
        self.progress = progress
        self.log_dir = log_dir
        self.folder = Path(config.folder) if config.folder else log_dir / "submitit"
        self.poll_s = poll_s if config.cluster == "slurm" else min(poll_s, 0.5)

    def run(self, jobs: Sequence[Job]) -> list[StageResult] | None:
        if not jobs:
            return []
        executor = make_executor(self.config, self.folder, self.gpus_per_run)
        raise_on_failure = self.config.cluster == "slurm"
        tasks = [StageJob(str(self.workspace), job.run, job.stages, str(self.log_dir),
                          raise_on_failure) for job in jobs]
        with executor.batch():
            submitted = [executor.submit(task) for task in tasks]
        ids = ", ".join(sorted({str(s.job_id).split("_")[0] for s in submitted}))
        self.progress.say(f"submitted {len(submitted)} task(s) to {self.config.cluster} "
                          f"(job {ids}); task logs in {self.folder}")
        if not self.config.wait:
            self.submit_final(ids)
            return None
        return self.follow(jobs, submitted)

    def submit_final(self, array_id: str) -> None:
        executor = make_executor(self.config, self.folder, 0, dependency=f"afterok:{array_id}")
        final = executor.submit(FinalRepro(str(self.workspace), str(self.log_dir)))
        self.progress.say(f"submitted the final dvc repro as job {final.job_id} (starts when "
                          f"job {array_id} succeeded; log {self.log_dir / 'final.log'})")

    def follow(self, jobs: Sequence[Job], submitted: Sequence[Any]) -> list[StageResult]:
        pending = dict(zip([job.run for job in jobs], submitted, strict=True))
        stages = {job.run: job.stages for job in jobs}
        states: dict[str, str] = {}
        while pending:
            for run, task in list(pending.items()):
                state = str(task.state)
                if states.get(run) != state:
                    states[run] = state
                    self.progress.say(f"task    {run} (job {task.job_id}): {state}")
                if task.done():
                    del pending[run]
                    self.collect(run, stages[run], task)
            if pending:
                time.sleep(self.poll_s)
        return self.progress.results

    def collect(self, run: str, stages: Sequence[str], task: Any) -> None:
        record = job_record(self.log_dir, run)
        found = json.loads(record.read_text()) if record.exists() else []
        by_stage = {entry["stage"]: entry for entry in found}
        error = task.exception()
        for stage in stages:
            if stage in by_stage:
                self.progress.ended(StageResult(**by_stage[stage]))
            else:
                why = "" if error is None else f": {str(error).strip().splitlines()[-1][:300]}"
                self.progress.say(f"task    {run} (job {task.job_id}) ended without running "
                                  f"{stage}{why}")
                self.progress.ended(StageResult(stage, "failed", None, 0.0,
                                                str(task.paths.stderr), f"task {task.job_id}"))


__all__ = ["FinalRepro", "StageJob", "SubmititBackend", "make_executor", "slurm_parameters"]
