"""The three published datasets' folder layouts, filled with the real photographs that
ship inside scikit-image, so that the paper profile's data path runs end to end with
nothing downloaded: the same adapters (``rfr/data/published.py``), list files and
folders a user's download goes through (the ``rehearsal`` profile; ``rfr rehearsal-data``).

What a user's download looks like, and what is written here in its place:

- CelebA: ``img_align_celeba/000001.jpg`` ... (178 x 218 JPEG) and
  ``list_eval_partition.txt`` ("000001.jpg 0"; 0 train, 1 val, 2 test). Here: the LFW
  faces of ``skimage.data.lfw_subset()`` (25 x 25 grayscale), upsampled to 178 x 218.
- Paris StreetView: ``paris_train_original/*.JPG`` (936 x 537) and ``paris_eval_gt/NNN_im.png``
  (227 x 227). Here: crops of the scene photographs at those sizes.
- Places2 (Places365-Standard, small images): ``data_256/a/airfield/00000001.jpg`` listed
  in ``places365_train_standard.txt`` ("/a/airfield/00000001.jpg 0"), ``val_256/
  Places365_val_00000001.jpg`` listed in ``places365_val.txt`` ("Places365_val_00000001.jpg
  165"). Here: 256 x 256 crops of the scene photographs, one Places category per photo.

Splits follow the demo sets': test images come from photos (and faces) that no training
image shows. Everything is fixed by the constants below, and writing twice gives the same
bytes, so a rebuilt folder does not rerun the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rfr.atomic import atomic_open, write_text_atomic
from rfr.data.embedded import (
    DEMO_SEED,
    SCENE_PHOTOS,
    SCENE_TEST_PHOTOS,
    face_split,
    lfw_faces,
    scene_photo,
)
from rfr.data.published import (
    CELEBA_IMAGES,
    CELEBA_PARTITION,
    CELEBA_SPLITS,
    PARIS_FOLDERS,
    PLACES2_LAYOUT,
)

REHEARSAL_STREAM = 0x52485253  # "RHRS": crops of the rehearsal layouts

# Images written per split; a few more training images than two steps of batch 6 use.
CELEBA_COUNTS = {"train": 24, "val": 2, "test": 4}
PARIS_COUNTS = {"train": 24, "test": 4}
PLACES2_COUNTS = {"train": 24, "val": 4}

CELEBA_SIZE = (178, 218)  # width, height of img_align_celeba
PARIS_TRAIN_SIZE = (936, 537)
PARIS_EVAL_SIZE = (227, 227)
PLACES2_SIZE = (256, 256)

# One Places365 category per training photo, with its index in the official
# categories_places365.txt (the second field of the train list).
PLACES2_CATEGORIES = {
    "astronaut": ("/a/airfield", 0),
    "chelsea": ("/l/living_room", 215),
    "immunohistochemistry": ("/b/biology_laboratory", 56),
    "hubble_deep_field": ("/s/sky", 306),
    "retina": ("/o/operating_room", 248),
    "stereo_motorcycle": ("/g/garage/indoor", 156),
}
PLACES2_VAL_CATEGORY = 165  # the label of the first line of the official places365_val.txt
JPEG_QUALITY = 95


@dataclass(frozen=True)
class Crop:
    photo: str
    left: int
    top: int
    width: int
    height: int


def photo_crops(photos: tuple[str, ...], count: int, aspect: float, stream: int) -> list[Crop]:
    """``count`` seeded crops of width/height ``aspect`` spread over ``photos`` in turn,
    each 50-95 % of the largest such crop the photo holds."""
    crops = []
    for k in range(count):
        name = photos[k % len(photos)]
        height, width = scene_photo(name).shape[:2]
        rng = np.random.default_rng([REHEARSAL_STREAM, DEMO_SEED, stream, k])
        full_w = min(width, int(height * aspect))
        scale = rng.uniform(0.5, 0.95)
        crop_w = max(1, int(full_w * scale))
        crop_h = max(1, int(crop_w / aspect))
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        crops.append(Crop(name, left, top, crop_w, crop_h))
    return crops


def crop_image(crop: Crop, size: tuple[int, int]) -> Image.Image:
    pixels = scene_photo(crop.photo)[crop.top:crop.top + crop.height,
                                     crop.left:crop.left + crop.width]
    return Image.fromarray(np.ascontiguousarray(pixels)).resize(size, Image.Resampling.BICUBIC)


def face_image(index: int) -> Image.Image:
    gray = np.round(lfw_faces()[index] * 255.0).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB").resize(CELEBA_SIZE, Image.Resampling.BICUBIC)


def save(image: Image.Image, path: Path) -> None:
    """Write atomically: an interrupted build leaves no half image behind."""
    with atomic_open(path, "wb") as handle:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            image.save(handle, format="JPEG", quality=JPEG_QUALITY)
        else:
            image.save(handle, format="PNG")


def write_text(path: Path, lines: list[str]) -> None:
    write_text_atomic(path, "".join(line + "\n" for line in lines))


def train_photos() -> tuple[str, ...]:
    return tuple(name for name in SCENE_PHOTOS if name not in SCENE_TEST_PHOTOS)


def write_celeba(root: Path) -> Path:
    """Train faces from the demo's training faces, val and test from its test faces."""
    train_faces, test_faces = face_split("train"), face_split("test")
    chosen = {
        "train": train_faces[:CELEBA_COUNTS["train"]],
        "val": test_faces[CELEBA_COUNTS["test"]:CELEBA_COUNTS["test"] + CELEBA_COUNTS["val"]],
        "test": test_faces[:CELEBA_COUNTS["test"]],
    }
    lines = []
    number = 0
    for split in ("train", "val", "test"):  # CelebA numbers train, then val, then test
        for face in chosen[split]:
            number += 1
            name = f"{number:06d}.jpg"
            save(face_image(face), root / CELEBA_IMAGES / name)
            lines.append(f"{name} {CELEBA_SPLITS[split]}")
    write_text(root / CELEBA_PARTITION, lines)
    return root


def write_paris(root: Path) -> Path:
    train = photo_crops(train_photos(), PARIS_COUNTS["train"],
                        PARIS_TRAIN_SIZE[0] / PARIS_TRAIN_SIZE[1], stream=1)
    for k, crop in enumerate(train):
        # The distributed names are "<lat>_<lon>_<heading>_<pitch>.JPG"-like; any name works.
        name = f"48.{8500 + k:04d}_2.{3400 + k:04d}_{(k * 90) % 360:03d}_-004.JPG"
        save(crop_image(crop, PARIS_TRAIN_SIZE), root / PARIS_FOLDERS["train"] / name)
    test = photo_crops(SCENE_TEST_PHOTOS, PARIS_COUNTS["test"], 1.0, stream=2)
    for k, crop in enumerate(test, start=1):
        save(crop_image(crop, PARIS_EVAL_SIZE), root / PARIS_FOLDERS["test"] / f"{k:03d}_im.png")
    return root


def write_places2(root: Path) -> Path:
    train_folder, train_list = PLACES2_LAYOUT["train"]
    val_folder, val_list = PLACES2_LAYOUT["val"]
    lines = []
    per_category: dict[str, int] = {}
    for crop in photo_crops(train_photos(), PLACES2_COUNTS["train"], 1.0, stream=3):
        category, index = PLACES2_CATEGORIES[crop.photo]
        per_category[category] = per_category.get(category, 0) + 1
        relative = f"{category}/{per_category[category]:08d}.jpg"
        save(crop_image(crop, PLACES2_SIZE), root / train_folder / relative.lstrip("/"))
        lines.append(f"{relative} {index}")
    write_text(root / train_list, lines)
    lines = []
    for k, crop in enumerate(photo_crops(SCENE_TEST_PHOTOS, PLACES2_COUNTS["val"], 1.0,
                                         stream=4), start=1):
        name = f"Places365_val_{k:08d}.jpg"
        save(crop_image(crop, PLACES2_SIZE), root / val_folder / name)
        lines.append(f"{name} {PLACES2_VAL_CATEGORY}")
    write_text(root / val_list, lines)
    return root


WRITERS = {"celeba": write_celeba, "paris": write_paris, "places2": write_places2}


def write_rehearsal_layouts(out: str | Path) -> dict[str, Path]:
    """Write ``out/celeba``, ``out/paris`` and ``out/places2``; returns {name: root}, the
    ``--root`` arguments of ``rfr profile rehearsal``."""
    out = Path(out)
    return {name: writer(out / name) for name, writer in WRITERS.items()}


__all__ = ["CELEBA_COUNTS", "PARIS_COUNTS", "PLACES2_COUNTS", "write_rehearsal_layouts"]
