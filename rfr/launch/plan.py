"""What a launch runs: DVC's view of the pipeline turned into independent per-run jobs.

DVC stays the one source of truth. ``dvc dag --dot`` gives the stage graph and ``dvc
status --json`` the stages that are out of date; everything downstream of a stale stage
is stale too (a retrained run makes its evaluation stale, though ``dvc status`` cannot
know it yet). Stages named ``<group>@<run>`` with ``group`` in ``PER_RUN_GROUPS`` are the
matrix (``train@paris-rfr-0``, ``evaluate@paris-rfr-0``): the stale ones of one run form
a job, run in DAG order by one worker; jobs share nothing but the setup stages (prepare,
masks), which the launcher reproduces before any job starts, and the stages after them
(recurrence, report), which a final plain ``dvc repro`` runs.

Jobs go longest first (a run's cost is its step count), which is the greedy schedule
that keeps the last wave short; ``schedule`` simulates it for ``--dry-run``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rfr.config import load_yaml
from rfr.errors import LaunchError

# The matrix stages of dvc.yaml, one entry per run, and those that train: what makes a
# stage part of a run's job. ``check_stage_groups`` compares them with dvc.yaml at every
# launch, so that a renamed or added stage is an error, not a stage left to the final
# serial ``dvc repro``.
PER_RUN_GROUPS = ("train", "train-ablation", "evaluate", "evaluate-ablation")
TRAIN_GROUPS = ("train", "train-ablation")
# The matrix keys of a per-run stage, in the order of its entries' names (``rfr.pipeline
# .run_name``: <dataset>-<variant>-<seed>).
RUN_KEYS = ("dataset", "variant", "seed")
INTERPOLATION = re.compile(r"^\$\{(?P<key>[^}]+)\}$")
EDGE = re.compile(r'^\s*"(?P<up>[^"]+)"\s*->\s*"(?P<down>[^"]+)"\s*;?\s*$')
NODE = re.compile(r'^\s*"(?P<name>[^"]+)"\s*;?\s*$')


@dataclass(frozen=True)
class Graph:
    """Stage names in DVC's order and their upstream -> downstream edges."""

    stages: tuple[str, ...]
    downstream: Mapping[str, frozenset[str]]

    def upstream_of(self, name: str) -> set[str]:
        return {up for up, downs in self.downstream.items() if name in downs}

    def descendants(self, names: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(names)
        while todo:
            for down in self.downstream.get(todo.pop(), ()):
                if down not in seen:
                    seen.add(down)
                    todo.append(down)
        return seen

    def ancestors(self, names: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(names)
        while todo:
            for up in self.upstream_of(todo.pop()):
                if up not in seen:
                    seen.add(up)
                    todo.append(up)
        return seen


def parse_dag_dot(text: str) -> Graph:
    """The graph of ``dvc dag --dot`` (nodes in the order DVC lists them)."""
    stages: list[str] = []
    downstream: dict[str, set[str]] = {}
    for line in text.splitlines():
        if match := EDGE.match(line):
            up, down = match["up"], match["down"]
            downstream.setdefault(up, set()).add(down)
            for name in (up, down):
                if name not in stages:
                    stages.append(name)
        elif match := NODE.match(line):
            if match["name"] not in stages:
                stages.append(match["name"])
    return Graph(tuple(stages), {k: frozenset(v) for k, v in downstream.items()})


def dvc_command(*args: str) -> list[str]:
    """``dvc`` of this very environment (workers may not have it on PATH)."""
    return [sys.executable, "-m", "dvc", *args]


def run_dvc(args: Sequence[str], cwd: Path) -> str:
    done = subprocess.run(dvc_command(*args), cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise LaunchError(f"`dvc {' '.join(args)}` failed in {cwd} (exit {done.returncode}): "
                          f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return done.stdout


def read_graph(workspace: Path) -> Graph:
    return parse_dag_dot(run_dvc(["dag", "--dot"], workspace))


def read_stale(workspace: Path) -> set[str]:
    """Stages ``dvc status`` reports as changed (not yet their descendants)."""
    text = run_dvc(["status", "--json"], workspace).strip()
    status = json.loads(text) if text else {}
    return set(status)


def read_dvc_stages(workspace: Path) -> dict[str, Any]:
    """The ``stages`` mapping of ``workspace/dvc.yaml``, in the file's order."""
    stages = load_yaml(workspace / "dvc.yaml").get("stages")
    if not isinstance(stages, dict):
        raise LaunchError(f"{workspace / 'dvc.yaml'}: no stages mapping")
    return stages


def stage_groups(stages: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(per-run stages, training stages) as dvc.yaml defines them: matrices over
    exactly ``RUN_KEYS``; the training ones run ``rfr train``."""
    per_run = tuple(name for name, stage in stages.items()
                    if isinstance(stage, Mapping) and isinstance(stage.get("matrix"), Mapping)
                    and tuple(stage["matrix"]) == RUN_KEYS)
    trains = tuple(name for name in per_run
                   if str(stages[name].get("cmd", "")).split()[:2] == ["rfr", "train"])
    return per_run, trains


def check_stage_groups(stages: Mapping[str, Any]) -> None:
    """Refuse a dvc.yaml whose per-run or training stages are not the ones this module
    plans with (``PER_RUN_GROUPS``, ``TRAIN_GROUPS``)."""
    per_run, trains = stage_groups(stages)
    if set(per_run) != set(PER_RUN_GROUPS) or set(trains) != set(TRAIN_GROUPS):
        raise LaunchError(f"dvc.yaml's per-run stages are {list(per_run)} (training: "
                          f"{list(trains)}), rfr.launch.plan plans with "
                          f"{list(PER_RUN_GROUPS)} (training: {list(TRAIN_GROUPS)}); update "
                          f"PER_RUN_GROUPS and TRAIN_GROUPS there")


def _interpolate(value: Any, params: Mapping[str, Any], where: str) -> Any:
    """A matrix value with DVC's ``${dotted.key}`` replaced from ``params``."""
    if isinstance(value, list):
        return [_interpolate(item, params, where) for item in value]
    if not isinstance(value, str) or not (match := INTERPOLATION.match(value)):
        return value
    found: Any = params
    for part in match["key"].split("."):
        if not isinstance(found, Mapping) or part not in found:
            raise LaunchError(f"{where}: {value} is not in the profile")
        found = found[part]
    return found


def matrix_entries(stages: Mapping[str, Any], group: str,
                   params: Mapping[str, Any]) -> list[str]:
    """The names DVC gives the entries of the matrix stage ``group`` under ``params``:
    ``group@<value>-<value>-...``, the matrix's keys in order, the last varying fastest."""
    axes = [_interpolate(values, params, f"dvc.yaml stage {group}, matrix {key}")
            for key, values in stages[group]["matrix"].items()]
    for key, values in zip(stages[group]["matrix"], axes, strict=True):
        if not isinstance(values, list):
            raise LaunchError(f"dvc.yaml stage {group}: matrix {key} is not a list: {values!r}")
    return [f"{group}@{'-'.join(str(v) for v in entry)}"
            for entry in itertools.product(*axes)]


def foreach_entries(stages: Mapping[str, Any], group: str,
                    params: Mapping[str, Any]) -> list[str]:
    """The names DVC gives the entries of the foreach stage ``group`` under ``params``
    (``group@<key>`` over a mapping, ``group@<index>`` over a list): none when the
    profile's value is empty (``released: {}``), and DVC then has no such stage."""
    values = _interpolate(stages[group]["foreach"], params, f"dvc.yaml stage {group}, foreach")
    if isinstance(values, Mapping):
        return [f"{group}@{key}" for key in values]
    if not isinstance(values, list):
        raise LaunchError(f"dvc.yaml stage {group}: foreach is not a list or mapping: "
                          f"{values!r}")
    return [f"{group}@{index}" for index in range(len(values))]


def split_stage(name: str) -> tuple[str, str] | None:
    """(group, run) of a per-run matrix stage, None for any other stage."""
    group, sep, run = name.partition("@")
    return (group, run) if sep and group in PER_RUN_GROUPS else None


def is_training(name: str) -> bool:
    """Whether ``name`` is a run's training stage (``train@...``, ``train-ablation@...``)."""
    parts = split_stage(name)
    return parts is not None and parts[0] in TRAIN_GROUPS


@dataclass(frozen=True)
class Job:
    """The stale stages of one run, in DAG order; ``steps`` is its cost (0: no training)."""

    run: str
    stages: tuple[str, ...]
    steps: int = 0
    gpus: int = 1

    @property
    def trains(self) -> bool:
        return any(is_training(s) for s in self.stages)


@dataclass(frozen=True)
class Plan:
    setup: tuple[str, ...]  # stages every job needs (prepare, masks), reproduced first
    jobs: tuple[Job, ...]  # longest first
    rest: tuple[str, ...] = field(default=())  # stale stages left to the final dvc repro


def make_plan(graph: Graph, stale: set[str], costs: Mapping[str, tuple[int, int]]) -> Plan:
    """Jobs from the stale stages; ``costs[run]`` = (steps, gpus) of the run's training."""
    per_run = {name for name in graph.stages if split_stage(name)}
    setup = tuple(name for name in graph.stages
                  if name in graph.ancestors(per_run) and name not in per_run)
    todo = stale | graph.descendants(stale)
    by_run: dict[str, list[str]] = {}
    for name in graph.stages:  # DVC lists upstream stages first
        if name in todo and (parts := split_stage(name)):
            by_run.setdefault(parts[1], []).append(name)
    jobs = []
    for run, listed in by_run.items():
        steps, gpus = costs.get(run, (0, 1))
        job = Job(run, tuple(topological(listed, graph)), 0, gpus)
        jobs.append(replace(job, steps=steps) if job.trains else job)
    jobs.sort(key=lambda job: (-job.steps, job.run))
    rest = tuple(name for name in graph.stages
                 if name in todo and name not in per_run and name not in setup)
    return Plan(setup, tuple(jobs), rest)


def topological(names: Sequence[str], graph: Graph) -> list[str]:
    """``names`` ordered so that every stage follows the ones it depends on."""
    pending = list(names)
    done: list[str] = []
    while pending:
        for name in pending:
            if not (graph.ancestors([name]) & set(pending)):
                done.append(name)
                pending.remove(name)
                break
        else:  # a cycle: DVC refuses those, so this is a bug
            raise LaunchError(f"stages {pending} depend on each other")
    return done


def run_costs(params: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """(total steps, GPUs per run) of every run of a profile."""
    from rfr.pipeline import run_name, runs

    gpus = int(params.get("train", {}).get("gpus", 1))
    costs = {}
    for dataset, variant, seed in runs(params):
        schedule = params["datasets"][dataset]["schedule"]
        steps = int(schedule["steps"]) + int(schedule["finetune_steps"])
        costs[run_name(dataset, variant, seed)] = (steps, gpus)
    return costs


@dataclass(frozen=True)
class Schedule:
    """The longest-first schedule of jobs over ``workers`` identical workers."""

    workers: int
    lanes: tuple[tuple[Job, ...], ...]  # what each worker runs, in order
    makespan: int  # steps of the busiest worker: the wall clock in units of one step
    total: int  # steps of all jobs

    @property
    def waves(self) -> int:
        """Rounds of runs: the most jobs any worker runs one after another."""
        return max((len(lane) for lane in self.lanes), default=0)


def schedule(jobs: Sequence[Job], workers: int) -> Schedule:
    """Each job goes to the worker that frees first (jobs already longest first)."""
    if workers < 1:
        raise LaunchError(f"need at least one worker, got {workers}")
    heap = [(0, lane) for lane in range(workers)]
    lanes: list[list[Job]] = [[] for _ in range(workers)]
    for job in jobs:
        busy, lane = heapq.heappop(heap)
        lanes[lane].append(job)
        heapq.heappush(heap, (busy + job.steps, lane))
    loads = [sum(job.steps for job in lane) for lane in lanes]
    return Schedule(workers, tuple(tuple(lane) for lane in lanes), max(loads, default=0),
                    sum(loads))


def format_plan(plan: Plan, sched: Schedule, step_seconds: float | None = None) -> str:
    """What ``--dry-run`` prints: the stages in order, the lanes, the waves and the cost."""
    lines = [f"setup (reproduced first): {', '.join(plan.setup) or 'none'}"]
    if not plan.jobs:
        lines.append("no training or evaluation stage is out of date")
    for number, job in enumerate(plan.jobs, 1):
        cost = f"{job.steps:,} steps" if job.steps else "no training"
        lines.append(f"job {number:3d} {job.run} ({cost}, {job.gpus} GPU(s)/run): "
                     f"{' -> '.join(job.stages)}")
    lines.append(f"then a plain dvc repro: {', '.join(plan.rest) or 'nothing stale beyond'}")
    lines.append(f"{len(plan.jobs)} jobs on {sched.workers} worker(s), longest first: "
                 f"{sched.waves} wave(s); busiest worker {sched.makespan:,} steps, all jobs "
                 f"{sched.total:,} steps (ideal split {sched.total / sched.workers:,.0f})")
    for lane, jobs in enumerate(sched.lanes):
        steps = sum(job.steps for job in jobs)
        lines.append(f"  worker {lane}: {steps:,} steps: {', '.join(j.run for j in jobs)}")
    if step_seconds is not None:
        wall = sched.makespan * step_seconds
        gpu_days = sched.total * step_seconds * max(
            (job.gpus for job in plan.jobs), default=1) / 86400
        lines.append(f"at {step_seconds:g} s/step: wall clock {wall / 86400:.1f} days "
                     f"(training only), {gpu_days:.1f} GPU-days")
    return "\n".join(lines)
