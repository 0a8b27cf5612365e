"""Seeded free-form masks: brush strokes like the authors' generator, and boxes.

Mask ``k`` of seed ``s`` comes from its own random stream ``default_rng([s, k])``, so it is
the same on every machine, in every worker process and in any order of generation. Strokes
are rasterised with NumPy (capsules: a segment swept by a disc), so no OpenCV is needed.
Arrays here are boolean *hole* maps (True = hole); ``to_known_mask`` converts them to the
suite's convention (1 = known).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


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
    scale = size / 256.0
    hole = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(1, max_parts + 1))):
        row, col = rng.uniform(0, size, 2)
        for vertex in range(int(rng.integers(0, max_vertices + 1))):
            angle = rng.uniform(0, 2 * np.pi)
            if vertex % 2 == 0:
                angle = 2 * np.pi - angle
            length = rng.uniform(0, max_length) * scale
            brush = max(1.0, rng.integers(min_brush, max_brush + 1) // 2 * 2 * scale)
            next_row = float(np.clip(row + length * np.cos(angle), 0, size - 1))
            next_col = float(np.clip(col + length * np.sin(angle), 0, size - 1))
            draw_capsule(hole, (row, col), (next_row, next_col), brush / 2)
            row, col = next_row, next_col
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


def hole_ratio(hole: np.ndarray) -> float:
    """Fraction of hole pixels."""
    return float(hole.mean())


def to_known_mask(hole: np.ndarray) -> Tensor:
    """A boolean hole map as the suite's 1 x H x W float mask (1 = known, 0 = hole)."""
    return torch.from_numpy((~hole).astype(np.float32))[None]
