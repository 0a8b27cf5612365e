"""Seeded free-form masks: the authors' strokes, boxes, and their mix.

Mask ``k`` of seed ``s`` comes from its own random stream ``default_rng([s, k])``, so it is
the same on every machine, in every worker process and in any order of generation.
Strokes are rasterised with NumPy (capsules: a segment swept by a disc), so no OpenCV.
Arrays here are boolean *hole* maps (True = hole); :func:`to_known_mask` converts them to
the suite's convention (1 = known).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

MASK_KINDS = ("strokes", "boxes", "mixed")
MAX_SEED = 2**32 - 1


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
