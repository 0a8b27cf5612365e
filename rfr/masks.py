"""Seeded free-form masks, the NVIDIA hole-ratio bins, and mask banks with a manifest.

Why this module exists: every model must be scored on exactly the same holes, and results
are reported per hole-ratio bin (the protocol of the partial-convolution paper that RFR-Net
follows). So masks are generated once from a seed, stored as PNG files with a manifest of
their measured hole ratios, and paired with test images by a fixed rule.

- Mask ``k`` of seed ``s`` comes from its own random stream ``default_rng([s, k])``, so it
  is the same on every machine, in every worker process and in any order of generation.
  Strokes are rasterised with NumPy (capsules: a segment swept by a disc), so no OpenCV.
- A bank mask for bin ``b``, slot ``j`` depends only on ``(seed, b, j, size)``: see
  :func:`bank_mask` for the scheme and ``docs/masks.md`` for the file format.
- Arrays here are boolean *hole* maps (True = hole); :func:`to_known_mask` converts them to
  the suite's convention (1 = known). Files written here are white = hole, 0/255, mode L.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from rfr.atomic import atomic_open
from rfr.errors import MaskBankError
from rfr.image_io import read_mask

log = logging.getLogger(__name__)

MASK_KINDS = ("strokes", "boxes", "mixed")

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

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("file", "hole_ratio", "bin_low", "bin_high")
RATIO_DECIMALS = 6
# A manifest ratio is rounded to RATIO_DECIMALS; a re-measured one must agree to this.
RATIO_TOLERANCE = 1e-6
BANK_FILE_PATTERN = re.compile(r"bin\d+_\d{5,}\.png")
MIN_BANK_SIZE = 16
MAX_SEED = 2**32 - 1
# Bounds of the bank's search; see bank_mask. Attempts rarely exceed 2 (overshoot of a bin
# by the last segment); the segment bound only guards against a degenerate size.
MAX_BANK_ATTEMPTS = 100
MAX_SEGMENTS_PER_ATTEMPT = 50_000
# Tag word that separates bank streams from mask_rng streams (ASCII "bank").
BANK_STREAM = 0x62616E6B

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


# --- random streams and generators -------------------------------------------------------


def check_seed(seed: int, name: str = "seed") -> int:
    """Seeds and indices must be one 32-bit word each: a larger or negative integer would
    change how many words NumPy's SeedSequence sees, and streams could alias."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"{name} must be in [0, {MAX_SEED}], got {seed}")
    return int(seed)


def mask_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of mask ``index`` under ``seed`` (independent of all others)."""
    return np.random.default_rng([seed, index])


def bank_rng(seed: int, bin_index: int, slot: int, attempt: int) -> np.random.Generator:
    """The random stream of one bank candidate.

    Five entropy words ``[seed, BANK_STREAM, bin, slot, attempt]``: SeedSequence pads
    entropy shorter than four words with zeros, so a five-word key can never equal a
    two-word ``mask_rng`` key, and bank masks are independent of generated masks.
    """
    return np.random.default_rng([seed, BANK_STREAM, bin_index, slot, attempt])


def draw_capsule(hole: np.ndarray, start: tuple[float, float], end: tuple[float, float],
                 radius: float) -> None:
    """Mark every pixel within ``radius`` of the segment start-end (row, col) as hole."""
    height, width = hole.shape
    r0, c0 = start
    r1, c1 = end
    top = max(int(np.floor(min(r0, r1) - radius)), 0)
    bottom = min(int(np.ceil(max(r0, r1) + radius)) + 1, height)
    left = max(int(np.floor(min(c0, c1) - radius)), 0)
    right = min(int(np.ceil(max(c0, c1) + radius)) + 1, width)
    if top >= bottom or left >= right:
        return
    rows, cols = np.mgrid[top:bottom, left:right].astype(np.float64)
    dr, dc = r1 - r0, c1 - c0
    length2 = dr * dr + dc * dc
    if length2 == 0:
        t = np.zeros_like(rows)
    else:
        t = np.clip(((rows - r0) * dr + (cols - c0) * dc) / length2, 0.0, 1.0)
    dist2 = (rows - (r0 + t * dr)) ** 2 + (cols - (c0 + t * dc)) ** 2
    hole[top:bottom, left:right] |= dist2 <= radius * radius


Segment = tuple[tuple[float, float], tuple[float, float], float]


def stroke_segments(
    size: int,
    rng: np.random.Generator,
    max_vertices: int = 25,
    max_length: float = 100.0,
    min_brush: int = 10,
    max_brush: int = 24,
) -> Iterator[Segment]:
    """The segments (start, end, radius) of one polyline stroke, drawn lazily from ``rng``
    in the authors' order (start, vertex count, then angle, length, brush per vertex), so
    that a caller may stop after any segment (the bank does) without changing the draws
    of the segments before it."""
    scale = size / 256.0
    row, col = rng.uniform(0, size, 2)
    for vertex in range(int(rng.integers(0, max_vertices + 1))):
        angle = rng.uniform(0, 2 * np.pi)
        if vertex % 2 == 0:
            angle = 2 * np.pi - angle
        length = rng.uniform(0, max_length) * scale
        brush = max(1.0, rng.integers(min_brush, max_brush + 1) // 2 * 2 * scale)
        next_row = float(np.clip(row + length * np.cos(angle), 0, size - 1))
        next_col = float(np.clip(col + length * np.sin(angle), 0, size - 1))
        yield (row, col), (next_row, next_col), brush / 2
        row, col = next_row, next_col


def stroke_mask(
    size: int,
    rng: np.random.Generator,
    max_parts: int = 15,
    max_vertices: int = 25,
    max_length: float = 100.0,
    min_brush: int = 10,
    max_brush: int = 24,
) -> np.ndarray:
    """Free-form strokes in the manner of the authors' ``generate_stroke_mask``: several
    polylines of random length, direction and brush width, with lengths scaled to
    ``size`` (the authors' values are for 256 x 256)."""
    hole = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(1, max_parts + 1))):
        for start, end, radius in stroke_segments(size, rng, max_vertices, max_length,
                                                  min_brush, max_brush):
            draw_capsule(hole, start, end, radius)
    return hole


def box_mask(size: int, rng: np.random.Generator, max_boxes: int = 3,
             min_side: float = 0.1, max_side: float = 0.4) -> np.ndarray:
    """One to ``max_boxes`` axis-aligned rectangles with sides in [min_side, max_side] of
    the image size."""
    hole = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(1, max_boxes + 1))):
        h, w = (rng.uniform(min_side, max_side, 2) * size).astype(int).clip(1, size)
        top = int(rng.integers(0, size - h + 1))
        left = int(rng.integers(0, size - w + 1))
        hole[top:top + h, left:left + w] = True
    return hole


def generate_mask(size: int, seed: int, index: int, kind: str = "strokes") -> np.ndarray:
    """Mask ``index`` of ``seed`` as a boolean hole map (True = hole), from its own stream
    ``mask_rng(seed, index)``, so it does not depend on which other masks were generated,
    in what order, or in which process.

    ``strokes`` equals ``stroke_mask(size, mask_rng(seed, index))`` (the authors' brush
    strokes), ``boxes`` equals ``box_mask(...)`` on that stream, and ``mixed`` is the union
    of the strokes and then boxes drawn from the same stream (free-form plus rectangular
    holes, as in DeepFill v2-style training masks).
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {', '.join(MASK_KINDS)}")
    if size < 1:
        raise ValueError(f"mask size must be positive, got {size}")
    rng = mask_rng(check_seed(seed), check_seed(index, "index"))
    if kind == "strokes":
        return stroke_mask(size, rng)
    if kind == "boxes":
        return box_mask(size, rng)
    strokes = stroke_mask(size, rng)
    return strokes | box_mask(size, rng)


def hole_ratio(hole: np.ndarray) -> float:
    """Fraction of hole pixels."""
    return float(hole.mean())


def known_hole_ratio(known: Tensor) -> float:
    """Hole ratio of a known mask (1 = known), as an exact count over the pixel count in
    float64: a float32 mean would put a ratio of exactly 0.1 above the bin edge."""
    return int(torch.count_nonzero(known < 0.5)) / known.numel()


def to_known_mask(hole: np.ndarray) -> Tensor:
    """A boolean hole map as the suite's 1 x H x W float mask (1 = known, 0 = hole)."""
    return torch.from_numpy((~hole).astype(np.float32))[None]


# --- bins ---------------------------------------------------------------------------------


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


# --- mask bank ----------------------------------------------------------------------------


def _rounded(ratio: float) -> float:
    return float(f"{ratio:.{RATIO_DECIMALS}f}")


def _grow_strokes(size: int, rng: np.random.Generator, low: float,
                  target: float) -> np.ndarray:
    """Add stroke segments until the hole ratio exceeds ``low`` and reaches ``target``
    (or the segment bound is hit; the caller checks the result)."""
    hole = np.zeros((size, size), dtype=bool)
    total = size * size
    segments = 0
    while segments < MAX_SEGMENTS_PER_ATTEMPT:
        for start, end, radius in stroke_segments(size, rng):
            draw_capsule(hole, start, end, radius)
            segments += 1
            ratio = np.count_nonzero(hole) / total
            if ratio > low and ratio >= target:
                return hole
            if segments >= MAX_SEGMENTS_PER_ATTEMPT:
                break
    return hole


def bank_mask(size: int, seed: int, bin_index: int, slot: int) -> np.ndarray:
    """Mask ``slot`` of bin ``bin_index`` in the bank of ``seed``, as a hole map whose
    hole ratio lies in that bin; it depends only on ``(seed, bin_index, slot, size)``.

    Scheme (deterministic, no state shared between masks): for attempt a = 0, 1, ...
    take the stream ``bank_rng(seed, bin_index, slot, a)``, draw a target ratio uniformly
    in the bin, then draw the authors' strokes (random polylines, brush 10-24 px at 256,
    scaled with ``size``) one segment at a time until the hole ratio exceeds the bin's
    low edge and reaches the target. The candidate is accepted when its ratio, and its
    ratio rounded to 6 decimals as written in the manifest, lie in the bin; otherwise
    (the last segment overshot the high edge) the next attempt starts from scratch. The
    uniform target spreads ratios across the bin instead of piling them at its low edge.
    After MAX_BANK_ATTEMPTS failed attempts a MaskBankError says so.
    """
    if not 0 <= bin_index < len(NVIDIA_BINS):
        raise ValueError(f"bin index must be in [0, {len(NVIDIA_BINS) - 1}], got {bin_index}")
    if size < MIN_BANK_SIZE:
        raise ValueError(f"bank mask size must be at least {MIN_BANK_SIZE}, got {size}")
    seed = check_seed(seed)
    slot = check_seed(slot, "slot")
    low, high = NVIDIA_BINS[bin_index]
    for attempt in range(MAX_BANK_ATTEMPTS):
        rng = bank_rng(seed, bin_index, slot, attempt)
        target = float(rng.uniform(low, high))
        hole = _grow_strokes(size, rng, low, target)
        ratio = hole_ratio(hole)
        if bin_of(ratio) == bin_index and bin_of(_rounded(ratio)) == bin_index:
            return hole
    raise MaskBankError(
        f"no mask with a hole ratio in {format_bin(bin_index)} after {MAX_BANK_ATTEMPTS} "
        f"attempts (seed {seed}, slot {slot}, size {size}); try another seed or a larger size"
    )


def bank_file_name(bin_index: int, slot: int) -> str:
    """Stable file name of a bank mask: ``bin{b}_{slot:05d}.png`` (b indexes NVIDIA_BINS)."""
    return f"bin{bin_index}_{slot:05d}.png"


def encode_mask_png(hole: np.ndarray) -> bytes:
    """A hole map as PNG bytes, white = hole, mode L, values 0/255 only. Fixed encoder
    settings and no metadata chunks, so equal masks give equal bytes (for a given zlib)."""
    image = Image.fromarray(np.where(hole, 255, 0).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=9, optimize=False)
    return buffer.getvalue()


def write_mask_bank(out_dir: str | Path, per_bin: int, size: int = 256,
                    seed: int = 0) -> list[MaskEntry]:
    """Write ``per_bin`` masks for every NVIDIA bin to ``out_dir`` plus ``manifest.csv``.

    Running it twice with the same arguments gives byte-identical files. The manifest is
    written last (atomically), and an old one is removed first, so an interrupted run
    never leaves a manifest that disagrees with the files; bank PNGs (``bin*_*.png``) left
    from an earlier, larger bank are removed; other files are left alone. Returns the
    entries sorted by bin, then slot, with the exact (unrounded) hole ratios.
    """
    if per_bin < 1:
        raise ValueError(f"per_bin must be at least 1, got {per_bin}")
    if size < MIN_BANK_SIZE:
        raise ValueError(f"mask size must be at least {MIN_BANK_SIZE}, got {size}")
    seed = check_seed(seed)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MaskBankError(f"mask bank output path is not a directory: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / MANIFEST_NAME
    manifest.unlink(missing_ok=True)

    entries: list[MaskEntry] = []
    rows: list[tuple[str, str, str, str]] = []
    for bin_index, (low, high) in enumerate(NVIDIA_BINS):
        for slot in range(per_bin):
            hole = bank_mask(size, seed, bin_index, slot)
            ratio = hole_ratio(hole)
            path = out_dir / bank_file_name(bin_index, slot)
            path.write_bytes(encode_mask_png(hole))
            entries.append(MaskEntry(path, ratio, bin_index))
            rows.append((path.name, f"{ratio:.{RATIO_DECIMALS}f}", f"{low:g}", f"{high:g}"))

    names = {row[0] for row in rows}
    for stale in sorted(out_dir.iterdir()):
        if BANK_FILE_PATTERN.fullmatch(stale.name) and stale.name not in names:
            stale.unlink()

    with atomic_open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
    log.debug("wrote %d masks (%d per bin, %dx%d, seed %d) and %s",
             len(entries), per_bin, size, size, seed, manifest)
    return entries


def _bin_from_bounds(low: float, high: float) -> int | None:
    for index, (bin_low, bin_high) in enumerate(NVIDIA_BINS):
        if math.isclose(low, bin_low, abs_tol=1e-9) and math.isclose(high, bin_high,
                                                                      abs_tol=1e-9):
            return index
    return None


def read_mask_bank(bank_dir: str | Path) -> list[MaskEntry]:
    """The entries of a bank written by :func:`write_mask_bank`, in manifest order, each
    re-measured from its PNG so a missing, edited or re-encoded file is found before an
    evaluation runs on the wrong holes. Every error names the file and what is wrong."""
    bank_dir = Path(bank_dir)
    manifest = bank_dir / MANIFEST_NAME
    hint = f"write one with `rfr masks --out {bank_dir}`"
    if not bank_dir.is_dir():
        raise MaskBankError(f"mask bank not found: {bank_dir} is not a directory ({hint})")
    if not manifest.is_file():
        raise MaskBankError(f"mask bank {bank_dir} has no {MANIFEST_NAME} ({hint})")
    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or tuple(rows[0]) != MANIFEST_COLUMNS:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise MaskBankError(f"{manifest}: expected the header {','.join(MANIFEST_COLUMNS)}, "
                            f"found {found}")
    entries: list[MaskEntry] = []
    seen: set[str] = set()
    shape: tuple[int, ...] | None = None
    for line, row in enumerate(rows[1:], start=2):
        where = f"{manifest}, line {line}"
        if len(row) != len(MANIFEST_COLUMNS):
            raise MaskBankError(f"{where}: expected {len(MANIFEST_COLUMNS)} fields, "
                                f"found {len(row)}")
        name, ratio_text, low_text, high_text = row
        try:
            ratio, low, high = float(ratio_text), float(low_text), float(high_text)
        except ValueError as exc:
            raise MaskBankError(f"{where}: not a number: {exc}") from exc
        if name in seen:
            raise MaskBankError(f"{where}: {name} is listed twice")
        seen.add(name)
        bin_index = _bin_from_bounds(low, high)
        if bin_index is None:
            raise MaskBankError(f"{where}: ({low_text}, {high_text}] is not an NVIDIA bin")
        path = bank_dir / name
        if not path.is_file():
            raise MaskBankError(f"mask bank file missing: {path} (listed in {manifest})")
        if bin_of(ratio) != bin_index:
            raise MaskBankError(f"{path}: manifest hole ratio {ratio_text} is not in its bin "
                                f"{format_bin(bin_index)}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            known = read_mask(path, hole_is_white=True)
        if caught:
            raise MaskBankError(f"{path}: bank masks must be 0/255 only; {caught[0].message}")
        if shape is None:
            shape = tuple(known.shape)
        elif tuple(known.shape) != shape:
            raise MaskBankError(f"{path}: size {known.shape[2]}x{known.shape[1]} differs from "
                                f"the bank's {shape[2]}x{shape[1]}")
        measured = known_hole_ratio(known)
        if abs(measured - ratio) > RATIO_TOLERANCE:
            raise MaskBankError(f"{path}: measured hole ratio {measured:.6f} differs from the "
                                f"manifest's {ratio_text} (file changed after writing?)")
        entries.append(MaskEntry(path, measured, bin_index))
    return entries


# --- the NVIDIA irregular mask test set -------------------------------------------------


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
