"""Writers: the per-pair files of an evaluation, fed the same predictions as the scorers.

- ``PairsWriter``: pairs.csv (which mask file each image was scored with).
- ``PredictionsWriter``: predictions/ (the composites under the predictions naming
  scheme, so that they can be scored again as a predictions folder).
- ``ExamplesWriter``: for the first ``grid_examples`` images of each bin, the three
  tiles (masked input with white holes, composite, ground truth) as files under
  ``tiles/bin<b>/<image name>/`` and, from the same tensors, examples.png. The report
  draws its qualitative figures from the tile files: a tile is read by name, never cut
  out of a grid whose geometry the reader would have to reconstruct.

Every writer has ``add(prediction)`` per batch and ``finish()``, which writes what is
written once and returns the path (None when there was nothing to write).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import torch
import torchvision
from torch import Tensor

from rfr.atomic import atomic_open
from rfr.data.image_io import with_white_holes, write_image
from rfr.evaluate.batches import Prediction
from rfr.evaluate.layout import (
    GRID_PADDING,
    GRID_PNG,
    PAIRS_CSV,
    TILE_NAMES,
    TILES_DIR,
    prediction_relpath,
    tile_relpath,
)

PAIRS_HEADER = ("id", "bin", "image_index", "image_name", "mask", "hole_ratio")


class PairsWriter:
    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / PAIRS_CSV
        self.rows: list[list[str]] = []

    def add(self, prediction: Prediction) -> None:
        batch = prediction.batch
        for image_id, index, name, entry in zip(batch.ids, batch.indices, batch.names,
                                                batch.entries, strict=True):
            self.rows.append([image_id, batch.label, str(index), name, entry.path.name,
                              repr(float(entry.hole_ratio))])

    def finish(self) -> Path:
        with atomic_open(self.path, "w") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(PAIRS_HEADER)
            writer.writerows(self.rows)
        return self.path


class PredictionsWriter:
    """Each composite as an 8-bit PNG as soon as it is made (no composites kept)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, prediction: Prediction) -> None:
        batch = prediction.batch
        for row, name in enumerate(batch.names):
            write_image(prediction.filled[row], self.folder / prediction_relpath(
                batch.bin_index, name))

    def finish(self) -> Path:
        return self.folder


def example_tiles(prediction: Prediction, row: int) -> list[Tensor]:
    """The three tiles of one image, in TILE_NAMES order (examples.png's columns)."""
    batch = prediction.batch
    return [with_white_holes(batch.images[row], batch.masks[row]), prediction.filled[row],
            batch.images[row]]


class ExamplesWriter:
    """Tile files as they come, examples.png at the end. tiles/ is emptied first: a tile
    left by an earlier run with more examples or other images must not be read as this
    run's."""

    def __init__(self, out_dir: Path, examples: int) -> None:
        self.out_dir = out_dir
        self.examples = examples
        self.tiles: list[Tensor] = []
        shutil.rmtree(out_dir / TILES_DIR, ignore_errors=True)

    def add(self, prediction: Prediction) -> None:
        batch = prediction.batch
        for row, (index, name) in enumerate(zip(batch.indices, batch.names, strict=True)):
            if index >= self.examples:
                continue
            tiles = example_tiles(prediction, row)
            for tile_name, tile in zip(TILE_NAMES, tiles, strict=True):
                write_image(tile, self.out_dir / tile_relpath(batch.bin_index, name, tile_name))
            self.tiles.extend(tiles)

    def finish(self) -> Path | None:
        if not self.tiles:
            return None
        grid = torchvision.utils.make_grid(torch.stack(self.tiles), nrow=len(TILE_NAMES),
                                           padding=GRID_PADDING, pad_value=1.0)
        return write_image(grid, self.out_dir / GRID_PNG)

    @property
    def tiles_dir(self) -> Path | None:
        return self.out_dir / TILES_DIR if self.tiles else None


__all__ = ["ExamplesWriter", "PairsWriter", "PredictionsWriter", "example_tiles"]
