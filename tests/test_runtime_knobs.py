"""Knobs that cannot change any number are never stage params (rfr/train/config.py).

Checkpoint cadence and retention, DataLoader workers and the progress bar live in the
profile's untracked ``runtime:`` section. This holds only if they really change nothing:
the behaviour test trains the same run under two runtime settings and compares weights.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from rfr import pipeline
from rfr.pipeline import RUNTIME_SECTION, TrackedParams
from rfr.train.config import RESUME_FREE_KEYS, RUNTIME_FIELDS, TrainConfig
from rfr.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted(path.stem for path in (ROOT / "profiles").glob("*.yaml"))


def test_runtime_fields_are_training_fields_that_resume_ignores():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(RUNTIME_FIELDS) <= fields
    assert set(RUNTIME_FIELDS) <= set(RESUME_FREE_KEYS)


def test_no_stage_declares_the_runtime_section_or_a_runtime_key():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # a foreach stage's body
        for param in stage.get("params", []):
            assert param.split(".")[0] != RUNTIME_SECTION, name
            assert param.split(".")[-1] not in RUNTIME_FIELDS, f"{name} declares {param}"
        assert "${runtime" not in stage["cmd"], name


@pytest.mark.parametrize("profile", PROFILES)
def test_runtime_knobs_reach_the_run_without_being_recorded_as_read(profile, tmp_path):
    params = pipeline.read_profile(profile)
    assert not set(params["train"]) & set(RUNTIME_FIELDS), "runtime knobs belong in runtime:"
    tracked = TrackedParams(params)
    dataset = params["compare"]["datasets"][0]
    config = pipeline.train_config(tracked, dataset, "rfr", 0, tmp_path, None)
    for key, value in (params.get(RUNTIME_SECTION) or {}).items():
        assert getattr(config, key) == value
    assert not any(key.split(".")[0] == RUNTIME_SECTION for key in tracked.read)


def test_changing_runtime_knobs_in_params_leaves_tracked_params_unchanged(tmp_path):
    """What DVC compares for a training stage (its declared params' values) does not see
    a runtime change, while the run itself picks it up."""
    params = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())
    first = TrackedParams(params)
    a = pipeline.train_config(first, "demo-scenes", "pconv", 0, tmp_path, None)
    params[RUNTIME_SECTION] = {"checkpoint_every": 1, "keep_checkpoints": 0,
                               "num_workers": 2, "progress": True}
    second = TrackedParams(params)
    b = pipeline.train_config(second, "demo-scenes", "pconv", 0, tmp_path, None)
    assert first.read == second.read
    assert (b.checkpoint_every, b.keep_checkpoints, b.num_workers, b.progress) == (1, 0, 2,
                                                                                   True)
    assert dataclasses.replace(b, **{k: getattr(a, k) for k in RUNTIME_FIELDS}) == a


@pytest.mark.slow
def test_runtime_knobs_change_no_weight(tmp_path, single_thread):
    params = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())
    base = pipeline.train_config(params, "demo-scenes", "rfr", 0, tmp_path / "a", None)
    quiet = dataclasses.replace(base, checkpoint_every=base.total_steps, keep_checkpoints=1,
                                num_workers=0, progress=False)
    busy = dataclasses.replace(base, out_dir=str(tmp_path / "b"), checkpoint_every=1,
                               keep_checkpoints=0, num_workers=2, progress=True)
    first, second = train(quiet), train(busy)
    assert first.metrics == second.metrics
    weights = second.model.state_dict()
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    assert len(list((tmp_path / "b" / "checkpoints").glob("*.pth"))) == base.total_steps
