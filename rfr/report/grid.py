"""Read the example tiles an evaluation wrote, for the qualitative figures.

``rfr.evaluate.api`` saves, for the first ``grid_examples`` images of each bin, three 8-bit
PNGs under ``tiles/bin<b>/<image name>/``: ``input`` (masked input, holes white),
``output`` (composite) and ``target`` (ground truth), the same pixels that go into
examples.png. The report reads them by name: the image of example ``e`` of bin ``b`` is
the ``e``-th id of that bin in per_image.csv (the evaluation scores images in index
order), so no grid geometry has to be reconstructed and a stale or missing tile is
named instead of cropped at the wrong place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rfr.evaluate.layout import TILE_NAMES, bin_folder, tile_relpath
from rfr.report.errors import ReportError
from rfr.report.inputs import REPRO_HINT, RunData


@dataclass(frozen=True)
class ExampleTiles:
    """One run's example tiles: tiles[(bin_index, example, col)] = H x W x 3 uint8, col
    indexing TILE_NAMES (0 masked input, 1 composite, 2 ground truth)."""

    run: str
    tiles: dict[tuple[int, int, int], np.ndarray]

    @property
    def bins(self) -> set[int]:
        """The bins whose tiles were read (the requested bins this run scored)."""
        return {b for b, _, _ in self.tiles}

    def tile(self, bin_index: int, col: int, example: int = 0) -> np.ndarray:
        return self.tiles[(bin_index, example, col)]


def tile_path(run: RunData, bin_index: int, example: int, col: int) -> Path:
    """Where the evaluation wrote a tile: from the bin's ``example``-th image id."""
    label = next(info.label for info in run.bins if info.index == bin_index)
    ids = run.ids_in(label)
    if example >= len(ids):
        raise ReportError(f"{run.metrics_dir}/per_image.csv: bin {label} has {len(ids)} "
                          f"image(s), no example {example} (run {run.key.name}); {REPRO_HINT}")
    prefix = bin_folder(bin_index) + "/"
    if not ids[example].startswith(prefix):
        raise ReportError(f"{run.metrics_dir}/per_image.csv: id {ids[example]!r} of bin {label} "
                          f"does not start with {prefix!r}; delete it and {REPRO_HINT}")
    name = ids[example][len(prefix):]
    return run.metrics_dir / tile_relpath(bin_index, name, TILE_NAMES[col])


def read_tile(path: Path, run: RunData, size: int | None) -> np.ndarray:
    if not path.is_file():
        raise ReportError(f"{path}: missing (example tile of run {run.key.name}); {REPRO_HINT}")
    with Image.open(path) as opened:
        tile = np.asarray(opened.convert("RGB"))
    if size is not None and tile.shape[:2] != (size, size):
        raise ReportError(f"{path} is {tile.shape[1]}x{tile.shape[0]} but the evaluation ran "
                          f"at {size}x{size}; the tile is stale: delete it and {REPRO_HINT}")
    return tile


def read_example_tiles(run: RunData, bins: Iterable[int], examples: int = 1) -> ExampleTiles:
    """The tiles of the first ``examples`` images of each requested bin the run scored;
    read now, so a missing tile fails before the report writes anything."""
    dataset = run.evaluation.get("dataset")
    size = dataset.get("size") if isinstance(dataset, Mapping) else None
    size = size if isinstance(size, int) else None
    scored = {info.index for info in run.bins}
    tiles = {}
    for b in (b for b in dict.fromkeys(bins) if b in scored):
        for example in range(examples):
            for col in range(len(TILE_NAMES)):
                tiles[(b, example, col)] = read_tile(tile_path(run, b, example, col), run, size)
    return ExampleTiles(run.key.name, tiles)


__all__ = ["ExampleTiles", "read_example_tiles", "read_tile", "tile_path"]
