"""The rehearsal profile: the paper profile with a short, fixed list of keys changed, on
the published datasets' layouts built from scikit-image's photos."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from rfr import pipeline
from rfr.cli import main
from rfr.data import DatasetConfig, build_dataset
from rfr.data.rehearsal import (
    CELEBA_COUNTS,
    PARIS_COUNTS,
    PLACES2_COUNTS,
    write_rehearsal_layouts,
)
from rfr.pipeline import PipelineError, flatten, read_profile

# Every key in which the rehearsal may differ from the paper profile, and why. Adding one
# here is a decision about what the rehearsal no longer rehearses.
REHEARSAL_KEYS = {
    "profile",  # its name
    # where its outputs go
    "paths.data", "paths.runs", "paths.results",
    # the budget: steps, batch, mask banks, test images scored, timed batches
    *(f"datasets.{name}.schedule.{key}" for name in ("celeba", "paris", "places2")
      for key in ("steps", "finetune_steps")),
    "train.batch_size",
    "masks.per_bin", "recurrence.per_bin",
    "evaluate.limit", "evaluate.latency_batches",
    # this machine: no ImageNet VGG16 file, no GPU
    "train.loss.vgg_weights", "evaluate.device",
    # a runtime knob (changes no number)
    "runtime.num_workers",
}
# What the rehearsal must keep of the paper, checked by name so a change to the paper's
# architecture or matrix shows up here as well as in the diff.
KEPT = {"model.width": 64, "masks.size": 256, "recurrence.size": 256,
        "datasets.celeba.data.size": 256, "datasets.paris.data.size": 256,
        "datasets.places2.data.size": 256, "train.precision": "fp32"}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    return write_rehearsal_layouts(tmp_path_factory.mktemp("rehearsal") / "raw")


def test_rehearsal_differs_from_paper_in_the_listed_keys_and_no_others():
    paper, rehearsal = flatten(read_profile("paper")), flatten(read_profile("rehearsal"))
    assert set(paper) == set(rehearsal), "a derived profile has exactly its base's keys"
    differing = {key for key in paper if paper[key] != rehearsal[key]}
    assert differing == REHEARSAL_KEYS
    for key, value in KEPT.items():
        assert paper[key] == rehearsal[key] == value, key
    # the same matrix of runs: datasets, variants, seeds
    assert pipeline.runs(read_profile("paper")) == pipeline.runs(read_profile("rehearsal"))
    assert len(pipeline.runs(read_profile("rehearsal"))) == 34
    assert rehearsal["train.loss.vgg_weights"] == "random"


def test_a_derived_profile_cannot_add_a_key_or_a_section(tmp_path, monkeypatch):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "paper.yaml").write_text(
        (pipeline.PROFILES_DIR / "paper.yaml").read_text())
    monkeypatch.setattr(pipeline, "PROFILES_DIR", profiles)
    (profiles / "bad.yaml").write_text(yaml.safe_dump(
        {"derived_from": "paper", "profile": "bad", "changes": {"train.seed": 3}}))
    with pytest.raises(PipelineError, match="'train.seed' is not a setting of profile"):
        read_profile("bad")
    (profiles / "bad.yaml").write_text(yaml.safe_dump(
        {"derived_from": "paper", "profile": "bad", "model": {"width": 8}}))
    with pytest.raises(PipelineError, match=r"move \['model'\] into changes"):
        read_profile("bad")
    (profiles / "bad.yaml").write_text(yaml.safe_dump(
        {"derived_from": "nope", "profile": "bad", "changes": {}}))
    with pytest.raises(PipelineError, match="unknown profile 'nope'"):
        read_profile("bad")
    (profiles / "good.yaml").write_text(yaml.safe_dump(
        {"derived_from": "paper", "profile": "good", "changes": {"model.width": 8}}))
    good = read_profile("good")
    assert good["model"] == {"width": 8} and good["profile"] == "good"
    assert good["train"] == read_profile("paper")["train"]


def test_layouts_open_through_the_published_adapters(layouts):
    expected = {"celeba": CELEBA_COUNTS, "paris": PARIS_COUNTS,
                "places2": {**PLACES2_COUNTS, "test": PLACES2_COUNTS["val"]}}
    for name, counts in expected.items():
        for split, count in counts.items():
            dataset = build_dataset(DatasetConfig(name=name, root=str(layouts[name]),
                                                  split=split, size=256))
            assert len(dataset) == count, (name, split)
            image = dataset[0]["image"]
            assert tuple(image.shape) == (3, 256, 256)
            assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
            # a photograph, not a flat or noise image: neighbouring pixels agree
            assert float(image.std()) > 0.03
            assert float((image[:, :, 1:] - image[:, :, :-1]).abs().mean()) < 0.1


def test_layouts_are_the_published_ones(layouts):
    celeba = layouts["celeba"]
    lines = (celeba / "list_eval_partition.txt").read_text().split("\n")
    assert lines[0] == "000001.jpg 0" and lines[-1] == ""
    parts = [line.split()[1] for line in lines if line]
    assert parts == ["0"] * CELEBA_COUNTS["train"] + ["1"] * CELEBA_COUNTS["val"] \
        + ["2"] * CELEBA_COUNTS["test"]
    from PIL import Image

    with Image.open(celeba / "img_align_celeba" / "000001.jpg") as face:
        assert face.size == (178, 218) and face.format == "JPEG"
    with Image.open(layouts["paris"] / "paris_eval_gt" / "001_im.png") as gt:
        assert gt.size == (227, 227)
    train = sorted((layouts["paris"] / "paris_train_original").iterdir())
    with Image.open(train[0]) as photo:
        assert photo.size == (936, 537)
    places = layouts["places2"]
    first = (places / "places365_train_standard.txt").read_text().split("\n")[0]
    assert first == "/a/airfield/00000001.jpg 0"
    assert (places / "data_256" / "a" / "airfield" / "00000001.jpg").is_file()
    assert (places / "places365_val.txt").read_text().startswith(
        "Places365_val_00000001.jpg 165\n")


def test_no_test_image_shows_a_training_photo(layouts):
    """Test crops come from photos (faces) that no training image is cut from."""
    from rfr.data.embedded import SCENE_TEST_PHOTOS, face_split
    from rfr.data.rehearsal import PLACES2_CATEGORIES

    assert not set(PLACES2_CATEGORIES) & set(SCENE_TEST_PHOTOS)
    assert not set(face_split("train")) & set(face_split("test"))


def test_writing_twice_gives_the_same_bytes(layouts, tmp_path):
    again = write_rehearsal_layouts(tmp_path / "again")

    def digest(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    for name in layouts:
        assert digest(layouts[name]) == digest(again[name]), name


def test_rfr_profile_rehearsal_writes_the_paper_profile_with_roots(layouts, tmp_path,
                                                                 capsys):
    dest = tmp_path / "params.yaml"
    assert main(["profile", "rehearsal", "--params", str(dest)]) == 2
    assert "rfr profile rehearsal --root NAME=FOLDER" in capsys.readouterr().err
    roots = [arg for name, root in layouts.items() for arg in ("--root", f"{name}={root}")]
    assert main(["profile", "rehearsal", "--params", str(dest), *roots]) == 0
    params = pipeline.load_params(dest)
    assert params["datasets"]["paris"]["data"]["root"] == str(layouts["paris"])
    assert "derived_from" not in params and params["profile"] == "rehearsal"
    assert dest.read_text().startswith('# Profile "rehearsal"')
    for dataset in ("celeba", "paris", "places2"):
        train = pipeline.train_config(params, dataset, "rfr", 0, tmp_path / "run", None)
        assert train.total_steps == 2 and train.dataset.size == 256
        assert train.model_config["width"] == 64
