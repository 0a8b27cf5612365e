"""The local backend: worker threads, each running its jobs' stages as ``dvc repro -s``
subprocesses in the shared workspace, with its own GPUs or CPU threads.

Why the shared workspace and not ``dvc exp run --queue`` or one clone per worker: the
training stages' outputs are ``persist: true`` (a run resumes from its own checkpoint),
and DVC keeps no run-cache for such stages, so a run made elsewhere cannot be brought
back into this workspace's ``dvc.lock``. Several ``dvc repro -s`` may run at once here:
DVC releases the repository lock while a stage's command runs and rewrites only that
stage's entry of ``dvc.lock``; ``--wait-for-lock`` queues the short moments when two of
them want the lock at once."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from rfr.launch.plan import Job, dvc_command
from rfr.launch.progress import Progress, StageResult


def repro_stage_command(stage: str) -> list[str]:
    return dvc_command("--wait-for-lock", "repro", "-s", stage)


def worker_environment(base: Mapping[str, str], gpus: Sequence[str] | None = None,
                       threads: int | None = None) -> dict[str, str]:
    """A worker's environment: this Python's scripts first on PATH (the stage commands
    call ``rfr``); only ``gpus`` visible (an empty list: none; None: as in ``base``);
    ``threads`` CPU threads (None: as in ``base``)."""
    env = dict(base)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    return env


def stage_log(log_dir: Path, stage: str) -> Path:
    return log_dir / (stage.replace("@", "__").replace("/", "_") + ".log")


# Called with (child, True) once a stage's process started, (child, False) once it ended:
# the caller keeps it meanwhile, to stop it (``stop_stage``).
ChildTracker = Callable[[subprocess.Popen, bool], None]


def run_stage(stage: str, workspace: Path | str, env: Mapping[str, str], log_path: Path,
              worker: str, track: ChildTracker | None = None) -> StageResult:
    """Run one stage as ``dvc --wait-for-lock repro -s`` in ``workspace``, its output
    appended to ``log_path``. Both backends run stages through this (a local worker and a
    SLURM array task): in its own process group, so that ``stop_stage`` reaches the
    training and the processes it started (torchrun's ranks), and without a stdin."""
    started = time.perf_counter()
    with open(log_path, "ab") as out:
        child = subprocess.Popen(repro_stage_command(stage), cwd=workspace, env=dict(env),
                                 stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        if track is not None:
            track(child, True)
        try:
            code = child.wait()
        finally:
            if track is not None:
                track(child, False)
    return StageResult(stage, "done" if code == 0 else "failed", code,
                       time.perf_counter() - started, str(log_path), worker)


def stop_stage(child: subprocess.Popen, grace_s: float | None = None) -> None:
    """SIGTERM to a running stage's process group (a training writes nothing more and
    keeps its last checkpoint); with ``grace_s``, wait that long and SIGKILL the group if
    it is still there."""
    if child.poll() is not None:
        return
    os.killpg(child.pid, signal.SIGTERM)
    if grace_s is None:
        return
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)


def run_repro(workspace: Path | str, targets: Sequence[str], log_path: Path) -> int:
    """``dvc --wait-for-lock repro [targets]`` in ``workspace`` with its output appended
    to ``log_path``; its exit code. The launch's setup and final repro, and the final
    job of a ``--no-wait`` SLURM launch."""
    with open(log_path, "ab") as out:
        return subprocess.run(dvc_command("--wait-for-lock", "repro", *targets),
                              cwd=workspace, stdout=out, stderr=subprocess.STDOUT,
                              env=worker_environment(os.environ),
                              stdin=subprocess.DEVNULL).returncode


class LocalBackend:
    """Runs jobs on ``len(slots)`` workers; a job's stages run in order, and a failed
    stage skips the rest of its job (its evaluation needs the training)."""

    def __init__(self, workspace: Path, slots: Sequence[tuple[str, Mapping[str, str]]],
                 progress: Progress) -> None:
        self.workspace = workspace
        self.slots = list(slots)  # (worker name, environment)
        self.progress = progress
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def run(self, jobs: Sequence[Job]) -> list[StageResult]:
        todo: queue.Queue[Job] = queue.Queue()
        for job in jobs:
            todo.put(job)
        threads = [threading.Thread(target=self._work, args=(name, env, todo), daemon=True)
                   for name, env in self.slots]
        for thread in threads:
            thread.start()
        try:
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(timeout=0.2)
        except KeyboardInterrupt:
            self.progress.say("interrupted: stopping the running stages (each keeps its "
                              "last checkpoint; launch again to resume)")
            self.stop()
            for thread in threads:
                thread.join(timeout=30)
            raise
        return self.progress.results

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for child in self._children:
                stop_stage(child)

    def _work(self, name: str, env: Mapping[str, str], todo: queue.Queue[Job]) -> None:
        while not self._stop.is_set():
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            failed = False
            for stage in job.stages:
                log_path = stage_log(self.progress.log_dir, stage)
                if failed or self._stop.is_set():
                    self.progress.ended(StageResult(stage, "skipped", None, 0.0,
                                                    str(log_path), name))
                    continue
                result = self._run_stage(stage, name, env, log_path)
                self.progress.ended(result)
                failed = result.outcome != "done"

    def _run_stage(self, stage: str, worker: str, env: Mapping[str, str],
                   log_path: Path) -> StageResult:
        self.progress.started(stage, worker, log_path)
        return run_stage(stage, self.workspace, env, log_path, worker, self._track)

    def _track(self, child: subprocess.Popen, running: bool) -> None:
        with self._lock:
            if running:
                self._children.add(child)
            else:
                self._children.discard(child)
