"""Cut single tiles out of an evaluation's examples.png.

``rfr.evaluate`` writes, for each bin that had masks (in bin order), ``grid_examples`` rows
of three S x S tiles (masked input, composite, ground truth) with ``GRID_PADDING`` white
pixels around and between tiles (torchvision's make_grid layout). Re-rendering examples
would need the models and data; cropping the grid the evaluation already wrote shows
exactly what was scored. The geometry is checked against the image size, so a stale grid
(another S or number of rows) is refused instead of cropped at the wrong place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from rfr.evaluate import GRID_PADDING, grid_size
from rfr.report.errors import ReportError
from rfr.report.inputs import REPRO_HINT, RunData


def tile_box(row: int, col: int, size: int, padding: int = GRID_PADDING,
             ) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of tile (row, col) in a make_grid image."""
    step = size + padding
    top, left = padding + row * step, padding + col * step
    return top, left, top + size, left + size


def crop_tile(grid: np.ndarray, row: int, col: int, size: int,
              padding: int = GRID_PADDING) -> np.ndarray:
    """The S x S (x C) tile at (row, col) of a grid image array (H x W x C)."""
    top, left, bottom, right = tile_box(row, col, size, padding)
    if bottom > grid.shape[0] or right > grid.shape[1]:
        raise ValueError(f"tile ({row}, {col}) of size {size} lies outside a "
                         f"{grid.shape[1]}x{grid.shape[0]} grid")
    return grid[top:bottom, left:right]


@dataclass(frozen=True)
class ExamplesGrid:
    """A run's examples.png with its geometry: first_row[bin_index] = the grid row of that
    bin's first example."""

    image: np.ndarray
    size: int
    rows_per_bin: int
    first_row: dict[int, int]

    def tile(self, bin_index: int, col: int, example: int = 0) -> np.ndarray:
        return crop_tile(self.image, self.first_row[bin_index] + example, col, self.size)


def read_examples(run: RunData) -> ExamplesGrid:
    """Read and check a run's examples.png against its metrics.json."""
    path = run.examples_png
    if not path.is_file():
        raise ReportError(f"{path}: missing (run {run.key.name}); {REPRO_HINT}")
    evaluation = run.evaluation
    try:
        size = int(evaluation["dataset"]["size"])
    except (KeyError, TypeError, ValueError):
        raise ReportError(f"{run.metrics_dir}/metrics.json: no evaluation.dataset.size, so "
                          f"{path} cannot be cut into tiles; {REPRO_HINT}") from None
    with Image.open(path) as opened:
        image = np.asarray(opened.convert("RGB"))
    n_bins = len(run.bins)
    height, width = image.shape[:2]
    if "grid_examples" in evaluation:
        rows_per_bin = int(evaluation["grid_examples"])
        per_bin = evaluation.get("n_images_per_bin")
        if isinstance(per_bin, int):
            rows_per_bin = min(rows_per_bin, per_bin)
    else:  # older evaluations: infer from the height
        total_rows = (height - GRID_PADDING) // (size + GRID_PADDING)
        rows_per_bin = total_rows // n_bins if n_bins else 0
    expected = grid_size(n_bins, rows_per_bin, size)
    if (width, height) != expected or rows_per_bin < 1:
        raise ReportError(
            f"{path} is {width}x{height} but metrics.json implies {expected[0]}x{expected[1]} "
            f"({n_bins} bins x {rows_per_bin} examples of {size}x{size}); the grid is stale: "
            f"delete it and {REPRO_HINT}")
    first_row = {info.index: position * rows_per_bin for position, info in enumerate(run.bins)}
    return ExamplesGrid(image, size, rows_per_bin, first_row)


__all__ = ["ExamplesGrid", "crop_tile", "read_examples", "tile_box"]
