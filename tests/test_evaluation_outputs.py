"""The evaluation folder's DVC views (metrics.json, bins.csv) and its example tiles, on a
small RFR-Net (width 8) at 32 px: fast enough for every run of the suite."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rfr.config import RFRNetConfig
from rfr.data import DatasetConfig
from rfr.evaluate.api import (
    GRID_PADDING,
    TILES_DIR,
    EvalConfig,
    EvalResult,
    evaluate,
    tile_relpath,
)
from rfr.evaluate.layout import TILE_NAMES
from rfr.evaluate.summary_files import bins_rows, flat_metrics
from rfr.masks import NVIDIA_BINS, write_mask_bank
from rfr.model.api import RFRNet
from rfr.model.checkpoint import save_checkpoint

SIZE = 32
LIMIT = 3
EXAMPLES = 2
KEYS = ["psnr", "ssim", "l1", "l1_hole"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, single_thread: None) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("evaluation_outputs")
    (root / "torch_home").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(root / "torch_home"))  # no LPIPS/FID weights
        write_mask_bank(root / "bank", per_bin=2, size=SIZE, seed=0)
        model = RFRNet(RFRNetConfig(width=8, iter_num=2))
        checkpoint = save_checkpoint(root / "small.pt", model, "rfr", model.config)
        yield {"root": root, "checkpoint": checkpoint}


def run(setup: dict, out: str, **changes) -> EvalResult:
    base = {"dataset": DatasetConfig(name="demo-scenes", split="test", size=SIZE),
            "masks": str(setup["root"] / "bank"), "out_dir": str(setup["root"] / out),
            "batch_size": 2, "limit": LIMIT, "grid_examples": EXAMPLES,
            "latency_batches": 1, "resamples": 20}
    base.update(changes)
    if "predictions" not in base:
        base["checkpoint"] = str(setup["checkpoint"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(setup["root"] / "torch_home"))
        return evaluate(EvalConfig(**base), progress=False)


@pytest.fixture(scope="module")
def checkpoint_run(setup: dict) -> EvalResult:
    return run(setup, "checkpoint", save_predictions=True)


@pytest.fixture(scope="module")
def folder_run(setup: dict, checkpoint_run: EvalResult) -> EvalResult:
    return run(setup, "folder", predictions=str(checkpoint_run.predictions_dir))


def decode(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_metrics_json_is_flat_numeric_overall_means(checkpoint_run: EvalResult) -> None:
    summary = json.loads(checkpoint_run.summary_json.read_text())
    assert summary == json.loads(json.dumps(checkpoint_run.summary))
    text = checkpoint_run.metrics_json.read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "psnr": ')
    flat = json.loads(text)
    assert list(flat) == [*KEYS, "ms_per_image"]  # lpips, fid unavailable: left out
    assert all(isinstance(v, float) and math.isfinite(v) for v in flat.values())
    for name in KEYS:
        assert flat[name] == summary["overall"]["metrics"][name]["mean"]
    assert flat["ms_per_image"] == summary["latency"]["ms_per_image"]
    assert summary["overall"]["metrics"]["lpips"]["status"] == "unavailable"


def test_folder_run_has_no_latency_in_metrics_json(folder_run: EvalResult) -> None:
    assert list(json.loads(folder_run.metrics_json.read_text())) == KEYS


def test_bins_csv_rows_are_the_summary_bins(checkpoint_run: EvalResult) -> None:
    with open(checkpoint_run.bins_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["bin", "bin_index", "mean_hole_ratio", *KEYS]
    bins = checkpoint_run.summary["bins"]
    assert [r["bin"] for r in rows] == list(bins)
    assert len(rows) == len(NVIDIA_BINS)
    for row in rows:
        entry = bins[row["bin"]]
        assert int(row["bin_index"]) == entry["bin_index"]
        assert float(row["mean_hole_ratio"]) == entry["mean_hole_ratio"]
        for name in KEYS:
            assert float(row[name]) == entry["metrics"][name]["mean"]


def test_available_lpips_and_fid_enter_both_views() -> None:
    ok = {"status": "ok", "mean": 0.25}
    summary = {
        "overall": {"metrics": {"psnr": ok, "ssim": ok, "l1": ok, "l1_hole": ok,
                                "lpips": {"status": "ok", "mean": 0.5},
                                "fid": {"status": "ok", "value": 12.0}}},
        "bins": {"(0.01, 0.1]": {"bin_index": 0, "mean_hole_ratio": 0.05, "metrics": {
            "psnr": ok, "ssim": ok, "l1": ok, "l1_hole": {"status": "undefined"},
            "lpips": {"status": "ok", "mean": 0.5},
            "fid": {"status": "undefined", "reason": "one image"}}}},
        "latency": {"status": "unavailable", "reason": "no model"},
    }
    assert flat_metrics(summary) == {"psnr": 0.25, "ssim": 0.25, "l1": 0.25, "l1_hole": 0.25,
                                     "lpips": 0.5, "fid": 12.0}
    assert bins_rows(summary) == [
        ["bin", "bin_index", "mean_hole_ratio", *KEYS, "lpips", "fid"],
        ["(0.01, 0.1]", "0", "0.05", "0.25", "0.25", "0.25", "", "0.5", ""]]


def test_tiles_are_the_tiles_of_examples_png(checkpoint_run: EvalResult) -> None:
    grid = decode(checkpoint_run.grid)
    out = checkpoint_run.out_dir
    written = {p.relative_to(out).as_posix() for p in (out / TILES_DIR).rglob("*.png")}
    assert written == {tile_relpath(b, f"coffee#0{e}", t).as_posix()
                       for b in range(len(NVIDIA_BINS)) for e in range(EXAMPLES)
                       for t in TILE_NAMES}
    step = SIZE + GRID_PADDING
    for b in range(len(NVIDIA_BINS)):
        for example in range(EXAMPLES):
            row = b * EXAMPLES + example
            for col, tile in enumerate(TILE_NAMES):
                top, left = GRID_PADDING + row * step, GRID_PADDING + col * step
                crop = grid[top:top + SIZE, left:left + SIZE]
                pixels = decode(out / tile_relpath(b, f"coffee#0{example}", tile))
                assert np.array_equal(pixels, crop), (b, example, tile)


def test_predictions_folder_gives_the_same_tiles(checkpoint_run: EvalResult,
                                                 folder_run: EvalResult) -> None:
    assert folder_run.grid.read_bytes() == checkpoint_run.grid.read_bytes()
    for path in (checkpoint_run.out_dir / TILES_DIR).rglob("*.png"):
        twin = folder_run.out_dir / path.relative_to(checkpoint_run.out_dir)
        assert np.array_equal(decode(twin), decode(path)), path
    # Same composites up to 8-bit rounding: the means agree to half a step.
    ours, theirs = (json.loads(r.metrics_json.read_text()) for r in (checkpoint_run, folder_run))
    assert abs(ours["l1"] - theirs["l1"]) <= 0.5 / 255 + 1e-6
    assert abs(ours["l1_hole"] - theirs["l1_hole"]) <= 0.5 / 255 + 1e-6


def test_rerun_with_fewer_examples_leaves_no_stale_tiles(setup: dict) -> None:
    run(setup, "fewer", grid_examples=2, limit=2)
    result = run(setup, "fewer", grid_examples=1, limit=2)
    names = {p.parent.name for p in (result.out_dir / TILES_DIR).rglob("*.png")}
    assert names == {"coffee#00"}
    assert result.tiles_dir == result.out_dir / TILES_DIR


def test_tile_paths_of_folder_and_demo_names() -> None:
    assert tile_relpath(2, "sub/img.jpg", "input").as_posix() == "tiles/bin2/sub/img.jpg/input.png"
    assert tile_relpath(0, "coffee#00", "target").as_posix() == "tiles/bin0/coffee#00/target.png"
    for bad in ("../x", "/abs/x", ""):
        with pytest.raises(ValueError, match="cannot be a folder"):
            tile_relpath(0, bad, "input")
    with pytest.raises(ValueError, match="unknown tile"):
        tile_relpath(0, "a", "mask")


def test_folder_dataset_names_with_subfolders_give_tile_files(setup: dict,
                                                              tmp_path: Path) -> None:
    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("sub/a.png", "b.jpg"):
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(images / name)
    result = run(setup, str(tmp_path / "folder_eval"), grid_examples=2,
                 dataset=DatasetConfig(name="folder", root=str(images), split="test",
                                       size=SIZE))
    for name in ("b.jpg", "sub/a.png"):
        for tile in TILE_NAMES:
            path = result.out_dir / tile_relpath(0, name, tile)
            assert decode(path).shape == (SIZE, SIZE, 3), path


def test_same_composites_give_the_same_metrics(setup: dict, checkpoint_run: EvalResult) -> None:
    """The composites a predictions folder is scored on are 8-bit, so writing them back
    is lossless: scoring that copy gives the same per-image rows and the same views."""
    first = run(setup, "folder_once", predictions=str(checkpoint_run.predictions_dir),
                save_predictions=True)
    again = run(setup, "folder_twice", predictions=str(first.predictions_dir))
    for name in ("per_image_csv", "metrics_json", "bins_csv", "grid"):
        assert getattr(again, name).read_bytes() == getattr(first, name).read_bytes(), name
