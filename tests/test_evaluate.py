"""End-to-end evaluation on CPU: checkpoints (authors' and suite format), predictions
folders, output formats and determinism. Small: demo-scenes at 64 px, 2 masks per bin."""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from rfr.cli import main
from rfr.config import RFRNetConfig
from rfr.data import DatasetConfig
from rfr.evaluate.api import (
    EvalConfig,
    PredictionError,
    evaluate,
    grid_size,
    load_eval_config,
    prediction_relpath,
)
from rfr.masks import NVIDIA_BINS, format_bin, write_mask_bank
from rfr.model.api import RFRNet
from rfr.model.checkpoint import save_authors_checkpoint, save_checkpoint
from rfr.model.reference import layout_of, recipe_state_dict

SIZE = 64
LIMIT = 3
EXAMPLES = 2
BASE_METRICS = ("psnr", "ssim", "l1", "l1_hole")
AUTHORS_PARAMETERS = 31_224_065


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, single_thread: None) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("evaluate")
    empty_home = root / "torch_home"
    empty_home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(empty_home))
        bank = root / "bank"
        write_mask_bank(bank, per_bin=2, size=SIZE, seed=0)
        model = RFRNet()
        authors = save_authors_checkpoint(
            root / "authors.pth", recipe_state_dict(layout_of(model.state_dict()), seed=0))
        small = RFRNet(RFRNetConfig(width=8))
        suite = save_checkpoint(root / "small.pt", small, "rfr", small.config)
        yield {"root": root, "bank": bank, "authors": authors, "suite": suite}


def config(setup: dict, out: str, **changes) -> EvalConfig:
    base = {
        "dataset": DatasetConfig(name="demo-scenes", split="test", size=SIZE),
        "masks": str(setup["bank"]),
        "out_dir": str(setup["root"] / out),
        "batch_size": 4,
        "limit": LIMIT,
        "grid_examples": EXAMPLES,
        "latency_batches": 1,
        "resamples": 200,
    }
    base.update(changes)
    if "checkpoint" not in base and "predictions" not in base:
        base["checkpoint"] = str(setup["authors"])
    return EvalConfig(**base)


@pytest.fixture(scope="module")
def authors_run(setup: dict):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(setup["root"] / "torch_home"))
        return evaluate(config(setup, "authors", save_predictions=True), progress=False)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def without_latency(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("latency")
    return data


@pytest.mark.slow
def test_authors_checkpoint_end_to_end(authors_run) -> None:
    rows = read_rows(authors_run.per_image_csv)
    assert len(rows) == LIMIT * len(NVIDIA_BINS)
    assert list(rows[0]) == ["id", "bin", *BASE_METRICS, "lpips"]
    assert {row["bin"] for row in rows} == {format_bin(b) for b in range(len(NVIDIA_BINS))}
    assert all(row["lpips"] == "unavailable" for row in rows)
    assert rows[0]["id"] == "bin0/coffee#00"

    summary = json.loads(authors_run.summary_json.read_text())
    assert set(summary["bins"]) == {format_bin(b) for b in range(len(NVIDIA_BINS))}
    for label, entry in summary["bins"].items():
        assert entry["n_images"] == LIMIT
        low, high = entry["bounds"]
        assert low < entry["mean_hole_ratio"] <= high
        for name in BASE_METRICS:
            metric = entry["metrics"][name]
            assert math.isfinite(metric["mean"]), (label, name)
            low_ci, high_ci = metric["ci95"]
            assert low_ci <= metric["mean"] <= high_ci
        assert entry["metrics"]["lpips"]["status"] == "unavailable"
        assert "lpips" in entry["metrics"]["lpips"]["reason"]
        assert entry["metrics"]["fid"]["status"] == "unavailable"
        assert entry["metrics"]["fid"]["reason"]
    source = summary["evaluation"]["source"]
    assert source["kind"] == "checkpoint"
    assert source["parameters"] == AUTHORS_PARAMETERS
    assert "value" in source["gmacs"] or source["gmacs"]["status"] == "unavailable"
    assert summary["latency"]["ms_per_image"] > 0

    pairs = read_rows(authors_run.pairs_csv)
    assert [p["id"] for p in pairs] == [r["id"] for r in rows]
    assert pairs[0]["mask"] == "bin0_00000.png" and pairs[1]["mask"] == "bin0_00001.png"
    assert pairs[2]["mask"] == "bin0_00000.png"  # 2 masks per bin: reused cyclically

    with Image.open(authors_run.grid) as grid:
        assert grid.size == grid_size(len(NVIDIA_BINS), EXAMPLES, SIZE)


def test_suite_checkpoint_small_model(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(setup["root"] / "torch_home"))
    result = evaluate(config(setup, "suite", checkpoint=str(setup["suite"]), limit=2,
                             grid_examples=0), progress=False)
    rows = read_rows(result.per_image_csv)
    assert len(rows) == 2 * len(NVIDIA_BINS)
    source = result.summary["evaluation"]["source"]
    assert source["config"]["width"] == 8
    assert source["parameters"] == sum(p.numel() for p in RFRNet(RFRNetConfig(width=8))
                                       .parameters())
    assert result.grid is None


@pytest.mark.slow
def test_predictions_match_checkpoint(setup: dict, authors_run,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(setup["root"] / "torch_home"))
    assert (authors_run.predictions_dir / prediction_relpath(0, "coffee#00")).is_file()
    result = evaluate(config(setup, "preds", predictions=str(authors_run.predictions_dir)),
                      progress=False)
    ours = read_rows(authors_run.per_image_csv)
    theirs = read_rows(result.per_image_csv)
    assert [r["id"] for r in ours] == [r["id"] for r in theirs]
    half_step = 0.5 / 255 + 1e-6  # 8-bit rounding moves each value by at most half a step
    for a, b in zip(ours, theirs, strict=True):
        assert abs(float(a["l1"]) - float(b["l1"])) <= half_step
        assert abs(float(a["l1_hole"]) - float(b["l1_hole"])) <= half_step
        # RMSE moves by at most the RMS of the rounding error (triangle inequality).
        rmse_a, rmse_b = 10 ** (-float(a["psnr"]) / 20), 10 ** (-float(b["psnr"]) / 20)
        assert abs(rmse_a - rmse_b) <= half_step
        assert abs(float(a["ssim"]) - float(b["ssim"])) <= 0.01
    source = result.summary["evaluation"]["source"]
    assert source["kind"] == "predictions"
    assert source["parameters"]["status"] == "unavailable"
    assert result.summary["latency"]["status"] == "unavailable"


@pytest.mark.slow
def test_predictions_missing_or_missized_file(setup: dict, authors_run) -> None:
    folder = setup["root"] / "broken_preds"
    shutil.copytree(authors_run.predictions_dir, folder)
    missing = folder / prediction_relpath(3, "coffee#01")
    missing.unlink()
    with pytest.raises(PredictionError, match="coffee#01.png") as info:
        evaluate(config(setup, "broken", predictions=str(folder)), progress=False)
    assert str(missing) in str(info.value)

    Image.new("RGB", (SIZE // 2, SIZE // 2)).save(missing)
    with pytest.raises(PredictionError, match=r"32x32 but the evaluation runs at 64x64"):
        evaluate(config(setup, "broken", predictions=str(folder)), progress=False)


@pytest.mark.slow
def test_deterministic(setup: dict, authors_run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(setup["root"] / "torch_home"))
    again = evaluate(config(setup, "again", save_predictions=True), progress=False)
    assert again.per_image_csv.read_bytes() == authors_run.per_image_csv.read_bytes()
    assert again.pairs_csv.read_bytes() == authors_run.pairs_csv.read_bytes()
    assert without_latency(again.summary_json) == without_latency(authors_run.summary_json)
    assert again.grid.read_bytes() == authors_run.grid.read_bytes()


def test_config_validation(setup: dict) -> None:
    from rfr.config import ConfigError

    with pytest.raises(ConfigError, match="exactly one"):
        EvalConfig(masks=str(setup["bank"]))
    with pytest.raises(ConfigError, match="precision"):
        config(setup, "x", precision="fp16")


@pytest.mark.slow
def test_cli_evaluate(setup: dict, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TORCH_HOME", str(setup["root"] / "torch_home"))
    out = setup["root"] / "cli"
    code = main(["evaluate", "--checkpoint", str(setup["suite"]), "--dataset", "demo-scenes",
                 "--masks", str(setup["bank"]), "--out", str(out), "--size", str(SIZE),
                 "--limit", "2", "--batch-size", "2", "--grid-examples", "1"])
    assert code == 0
    assert len(read_rows(out / "per_image.csv")) == 2 * len(NVIDIA_BINS)
    assert "metrics.json" in capsys.readouterr().out

    yaml_file = setup["root"] / "eval.yaml"
    yaml_file.write_text(
        f"predictions: {setup['root'] / 'nowhere'}\n"
        f"masks: {setup['bank']}\n"
        f"dataset: {{name: demo-scenes, split: test, size: {SIZE}}}\n"
    )
    assert load_eval_config(yaml_file).dataset.size == SIZE
    code = main(["evaluate", "--config", str(yaml_file), "--out", str(out)])
    assert code == 2
    assert "predictions folder not found" in capsys.readouterr().err


@pytest.mark.native_bf16
def test_bf16_runs(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(setup["root"] / "torch_home"))
    result = evaluate(config(setup, "bf16", checkpoint=str(setup["suite"]), limit=1,
                             precision="bf16", grid_examples=0), progress=False)
    assert result.summary["evaluation"]["precision"] == "bf16"
    assert torch.isfinite(torch.tensor(
        [float(r["psnr"]) for r in read_rows(result.per_image_csv)])).all()


@pytest.mark.slow
def test_recurrence_record_follows_the_models_own_masks(setup, tmp_path):
    """recurrence.json: per bin, the RFR module's hole fraction before the recurrences and
    after each, equal to what RFRNet.trace gives for the same (image, mask) pairs, and
    never growing; recurrence.png has one row per bin of N + 3 tiles."""
    from rfr.data import build_dataset
    from rfr.masks import group_by_bin, load_entry_mask, pair_images_with_masks, read_mask_bank

    size = 128
    bank = tmp_path / "bank"
    write_mask_bank(bank, per_bin=1, size=size, seed=3)
    small = RFRNet(RFRNetConfig(width=8, iter_num=3))
    checkpoint = save_checkpoint(tmp_path / "rfr.pt", small, "rfr", small.config)
    result = evaluate(config(setup, "recurrence", checkpoint=str(checkpoint), masks=str(bank),
                             dataset=DatasetConfig(name="demo-scenes", split="test",
                                                   size=size), limit=2),
                      progress=False)
    record = json.loads((result.out_dir / "recurrence.json").read_text())
    assert record["status"] == "ok" and record["iter_num"] == 3
    dataset = build_dataset(DatasetConfig(name="demo-scenes", split="test", size=size,
                                          limit=2))
    groups = group_by_bin(read_mask_bank(bank))
    largest = format_bin(len(NVIDIA_BINS) - 1)
    expected = []
    for index in range(2):
        entry = pair_images_with_masks(2, groups[-1])[index][1]
        known = load_entry_mask(entry)[None]
        with torch.inference_mode():
            trace = small.eval().trace(dataset[index]["image"][None] * known, known)
        expected.append([float((m[:, :1] <= 0).float().mean()) for m in trace.masks])
    got = record["bins"][largest]["hole_ratio"]
    assert got == pytest.approx([sum(col) / 2 for col in zip(*expected, strict=True)])
    assert len(got) == 4 and got[0] > 0, "a 50-60% hole survives the first convolutions"
    assert all(a >= b for a, b in zip(got, got[1:], strict=False))
    width, height = Image.open(result.out_dir / "recurrence.png").size
    step = size + 2
    assert (width, height) == ((3 + 3) * step + 2, len(record["bins"]) * step + 2)


def test_recurrence_is_not_applicable_without_recurrences(setup, tmp_path):
    from baselines.pconv import PConvConfig, PConvUNet

    model = PConvUNet(PConvConfig(width=8))
    checkpoint = save_checkpoint(tmp_path / "pconv.pt", model, "pconv", model.config)
    result = evaluate(config(setup, "pconv", checkpoint=str(checkpoint), limit=1,
                             run={"name": "x-pconv-0", "dataset": "x", "variant": "pconv",
                                  "seed": 0}), progress=False)
    record = json.loads((result.out_dir / "recurrence.json").read_text())
    assert record["status"] == "not applicable" and "PConvUNet" in record["reason"]
    assert not (result.out_dir / "recurrence.png").exists()
    summary = json.loads(result.summary_json.read_text())
    assert summary["run"]["variant"] == "pconv"
    assert summary["evaluation"]["grid_examples"] == EXAMPLES
