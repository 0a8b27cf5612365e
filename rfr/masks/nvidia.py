"""The NVIDIA irregular mask test set (Liu et al., ECCV 2018) read from a folder: either
any folder of PNG masks binned by measured hole ratio (``load_nvidia_masks``), or the
published layout checked file by file (``load_nvidia_test_set``) and turned into a mask
bank (``write_nvidia_bank``) that every evaluation reads like the seeded bank.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from rfr.atomic import atomic_open
from rfr.data.image_io import open_image, pil_to_array
from rfr.errors import ImageReadError, MaskBankError
from rfr.masks.bank import (
    BANK_FILE_PATTERN,
    MIN_BANK_SIZE,
    encode_mask_png,
    manifest_row,
    open_bank_dir,
    rounded_ratio,
    write_manifest,
)
from rfr.masks.bins import (
    NVIDIA_BINS,
    MaskEntry,
    bin_of,
    format_bin,
    format_bin_summary,
    group_by_bin,
    load_mask_file,
)
from rfr.masks.generate import hole_ratio, known_hole_ratio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BinnedMasks:
    """Masks of a folder grouped by NVIDIA bin; ``outside`` keeps the ones in no bin so
    that they are reported, not silently dropped."""

    by_bin: tuple[tuple[MaskEntry, ...], ...]
    outside: tuple[MaskEntry, ...]
    non_binary: int = 0

    @property
    def entries(self) -> list[MaskEntry]:
        """All entries, binned ones first (in bin order), then the outside ones."""
        return [entry for group in self.by_bin for entry in group] + list(self.outside)

    def summary(self) -> list[str]:
        """One line per bin plus one for the masks outside all bins, if any."""
        return format_bin_summary(self.entries)


def load_nvidia_masks(folder: str | Path, *, hole_is_white: bool,
                      size: int | tuple[int, int] | None = None) -> BinnedMasks:
    """The PNG masks of ``folder`` (e.g. NVIDIA's irregular mask test set), each binned by
    its measured hole ratio after thresholding and, if ``size`` is given, nearest resizing.

    ``hole_is_white`` has no default on purpose: copies of the NVIDIA set differ in which
    colour marks the hole (see docs/masks.md). Files are taken in sorted name order, so
    the order inside each bin (and hence the pairing with images) is stable. Masks outside
    all bins are returned in ``outside`` and logged as a warning with a hint, because a
    wrong colour flag turns a ratio r into 1 - r and pushes most masks out of the bins.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MaskBankError(f"mask folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not paths:
        raise MaskBankError(f"no .png masks in {folder}")
    entries: list[MaskEntry] = []
    non_binary = 0
    for path in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            known = load_mask_file(path, hole_is_white, size)
        non_binary += bool(caught)
        ratio = known_hole_ratio(known)
        entries.append(MaskEntry(path, ratio, bin_of(ratio), hole_is_white))
    if non_binary:
        log.warning("%d of %d masks in %s were not binary; thresholded at 0.5",
                    non_binary, len(paths), folder)
    outside = tuple(entry for entry in entries if entry.bin_index is None)
    if outside:
        colour = "white" if hole_is_white else "black"
        log.warning(
            "%d of %d masks in %s have a hole ratio outside all bins (0.01, 0.6] and are not "
            "used, e.g. %s (%.4f); if most are outside, check the hole colour (read as %s)",
            len(outside), len(paths), folder, outside[0].path.name, outside[0].hole_ratio,
            colour)
    return BinnedMasks(group_by_bin(entries), outside, non_binary)


# --- pairing ------------------------------------------------------------------------------


# --- the published layout -----------------------------------------------------------------

Border = Literal["both", "with", "without"]
BORDER_CHOICES: tuple[str, ...] = ("both", "with", "without")
# Side of the published test masks (512 x 512).
NVIDIA_FILE_SIZE = 512
# How far outside its published bin a mask's measured ratio may lie (absolute): an
# allowance for how the set's authors counted pixels; 0 makes the check strict.
DEFAULT_RATIO_TOLERANCE = 0.005
# What a bank written from the NVIDIA set holds beside manifest.csv (the seeded bank
# writes no such file, so its folder and hash stay what write_mask_bank gives).
SOURCE_NAME = "source.json"
NVIDIA_BANK_PATTERN = re.compile(r"nvidia_\d{5,}\.png")


@dataclass(frozen=True)
class NvidiaLayout:
    """How the files of the test set are laid out: ``per_bin`` masks per NVIDIA bin, in
    file order (bin 0 first), each bin's first half with the border constraint and its
    second half without. The published set is ``NvidiaLayout(2000)``; tests use smaller
    ones so that every check runs on a few files."""

    per_bin: int = 2000

    def __post_init__(self) -> None:
        if self.per_bin < 2 or self.per_bin % 2:
            raise ValueError(f"per_bin must be an even number >= 2, got {self.per_bin}")

    @property
    def total(self) -> int:
        """Number of files: per_bin for each of the six bins."""
        return self.per_bin * len(NVIDIA_BINS)

    @property
    def half(self) -> int:
        """Masks per bin with (and without) the border constraint."""
        return self.per_bin // 2

    def file_name(self, index: int) -> str:
        """``00000.png`` .. ``11999.png``: five digits, or more for a larger layout."""
        return f"{index:0{max(5, len(str(self.total - 1)))}d}.png"

    def bin_of_index(self, index: int) -> int:
        """The published bin of file ``index``."""
        return index // self.per_bin

    def with_border(self, index: int) -> bool:
        """Whether file ``index`` is in its bin's first half (border constraint)."""
        return index % self.per_bin < self.half


NVIDIA_TEST_LAYOUT = NvidiaLayout(2000)


@dataclass(frozen=True)
class NvidiaMask:
    """One file of the test set: its index, published bin and half, and the hole ratio
    measured at the file's own size."""

    path: Path
    index: int
    bin_index: int
    with_border: bool
    hole_ratio: float


@dataclass(frozen=True)
class NvidiaTestSet:
    """The selected masks of a checked test-set folder, in file order."""

    folder: Path
    masks: tuple[NvidiaMask, ...]
    hole_is_white: bool
    size: tuple[int, int]

    @property
    def by_bin(self) -> tuple[tuple[NvidiaMask, ...], ...]:
        """One tuple per NVIDIA bin, in file order."""
        return tuple(tuple(m for m in self.masks if m.bin_index == b)
                     for b in range(len(NVIDIA_BINS)))

    def counts(self) -> list[int]:
        """Masks per bin."""
        return [len(group) for group in self.by_bin]


def select_indices(layout: NvidiaLayout, per_bin: int | None, border: Border) -> list[int]:
    """The file indices a subset keeps, in file order: of each bin's with-border and/or
    without-border half (``border``), the first ``per_bin`` files (all when None). Taking
    the first k of each half keeps both kinds of mask in every bin and is the same subset
    on every machine; ``per_bin`` counts per half, so ``both`` gives 2k per bin."""
    if border not in BORDER_CHOICES:
        raise MaskBankError(f"border must be one of {list(BORDER_CHOICES)}, got {border!r}")
    if per_bin is not None and not 1 <= per_bin <= layout.half:
        raise MaskBankError(f"per_bin must be in [1, {layout.half}] (masks per bin and "
                            f"border half), got {per_bin}")
    take = layout.half if per_bin is None else per_bin
    halves = {"both": (0, 1), "with": (0,), "without": (1,)}[border]
    return [b * layout.per_bin + h * layout.half + j
            for b in range(len(NVIDIA_BINS)) for h in halves for j in range(take)]


def _check_names(folder: Path, layout: NvidiaLayout) -> None:
    """Exactly the layout's file names, no more PNGs, no fewer; the error lists a few."""
    expected = {layout.file_name(i) for i in range(layout.total)}
    found = {p.name for p in folder.iterdir() if p.suffix.lower() == ".png"}
    missing = sorted(expected - found)
    extra = sorted(found - expected)
    if missing or extra:
        parts = [f"found {len(found)} .png files, the published layout has {layout.total} "
                 f"({layout.file_name(0)} .. {layout.file_name(layout.total - 1)}, "
                 f"{layout.per_bin} per bin)"]
        if missing:
            parts.append(f"missing {len(missing)}, e.g. {folder / missing[0]}")
        if extra:
            parts.append(f"unexpected {len(extra)}, e.g. {folder / extra[0]}")
        raise MaskBankError(f"{folder}: not the NVIDIA test-mask layout: {'; '.join(parts)}")


def read_hole_map(path: Path, hole_is_white: bool, threshold: float | None) -> np.ndarray:
    """A mask file as a boolean hole map (True = hole). With ``threshold`` None a pixel
    that is neither black nor white is an error naming the file; with a threshold in
    (0, 1) such pixels are thresholded (for anti-aliased copies of the set)."""
    try:
        array = pil_to_array(open_image(path)).mean(axis=2)
    except ImageReadError as exc:
        raise MaskBankError(f"{path}: not a readable PNG mask: {exc}") from exc
    grey = np.count_nonzero((array > 0.0) & (array < 1.0))
    if grey and threshold is None:
        raise MaskBankError(f"{path}: not binary ({grey} of {array.size} pixels are neither "
                            f"black nor white); set threshold to binarise such copies")
    white = array > (0.5 if threshold is None else threshold)
    return white if hole_is_white else ~white


def _checked_masks(folder: Path, hole_is_white: bool, size: int | tuple[int, int] | None,
                   per_bin: int | None, border: Border, ratio_tolerance: float,
                   threshold: float | None, layout: NvidiaLayout,
                   ) -> Iterator[tuple[NvidiaMask, np.ndarray, tuple[int, int]]]:
    """Each selected file, checked, with its hole map and the set's size: one pass over
    the files for both the loader and the bank writer."""
    if not folder.is_dir():
        raise MaskBankError(f"NVIDIA test-mask folder not found: {folder}")
    if ratio_tolerance < 0:
        raise MaskBankError(f"ratio_tolerance must be >= 0, got {ratio_tolerance}")
    if threshold is not None and not 0 < threshold < 1:
        raise MaskBankError(f"threshold must be in (0, 1), got {threshold}")
    _check_names(folder, layout)
    expected = (size, size) if isinstance(size, int) else (tuple(size) if size else None)
    for index in select_indices(layout, per_bin, border):
        path = folder / layout.file_name(index)
        hole = read_hole_map(path, hole_is_white, threshold)
        if expected is None:
            expected = hole.shape
        if hole.shape != expected:
            raise MaskBankError(f"{path}: size {hole.shape[1]}x{hole.shape[0]}, expected "
                                f"{expected[1]}x{expected[0]} like the rest of the set")
        ratio = hole_ratio(hole)
        bin_index = layout.bin_of_index(index)
        low, high = NVIDIA_BINS[bin_index]
        if not low - ratio_tolerance < ratio <= high + ratio_tolerance:
            hint = ""
            if low < 1 - ratio <= high:
                colour = "black" if hole_is_white else "white"
                hint = f"; with holes read as {colour} it would fit: check the hole colour"
            raise MaskBankError(
                f"{path}: hole ratio {ratio:.4f} is outside its published bin "
                f"{format_bin(bin_index)} (file {index} of {layout.per_bin} per bin, "
                f"tolerance {ratio_tolerance:g}){hint}")
        mask = NvidiaMask(path, index, bin_index, layout.with_border(index), ratio)
        yield mask, hole, (int(expected[0]), int(expected[1]))


def load_nvidia_test_set(folder: str | Path, *, hole_is_white: bool,
                         size: int | tuple[int, int] | None = NVIDIA_FILE_SIZE,
                         per_bin: int | None = None, border: Border = "both",
                         ratio_tolerance: float = DEFAULT_RATIO_TOLERANCE,
                         threshold: float | None = None,
                         layout: NvidiaLayout = NVIDIA_TEST_LAYOUT) -> NvidiaTestSet:
    """The NVIDIA irregular mask test set in its published layout, checked on load.

    Layout (an assumption, stated in docs/masks.md): ``00000.png`` .. ``11999.png``, six
    bins (0.01, 0.1], ..., (0.5, 0.6] of 2,000 files each in file order, each bin's first
    1,000 with the border constraint and the next 1,000 without. The paper states the
    counts; the order of the two halves inside a bin is our reading, not checked.

    Checks, each a MaskBankError naming the file: exactly the layout's names (so the
    count, and the count per bin by index); for the selected files (``per_bin``/
    ``border``, see :func:`select_indices`) that each decodes, is binary (or ``threshold``
    is given), has size ``size`` (an int for square, (height, width), or None for "all
    alike") and has a measured hole ratio within ``ratio_tolerance`` of its published
    bin. A bin-check failure suggests the other hole colour when 1 - ratio would fit:
    copies of the set differ in which colour is the hole, so ``hole_is_white`` is
    required.
    """
    folder = Path(folder)
    masks: list[NvidiaMask] = []
    shape = (0, 0)
    for mask, _, found in _checked_masks(folder, hole_is_white, size, per_bin, border,
                                         ratio_tolerance, threshold, layout):
        masks.append(mask)
        shape = found
    return NvidiaTestSet(folder, tuple(masks), hole_is_white, shape)


def _resized(hole: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or hole.shape == (size, size):
        return hole
    image = Image.fromarray(np.where(hole, 255, 0).astype(np.uint8))
    return np.asarray(image.resize((size, size), Image.Resampling.NEAREST)) > 127


def write_nvidia_bank(folder: str | Path, out_dir: str | Path, *, hole_is_white: bool,
                      size: int | None = None,
                      file_size: int | tuple[int, int] | None = NVIDIA_FILE_SIZE,
                      per_bin: int | None = None, border: Border = "both",
                      ratio_tolerance: float = DEFAULT_RATIO_TOLERANCE,
                      threshold: float | None = None,
                      layout: NvidiaLayout = NVIDIA_TEST_LAYOUT) -> list[MaskEntry]:
    """The selected masks of the test set in ``folder`` as a mask bank in ``out_dir``:
    ``nvidia_<index>.png`` (white = hole, 0/255, the seeded bank's encoding), resized to
    ``size`` x ``size`` with nearest neighbour (None keeps the files' size), the same
    ``manifest.csv`` as :func:`write_mask_bank` (rows in file order), and ``source.json``
    saying where the masks came from.

    Each mask is binned by its ratio at the bank's size, which is what the network sees
    and what :func:`read_mask_bank` re-measures. That is its published bin unless the
    tolerance or the resize moved it over an edge: such a mask goes into the bin it now
    lies in and is listed under ``moved`` in source.json; one that leaves all bins is left
    out, listed under ``dropped`` and logged. ``file_size`` and the other arguments are
    :func:`load_nvidia_test_set`'s. Returns the entries in manifest order.
    """
    if size is not None and size < MIN_BANK_SIZE:
        raise MaskBankError(f"bank mask size must be at least {MIN_BANK_SIZE}, got {size}")
    folder, out_dir = Path(folder), Path(out_dir)
    checked = _checked_masks(folder, hole_is_white, file_size, per_bin, border,
                             ratio_tolerance, threshold, layout)
    first = next(checked)  # the names check and the first file fail before any write
    manifest = open_bank_dir(out_dir)
    entries: list[MaskEntry] = []
    rows = []
    moved: list[dict[str, object]] = []
    dropped: list[dict[str, object]] = []
    shape = first[2]  # every file has it (checked)
    for mask, hole, _ in itertools.chain([first], checked):
        hole = _resized(hole, size)
        ratio = hole_ratio(hole)
        bin_index = bin_of(rounded_ratio(ratio))
        record = {"file": mask.path.name, "published_bin": format_bin(mask.bin_index),
                  "hole_ratio": round(ratio, 6)}
        if bin_index is None:
            dropped.append(record)
            continue
        if bin_index != mask.bin_index:
            moved.append({**record, "bank_bin": format_bin(bin_index)})
        path = out_dir / f"nvidia_{mask.index:05d}.png"
        path.write_bytes(encode_mask_png(hole))
        entries.append(MaskEntry(path, ratio, bin_index))
        rows.append(manifest_row(path.name, ratio, bin_index))
    if dropped:
        log.warning("%d masks of %s left every bin at the bank size and are not used, e.g. "
                    "%s (%.4f)", len(dropped), folder, dropped[0]["file"],
                    dropped[0]["hole_ratio"])
    entries, rows = _sorted_by_bin(entries, rows)
    names = {row[0] for row in rows}
    for stale in sorted(out_dir.iterdir()):
        if (BANK_FILE_PATTERN.fullmatch(stale.name) or NVIDIA_BANK_PATTERN.fullmatch(
                stale.name)) and stale.name not in names:
            stale.unlink()
    source = {
        "source": "nvidia", "folder": str(folder),
        "hole": "white" if hole_is_white else "black",
        "file_size": list(shape), "size": size, "per_bin": per_bin,
        "border": border, "ratio_tolerance": ratio_tolerance, "threshold": threshold,
        "layout_per_bin": layout.per_bin,
        "counts": {format_bin(b): sum(e.bin_index == b for e in entries)
                   for b in range(len(NVIDIA_BINS))},
        "moved": moved, "dropped": dropped,
    }
    with atomic_open(out_dir / SOURCE_NAME, "w") as handle:
        handle.write(json.dumps(source, indent=2) + "\n")
    write_manifest(manifest, rows)
    return entries


def _sorted_by_bin(entries: list[MaskEntry], rows: list) -> tuple[list[MaskEntry], list]:
    """Entries and rows by bin, file order inside a bin (moved masks join their new bin),
    so the manifest reads like the seeded bank's: bin by bin."""
    order = sorted(range(len(entries)), key=lambda i: (entries[i].bin_index, i))
    return [entries[i] for i in order], [rows[i] for i in order]
