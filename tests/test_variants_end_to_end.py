"""Every ablation variant trains a few steps on the embedded demo data and is evaluated.

This is the whole chain a researcher runs for one cell of the ablation table, at a size
that fits a CI machine: variant YAML -> model -> two training steps on ``demo-scenes``
(random-VGG losses, labelled) -> suite checkpoint -> evaluation on a seeded mask bank.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rfr.config import LossConfig
from rfr.data import DatasetConfig
from rfr.evaluate.api import EvalConfig, evaluate
from rfr.masks import NVIDIA_BINS, write_mask_bank
from rfr.model.variants import load_variants, variant_config
from rfr.train.loop import TrainConfig, train

SIZE = 32
WIDTH = 8

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def mask_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bank = tmp_path_factory.mktemp("bank")
    write_mask_bank(bank, per_bin=1, size=SIZE, seed=0)
    return bank


@pytest.mark.parametrize("name", sorted(load_variants()))
@pytest.mark.slow
def test_variant_trains_and_evaluates(name: str, mask_bank: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    variant = load_variants()[name]
    config = TrainConfig(
        model=variant.model,
        model_config=variant_config(name, width=WIDTH),
        dataset=DatasetConfig(name="demo-scenes", split="train", size=SIZE),
        loss=LossConfig(vgg_weights="random"),
        batch_size=2,
        steps=2,
        finetune_steps=1,
        checkpoint_every=2,
        out_dir=str(tmp_path / "train"),
        progress=False,
    )
    trained = train(config)
    assert trained.step == 3
    assert all(math.isfinite(value) for value in trained.metrics.values())
    assert trained.checkpoint is not None and trained.checkpoint.exists()

    result = evaluate(EvalConfig(
        checkpoint=str(trained.checkpoint),
        dataset=DatasetConfig(name="demo-scenes", split="test", size=SIZE),
        masks=str(mask_bank),
        out_dir=str(tmp_path / "eval"),
        batch_size=4,
        limit=2,
        grid_examples=1,
        latency_batches=1,
        resamples=100,
    ), progress=False)
    summary = json.loads(result.summary_json.read_text())
    assert summary["evaluation"]["source"]["model"] == variant.model
    assert len(summary["bins"]) == len(NVIDIA_BINS)
    for bin_summary in summary["bins"].values():
        psnr = bin_summary["metrics"]["psnr"] if "metrics" in bin_summary else bin_summary["psnr"]
        assert psnr["status"] == "ok" and math.isfinite(psnr["mean"])
    rows = result.per_image_csv.read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * len(NVIDIA_BINS)
