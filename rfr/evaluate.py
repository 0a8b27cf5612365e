"""Score a checkpoint, or a folder of another method's predictions, on a test split
crossed with a mask bank's hole-ratio bins.

For every NVIDIA bin of the bank, image ``i`` of the split is paired with mask ``i`` of
the bin (``rfr.masks.pair_images_with_masks``: cyclic when the bin has fewer masks), so
every model sees exactly the same (image, hole) pairs. A model runs on ``image * mask``
(batched, ``torch.inference_mode``, fp32 or bf16 autocast); the metrics are computed on
the composite (``rfr.metrics.image_metrics``), per image, and summarised per bin with
bootstrap confidence intervals (``rfr.aggregate``).

Outputs in ``out_dir``:

- ``per_image.csv``: ``id, bin, psnr, ssim, l1, l1_hole[, lpips]``; id is
  ``bin<b>/<image name>`` (b indexes ``rfr.masks.NVIDIA_BINS``), bin is the label
  ``(0.1, 0.2]``. Cells as in ``rfr.aggregate.write_per_image_csv``.
- ``pairs.csv``: ``id, bin, image_index, image_name, mask, hole_ratio``: which mask file
  each image was scored with.
- ``metrics.json``: the ``rfr.aggregate.summarize`` layout (``format``, ``bootstrap``,
  ``metrics``, ``bins`` {label: {n_images, metrics, bin_index, bounds, n_masks,
  mean_hole_ratio}}, ``overall``) plus ``evaluation`` (what was scored and how: source,
  dataset, mask bank, batch size, precision, parameter count, GMACs) and ``latency``
  (ms/image; the only field that changes between identical runs).
- ``examples.png``: per bin, the first ``grid_examples`` images as rows of three tiles:
  masked input (holes white), composite, ground truth.
- ``predictions/`` (only with ``save_predictions``): the composites as 8-bit PNGs under
  the predictions naming scheme, so they can be scored again as a predictions folder.

**Predictions naming scheme.** A predictions folder holds ``bin<b>/<name>.png`` for every
scored (bin, image) pair, where ``<name>`` is ``dataset.names[i]`` (a relative path for
the folder dataset, e.g. ``sub/img``; ``coffee#00`` for the demo scenes) with its image
extension (if any) replaced by ``.png``. Each file is an S x S RGB image (S = the dataset
config's size, i.e. the test transform's centre crop resized to S): the method's output
or its composite (only the hole pixels are used; known pixels are taken from the ground
truth). A missing, unreadable or mis-sized file is an error that names it.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import torch
import torchvision
from torch import Tensor, nn
from tqdm import tqdm

from rfr.aggregate import (
    MetricTable,
    summarize,
    write_bins_json,
    write_per_image_csv,
)
from rfr.atomic import atomic_open
from rfr.config import ConfigError, to_dict
from rfr.data import IMAGE_EXTENSIONS, build_dataset, iter_batches, make_loader
from rfr.eval_config import EvalConfig, load_eval_config  # re-exported
from rfr.image_io import ImageReadError, read_image, with_white_holes, write_image
from rfr.masks import (
    NVIDIA_BINS,
    MaskEntry,
    format_bin,
    group_by_bin,
    load_entry_mask,
    pair_images_with_masks,
    read_mask_bank,
)
from rfr.metrics import FIDAccumulator, image_metrics, load_inception, load_lpips
from rfr.models import RFRNet, composite, count_parameters
from rfr.precision import Precision, check_precision, precision_context
from rfr.recurrence import RecurrenceRecord, trace_known_fractions, write_recurrence

log = logging.getLogger(__name__)

PER_IMAGE_CSV = "per_image.csv"
PAIRS_CSV = "pairs.csv"
METRICS_JSON = "metrics.json"
GRID_PNG = "examples.png"
PREDICTIONS_DIR = "predictions"
GRID_PADDING = 2
EVAL_FORMAT = "rfr-bench evaluation v1"


class PredictionError(ImageReadError):
    """A predictions folder lacks a file, or a file cannot be used; names the file."""


@dataclass(frozen=True)
class EvalResult:
    """Where the outputs went, and the JSON summary as written."""

    out_dir: Path
    per_image_csv: Path
    pairs_csv: Path
    metrics_json: Path
    grid: Path | None
    predictions_dir: Path | None
    summary: dict[str, Any]


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


def read_prediction(root: Path, bin_index: int, name: str, size: int) -> Tensor:
    """One prediction as a 3 x S x S tensor, or PredictionError naming the file."""
    path = root / prediction_relpath(bin_index, name)
    if not path.is_file():
        raise PredictionError(
            f"prediction missing: {path} (for image {name!r} with a mask of bin "
            f"{format_bin(bin_index)}; expected <predictions>/bin<b>/<image name>.png, see "
            f"rfr.evaluate)"
        )
    try:
        image = read_image(path)
    except ImageReadError as exc:
        raise PredictionError(f"prediction unreadable: {exc}") from exc
    if tuple(image.shape[1:]) != (size, size):
        raise PredictionError(
            f"prediction {path} is {image.shape[2]}x{image.shape[1]} but the evaluation runs "
            f"at {size}x{size} (the test transform's size); write predictions at that size"
        )
    return image


def gmacs_of(model: nn.Module, size: int) -> dict[str, Any]:
    """GMACs of one S x S forward via ``rfr.variants.count_gmacs``, or why not."""
    try:
        from rfr.variants import count_gmacs  # type: ignore[attr-defined]
    except ImportError as exc:
        return {"status": "unavailable",
                "reason": f"rfr.variants.count_gmacs cannot be imported: {exc}"}
    try:
        value = float(count_gmacs(model, size))
    except Exception as exc:  # a counting failure must not lose the evaluation
        return {"status": "unavailable",
                "reason": f"rfr.variants.count_gmacs failed: {type(exc).__name__}: {exc}"}
    return {"value": value, "input": [1, 3, size, size]}


def _run_model(model: nn.Module, masked: Tensor, mask: Tensor, precision: Precision,
               device: torch.device) -> Tensor:
    with precision_context(precision, device.type):
        output = model(masked.to(device), mask.to(device))
    return output.float().cpu()


def measure_latency(model: nn.Module, masked: Tensor, mask: Tensor, precision: Precision,
                    device: torch.device, batches: int) -> dict[str, Any]:
    """Median wall time of ``batches`` forward passes (after one warm-up), per image."""
    with torch.inference_mode():
        _run_model(model, masked, mask, precision, device)
        times = []
        for _ in range(batches):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            _run_model(model, masked, mask, precision, device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    per_image = statistics.median(times) * 1000 / masked.shape[0]
    return {"ms_per_image": per_image, "device": str(device), "batch_size": masked.shape[0],
            "batches": batches, "precision": precision, "threads": torch.get_num_threads(),
            "size": list(masked.shape[-2:]), "statistic": "median over batches"}


def evaluate(config: EvalConfig, progress: bool = True) -> EvalResult:
    """Score ``config.checkpoint`` or ``config.predictions``; write the outputs."""
    if config.checkpoint is not None:  # before any data is read
        check_precision(config.precision, torch.device(config.device).type)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset_config = config.dataset
    if config.limit is not None:
        limit = min(config.limit, dataset_config.limit or config.limit)
        dataset_config = dataclasses.replace(dataset_config, limit=limit)
    dataset = build_dataset(dataset_config)
    size = dataset_config.size
    if len(dataset) == 0:
        raise ConfigError(f"{dataset!r} has no images to evaluate")
    entries = read_mask_bank(config.masks)
    groups = group_by_bin(entries)

    device = torch.device(config.device)
    model: nn.Module | None = None
    predictions_root: Path | None = None
    if config.checkpoint is not None:
        from rfr.checkpoint import open_checkpoint

        loaded = open_checkpoint(config.checkpoint)
        model = loaded.model.to(device).eval()
        source: dict[str, Any] = {
            "kind": "checkpoint", "path": str(config.checkpoint),
            "model": loaded.model_name,
            "file_format": loaded.file_format,
            "config": to_dict(model.config) if dataclasses.is_dataclass(
                getattr(model, "config", None)) else None,
            "parameters": count_parameters(model),
            "gmacs": gmacs_of(model, size),
        }
    else:
        predictions_root = Path(str(config.predictions))
        if not predictions_root.is_dir():
            raise PredictionError(f"predictions folder not found: {predictions_root}")
        reason = "a predictions folder has no model"
        source = {"kind": "predictions", "path": str(predictions_root),
                  "parameters": {"status": "unavailable", "reason": reason},
                  "gmacs": {"status": "unavailable", "reason": reason}}

    save_dir = out_dir / PREDICTIONS_DIR if config.save_predictions else None
    lpips = load_lpips(config.lpips_weights)
    fid = FIDAccumulator(load_inception(config.inception_weights))
    table = MetricTable()
    pair_rows: list[list[str]] = []
    grid_tiles: list[Tensor] = []
    bin_info: dict[str, dict[str, Any]] = {}
    mask_cache: dict[Path, Tensor] = {}
    latency_batch: tuple[Tensor, Tensor] | None = None
    warned_resize = False
    recurrence = RecurrenceRecord() if (config.recurrence and isinstance(model, RFRNet)) \
        else None

    def mask_of(entry: MaskEntry) -> Tensor:
        nonlocal warned_resize
        if entry.path not in mask_cache:
            known = load_entry_mask(entry)
            if tuple(known.shape[1:]) != (size, size):
                if not warned_resize:
                    log.warning("mask bank %s is %dx%d; masks are resized (nearest) to %dx%d, "
                                "which changes hole ratios slightly", config.masks,
                                known.shape[2], known.shape[1], size, size)
                    warned_resize = True
                known = load_entry_mask(entry, size)
            mask_cache[entry.path] = known
        return mask_cache[entry.path]

    total = sum(len(dataset) for group in groups if group)
    bar = tqdm(total=total, desc="evaluate", unit="img", disable=not progress)
    for bin_index, group in enumerate(groups):
        if not group:
            log.warning("mask bank %s has no masks in bin %s; bin skipped", config.masks,
                        format_bin(bin_index))
            continue
        label = format_bin(bin_index)
        pairs = pair_images_with_masks(len(dataset), group)
        used = {pairs[i][1].path for i in range(len(pairs))}
        bin_info[label] = {
            "bin_index": bin_index, "bounds": list(NVIDIA_BINS[bin_index]),
            "n_masks": len(used),
            "mean_hole_ratio": sum(entry.hole_ratio for _, entry in pairs) / len(pairs),
        }
        mask_cache.clear()
        loader = make_loader(dataset, config.batch_size, num_workers=config.num_workers)
        for batch in iter_batches(loader, dataset):
            indices = batch["index"].tolist()
            if not indices:
                continue
            images = batch["image"]
            masks = torch.stack([mask_of(pairs[i][1]) for i in indices])
            names = [dataset.names[i] for i in indices]
            if model is not None:
                masked = images * masks
                with torch.inference_mode():
                    if recurrence is not None:
                        assert isinstance(model, RFRNet)
                        output, levels = trace_known_fractions(model, masked, masks,
                                                               config.precision, device)
                        recurrence.add(label, bin_index, indices, levels, masks, output,
                                       images, config.grid_examples)
                    else:
                        output = _run_model(model, masked, masks, config.precision, device)
                if latency_batch is None:
                    latency_batch = (masked, masks)
            else:
                assert predictions_root is not None
                output = torch.stack([read_prediction(predictions_root, bin_index, name, size)
                                      for name in names])
            results = image_metrics(output, images, masks, lpips=lpips)
            ids = [image_id(bin_index, name) for name in names]
            table.add_batch(ids, [label] * len(ids), results)
            filled = composite(output, images, masks).clamp(0, 1)
            fid.add([label] * len(ids), images, filled)
            for row, (index, name) in enumerate(zip(indices, names, strict=True)):
                entry = pairs[index][1]
                pair_rows.append([ids[row], label, str(index), name, entry.path.name,
                                  repr(float(entry.hole_ratio))])
                if save_dir is not None:
                    write_image(filled[row], save_dir / prediction_relpath(bin_index, name))
                if index < config.grid_examples:
                    grid_tiles.extend([with_white_holes(images[row], masks[row]),
                                       filled[row], images[row]])
            bar.update(len(indices))
    bar.close()
    if not table.rows:
        raise ConfigError(f"nothing was evaluated: no images of {dataset!r} were paired with "
                          f"masks of {config.masks}")

    summary = summarize(table, dataset_metrics={"fid": fid.results()},
                        overall_dataset_metrics={"fid": fid.result()},
                        resamples=config.resamples, seed=config.seed)
    for label, info in bin_info.items():
        if label in summary["bins"]:
            summary["bins"][label].update(info)
    summary["evaluation"] = {
        "format": EVAL_FORMAT,
        "source": source,
        "dataset": to_dict(dataset_config),
        "n_images_per_bin": len(dataset),
        "masks": {"bank": str(config.masks), "n_masks": len(entries),
                  "pairing": "image i with mask i mod M of each bin"},
        "batch_size": config.batch_size,
        "precision": config.precision if model is not None else None,
        "device": str(device) if model is not None else None,
        "seed": config.seed,
        "grid_examples": config.grid_examples,
        "id_scheme": "bin<b>/<image name>",
        "predictions_scheme": "bin<b>/<image name without image extension>.png",
    }
    if config.run is not None:
        summary["run"] = dict(config.run)
    if model is not None and latency_batch is not None:
        summary["latency"] = measure_latency(model, *latency_batch, config.precision, device,
                                             config.latency_batches)
    else:
        summary["latency"] = {"status": "unavailable",
                              "reason": "a predictions folder has no model to time"}

    csv_path = write_per_image_csv(table, out_dir / PER_IMAGE_CSV)
    pairs_path = _write_pairs(pair_rows, out_dir / PAIRS_CSV)
    json_path = write_bins_json(summary, out_dir / METRICS_JSON)
    grid_path = None
    if grid_tiles:
        grid = torchvision.utils.make_grid(torch.stack(grid_tiles), nrow=3,
                                           padding=GRID_PADDING, pad_value=1.0)
        grid_path = write_image(grid, out_dir / GRID_PNG)
    if config.recurrence:
        write_recurrence(recurrence, model, out_dir)
    log.info("evaluated %d images x %d bins; wrote %s and %s", len(dataset), len(bin_info),
             csv_path, json_path)
    return EvalResult(out_dir, csv_path, pairs_path, json_path, grid_path, save_dir, summary)


def _write_pairs(rows: Sequence[Sequence[str]], path: Path) -> Path:
    with atomic_open(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "bin", "image_index", "image_name", "mask", "hole_ratio"])
        writer.writerows(rows)
    return path


def grid_size(num_bins: int, examples: int, size: int) -> tuple[int, int]:
    """(width, height) of examples.png for ``examples`` rows per bin of S x S tiles."""
    step = size + GRID_PADDING
    return 3 * step + GRID_PADDING, num_bins * examples * step + GRID_PADDING


__all__ = [
    "GRID_PNG",
    "METRICS_JSON",
    "PAIRS_CSV",
    "PER_IMAGE_CSV",
    "PREDICTIONS_DIR",
    "EvalConfig",
    "EvalResult",
    "PredictionError",
    "evaluate",
    "gmacs_of",
    "grid_size",
    "image_id",
    "load_eval_config",
    "measure_latency",
    "prediction_relpath",
    "read_prediction",
]
