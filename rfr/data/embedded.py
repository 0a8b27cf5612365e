"""Two small demo sets made of the real photographs inside scikit-image's wheel, so the
whole suite runs with nothing downloaded.

``demo-scenes`` stands in for Places2 and Paris StreetView: eight photographs, two of
them held out for testing, each cut into fixed seeded square crops. ``demo-faces`` stands
in for CelebA: the 100 faces of ``skimage.data.lfw_subset()`` (its other 100 images are
non-face background patches and are not used), split 80 / 20 by a fixed seeded shuffle.
Splits are by source photo, so no test crop shows any part of a training photo. The
composition depends only on the constants below, never on the config's seed (which
drives the train transform), so the sets are the same everywhere.

The items then go through the same train/test transform as any dataset: a crop is a
"source image" of side 35-70 % of its photo's short side, a face is its 25 x 25 patch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image

from rfr.config import ConfigError
from rfr.data.base import ImageDataset, OnError
from rfr.data.config import DatasetConfig

# Seed word and seed of the demo sets' composition (fixed: the sets are data, not a knob).
DEMO_STREAM = 0x44454D4F  # "DEMO"
DEMO_SEED = 2020

# skimage.data function names; each loads from a file inside the wheel (no pooch needed).
SCENE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "stereo_motorcycle",  # a stereo pair: the left view is used
)
SCENE_TEST_PHOTOS = ("coffee", "rocket")
SCENE_CROPS = {"train": 32, "test": 8}  # crops per photo
CROP_FRACTION = (0.35, 0.7)  # crop side, as a fraction of the photo's short side

FACE_COUNT = 100  # lfw_subset(): images 0-99 are faces, 100-199 non-faces
FACE_TEST_COUNT = 20

DEMO_SPLITS = ("train", "test")


@cache
def scene_photo(name: str) -> np.ndarray:
    """H x W x 3 uint8 photograph ``name`` from scikit-image's bundled data."""
    from skimage import data  # imported here: only the demo sets need scikit-image

    photo = getattr(data, name)()
    if isinstance(photo, tuple):  # stereo_motorcycle: (left, right, disparity)
        photo = photo[0]
    return np.ascontiguousarray(photo)


def square_photo(name: str, size: int) -> torch.Tensor:
    """Photograph ``name`` centre-cropped to a square and area-resized: 3 x size x size
    float32 in [0, 1]. The one way demos, benchmarks and tests turn a bundled photo into
    a model-sized image."""
    photo = torch.from_numpy(scene_photo(name)).permute(2, 0, 1).float() / 255.0
    height, width = photo.shape[1:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = photo[None, :, top:top + side, left:left + side]
    return torch.nn.functional.interpolate(crop, size=(size, size), mode="area")[0]


@cache
def lfw_faces() -> np.ndarray:
    """The 100 LFW faces of scikit-image's ``lfw_subset``: 100 x 25 x 25 float32 in [0, 1]."""
    from skimage import data

    faces = np.asarray(data.lfw_subset()[:FACE_COUNT], dtype=np.float64)
    if faces.max() > 1.0:  # documented as uint8, shipped as float in [0, 1]: accept both
        faces = faces / 255.0
    return faces.astype(np.float32)


@dataclass(frozen=True)
class SceneCrop:
    photo: str
    left: int
    top: int
    side: int


def scene_crops(split: str, crops_per_photo: int | None = None) -> list[SceneCrop]:
    """The fixed crops of ``split``: photo by photo in SCENE_PHOTOS order, crop k of photo
    p from the stream default_rng([DEMO_STREAM, DEMO_SEED, p, k])."""
    count = SCENE_CROPS[split] if crops_per_photo is None else crops_per_photo
    photos = [name for name in SCENE_PHOTOS if (name in SCENE_TEST_PHOTOS) == (split == "test")]
    crops = []
    for name in photos:
        height, width = scene_photo(name).shape[:2]
        short = min(height, width)
        for k in range(count):
            rng = np.random.default_rng([DEMO_STREAM, DEMO_SEED, SCENE_PHOTOS.index(name), k])
            side = int(round(rng.uniform(*CROP_FRACTION) * short))
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
            crops.append(SceneCrop(name, left, top, side))
    return crops


def face_split(split: str) -> list[int]:
    """Indices of the faces in ``split``: a fixed seeded shuffle, the first
    FACE_TEST_COUNT for testing, the rest for training; each list sorted."""
    order = np.random.default_rng([DEMO_STREAM, DEMO_SEED]).permutation(FACE_COUNT)
    chosen = order[:FACE_TEST_COUNT] if split == "test" else order[FACE_TEST_COUNT:]
    return sorted(int(i) for i in chosen)


class DemoScenes(ImageDataset):
    """Fixed square crops of scikit-image's scene photographs (in memory, no files)."""

    def __init__(self, split: str, size: int, train: bool, seed: int = 0,
                 on_error: OnError = "raise", crops_per_photo: int | None = None,
                 limit: int | None = None) -> None:
        self.crops = scene_crops(split, crops_per_photo)[:limit]
        names = [f"{crop.photo}#{k % (crops_per_photo or SCENE_CROPS[split]):02d}"
                 for k, crop in enumerate(self.crops)]
        super().__init__("demo-scenes", split, names, size, train, seed, on_error)

    def open(self, index: int) -> Image.Image:
        crop = self.crops[index]
        pixels = scene_photo(crop.photo)[crop.top:crop.top + crop.side,
                                         crop.left:crop.left + crop.side]
        return Image.fromarray(np.ascontiguousarray(pixels))

    def source(self, index: int) -> str:
        """The photograph item ``index`` was cut from."""
        return self.crops[index].photo


class DemoFaces(ImageDataset):
    """The LFW faces bundled with scikit-image, grayscale 25 x 25, as RGB."""

    def __init__(self, split: str, size: int, train: bool, seed: int = 0,
                 on_error: OnError = "raise", limit: int | None = None) -> None:
        self.faces = face_split(split)[:limit]
        names = [f"lfw_face_{i:03d}" for i in self.faces]
        super().__init__("demo-faces", split, names, size, train, seed, on_error)

    def open(self, index: int) -> Image.Image:
        return Image.fromarray(lfw_faces()[self.faces[index]])  # mode "F", gray -> RGB later

    def source(self, index: int) -> str:
        return self.names[index]


def _check(config: DatasetConfig, title: str) -> None:
    if config.split not in DEMO_SPLITS:
        raise ConfigError(f"{title} has splits {list(DEMO_SPLITS)}, got split {config.split!r}")
    if config.root is not None:
        raise ConfigError(f"{title} ships inside scikit-image and takes no root; "
                          f"got root {config.root!r}")


def demo_scenes(config: DatasetConfig) -> DemoScenes:
    """Stand-in for Places2 / Paris StreetView: 192 train crops of 6 photos, 16 test
    crops of 2 others."""
    _check(config, "demo-scenes")
    return DemoScenes(config.split, config.size, config.train_transform, config.seed,
                      config.on_error, limit=config.limit)


def demo_faces(config: DatasetConfig) -> DemoFaces:
    """Stand-in for CelebA: 80 train and 20 test faces."""
    _check(config, "demo-faces")
    return DemoFaces(config.split, config.size, config.train_transform, config.seed,
                     config.on_error, limit=config.limit)


__all__ = [
    "DemoFaces",
    "DemoScenes",
    "FACE_COUNT",
    "FACE_TEST_COUNT",
    "SCENE_CROPS",
    "SCENE_PHOTOS",
    "SCENE_TEST_PHOTOS",
    "demo_faces",
    "demo_scenes",
    "face_split",
    "scene_crops",
]
