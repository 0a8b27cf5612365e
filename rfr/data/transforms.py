"""The authors' preprocessing (``dataset.py`` of jingyuanli001/RFR-Inpainting), seeded.

Train: if the short side is <= the target size S, a random square crop of the short
side; otherwise a random square crop whose side is drawn uniformly from [S, short side);
then a resize to S x S, then a horizontal flip with probability 0.5.
Test: the centre square crop of the short side, then a resize to S x S.

Resizing is PIL's ``BICUBIC`` filter: at the cited commit the authors' ``Dataset.resize``
calls ``Image.fromarray(img).resize(size=...)`` with no filter, which is Pillow's default
for RGB images, BICUBIC (their ``scipy.misc.imresize`` line, which would have been
bilinear, is commented out). Pillow widens the filter's support by the scale factor when
it shrinks, so downscaling is anti-aliased. The suite resizes float32 channels (PIL mode
"F") instead of uint8, so 16-bit sources keep their precision and no second 8-bit
rounding happens; bicubic overshoot is clipped to [0, 1], as the uint8 resize clips it to
[0, 255]. Results match the authors' 8-bit resize to within 1/255.

Two deliberate differences from the authors' code, both documented in docs/datasets.md:
every random draw comes from ``sample_rng(seed, epoch, index)`` instead of Python's and
NumPy's global generators (so a sample is the same on every machine, in every DataLoader
worker and in any order), and crop offsets range over every valid position, where the
authors' ``random.randrange(0, H - side)`` never picks the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from rfr.data.image_io import pil_to_array

# Leading word of every data stream's seed, so that stream [seed, epoch, index] never
# coincides with a mask stream default_rng([seed, index]) (rfr.masks): NumPy's SeedSequence
# pads short entropy with zeros, so [s, k] and [s, k, 0] would otherwise be the same.
DATA_STREAM = 0x52465244  # "RFRD"
# The authors' filter: Pillow's default for RGB in ``Image.resize`` (dataset.py, Dataset.resize).
RESIZE_FILTER = Image.Resampling.BICUBIC


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of item ``index`` in ``epoch`` under ``seed``, independent of all
    others and of the process that draws it. Each argument must fit one 32-bit word (a
    larger one would change the word count and two streams could coincide)."""
    if not all(0 <= int(value) < 2**32 for value in (seed, epoch, index)):
        raise ValueError(f"seed, epoch and index must be in [0, 2**32), got "
                         f"{(seed, epoch, index)}")
    return np.random.default_rng([DATA_STREAM, seed, epoch, index])


@dataclass(frozen=True)
class CropPlan:
    """Where to cut a square out of the source image, and whether to mirror the result."""

    left: int
    top: int
    side: int
    flip: bool = False

    @property
    def box(self) -> tuple[int, int, int, int]:
        """PIL crop box (left, upper, right, lower)."""
        return (self.left, self.top, self.left + self.side, self.top + self.side)


def train_plan(width: int, height: int, size: int, rng: np.random.Generator) -> CropPlan:
    """The authors' training crop: side = short side if it is <= size, else uniform in
    [size, short side); position uniform over all valid offsets; flip with p = 0.5.
    Draws in a fixed order (side, top, left, flip) so a plan is a pure function of rng."""
    short = min(width, height)
    side = short if short <= size else int(rng.integers(size, short))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    flip = bool(rng.random() < 0.5)
    return CropPlan(left=left, top=top, side=side, flip=flip)


def centre_plan(width: int, height: int) -> CropPlan:
    """The authors' evaluation crop: the centred square of the short side (offsets
    rounded down, as their ``(H - side) // 2``)."""
    side = min(width, height)
    return CropPlan(left=(width - side) // 2, top=(height - side) // 2, side=side)


def resize_square(array: np.ndarray, size: int) -> np.ndarray:
    """H x W x 3 float32 -> size x size x 3 with PIL bicubic (anti-aliased when shrinking),
    channel by channel in float so no precision is lost; exact when no resize is needed."""
    if array.shape[:2] == (size, size):
        return array
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(array[..., c])).resize(
                (size, size), RESIZE_FILTER
            )
        )
        for c in range(array.shape[2])
    ]
    # Bicubic weights can be negative: the clip removes the overshoot at sharp edges.
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0).astype(np.float32, copy=False)


def apply_plan(image: Image.Image, plan: CropPlan, size: int) -> Tensor:
    """Crop (in the source's own mode), convert to RGB float32, resize, flip:
    a 3 x size x size tensor in [0, 1]."""
    array = resize_square(pil_to_array(image.crop(plan.box)), size)
    if plan.flip:
        array = array[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def preprocess(image: Image.Image, size: int, train: bool, rng: np.random.Generator) -> Tensor:
    """One source image -> the network's input: the train or the test transform."""
    width, height = image.size
    plan = train_plan(width, height, size, rng) if train else centre_plan(width, height)
    return apply_plan(image, plan, size)


__all__ = [
    "DATA_STREAM",
    "CropPlan",
    "apply_plan",
    "preprocess",
    "resize_square",
    "sample_rng",
    "centre_plan",
    "train_plan",
]
