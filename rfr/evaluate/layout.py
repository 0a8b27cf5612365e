"""File names and relative paths of an evaluation folder.

One module owns the layout so that the writers (``rfr.evaluate``), the report
(``rfr.report``) and the tests agree on where every output lies without importing the
evaluation machinery (models, metrics) to learn a file name.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from rfr.data import IMAGE_EXTENSIONS

PER_IMAGE_CSV = "per_image.csv"
PAIRS_CSV = "pairs.csv"
SUMMARY_JSON = "summary.json"
METRICS_JSON = "metrics.json"
BINS_CSV = "bins.csv"
GRID_PNG = "examples.png"
PREDICTIONS_DIR = "predictions"
TILES_DIR = "tiles"
TILE_NAMES = ("input", "output", "target")  # the three columns of examples.png
GRID_PADDING = 2
EVAL_FORMAT = "rfr-bench evaluation v1"


def bin_folder(bin_index: int) -> str:
    """``bin<b>``: the folder of bin ``b`` in a predictions folder and the id prefix."""
    return f"bin{bin_index}"


def prediction_relpath(bin_index: int, name: str) -> PurePosixPath:
    """Relative path of the prediction for image ``name`` in bin ``bin_index``."""
    path = PurePosixPath(name)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        path = path.with_suffix("")
    return PurePosixPath(bin_folder(bin_index)) / f"{path}.png"


def image_id(bin_index: int, name: str) -> str:
    return f"{bin_folder(bin_index)}/{name}"


def tile_relpath(bin_index: int, name: str, tile: str) -> PurePosixPath:
    """``tiles/bin<b>/<image name>/<tile>.png``. The image name is kept whole (a folder
    dataset's ``sub/img.jpg`` becomes nested folders; ``coffee#00`` is a plain folder
    name), so a tile is found from the id in per_image.csv alone."""
    if tile not in TILE_NAMES:
        raise ValueError(f"unknown tile {tile!r}; one of {TILE_NAMES}")
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise ValueError(f"image name {name!r} cannot be a folder under {TILES_DIR}/")
    return PurePosixPath(TILES_DIR) / bin_folder(bin_index) / name / f"{tile}.png"


def grid_size(num_bins: int, examples: int, size: int) -> tuple[int, int]:
    """(width, height) of examples.png for ``examples`` rows per bin of S x S tiles."""
    step = size + GRID_PADDING
    return 3 * step + GRID_PADDING, num_bins * examples * step + GRID_PADDING


__all__ = [
    "BINS_CSV",
    "EVAL_FORMAT",
    "GRID_PADDING",
    "GRID_PNG",
    "METRICS_JSON",
    "PAIRS_CSV",
    "PER_IMAGE_CSV",
    "PREDICTIONS_DIR",
    "SUMMARY_JSON",
    "TILES_DIR",
    "TILE_NAMES",
    "bin_folder",
    "grid_size",
    "image_id",
    "prediction_relpath",
    "tile_relpath",
]
