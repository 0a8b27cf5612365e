"""Dataset adapters on tiny fake copies of each published layout, the authors' transforms,
seeded determinism, unreadable files, and the offline demo sets."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rfr.config import ConfigError, from_dict
from rfr.data import (
    DATASET_BUILDERS,
    DatasetConfig,
    DatasetFormatError,
    DatasetNotFoundError,
    ImageDataset,
    Skipped,
    build_dataset,
    centre_plan,
    iter_batches,
    list_images,
    make_loader,
    train_plan,
)
from rfr.data.embedded import (
    FACE_COUNT,
    SCENE_PHOTOS,
    SCENE_TEST_PHOTOS,
    SceneCrop,
    face_split,
    lfw_faces,
    scene_crops,
    scene_photo,
)
from rfr.data.image_io import ImageReadError
from rfr.data.transforms import resize_square, sample_rng

S = 16  # target size of the fake-layout tests


def pixels(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def build(name: str, root: Path | str | None, split: str = "train", **fields) -> ImageDataset:
    fields.setdefault("size", S)
    return build_dataset(DatasetConfig(name=name, root=None if root is None else str(root),
                                       split=split, **fields))


def check_items(dataset: ImageDataset, size: int = S) -> None:
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["index"] == index
        image = item["image"]
        assert image.shape == (3, size, size)
        assert image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


# ------------------------------------------------------------------- fake layouts


@pytest.fixture
def celeba_root(tmp_path: Path) -> Path:
    """Six 20 x 24 (w x h) faces: 000001-000003 train, 000004-000005 val, 000006 test."""
    root = tmp_path / "celeba"
    parts = [0, 0, 0, 1, 1, 2]
    for number in range(1, 7):
        save(root / "img_align_celeba" / f"{number:06d}.jpg", pixels(number, 24, 20))
    lines = [f"{number:06d}.jpg {part}" for number, part in enumerate(parts, start=1)]
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def paris_root(tmp_path: Path) -> Path:
    root = tmp_path / "paris"
    for k in range(4):
        save(root / "paris_train_original" / f"{k:03d}.JPG", pixels(10 + k, 30, 50))
    for k in range(2):
        save(root / "paris_eval_gt" / f"{k:03d}_im.png", pixels(20 + k, 22, 22))
    return root


@pytest.fixture
def places2_root(tmp_path: Path) -> Path:
    root = tmp_path / "places2"
    train = ["/a/airfield/00000001.jpg", "/a/airfield/00000002.jpg", "/b/bakery/00000001.jpg"]
    for k, name in enumerate(train):
        save(root / "data_256" / name.lstrip("/"), pixels(30 + k, 28, 28))
    (root / "places365_train_standard.txt").write_text(
        "".join(f"{name} {k}\n" for k, name in enumerate(train)))
    val = [f"Places365_val_{k:08d}.jpg" for k in (1, 2)]
    for k, name in enumerate(val):
        save(root / "val_256" / name, pixels(40 + k, 28, 28))
    (root / "places365_val.txt").write_text("".join(f"{name} 165\n" for name in val))
    return root


def test_celeba_splits_follow_the_partition_file(celeba_root: Path) -> None:
    sizes = {split: len(build("celeba", celeba_root, split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 3, "val": 2, "test": 1}
    test = build("celeba", celeba_root, "test")
    assert test.names == ["000006.jpg"] and not test.train
    train = build("celeba", celeba_root, "train")
    assert train.names == ["000001.jpg", "000002.jpg", "000003.jpg"] and train.train
    check_items(train)
    check_items(test)


def test_paris_splits_are_its_two_folders(paris_root: Path) -> None:
    train = build("paris", paris_root, "train")
    test = build("paris", paris_root, "test")
    assert train.names == [f"{k:03d}.JPG" for k in range(4)]
    assert len(test) == 2
    check_items(train)
    check_items(test)


def test_places2_splits_follow_the_list_files(places2_root: Path) -> None:
    train = build("places2", places2_root, "train")
    assert train.names == ["a/airfield/00000001.jpg", "a/airfield/00000002.jpg",
                           "b/bakery/00000001.jpg"]
    val = build("places2", places2_root, "val")
    test = build("places2", places2_root, "test")  # Places365 test = its val set
    assert val.names == test.names == ["Places365_val_00000001.jpg", "Places365_val_00000002.jpg"]
    check_items(train)
    check_items(test)


def test_count_differing_from_the_published_split_is_logged(
        paris_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rfr.data"):
        build("paris", paris_root, "test")
    assert "Paris StreetView test: 2 images, the published split has 100" in caplog.text


def test_limit_keeps_the_first_items(celeba_root: Path) -> None:
    assert build("celeba", celeba_root, "train", limit=2).names == ["000001.jpg", "000002.jpg"]


# ------------------------------------------------------------ missing or incomplete


def remove(path: Path) -> None:
    if path.is_dir():
        for child in sorted(path.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink()
        path.rmdir()
    else:
        path.unlink()


SOURCES = {"celeba": "mmlab.ie.cuhk.edu.hk", "paris": "Pathak", "places2": "places2.csail.mit.edu"}
TITLES = {"celeba": "CelebA", "paris": "Paris StreetView", "places2": "Places2"}


def not_found(name: str, root: Path, split: str) -> str:
    with pytest.raises(DatasetNotFoundError) as info:
        build(name, root, split)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert message.startswith(TITLES[name]), message
    assert str(root) in message and "docs/datasets.md" in message, message
    assert SOURCES[name] in message, message
    return message


@pytest.mark.parametrize("name", ["celeba", "paris", "places2"])
def test_missing_root_says_what_was_expected_and_where(name: str, tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    message = not_found(name, root, "train")
    assert f"not found at {root}: expected" in message


MISSING_PIECES = [
    ("celeba", "train", "img_align_celeba/"),
    ("celeba", "test", "list_eval_partition.txt"),
    ("paris", "train", "paris_train_original/"),
    ("paris", "test", "paris_eval_gt/"),
    ("places2", "train", "data_256/"),
    ("places2", "train", "places365_train_standard.txt"),
    ("places2", "val", "val_256/"),
    ("places2", "test", "places365_val.txt"),
]


@pytest.mark.parametrize(("name", "split", "piece"), MISSING_PIECES)
def test_missing_piece_is_named(name: str, split: str, piece: str, request: pytest.FixtureRequest
                                ) -> None:
    root = request.getfixturevalue(f"{name}_root")
    remove(root / piece)
    message = not_found(name, root, split)
    assert f"incomplete at {root}: missing {piece}" in message, message


def test_missing_default_root_names_data_raw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.chdir(tmp_path)
    message = not_found("celeba", Path("data/raw/celeba"), "train")
    assert message.startswith("CelebA not found at data/raw/celeba: expected img_align_celeba/ "
                              "and list_eval_partition.txt (see docs/datasets.md")


def test_listed_image_missing_on_disk_is_named(celeba_root: Path, places2_root: Path) -> None:
    remove(celeba_root / "img_align_celeba" / "000003.jpg")  # last of the train split
    message = not_found("celeba", celeba_root, "train")
    assert "img_align_celeba/000003.jpg is listed in list_eval_partition.txt" in message
    remove(places2_root / "data_256" / "a" / "airfield" / "00000001.jpg")  # first listed
    message = not_found("places2", places2_root, "train")
    assert "data_256/a/airfield/00000001.jpg is listed in places365_train_standard.txt" in message


def test_empty_paris_folder_is_an_error(paris_root: Path) -> None:
    for path in (paris_root / "paris_eval_gt").iterdir():
        path.unlink()
    assert "no images in paris_eval_gt/" in not_found("paris", paris_root, "test")


def test_malformed_list_line_names_file_and_line(celeba_root: Path) -> None:
    partition = celeba_root / "list_eval_partition.txt"
    partition.write_text(partition.read_text() + "000007.jpg\n")
    with pytest.raises(DatasetFormatError, match=r"list_eval_partition.txt:7: expected 2 fields"):
        build("celeba", celeba_root)
    partition.write_text("000001.jpg 5\n")
    with pytest.raises(DatasetFormatError, match=r"list_eval_partition.txt:1: partition must"):
        build("celeba", celeba_root)


# ------------------------------------------------------------------------ configs


def test_config_from_mapping_and_validation() -> None:
    config = from_dict(DatasetConfig, {"name": "demo-faces", "split": "test", "size": 32})
    assert config.train_transform is False
    assert DatasetConfig(split="test", transform="train").train_transform is True
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(DatasetConfig, {"name": "celeba", "sise": 64})
    with pytest.raises(ConfigError, match="on_error must be one of"):
        DatasetConfig(on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="size must be"):
        DatasetConfig(size=0)
    with pytest.raises(ConfigError, match="file_list applies to the folder dataset only"):
        DatasetConfig(name="celeba", file_list="list.txt")
    with pytest.raises(ConfigError, match="unknown dataset 'celebA'"):
        build_dataset({"name": "celebA"})
    with pytest.raises(ConfigError, match=r"CelebA has splits \['train', 'val', 'test'\]"):
        build_dataset({"name": "celeba", "split": "valid"})
    with pytest.raises(ConfigError, match="takes no root"):
        build_dataset({"name": "demo-scenes", "root": "data/raw/places2"})
    assert set(DATASET_BUILDERS) == {"celeba", "paris", "places2", "folder", "demo-scenes",
                                     "demo-faces"}


# --------------------------------------------------------------------- transforms


def test_train_plan_follows_the_authors_rule() -> None:
    sides, flips = set(), []
    for index in range(400):
        plan = train_plan(50, 40, 16, sample_rng(0, 0, index))
        assert 16 <= plan.side < 40  # uniform in [target, short side)
        assert 0 <= plan.left <= 50 - plan.side and 0 <= plan.top <= 40 - plan.side
        sides.add(plan.side)
        flips.append(plan.flip)
    assert sides == set(range(16, 40))
    assert 0.4 < np.mean(flips) < 0.6
    for width, height in [(12, 30), (16, 16), (30, 16)]:  # short side <= target
        plan = train_plan(width, height, 16, sample_rng(0, 0, 1))
        assert plan.side == min(width, height)


def test_centre_crop_is_exact(tmp_path: Path) -> None:
    wide = pixels(1, 16, 28)  # h 16, w 28: centre crop = columns 6..21
    save(tmp_path / "wide.png", wide)
    tall = pixels(2, 27, 16)  # h 27, w 16: rows 5..20 (offset rounded down)
    save(tmp_path / "tall.png", tall)
    dataset = build("folder", tmp_path, "test")
    assert dataset.names == ["tall.png", "wide.png"]
    as_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255  # noqa: E731
    assert torch.equal(dataset[0]["image"], as_tensor(tall[5:21]))
    assert torch.equal(dataset[1]["image"], as_tensor(wide[:, 6:22]))
    assert centre_plan(28, 16).box == (6, 0, 22, 16)
    # Test items do not depend on seed or epoch.
    other = build("folder", tmp_path, "test", seed=5)
    other.set_epoch(3)
    assert torch.equal(other[1]["image"], dataset[1]["image"])


def test_centre_crop_then_resize_matches_the_authors_pil_default(tmp_path: Path) -> None:
    """The authors resize uint8 RGB with ``Image.resize(size)`` and no filter argument:
    Pillow's default, BICUBIC. Bilinear would be a visibly different image."""
    array = pixels(3, 40, 60)
    save(tmp_path / "a.png", array)
    image = build("folder", tmp_path, "test", size=S)[0]["image"].permute(1, 2, 0).numpy()
    crop = Image.fromarray(array[:, 10:50])
    authors = np.asarray(crop.resize((S, S)), np.float32) / 255
    assert float(np.abs(image - authors).max()) <= 1 / 255
    bilinear = np.asarray(crop.resize((S, S), Image.Resampling.BILINEAR), np.float32) / 255
    assert float(np.abs(image - bilinear).max()) > 4 / 255
    assert image.min() >= 0 and image.max() <= 1  # bicubic overshoot is clipped


def test_train_transform_on_a_small_image_crops_the_short_side(tmp_path: Path) -> None:
    """12 x 20 (h x w) source, target 16: a 12 x 12 window, upsampled, maybe mirrored."""
    array = pixels(4, 12, 20).astype(np.float32) / 255
    save(tmp_path / "small.png", (array * 255).round().astype(np.uint8))
    dataset = build("folder", tmp_path, "train", size=S)
    candidates = []
    for left in range(20 - 12 + 1):
        resized = resize_square(np.ascontiguousarray(array[:, left:left + 12]), S)
        candidates += [resized, resized[:, ::-1]]
    for epoch in range(6):
        dataset.set_epoch(epoch)
        out = dataset[0]["image"].permute(1, 2, 0).numpy()
        assert min(float(np.abs(out - c).max()) for c in candidates) == 0.0


def test_same_seed_same_tensors_and_index_epoch_seed_change_the_crop(tmp_path: Path) -> None:
    array = pixels(5, 40, 48)
    for name in ("a.png", "b.png"):  # identical pixels: differences come from the stream
        save(tmp_path / name, array)
    first = build("folder", tmp_path, "train", seed=7)
    again = build("folder", tmp_path, "train", seed=7)
    assert torch.equal(first[0]["image"], again[0]["image"])
    assert torch.equal(first[1]["image"], again[1]["image"])
    assert not torch.equal(first[0]["image"], first[1]["image"])  # index
    again.set_epoch(1)
    assert not torch.equal(first[0]["image"], again[0]["image"])  # epoch
    reseeded = build("folder", tmp_path, "train", seed=8)
    assert not torch.equal(first[0]["image"], reseeded[0]["image"])  # seed


def test_loader_workers_give_the_same_batches_as_the_main_process(tmp_path: Path) -> None:
    for k in range(6):
        save(tmp_path / f"{k}.png", pixels(50 + k, 30, 36))
    dataset = build("folder", tmp_path, "train")
    runs = []
    for workers in (0, 2):
        batches = list(iter_batches(make_loader(dataset, 4, shuffle=True, epoch=2,
                                                num_workers=workers)))
        runs.append((torch.cat([b["image"] for b in batches]),
                     torch.cat([b["index"] for b in batches])))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert sorted(runs[0][1].tolist()) == list(range(6))
    assert runs[0][1].tolist() != list(range(6))  # shuffled, by the (seed, epoch) stream


# --------------------------------------------------------------- folder, bad files


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """A truncated JPEG, an RGBA PNG, a 16-bit PNG, a grayscale JPEG, plus non-images."""
    root = tmp_path / "mixed"
    save(root / "full.jpg", pixels(60, 24, 24), quality=90)
    data = (root / "full.jpg").read_bytes()
    (root / "a_truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "full.jpg").unlink()
    rgba = np.dstack([pixels(61, 24, 24), np.full((24, 24), 7, np.uint8)])
    save(root / "b_rgba.PNG", rgba)
    deep = np.random.default_rng(62).integers(0, 65536, (24, 24), dtype=np.uint16)
    save(root / "sub" / "c_deep16.png", deep)
    save(root / "sub" / "d_gray.jpeg", pixels(63, 24, 24)[..., 0], quality=95)
    (root / "notes.txt").write_text("not an image")
    save(root / "._b_rgba.PNG", rgba)  # a macOS resource-fork name: hidden, ignored
    return root


def test_folder_lists_images_recursively_sorted_any_case(mixed_folder: Path) -> None:
    assert list_images(mixed_folder) == ["a_truncated.jpg", "b_rgba.PNG", "sub/c_deep16.png",
                                         "sub/d_gray.jpeg"]


def test_folder_modes_become_rgb(mixed_folder: Path) -> None:
    dataset = build("folder", mixed_folder, "test", size=24)
    rgba = dataset[1]["image"]
    expected = np.array(Image.open(mixed_folder / "b_rgba.PNG").convert("RGB"))
    assert torch.equal(rgba, torch.from_numpy(expected).permute(2, 0, 1).float() / 255)
    deep = dataset[2]["image"]
    assert torch.equal(deep[0], deep[1]) and torch.equal(deep[1], deep[2])
    stored = np.asarray(Image.open(mixed_folder / "sub" / "c_deep16.png"), np.float64) / 65535
    assert float(np.abs(deep[0].numpy() - stored).max()) < 1e-6  # 16-bit precision kept
    gray = dataset[3]["image"]
    assert gray.shape == (3, 24, 24) and torch.equal(gray[0], gray[2])


def test_truncated_image_raises_naming_the_file(mixed_folder: Path) -> None:
    dataset = build("folder", mixed_folder, "train")
    with pytest.raises(ImageReadError) as info:
        dataset[0]
    message = str(info.value)
    assert str(mixed_folder / "a_truncated.jpg") in message and "truncated" in message
    assert "image folder train item 0" in message
    with pytest.raises(ImageReadError):
        next(iter(make_loader(dataset, 2)))


def test_truncated_image_is_skipped_counted_and_reported(
        mixed_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    dataset = build("folder", mixed_folder, "train", on_error="skip")
    with caplog.at_level(logging.WARNING, logger="rfr.data"):
        batches = list(iter_batches(make_loader(dataset, 2, num_workers=0)))
    indices = torch.cat([b["index"] for b in batches]).tolist()
    assert indices == [1, 2, 3]  # the bad item is gone, not replaced by another
    assert sum(len(b["image"]) for b in batches) == 3
    assert [s.name for s in dataset.skipped] == ["a_truncated.jpg"]
    assert batches[0]["skipped"] == dataset.skipped
    assert "image folder train: skipped 1 of 4 images" in caplog.text
    assert "a_truncated.jpg" in dataset.report_skipped()
    assert sum("skipped item 0" in r.message for r in caplog.records) == 1  # logged once
    # Direct indexing gives the record, not a sample.
    assert isinstance(dataset[0], Skipped)


def test_skips_in_worker_processes_reach_the_main_dataset(mixed_folder: Path) -> None:
    dataset = build("folder", mixed_folder, "test", on_error="skip")
    batches = list(iter_batches(make_loader(dataset, 1, num_workers=2)))
    assert [len(b["image"]) for b in batches] == [0, 1, 1, 1]
    assert batches[0]["image"].shape == (0, 3, S, S)
    assert len(dataset.skipped) == 1 and dataset.skipped[0].index == 0
    assert "corrupt or truncated" in dataset.skipped[0].reason


def test_missing_folder_and_file_list_errors(mixed_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="image folder not found at .*nowhere"):
        build("folder", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no images under .*empty"):
        build("folder", tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError, match="file list not found at .*list.txt"):
        build("folder", mixed_folder, file_list=str(tmp_path / "list.txt"))
    listed = tmp_path / "list.txt"
    listed.write_text("# chosen images\nsub/d_gray.jpeg\n\nb_rgba.PNG\nmissing.png\n")
    with pytest.raises(DatasetNotFoundError, match=r"1 of 3 images listed in .* missing\.png"):
        build("folder", mixed_folder, file_list=str(listed))
    listed.write_text("sub/d_gray.jpeg\nb_rgba.PNG\n")
    assert build("folder", mixed_folder, file_list=str(listed)).names == ["sub/d_gray.jpeg",
                                                                          "b_rgba.PNG"]


# --------------------------------------------------------------------- demo sets


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    scene_photo.cache_clear()
    lfw_faces.cache_clear()


def test_demo_sets_load_offline_with_their_sizes(offline: None) -> None:
    sizes = {}
    for name in ("demo-scenes", "demo-faces"):
        for split in ("train", "test"):
            dataset = build(name, None, split, size=32)
            sizes[name, split] = len(dataset)
            check_items(dataset, 32) if split == "test" else check_items_subset(dataset, 32)
    assert sizes == {("demo-scenes", "train"): 192, ("demo-scenes", "test"): 16,
                     ("demo-faces", "train"): 80, ("demo-faces", "test"): 20}
    assert len(SCENE_PHOTOS) == 8 and all(scene_photo(p).ndim == 3 for p in SCENE_PHOTOS)
    assert lfw_faces().shape == (FACE_COUNT, 25, 25)


def check_items_subset(dataset: ImageDataset, size: int) -> None:
    for index in range(0, len(dataset), 7):
        image = dataset[index]["image"]
        assert image.shape == (3, size, size) and image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_demo_splits_are_disjoint_by_source_photo() -> None:
    train = {crop.photo for crop in scene_crops("train")}
    test = {crop.photo for crop in scene_crops("test")}
    assert test == set(SCENE_TEST_PHOTOS) and not train & test
    assert train | test == set(SCENE_PHOTOS)
    faces_train, faces_test = set(face_split("train")), set(face_split("test"))
    assert not faces_train & faces_test and faces_train | faces_test == set(range(FACE_COUNT))
    dataset = build("demo-scenes", None, "test")
    assert {dataset.source(i) for i in range(len(dataset))} == set(SCENE_TEST_PHOTOS)


def test_demo_sets_are_deterministic() -> None:
    # The composition is pinned: these values are the same on every machine.
    assert scene_crops("test")[0] == SceneCrop("coffee", left=117, top=24, side=278)
    assert scene_crops("train")[-1] == SceneCrop("stereo_motorcycle", left=388, top=240,
                                                 side=249)
    assert face_split("test") == [0, 6, 7, 8, 13, 14, 17, 19, 38, 55, 57, 59, 69, 73, 74, 77,
                                  84, 89, 91, 99]
    first, second = build("demo-scenes", None, "train", size=32), build("demo-scenes", None,
                                                                         "train", size=32)
    for index in (0, 100, 191):
        assert torch.equal(first[index]["image"], second[index]["image"])
    faces = build("demo-faces", None, "test", size=32)
    assert torch.equal(faces[3]["image"], build("demo-faces", None, "test", size=32)[3]["image"])
    # Different crops of one photo differ.
    assert not torch.equal(first[0]["image"], first[1]["image"])
