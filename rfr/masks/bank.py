"""Mask banks: a fixed number of seeded masks per hole-ratio bin, stored as PNG files with
a manifest of their measured hole ratios (``docs/masks.md`` has the file format).

A bank mask for bin ``b``, slot ``j`` depends only on ``(seed, b, j, size)`` (see
:func:`bank_mask`), so a bank is rebuilt bit-identically anywhere. Files written here are
white = hole, 0/255, mode L.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from rfr.atomic import atomic_open
from rfr.data.image_io import read_mask
from rfr.errors import MaskBankError
from rfr.masks.bins import NVIDIA_BINS, MaskEntry, bin_of, format_bin
from rfr.masks.generate import (
    check_seed,
    draw_capsule,
    hole_ratio,
    known_hole_ratio,
    stroke_segments,
)

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("file", "hole_ratio", "bin_low", "bin_high")
RATIO_DECIMALS = 6
# A manifest ratio is rounded to RATIO_DECIMALS; a re-measured one must agree to this.
RATIO_TOLERANCE = 1e-6
BANK_FILE_PATTERN = re.compile(r"bin\d+_\d{5,}\.png")
MIN_BANK_SIZE = 16
# Bounds of the bank's search; see bank_mask. Attempts rarely exceed 2 (overshoot of a bin
# by the last segment); the segment bound only guards against a degenerate size.
MAX_BANK_ATTEMPTS = 100
MAX_SEGMENTS_PER_ATTEMPT = 50_000
# Tag word that separates bank streams from mask_rng streams (ASCII "bank").
BANK_STREAM = 0x62616E6B


def bank_rng(seed: int, bin_index: int, slot: int, attempt: int) -> np.random.Generator:
    """The random stream of one bank candidate.

    Five entropy words ``[seed, BANK_STREAM, bin, slot, attempt]``: SeedSequence pads
    entropy shorter than four words with zeros, so a five-word key can never equal a
    two-word ``mask_rng`` key, and bank masks are independent of generated masks.
    """
    return np.random.default_rng([seed, BANK_STREAM, bin_index, slot, attempt])



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



def open_bank_dir(out_dir: Path) -> Path:
    """Make ``out_dir`` ready for a new bank and return its manifest's path. The old
    manifest goes first: a bank interrupted halfway then has no manifest, so it is never
    read as complete."""
    if out_dir.exists() and not out_dir.is_dir():
        raise MaskBankError(f"mask bank output path is not a directory: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / MANIFEST_NAME
    manifest.unlink(missing_ok=True)
    return manifest

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
    manifest = open_bank_dir(out_dir)

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

    write_manifest(manifest, rows)
    log.debug("wrote %d masks (%d per bin, %dx%d, seed %d) and %s",
             len(entries), per_bin, size, size, seed, manifest)
    return entries


def write_manifest(manifest: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """Write a bank's ``manifest.csv`` (MANIFEST_COLUMNS, then ``rows``) atomically; shared
    by every bank writer, so a bank of any source is read by :func:`read_mask_bank`."""
    with atomic_open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)


def manifest_row(name: str, ratio: float, bin_index: int) -> tuple[str, str, str, str]:
    """One manifest row: file name, ratio to RATIO_DECIMALS, the bin's bounds."""
    low, high = NVIDIA_BINS[bin_index]
    return (name, f"{ratio:.{RATIO_DECIMALS}f}", f"{low:g}", f"{high:g}")


def rounded_ratio(ratio: float) -> float:
    """``ratio`` as the manifest stores it (RATIO_DECIMALS decimals)."""
    return _rounded(ratio)


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
