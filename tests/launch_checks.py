"""Workspaces for launch tests, and the checks a finished launch must pass.

``make_workspace`` copies this checkout (tracked and new files, as git sees them) into a
fresh git repository, so a test can run the real pipeline without touching this one.
``check_launch`` is also run by CI on the smoke profile:

    python tests/launch_checks.py --workspace . --logs LOGDIR
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RAN = re.compile(r"^Running stage '(?P<stage>[^']+)':", re.MULTILINE)
TRAIN_GROUPS = ("train", "train-ablation")


def dvc(workspace: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ,  # the stage commands call this environment's `rfr`
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=workspace,
                          capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed: {done.stdout}\n{done.stderr}")
    return done


def make_workspace(dest: Path, params: dict[str, Any]) -> Path:
    """A git repository holding this checkout's files with ``params`` as params.yaml and
    no dvc.lock: nothing has run there yet."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / "dvc.lock").unlink(missing_ok=True)  # this checkout's lock is the demo's
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=test"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "workspace"], cwd=dest, check=True)
    return dest


def tiny_profile(steps: int, finetune_steps: int = 1, checkpoint_every: int = 3
                 ) -> dict[str, Any]:
    """The smoke profile cut to one dataset and three runs (rfr, pconv, rfr_iter1)."""
    params = yaml.safe_load((REPO / "profiles" / "smoke.yaml").read_text())
    params["datasets"] = {"demo-scenes": {
        "data": {"name": "demo-scenes", "size": 32, "limit": 4},
        "schedule": {"steps": steps, "finetune_steps": finetune_steps}}}
    params["compare"] = {"datasets": ["demo-scenes"], "variants": ["rfr", "pconv"],
                         "seeds": [0]}
    params["ablation"] = {"dataset": "demo-scenes", "variants": ["rfr_iter1"], "seeds": [0]}
    params["runtime"] = {**params.get("runtime", {}), "checkpoint_every": checkpoint_every,
                         "keep_checkpoints": 0}
    params["recurrence"] = {**params["recurrence"], "size": 32}
    return params


def stages_ran(log_dir: Path) -> list[str]:
    """Every stage a ``dvc repro`` of the launch ran, from all its logs."""
    ran = []
    for log in sorted(log_dir.glob("*.log")):
        ran += RAN.findall(log.read_text(errors="replace"))
    return ran


def check_launch(workspace: Path, log_dir: Path) -> dict[str, Any]:
    """Assert what a complete launch promises; returns the figures it saw."""
    graph = dvc(workspace, "dag", "--dot").stdout
    stages = set(re.findall(r'^"([^"]+)";$', graph, re.MULTILINE))
    trainings = {s for s in stages if s.split("@")[0] in TRAIN_GROUPS}
    ran = stages_ran(log_dir)
    ran_trainings = [s for s in ran if s.split("@")[0] in TRAIN_GROUPS]
    assert sorted(ran_trainings) == sorted(trainings), (
        f"each training stage must run exactly once: ran {sorted(ran_trainings)}, "
        f"stages {sorted(trainings)}")
    final = RAN.findall((log_dir / "final.log").read_text())
    assert not [s for s in final if s.split("@")[0] in TRAIN_GROUPS], (
        f"the final dvc repro ran training stages: {final}")
    lock = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]
    missing = stages - set(lock)  # matrix stages are listed as "train@<run>"
    assert not missing, f"dvc.lock lacks {sorted(missing)}"
    second = dvc(workspace, "repro").stdout
    assert "Data and pipelines are up to date" in second, second
    status = dvc(workspace, "status").stdout
    assert "Data and pipelines are up to date" in status, status
    summary = json.loads((log_dir / "launch.json").read_text())
    assert summary["final"] == 0 and all(s["outcome"] == "done" for s in summary["stages"])
    return {"stages": len(stages), "trainings": len(trainings), "ran": len(ran),
            "final_ran": final, "seconds": summary["seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("."))
    parser.add_argument("--logs", type=Path, required=True)
    args = parser.parse_args()
    figures = check_launch(args.workspace.resolve(), args.logs.resolve())
    print(f"launch check passed: {figures['trainings']} training stages ran once each, "
          f"{figures['ran']} stages in all, the final repro ran {figures['final_ran']}; "
          f"dvc.lock has all {figures['stages']} stages; a second repro and dvc status are "
          f"clean; launch took {figures['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
