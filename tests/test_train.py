"""Training loop: finite, logged loss terms; exact kill-and-resume; NaN guard; finetune
phase; config checks on resume; the `rfr train` verb. Tiny CPU runs (width 8, 32 x 32)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from rfr.cli import main as cli_main
from rfr.config import ConfigError, from_dict, to_dict
from rfr.model.api import build_model, count_parameters
from rfr.model.checkpoint import load_checkpoint, read_checkpoint
from rfr.train.loop import (
    DivergedError,
    TrainConfig,
    TrainingError,
    TrainingSamples,
    load_train_config,
    shard_indices,
    train,
)
from rfr.train.losses import LOSS_TERMS, InpaintingLoss

REPO = Path(__file__).resolve().parents[1]


def tiny(out_dir: Path, **changes) -> TrainConfig:
    data = {
        "model": "rfr",
        "model_config": {"width": 8},
        "dataset": {"name": "demo-scenes", "size": 32, "limit": 12},
        "loss": {"vgg_weights": "random"},
        "batch_size": 2,
        "steps": 3,
        "checkpoint_every": 2,
        "out_dir": str(out_dir),
        "progress": False,
        **changes,
    }
    return from_dict(TrainConfig, data)


def tsv_steps(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    col = lines[0].split("\t").index("step")
    return [int(line.split("\t")[col]) for line in lines[1:]]


@pytest.mark.slow
def test_trains_logs_finite_terms_and_records_random_vgg(tmp_path, single_thread):
    result = train(tiny(tmp_path))
    assert set(result.metrics) == {*LOSS_TERMS, "total"}
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert result.checkpoint == tmp_path / "checkpoints" / "step_0000003.pth"
    for term in (*LOSS_TERMS, "total"):
        assert tsv_steps(tmp_path / "dvclive" / "plots" / "metrics" / "train" / f"{term}.tsv") \
            == [0, 1, 2]
    log_text = (tmp_path / "train.log").read_text()
    assert "step 3/3" in log_text and "random VGG16" in log_text
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["vgg_weights"]["random"] is True and run["vgg_weights"]["spec"] == "random"
    training = read_checkpoint(result.checkpoint)["training"]
    assert training["vgg_weights"]["random"] is True
    assert {"torch", "numpy", "python", "data"} <= set(training["rng"])
    assert (tmp_path / "last.pth").samefile(result.checkpoint)
    load_checkpoint(tmp_path / "last.pth")  # the suite's loader reads a training checkpoint


def test_data_and_masks_depend_only_on_seed_and_sample(tmp_path):
    from rfr.data import build_dataset

    config = tiny(tmp_path)
    samples = TrainingSamples(build_dataset(config.dataset), config.seed, config.mask_kind)
    a, b = samples[13], TrainingSamples(build_dataset(config.dataset), 0, "strokes")[13]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert 0 < float(a["mask"].mean()) < 1
    # one epoch visits every item once
    assert sorted(samples.locate(g)[1] for g in range(12)) == list(range(12))
    assert shard_indices(3, 2, 1, 2) == [14, 15]


RUNNER = textwrap.dedent("""
    import sys, time
    import torch
    torch.set_num_threads(1)
    from rfr.config import from_dict, load_yaml
    from rfr.train.loop import TrainConfig, train
    delay = float(sys.argv[2])
    train(from_dict(TrainConfig, load_yaml(sys.argv[1])), on_step=lambda s, i: time.sleep(delay))
""")


@pytest.mark.slow
def test_killed_run_resumes_to_bit_identical_weights(tmp_path, single_thread):
    steps = 8
    reference = train(tiny(tmp_path / "ref", steps=steps, finetune_steps=0))

    out = tmp_path / "killed"
    config = tiny(out, steps=steps)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(to_dict(config)))
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(config_file), "0.25"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    last = out / "last.pth"
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if last.exists() and read_checkpoint(last)["training"]["step"] >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = read_checkpoint(last)["training"]["step"]
    assert 2 <= killed_at < steps

    resumed = train(config)
    assert resumed.resumed_from == killed_at
    expected = read_checkpoint(reference.checkpoint)["state_dict"]
    got = read_checkpoint(resumed.checkpoint)["state_dict"]
    assert expected.keys() == got.keys()
    unequal = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not unequal, f"resumed weights differ: {unequal[:5]}"
    # curves: steps that ran after the last checkpoint were logged once, by the resume
    assert tsv_steps(out / "dvclive" / "plots" / "metrics" / "train" / "total.tsv") \
        == list(range(steps))


def test_nan_loss_stops_with_step_and_term_and_keeps_last_good_checkpoint(
        tmp_path, monkeypatch, single_thread):
    calls = {"n": 0}
    original = InpaintingLoss.forward

    def poisoned(self, output, target, mask):
        terms = original(self, output, target, mask)
        calls["n"] += 1
        if calls["n"] == 3:
            terms["hole"] = terms["hole"] * float("nan")
            terms["total"] = terms["total"] + terms["hole"]
        return terms

    monkeypatch.setattr(InpaintingLoss, "forward", poisoned)
    with pytest.raises(DivergedError, match=r"step 3: .*hole=nan") as info:
        train(tiny(tmp_path, steps=5))
    assert "last good checkpoint" in str(info.value)
    assert read_checkpoint(tmp_path / "last.pth")["training"]["step"] == 2
    assert not (tmp_path / "checkpoints" / "step_0000003.pth").exists()
    weights = load_checkpoint(tmp_path / "last.pth").state_dict()
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert "step 3" in (tmp_path / "train.log").read_text()


@pytest.mark.slow
def test_finetune_phase_freezes_batchnorm_statistics(tmp_path, single_thread):
    phases = []
    train(tiny(tmp_path, steps=1, finetune_steps=2, checkpoint_every=1, keep_checkpoints=0),
          on_step=lambda step, info: phases.append(info["phase"]))
    assert phases == ["train", "finetune", "finetune"]

    def stats(step):
        state = read_checkpoint(tmp_path / "checkpoints" / f"step_{step:07d}.pth")["state_dict"]
        running = {k: v for k, v in state.items() if "running_" in k or "num_batches" in k}
        weights = {k: v for k, v in state.items() if k.endswith(".weight")}
        return running, weights

    torch.manual_seed(0)
    initial = {k: v for k, v in build_model("rfr", {"width": 8}).state_dict().items()
               if "running_" in k}
    after_train, w1 = stats(1)
    after_finetune, w3 = stats(3)
    assert any(not torch.equal(initial[k], after_train[k]) for k in initial)  # phase 1 updates
    assert all(torch.equal(after_train[k], after_finetune[k]) for k in after_train)
    assert any(not torch.equal(w1[k], w3[k]) for k in w1)  # but the weights still learn
    optimizer = read_checkpoint(tmp_path / "last.pth")["training"]["optimizer"]
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(5e-5)


@pytest.mark.slow
def test_resume_with_another_config_is_a_clear_error(tmp_path, single_thread):
    train(tiny(tmp_path, steps=2))
    with pytest.raises(TrainingError, match=r"another config.*lr: checkpoint 0.0002, now 0.001"):
        train(tiny(tmp_path, steps=2, lr=1e-3))
    # keys that do not change the result may differ; a finished run is a no-op
    again = train(tiny(tmp_path, steps=2, checkpoint_every=5, num_workers=0))
    assert again.resumed_from == 2


def test_cli_train_verb_and_yaml_errors(tmp_path, capsys, single_thread):
    config_file = tmp_path / "train.yaml"
    config_file.write_text(yaml.safe_dump({
        "model_config": {"width": 8}, "dataset": {"name": "demo-faces", "size": 32},
        "loss": {"vgg_weights": "random"}, "batch_size": 2, "steps": 2,
        "checkpoint_every": 1, "progress": False,
    }))
    assert cli_main(["train", "--config", str(config_file), "--out", str(tmp_path / "run")]) == 0
    assert "final checkpoint" in capsys.readouterr().out
    assert (tmp_path / "run" / "checkpoints" / "step_0000002.pth").exists()
    assert load_train_config(config_file).steps == 2

    config_file.write_text("stepz: 3\n")
    assert cli_main(["train", "--config", str(config_file)]) == 2
    assert "unknown key(s) ['stepz']" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="precision"):
        tiny(tmp_path, precision="fp16")


@pytest.mark.slow
def test_curves_dir_holds_curves_and_a_cost_summary(tmp_path, single_thread):
    """The pipeline keeps curves and the summary apart from the checkpoints; the summary
    holds what the report's cost table needs, and a finished run started again keeps its
    training time instead of replacing it with the no-op's."""
    curves = tmp_path / "curves"
    config = tiny(tmp_path / "run", curves_dir=str(curves), finetune_steps=1)
    result = train(config)
    summary = json.loads((curves / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["model"] == "rfr"
    assert summary["parameters"] == count_parameters(result.model)
    assert summary["vgg_random"] is True and "random" in summary["vgg_weights"]
    assert 0 < summary["seconds"] <= result.seconds
    assert summary["steps_per_second"] == pytest.approx(4 / summary["seconds"])
    assert summary["train"]["total"] == pytest.approx(result.metrics["total"])
    assert tsv_steps(curves / "plots" / "metrics" / "train" / "total.tsv") == [0, 1, 2, 3]
    assert not (tmp_path / "run" / "dvclive").exists()
    # metrics.json: the flat numeric view of the same summary, for `dvc metrics`
    flat = json.loads((curves / "metrics.json").read_text())
    assert flat == {**{f"loss_{term}": value for term, value in summary["train"].items()},
                    **{key: summary[key] for key in
                       ("steps", "seconds", "steps_per_second", "parameters")}}
    assert set(flat) >= {"loss_total", "loss_hole", "loss_valid"}
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat.values())
    train(config)  # nothing left to do: resumes at the end
    again = json.loads((curves / "summary.json").read_text())
    assert again["seconds"] >= summary["seconds"]
    assert json.loads((curves / "metrics.json").read_text())["seconds"] == again["seconds"]


@pytest.mark.slow
def test_a_crash_between_curves_and_checkpoint_repeats_no_curve_row(
        tmp_path, monkeypatch, single_thread):
    """The curves reach the files right before each checkpoint; a run that dies while the
    checkpoint is written left rows its resume runs again, and they are not repeated:
    the files end byte-identical to those of an uninterrupted run."""
    import rfr.train.run_state

    class Crash(Exception):
        pass

    write = rfr.train.run_state.save_checkpoint

    def dies_at_step_4(path, *args, **kwargs):
        if Path(path).name == "step_0000004.pth":
            raise Crash
        return write(path, *args, **kwargs)

    reference = tmp_path / "ref"
    train(tiny(reference, steps=6))
    out = tmp_path / "crashed"
    monkeypatch.setattr(rfr.train.run_state, "save_checkpoint", dies_at_step_4)
    with pytest.raises(Crash):
        train(tiny(out, steps=6))
    curves = Path("dvclive") / "plots" / "metrics" / "train"
    assert tsv_steps(out / curves / "total.tsv") == [0, 1, 2, 3]  # beyond last.pth (2)
    monkeypatch.setattr(rfr.train.run_state, "save_checkpoint", write)
    assert train(tiny(out, steps=6)).resumed_from == 2
    for term in (*LOSS_TERMS, "total"):
        assert (out / curves / f"{term}.tsv").read_bytes() \
            == (reference / curves / f"{term}.tsv").read_bytes()


def test_training_in_a_git_repository_without_dvc_does_not_init_dvc(
        tmp_path, monkeypatch, single_thread):
    """dvclive.Live runs `dvc init` in a Git repository that has no .dvc, whatever its
    options; the training curves are written without it."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.chdir(repo)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    train(tiny(repo / "run", steps=2))
    assert tsv_steps(repo / "run" / "dvclive" / "plots" / "metrics" / "train" / "total.tsv") \
        == [0, 1]
    assert not (repo / ".dvc").exists() and not (repo / ".dvcignore").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, check=True,
                            capture_output=True, text=True).stdout
    assert all(line.startswith("??") for line in status.splitlines())  # nothing staged
