"""Score a checkpoint, or a folder of another method's predictions, on a test split
crossed with a mask bank's hole-ratio bins.

For every NVIDIA bin of the bank, image ``i`` of the split is paired with mask ``i`` of
the bin (``rfr.masks.pair_images_with_masks``: cyclic when the bin has fewer masks), so
every model sees exactly the same (image, hole) pairs. A model runs on ``image * mask``
(batched, ``torch.inference_mode``, fp32 or bf16 autocast); the metrics are computed on
the composite (``rfr.evaluate.metrics.image_metrics``), per image, and summarised per bin with
bootstrap confidence intervals (``rfr.evaluate.aggregate``).

Outputs in ``out_dir`` (names in ``rfr.evaluate.layout``):

- ``per_image.csv``: ``id, bin, psnr, ssim, l1, l1_hole[, lpips]``; id is
  ``bin<b>/<image name>`` (b indexes ``rfr.masks.NVIDIA_BINS``), bin is the label
  ``(0.1, 0.2]``. Cells as in ``rfr.evaluate.aggregate.write_per_image_csv``.
- ``pairs.csv``: ``id, bin, image_index, image_name, mask, hole_ratio``: which mask file
  each image was scored with.
- ``summary.json``: the ``rfr.evaluate.aggregate.summarize`` layout (``format``, ``bootstrap``,
  ``metrics``, ``bins`` {label: {n_images, metrics, bin_index, bounds, n_masks,
  mean_hole_ratio}}, ``overall``) plus ``evaluation`` (what was scored and how: source,
  dataset, mask bank, batch size, precision, parameter count, GMACs), ``run`` (the
  pipeline run, when given) and ``latency`` (ms/image; the only field that changes
  between identical runs). This is what the report reads.
- ``metrics.json``: for ``dvc metrics show``, flat and numeric only: the overall mean of
  ``psnr, ssim, l1, l1_hole[, lpips][, fid]`` and ``ms_per_image`` (when timed); a metric
  without a number is left out (its reason is in summary.json).
- ``bins.csv``: for ``dvc plots``, one row per scored bin: ``bin, bin_index,
  mean_hole_ratio, psnr, ssim, l1, l1_hole[, lpips][, fid]`` (per-bin means; lpips/fid
  columns only when computed; an empty cell where a bin has no number).
- ``tiles/bin<b>/<image name>/{input,output,target}.png``: for the first
  ``grid_examples`` images of each bin, the masked input (holes white), the composite
  and the ground truth as 8-bit PNGs; the report's qualitative figures read these.
- ``examples.png``: the same tiles, per bin, as rows of three (torchvision's make_grid,
  ``GRID_PADDING`` white pixels).
- ``predictions/`` (only with ``save_predictions``): the composites as 8-bit PNGs under
  the predictions naming scheme, so they can be scored again as a predictions folder.
- ``recurrence.json`` (and ``recurrence.png`` for RFR-Net, with ``recurrence``): see
  ``rfr.evaluate.recurrence``.

The work is split as in ``rfr.evaluate``: a predictor (checkpoint or predictions
folder) makes the outputs, scorers score them, writers write them; this module is the
entry point the CLI, the pipeline and the tests import.

**Predictions naming scheme.** A predictions folder holds ``bin<b>/<name>.png`` for every
scored (bin, image) pair, where ``<name>`` is ``dataset.names[i]`` (a relative path for
the folder dataset, e.g. ``sub/img``; ``coffee#00`` for the demo scenes) with its image
extension (if any) replaced by ``.png``. Each file is an S x S RGB image (S = the dataset
config's size, i.e. the test transform's centre crop resized to S): the method's output
or its composite (only the hole pixels are used; known pixels are taken from the ground
truth). A missing, unreadable or mis-sized file is an error that names it, and so
is a ``bin<b>/`` PNG that no scored pair reads (a folder written for other pairs).
``rfr export-testset`` (``rfr.testset``) writes the pairs themselves under these names.
"""

from __future__ import annotations

from rfr.evaluate.config import EvalConfig, load_eval_config  # re-exported
from rfr.evaluate.evaluator import EvalResult, evaluate
from rfr.evaluate.layout import (
    BINS_CSV,
    EVAL_FORMAT,
    GRID_PADDING,
    GRID_PNG,
    METRICS_JSON,
    PAIRS_CSV,
    PER_IMAGE_CSV,
    PREDICTIONS_DIR,
    SUMMARY_JSON,
    TILES_DIR,
    bin_folder,
    grid_size,
    image_id,
    prediction_relpath,
    tile_relpath,
)
from rfr.evaluate.predictors import (
    PredictionError,
    gmacs_of,
    measure_latency,
    read_prediction,
)

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
    "EvalConfig",
    "EvalResult",
    "PredictionError",
    "bin_folder",
    "evaluate",
    "gmacs_of",
    "grid_size",
    "image_id",
    "load_eval_config",
    "measure_latency",
    "prediction_relpath",
    "read_prediction",
    "tile_relpath",
]
