"""The NVIDIA hole-ratio bins, the mask entries that fall in them, and the fixed pairing
of a bin's masks with the test images.

Results are reported per hole-ratio bin (the protocol of the partial-convolution paper
that RFR-Net follows), and every model must be scored on exactly the same holes: the
entries carry their measured ratio and bin, and image ``i`` meets mask ``i mod M``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from rfr.data.image_io import read_mask
from rfr.errors import MaskBankError

# Hole-ratio bins of the NVIDIA irregular mask test set (Liu et al., ECCV 2018), half-open
# on the left: a mask belongs to (low, high] when low < ratio <= high.
NVIDIA_BINS: tuple[tuple[float, float], ...] = (
    (0.01, 0.1),
    (0.1, 0.2),
    (0.2, 0.3),
    (0.3, 0.4),
    (0.4, 0.5),
    (0.5, 0.6),
)

T = TypeVar("T")


@dataclass(frozen=True)
class MaskEntry:
    """One mask file with its measured hole ratio and bin (index into NVIDIA_BINS, or
    None when it lies outside all bins). ``hole_is_white`` says how to read the file."""

    path: Path
    hole_ratio: float
    bin_index: int | None
    hole_is_white: bool = True

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The (low, high] bounds of the entry's bin, or None."""
        return None if self.bin_index is None else NVIDIA_BINS[self.bin_index]



def bin_of(ratio: float) -> int | None:
    """Index into NVIDIA_BINS of the bin (low, high] holding ``ratio``, or None: a mask
    with a ratio of 0.1 counts as (0.01, 0.1], one of 0.01 or below or above 0.6 as none."""
    for index, (low, high) in enumerate(NVIDIA_BINS):
        if low < ratio <= high:
            return index
    return None


def format_bin(bin_index: int | None) -> str:
    """``(0.01, 0.1]`` for a bin index, ``outside all bins`` for None."""
    if bin_index is None:
        return "outside all bins"
    low, high = NVIDIA_BINS[bin_index]
    return f"({low:g}, {high:g}]"


def group_by_bin(entries: Sequence[MaskEntry]) -> tuple[tuple[MaskEntry, ...], ...]:
    """One tuple of entries per NVIDIA bin, in bin order, keeping the entries' order;
    entries outside all bins are left out (the caller reports them)."""
    groups: list[list[MaskEntry]] = [[] for _ in NVIDIA_BINS]
    for entry in entries:
        if entry.bin_index is not None:
            groups[entry.bin_index].append(entry)
    return tuple(tuple(group) for group in groups)


def format_bin_summary(entries: Sequence[MaskEntry]) -> list[str]:
    """One line per bin (and one for masks outside all bins, if any): count and min, mean,
    max hole ratio; what the CLI prints so a user sees at a glance that bins are full."""
    lines = []
    keys: list[int | None] = [*range(len(NVIDIA_BINS)), None]
    for key in keys:
        ratios = [e.hole_ratio for e in entries if e.bin_index == key]
        if key is None and not ratios:
            continue
        label = f"bin {format_bin(key)}" if key is not None else format_bin(None)
        if ratios:
            lines.append(f"{label}: {len(ratios)} masks, hole ratio min {min(ratios):.4f} "
                         f"mean {sum(ratios) / len(ratios):.4f} max {max(ratios):.4f}")
        else:
            lines.append(f"{label}: 0 masks")
    return lines



def load_mask_file(path: str | Path, hole_is_white: bool,
                   size: int | tuple[int, int] | None = None) -> Tensor:
    """A mask file as the suite's 1 x H x W known mask, thresholded at 0.5 first and then,
    if ``size`` is given (an int for square, or (height, width)), resized with nearest
    neighbour, so it stays binary and its hole ratio is what the network will see."""
    known = read_mask(path, hole_is_white=hole_is_white)
    if size is None:
        return known
    height, width = (size, size) if isinstance(size, int) else size
    if (height, width) == tuple(known.shape[1:]):
        return known
    image = Image.fromarray((known[0].numpy() * 255).astype(np.uint8))
    resized = image.resize((width, height), Image.Resampling.NEAREST)
    return torch.from_numpy((np.asarray(resized) > 127).astype(np.float32))[None]


def load_entry_mask(entry: MaskEntry, size: int | tuple[int, int] | None = None) -> Tensor:
    """The known mask (1 x H x W, 1 = known) of a bank or NVIDIA entry, read the way the
    entry was binned."""
    return load_mask_file(entry.path, entry.hole_is_white, size)




def pair_images_with_masks(num_images: int, bin_entries: Sequence[T]) -> list[tuple[int, T]]:
    """Pair image ``i`` of a test split with mask ``i mod M`` of a bin (M masks).

    Fixed, order-based pairing like the authors' ``mask_mode 2`` (mask index = image
    index), so every model sees the same (image, hole) pairs. With fewer masks than images
    the masks are reused cyclically (image M gets mask 0 again); with more, masks
    ``num_images`` and later are unused.
    """
    if num_images < 0:
        raise ValueError(f"num_images must be non-negative, got {num_images}")
    if num_images and not bin_entries:
        raise MaskBankError(f"cannot pair {num_images} images with an empty bin of masks")
    count = len(bin_entries)
    return [(index, bin_entries[index % count]) for index in range(num_images)]
