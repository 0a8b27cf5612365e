"""``rfr export-testset``: the exported pairs are the evaluated pairs, and an outside
method's predictions written on them score like the checkpoint itself.

Data: the Paris StreetView and CelebA published layouts filled with real photos
(``rfr.data.rehearsal``), a seeded mask bank at 64 px with one mask per bin; the model is
a width-8 RFR-Net with the recipe's deterministic weights, saved as a suite checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from rfr.cli import main
from rfr.config import ConfigError, RFRNetConfig
from rfr.data import DatasetConfig
from rfr.data.image_io import read_image, read_mask, write_image
from rfr.data.rehearsal import write_celeba, write_paris
from rfr.evaluate.api import EvalConfig, PredictionError, evaluate
from rfr.evaluate.batches import EvalData
from rfr.masks import NVIDIA_BINS
from rfr.model.api import RFRNet, composite
from rfr.model.checkpoint import load_checkpoint, save_checkpoint
from rfr.model.reference import layout_of, recipe_state_dict
from rfr.testset import export_testset, read_manifest

SIZE = 64
LIMIT = 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, single_thread: None) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    found = {"root": root, "paris": write_paris(root / "paris"),
             "celeba": write_celeba(root / "celeba"), "masks": root / "masks"}
    assert main(["masks", "--out", str(found["masks"]), "--per-bin", "1", "--size",
                 str(SIZE), "--seed", "0"]) == 0
    model = RFRNet(RFRNetConfig(width=8))
    model.load_state_dict(recipe_state_dict(layout_of(model.state_dict()), 7))
    found["checkpoint"] = save_checkpoint(root / "suite.pth", model, "rfr", model.config)
    found["testset"] = root / "testset"
    assert main(["export-testset", "--dataset", "paris", "--root", str(found["paris"]),
                 "--masks", str(found["masks"]), "--size", str(SIZE), "--limit", str(LIMIT),
                 "--out", str(found["testset"])]) == 0
    return found


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def dataset_config(setup: dict, name: str = "paris") -> DatasetConfig:
    return DatasetConfig(name=name, root=str(setup[name]), split="test", size=SIZE)


@pytest.mark.parametrize("name", ["paris", "celeba"])
def test_exported_pairs_are_what_the_evaluator_feeds(setup: dict, name: str,
                                                     tmp_path: Path) -> None:
    out = setup["testset"] if name == "paris" else tmp_path / "celeba_testset"
    if name == "celeba":  # 178 x 218 JPEGs: the centre crop and resize really act
        export_testset(dataset_config(setup, name), setup["masks"], out, limit=LIMIT)
    rows = read_manifest(out)
    assert len(rows) == LIMIT * len(NVIDIA_BINS)
    data = EvalData(EvalConfig(predictions="unused", dataset=dataset_config(setup, name),
                               masks=str(setup["masks"]), limit=LIMIT))
    seen = 0
    for batch in data.batches(progress=False):
        for k, name_k in enumerate(batch.names):
            row = rows[seen]
            seen += 1
            assert row["eval_id"] == f"bin{batch.bin_index}/{name_k}"
            assert row["mask"] == batch.entries[k].path.name
            assert float(row["hole_ratio"]) == batch.entries[k].hole_ratio
            mask = read_mask(out / row["mask_file"], hole_is_white=True)
            assert torch.equal(mask, batch.masks[k])  # bitwise
            image = read_image(out / row["image_file"])
            assert image.shape == (3, SIZE, SIZE)
            assert (image - batch.images[k]).abs().max().item() <= 0.5 / 255 + 1e-6
    assert seen == len(rows)
    header = json.loads((out / "testset.json").read_text())
    assert header["size"] == SIZE and header["n_pairs"] == len(rows)
    assert header["mask_files"]["hole_colour"] == "white"
    assert len(header["masks"]["manifest_sha256"]) == 64


def predict_folder(setup: dict, out: Path) -> Path:
    """An "outside method": the suite model run on the exported PNGs alone."""
    model = load_checkpoint(setup["checkpoint"]).eval()
    testset = setup["testset"]
    for row in read_manifest(testset):
        image = read_image(testset / row["image_file"])[None]
        mask = read_mask(testset / row["mask_file"], hole_is_white=True)[None]
        with torch.inference_mode():
            output = model(image * mask, mask)
        write_image(composite(output, image, mask).clamp(0, 1)[0], out / row["prediction_file"])
    return out


def score_argv(setup: dict, predictions: Path, out: Path) -> list[str]:
    command = json.loads((setup["testset"] / "testset.json").read_text())["score_command"]
    argv = shlex.split(command)[1:]  # drop "rfr"
    argv[argv.index("PREDICTIONS")] = str(predictions)
    argv[argv.index("OUT")] = str(out)
    return [*argv, "--grid-examples", "0", "--no-progress"]


@pytest.fixture(scope="module")
def round_trip(setup: dict) -> dict[str, Path]:
    with pytest.MonkeyPatch.context() as patch:  # no LPIPS/FID weights: those are skipped
        patch.setenv("TORCH_HOME", str(setup["root"] / "torch_home"))
        predictions = predict_folder(setup, setup["root"] / "predictions")
        scored = setup["root"] / "scored"
        assert main(score_argv(setup, predictions, scored)) == 0
        direct = setup["root"] / "direct"
        assert main(["evaluate", "--checkpoint", str(setup["checkpoint"]), "--dataset", "paris",
                     "--root", str(setup["paris"]), "--masks", str(setup["masks"]),
                     "--size", str(SIZE), "--limit", str(LIMIT), "--out", str(direct),
                     "--grid-examples", "0", "--no-progress"]) == 0
    return {"predictions": predictions, "scored": scored, "direct": direct}


def test_round_trip_equals_scoring_the_checkpoint(setup: dict, round_trip: dict) -> None:
    manifest = read_manifest(setup["testset"])
    scored = rows_of(round_trip["scored"] / "per_image.csv")
    direct = rows_of(round_trip["direct"] / "per_image.csv")
    ids = [row["eval_id"] for row in manifest]
    assert [row["id"] for row in scored] == ids == [row["id"] for row in direct]
    assert rows_of(round_trip["scored"] / "pairs.csv") == rows_of(round_trip["direct"]
                                                                    / "pairs.csv")
    # Measured here (CPU, fp32): the 8-bit image, mask and prediction files move PSNR by
    # at most 0.0014 dB, SSIM by 5.8e-5, L1 by 5.7e-6 and hole L1 by 3.6e-5 per image (and
    # per-bin means by at most 0.0006); the bounds allow about 5x that.
    for a, b in zip(scored, direct, strict=True):
        assert abs(float(a["psnr"]) - float(b["psnr"])) < 0.01
        assert abs(float(a["ssim"]) - float(b["ssim"])) < 5e-4
        assert abs(float(a["l1"]) - float(b["l1"])) < 5e-5
        assert abs(float(a["l1_hole"]) - float(b["l1_hole"])) < 2e-4
    bins_a = json.loads((round_trip["scored"] / "summary.json").read_text())["bins"]
    bins_b = json.loads((round_trip["direct"] / "summary.json").read_text())["bins"]
    assert bins_a.keys() == bins_b.keys() and len(bins_a) == len(NVIDIA_BINS)
    for label in bins_a:
        assert bins_a[label]["n_images"] == bins_b[label]["n_images"] == LIMIT
        assert abs(bins_a[label]["metrics"]["psnr"]["mean"]
                   - bins_b[label]["metrics"]["psnr"]["mean"]) < 0.005


def test_missing_extra_and_missized_predictions_are_named(setup: dict, round_trip: dict,
                                                          tmp_path: Path) -> None:
    rows = read_manifest(setup["testset"])
    config = EvalConfig(predictions="", dataset=dataset_config(setup),
                        masks=str(setup["masks"]), limit=LIMIT, grid_examples=0,
                        resamples=50, out_dir=str(tmp_path / "out"))

    def score(folder: Path) -> None:
        evaluate(dataclasses.replace(config, predictions=str(folder)), progress=False)

    folder = tmp_path / "missing"
    shutil.copytree(round_trip["predictions"], folder)
    (folder / rows[3]["prediction_file"]).unlink()
    with pytest.raises(PredictionError, match="prediction missing: .*"
                       + rows[3]["prediction_file"].replace("/", ".")):
        score(folder)

    folder = tmp_path / "missized"
    shutil.copytree(round_trip["predictions"], folder)
    write_image(torch.zeros(3, SIZE, SIZE + 1), folder / rows[0]["prediction_file"])
    with pytest.raises(PredictionError, match=f"is {SIZE + 1}x{SIZE} but"):
        score(folder)

    folder = tmp_path / "extra"
    shutil.copytree(round_trip["predictions"], folder)
    write_image(torch.zeros(3, SIZE, SIZE), folder / "bin0" / "999_im.png")
    with pytest.raises(PredictionError, match="999_im.png matches no scored pair"):
        score(folder)


def test_non_empty_out_is_refused_unless_forced(setup: dict, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    argv = ["export-testset", "--dataset", "paris", "--root", str(setup["paris"]), "--masks",
            str(setup["masks"]), "--size", str(SIZE), "--limit", "1", "--out", str(out)]
    assert main(argv) == 2
    assert f"{out} is not empty" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not empty"):
        export_testset(dataset_config(setup), setup["masks"], out, limit=1)
    assert main([*argv, "--force"]) == 0
    assert len(read_manifest(out)) == len(NVIDIA_BINS)
    assert (out / "notes.txt").read_text() == "mine\n"  # only the export's own files go
