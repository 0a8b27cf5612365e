"""rfr launch: the plan from DVC's graph and status, the longest-first schedule, the
local workers on a real workspace (every training once, a killed worker resumed to the
same weights), submitit's local and debug executors, and the SLURM array script."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from launch_checks import REPO, check_launch, dvc, make_workspace, stages_ran, tiny_profile

from rfr.config import ConfigError, from_dict
from rfr.launch import LaunchConfig, SlurmConfig
from rfr.launch.config import gpu_groups
from rfr.launch.launcher import plan_every_run
from rfr.launch.plan import (
    Job,
    LaunchError,
    check_stage_groups,
    make_plan,
    parse_dag_dot,
    read_dvc_stages,
    read_graph,
    run_costs,
    schedule,
)
from rfr.pipeline import load_params

DOT = """strict digraph {
"prepare@a";
"masks";
"train@a-rfr-0";
"train@a-pconv-0";
"evaluate@a-rfr-0";
"evaluate@a-pconv-0";
"recurrence";
"report";
"prepare@a" -> "train@a-rfr-0";
"prepare@a" -> "train@a-pconv-0";
"prepare@a" -> "evaluate@a-rfr-0";
"prepare@a" -> "evaluate@a-pconv-0";
"masks" -> "evaluate@a-rfr-0";
"masks" -> "evaluate@a-pconv-0";
"train@a-rfr-0" -> "evaluate@a-rfr-0";
"train@a-pconv-0" -> "evaluate@a-pconv-0";
"evaluate@a-rfr-0" -> "report";
"evaluate@a-pconv-0" -> "report";
"recurrence" -> "report";
}
"""


def launch_cli(workspace: Path, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rfr.cli", "launch", *args], cwd=workspace,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def run_launch(workspace: Path, *args: str) -> tuple[int, str]:
    child = launch_cli(workspace, *args)
    out, _ = child.communicate(timeout=900)
    return child.returncode, out


# --- the plan ---------------------------------------------------------------------------


def test_plan_groups_stale_stages_per_run_and_propagates_downstream():
    graph = parse_dag_dot(DOT)
    # Only the rfr training is reported stale; its evaluation is stale through it, and
    # the report through both. pconv's run is up to date and is not planned.
    plan = make_plan(graph, {"train@a-rfr-0", "recurrence"},
                     {"a-rfr-0": (500, 1), "a-pconv-0": (500, 1)})
    assert plan.setup == ("prepare@a", "masks")
    assert [(job.run, job.stages) for job in plan.jobs] == [
        ("a-rfr-0", ("train@a-rfr-0", "evaluate@a-rfr-0"))]
    assert plan.jobs[0].steps == 500
    assert plan.rest == ("recurrence", "report")
    # A stale setup stage makes every run's stages stale.
    plan = make_plan(graph, {"prepare@a"}, {"a-rfr-0": (500, 1), "a-pconv-0": (900, 1)})
    assert [job.run for job in plan.jobs] == ["a-pconv-0", "a-rfr-0"]  # longest first
    # An evaluation alone (new masks, say) is a job without training: cost 0.
    plan = make_plan(graph, {"masks"}, {"a-rfr-0": (500, 1), "a-pconv-0": (900, 1)})
    assert [(job.stages, job.steps) for job in plan.jobs] == [
        (("evaluate@a-pconv-0",), 0), (("evaluate@a-rfr-0",), 0)]


def test_longest_first_schedule_balances_workers():
    jobs = [Job(f"r{i}", (f"train@r{i}",), steps) for i, steps in
            enumerate([3000, 3000, 600, 600, 600, 600, 600, 500, 500])]
    sched = schedule(jobs, 3)
    loads = sorted(sum(job.steps for job in lane) for lane in sched.lanes)
    assert sched.total == 10000
    assert loads == [3000, 3500, 3500]
    assert sched.makespan == 3500
    assert sched.waves == 5  # the third worker runs the five 600-step jobs
    with pytest.raises(ConfigError, match="at least one worker"):
        schedule(jobs, 0)


def test_paper_profile_on_one_8_gpu_node_longest_first():
    params = load_params(REPO / "profiles" / "paper.yaml", check_roots=False)
    plan = plan_every_run(params, read_dvc_stages(REPO))
    assert len(plan.jobs) == 34
    assert plan.jobs[0].run.startswith("places2-") and plan.jobs[0].steps == 3_000_000
    sched = schedule(plan.jobs, 8)
    # 6 x 3M (Places2) + 22 x 600k (Paris, with the 16 ablations) + 6 x 500k (CelebA).
    assert sched.total == 34_200_000
    assert sched.makespan >= sched.total / 8
    print(f"paper profile, 8 workers: makespan {sched.makespan:,} steps, {sched.waves} waves")
    # Longest first: six workers take a Places2 run each, two take Paris runs meanwhile;
    # the busiest ends 7.6 % above the ideal split (4,275,000).
    assert sched.makespan == 4_600_000
    assert sched.waves == 7


def test_plan_of_every_run_from_dvc_yaml_is_dvcs_own(tmp_path):
    """``--all`` names the stages from dvc.yaml's matrices without asking DVC: the same
    jobs as DVC's graph with every stage stale; a renamed stage is refused."""
    params = load_params(REPO / "params.yaml", check_roots=False)
    stages = read_dvc_stages(REPO)
    graph = read_graph(REPO)
    ours = plan_every_run(params, stages)
    dvcs = make_plan(graph, set(graph.stages), run_costs(params))
    assert ours.jobs == dvcs.jobs
    assert ours.setup == tuple(dict.fromkeys(s.partition("@")[0] for s in dvcs.setup))
    assert ours.rest == dvcs.rest == ("recurrence", "report")
    assert sum(job.trains for job in ours.jobs) == len(ours.jobs)  # one training per run

    renamed = {("fit" if name == "train" else name): stage for name, stage in stages.items()}
    with pytest.raises(LaunchError, match=r"per-run stages are \['fit', 'train-ablation'"):
        check_stage_groups(renamed)
    with pytest.raises(LaunchError, match="update PER_RUN_GROUPS"):
        plan_every_run(params, renamed)
    fewer = dict(params, compare={**params["compare"], "seeds": [0]},
                 ablation={**params["ablation"], "seeds": [0]})
    assert len(plan_every_run(fewer, stages).jobs) == len(ours.jobs) // 2


def test_gpu_groups_and_config_refusals():
    assert gpu_groups(["0", "1", "2", "3"], 2) == [["0", "1"], ["2", "3"]]
    with pytest.raises(ConfigError, match="do not split into workers of train.gpus = 2"):
        gpu_groups(["0", "1", "2"], 2)
    with pytest.raises(ConfigError, match="twice"):
        LaunchConfig(gpus=["0", "0"])
    with pytest.raises(ConfigError, match="backend"):
        from_dict(LaunchConfig, {"backend": "kubernetes"})
    config = from_dict(LaunchConfig, {"backend": "slurm", "slurm": {"partition": "gpu",
                                                                     "time_min": 60}})
    assert config.slurm.partition == "gpu" and config.slurm.time_min == 60


def test_local_workers_get_their_gpus_or_a_share_of_the_cores(tmp_path):
    from rfr.launch.launcher import make_backend
    from rfr.launch.progress import Progress

    progress = Progress(tmp_path, total=0, show_bar=False)
    backend = make_backend(LaunchConfig(gpus=["0", "1", "2", "3"], threads_per_worker=4),
                           tmp_path, progress, 2, tmp_path)
    assert [(name, env["CUDA_VISIBLE_DEVICES"], env["OMP_NUM_THREADS"])
            for name, env in backend.slots] == [("gpu0,1", "0,1", "4"), ("gpu2,3", "2,3", "4")]
    backend = make_backend(LaunchConfig(workers=2, threads_per_worker=1), tmp_path, progress,
                           1, tmp_path)
    assert [(env["CUDA_VISIBLE_DEVICES"], env["MKL_NUM_THREADS"]) for _, env in backend.slots
            ] == [("", "1"), ("", "1")]
    bin_dir = str(Path(sys.executable).parent)
    assert all(env["PATH"].split(os.pathsep)[0] == bin_dir for _, env in backend.slots)
    progress.close({})


def test_a_second_launch_in_the_same_workspace_is_refused(tmp_path):
    from rfr.launch.launcher import one_launch_per_workspace

    (tmp_path / ".dvc").mkdir()
    with one_launch_per_workspace(tmp_path):
        rc, out = run_launch(tmp_path, "--workers", "1")
        assert rc == 2, out
        assert f"another rfr launch runs in {tmp_path} (pid {os.getpid()}" in out
    with one_launch_per_workspace(tmp_path):  # released: the next one may start
        pass


@pytest.mark.slow
def test_dry_run_of_another_profile_needs_all(tmp_path):
    rc, out = run_launch(REPO, "--dry-run", "--params", "profiles/paper.yaml")
    assert rc == 2 and "dvc repro reads params.yaml" in out
    rc, out = run_launch(REPO, "--dry-run", "--all", "--params", "profiles/paper.yaml",
                         "--gpus", "0,1,2,3,4,5,6,7", "--step-seconds", "0.25")
    assert rc == 0, out
    assert "34 jobs on 8 worker(s), longest first: 7 wave(s); busiest worker 4,600,000" in out
    assert "at 0.25 s/step: wall clock 13.3 days (training only), 99.0 GPU-days" in out


# --- local workers on a real workspace ----------------------------------------------------


@pytest.mark.slow
def test_local_launch_runs_each_training_once_and_a_killed_worker_resumes(tmp_path):
    """Two copies of one workspace: one launched straight through with 2 workers, one
    whose rfr training worker is killed (SIGKILL to its dvc process group) after its
    first checkpoint and launched again. Both end with the same weights, bit for bit
    (same machine, 1 thread per worker)."""
    params = tiny_profile(steps=24, finetune_steps=2, checkpoint_every=6)
    straight = make_workspace(tmp_path / "straight", params)
    killed = make_workspace(tmp_path / "killed", params)
    common = ["--workers", "2", "--threads-per-worker", "1"]

    rc, out = run_launch(straight, *common, "--logs", str(tmp_path / "logs-straight"))
    assert rc == 0, out
    figures = check_launch(straight, tmp_path / "logs-straight")
    assert figures["trainings"] == 3 and figures["final_ran"] == ["recurrence", "report"]

    run = killed / "smoke" / "runs" / "demo-scenes-rfr-0"
    child = launch_cli(killed, *common, "--logs", str(tmp_path / "logs-killed-1"))
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "step_0000006.pth").exists():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()[0]
        time.sleep(0.05)
    victim = worker_pid(killed, "train@demo-scenes-rfr-0")
    os.killpg(os.getpgid(victim), signal.SIGKILL)
    out, _ = child.communicate(timeout=600)
    assert child.returncode == 1, out
    assert "FAILED  train@demo-scenes-rfr-0 (exit -9" in out
    assert "not done: train@demo-scenes-rfr-0" in out
    assert "not done: evaluate@demo-scenes-rfr-0 (skipped" in out
    reached = torch.load(run / "last.pth", weights_only=True)["training"]["step"]
    assert 6 <= reached < 26, reached

    rc, out = run_launch(killed, *common, "--logs", str(tmp_path / "logs-killed-2"))
    assert rc == 0, out
    assert f"resuming {Path('smoke/runs/demo-scenes-rfr-0')} from step {reached}" in (
        run / "train.log").read_text()
    # The relaunch redid only the interrupted run: pconv and rfr_iter1 were done.
    again = [s for s in stages_ran(tmp_path / "logs-killed-2") if s.startswith("train")]
    assert again == ["train@demo-scenes-rfr-0"]
    check_launch_after_resume(killed, tmp_path / "logs-killed-2")

    for name in ("demo-scenes-rfr-0", "demo-scenes-pconv-0", "demo-scenes-rfr_iter1-0"):
        a = torch.load(straight / "smoke" / "runs" / name / "last.pth", weights_only=True)
        b = torch.load(killed / "smoke" / "runs" / name / "last.pth", weights_only=True)
        assert a["training"]["step"] == b["training"]["step"] == 26
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for key, tensor in a["state_dict"].items():
            assert torch.equal(tensor, b["state_dict"][key]), f"{name}: {key} differs"


def check_launch_after_resume(workspace: Path, log_dir: Path) -> None:
    assert "Data and pipelines are up to date" in dvc(workspace, "repro").stdout
    assert "Data and pipelines are up to date" in dvc(workspace, "status").stdout


def worker_pid(workspace: Path, stage: str) -> int:
    """PID of the ``dvc repro -s <stage>`` worker running in ``workspace``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"repro" in argv and stage.encode() in argv and Path(cwd) == workspace.resolve():
            return int(entry.name)
    raise AssertionError(f"no worker runs {stage} in {workspace}")


# --- submitit ----------------------------------------------------------------------------


@pytest.mark.slow
def test_submitit_local_and_debug_executors_run_stages(tmp_path):
    """The slurm backend's own task objects, through submitit's debug executor (in this
    process) for one run and its local executor (a subprocess) for another."""
    pytest.importorskip("submitit")
    from rfr.launch.progress import Progress
    from rfr.launch.slurm import SubmititBackend

    workspace = make_workspace(tmp_path / "ws", tiny_profile(steps=2))
    dvc(workspace, "repro", "prepare@demo-scenes", "masks")
    for cluster, run in (("debug", "demo-scenes-pconv-0"), ("local", "demo-scenes-rfr_iter1-0")):
        group = "" if "pconv" in run else "-ablation"
        stages = (f"train{group}@{run}", f"evaluate{group}@{run}")
        log_dir = tmp_path / f"logs-{cluster}"
        log_dir.mkdir()
        progress = Progress(log_dir, total=2, show_bar=False)
        backend = SubmititBackend(workspace, SlurmConfig(cluster=cluster), 1, progress, log_dir)
        results = backend.run([Job(run, stages, 2)])
        assert [(r.stage, r.outcome) for r in results] == [(s, "done") for s in stages]
        assert sorted(stages_ran(log_dir)) == sorted(stages)
        status = dvc(workspace, "status", *stages).stdout
        assert "Data and pipelines are up to date" in status, status
        progress.close({})
    lock = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]
    assert {"train@demo-scenes-pconv-0", "train-ablation@demo-scenes-rfr_iter1-0",
            "evaluate@demo-scenes-pconv-0"} <= set(lock)
    assert "train@demo-scenes-rfr-0" not in lock  # not submitted, not run
    assert not (workspace / "smoke" / "runs" / "demo-scenes-rfr-0").exists()


FAKE_SBATCH = """#!/bin/sh
# Records the script it is given and answers like sbatch.
n=$(ls "$SBATCH_RECORD" | wc -l)
cp "$1" "$SBATCH_RECORD/script$n.sh"
echo "Submitted batch job $((4242 + n))"
"""


def test_slurm_array_is_submitted_with_gpus_time_and_requeue(tmp_path, monkeypatch):
    """No sbatch here: a stand-in records the scripts submitit would hand to SLURM."""
    pytest.importorskip("submitit")
    from rfr.launch.progress import Progress
    from rfr.launch.slurm import SubmititBackend

    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(FAKE_SBATCH)
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    srun = bin_dir / "srun"  # submitit looks for it to tell that this is a cluster
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(sbatch.stat().st_mode)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_RECORD", str(record))
    config = SlurmConfig(partition="gpu", account="inpaint", time_min=2880,
                         array_parallelism=3, cpus_per_task=12, mem_gb=64, wait=False,
                         setup=["source .venv/bin/activate"])
    jobs = [Job(f"paris-v{i}-0", (f"train@paris-v{i}-0", f"evaluate@paris-v{i}-0"), 600_000, 2)
            for i in range(5)]
    progress = Progress(tmp_path, total=10, show_bar=False)
    assert SubmititBackend(tmp_path, config, 2, progress, tmp_path).run(jobs) is None
    progress.close({})
    array, final = (record / "script0.sh").read_text(), (record / "script1.sh").read_text()
    for line in ("#SBATCH --array=0-4%3", "#SBATCH --gpus-per-node=2", "#SBATCH --time=2880",
                 "#SBATCH --partition=gpu", "#SBATCH --account=inpaint", "#SBATCH --nodes=1",
                 "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=12",
                 "#SBATCH --mem=64GB", "#SBATCH --requeue", "#SBATCH --signal=USR2@90",
                 "source .venv/bin/activate"):
        assert line in array.splitlines(), f"{line!r} not in:\n{array}"
    assert "#SBATCH --dependency=afterok:4242" in final.splitlines(), final
    assert "--array" not in final and "--gpus-per-node" not in final
    log = (tmp_path / "launch.log").read_text()
    assert "submitted 5 task(s) to slurm (job 4242)" in log
    assert "final dvc repro as job 4243" in log


def test_stage_job_checkpoint_stops_its_stage_and_requeues_the_same_stages(tmp_path):
    """What submitit calls on timeout or preemption: the running stage gets SIGTERM
    (a training keeps its last checkpoint) and the same stages are resubmitted."""
    pytest.importorskip("submitit")
    import pickle

    from submitit.helpers import DelayedSubmission

    from rfr.launch.slurm import StageJob

    job = StageJob(str(tmp_path), "paris-rfr-0", ["train@paris-rfr-0", "evaluate@paris-rfr-0"],
                   str(tmp_path), raise_on_failure=True)
    job._child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    started = time.monotonic()
    again = job.checkpoint()
    assert job._child.returncode == -signal.SIGTERM
    assert time.monotonic() - started < 10
    assert isinstance(again, DelayedSubmission)
    requeued = pickle.loads(pickle.dumps(again)).function
    assert requeued.stages == ["train@paris-rfr-0", "evaluate@paris-rfr-0"]
    assert requeued._child is None and requeued.raise_on_failure
