"""``evaluate()``: the data, a predictor, the scorers and the writers, wired together.

One pass over the (image, mask) pairs: the predictor gives the outputs of a batch, the
composite is made once, and every scorer and writer is fed the same ``Prediction``.
Then the scores are summarised and the summary files written (``rfr.evaluate.api`` lists
the outputs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rfr.config import ConfigError, to_dict
from rfr.evaluate.aggregate import summarize, write_per_image_csv
from rfr.evaluate.batches import EvalData, Prediction
from rfr.evaluate.config import EvalConfig
from rfr.evaluate.layout import (
    BINS_CSV,
    EVAL_FORMAT,
    METRICS_JSON,
    PER_IMAGE_CSV,
    PREDICTIONS_DIR,
    SUMMARY_JSON,
)
from rfr.evaluate.metrics import load_inception, load_lpips
from rfr.evaluate.predictors import CheckpointPredictor, FolderPredictor, Predictor
from rfr.evaluate.scorers import (
    FIDScorer,
    ImageMetricScorer,
    RecurrenceTracer,
    write_recurrence_files,
)
from rfr.evaluate.summary_files import (
    write_bins_csv,
    write_metrics_json,
    write_summary_json,
)
from rfr.evaluate.writers import ExamplesWriter, PairsWriter, PredictionsWriter
from rfr.model.api import RFRNet, composite
from rfr.precision import check_precision

log = logging.getLogger("rfr.evaluate.api")


@dataclass(frozen=True)
class EvalResult:
    """Where the outputs went, and the summary as written to summary.json."""

    out_dir: Path
    per_image_csv: Path
    pairs_csv: Path
    summary_json: Path
    metrics_json: Path
    bins_csv: Path
    grid: Path | None
    tiles_dir: Path | None
    predictions_dir: Path | None
    summary: dict[str, Any]


def make_predictor(config: EvalConfig, size: int) -> Predictor:
    if config.checkpoint is not None:
        return CheckpointPredictor(config.checkpoint, config.device, config.precision, size,
                                   config.latency_batches)
    return FolderPredictor(str(config.predictions), size)


def attach_tracer(config: EvalConfig, predictor: Predictor) -> RecurrenceTracer | None:
    """Recurrence tracing, for RFR-Net checkpoints when ``config.recurrence`` asks."""
    if not (config.recurrence and isinstance(predictor, CheckpointPredictor)
            and isinstance(predictor.model, RFRNet)):
        return None
    tracer = RecurrenceTracer(config.precision, config.device, config.grid_examples)
    predictor.forward = tracer
    return tracer


def evaluate(config: EvalConfig, progress: bool = True) -> EvalResult:
    """Score ``config.checkpoint`` or ``config.predictions``; write the outputs."""
    if config.checkpoint is not None:  # before any data is read
        check_precision(config.precision, torch.device(config.device).type)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = EvalData(config)
    predictor = make_predictor(config, data.size)
    tracer = attach_tracer(config, predictor)
    metrics = ImageMetricScorer(load_lpips(config.lpips_weights))
    fid = FIDScorer(load_inception(config.inception_weights))
    pairs = PairsWriter(out_dir)
    examples = ExamplesWriter(out_dir, config.grid_examples)
    saved = PredictionsWriter(out_dir / PREDICTIONS_DIR) if config.save_predictions else None
    steps = [metrics, fid, pairs, examples, *([saved] if saved is not None else [])]
    for batch in data.batches(progress):
        output = predictor.predict(batch)
        filled = composite(output, batch.images, batch.masks).clamp(0, 1)
        prediction = Prediction(batch, output, filled)
        for step in steps:
            step.add(prediction)
    if isinstance(predictor, FolderPredictor):
        predictor.check_no_extra()
    if not metrics.table.rows:
        raise ConfigError(f"nothing was evaluated: no images of {data.dataset!r} were paired "
                          f"with masks of {config.masks}")

    summary = build_summary(config, data, predictor, metrics, fid)
    csv_path = write_per_image_csv(metrics.result(), out_dir / PER_IMAGE_CSV)
    pairs_path = pairs.finish()
    json_path = write_summary_json(summary, out_dir / SUMMARY_JSON)
    metrics_path = write_metrics_json(summary, out_dir / METRICS_JSON)
    bins_path = write_bins_csv(summary, out_dir / BINS_CSV)
    grid_path = examples.finish()
    if config.recurrence:
        write_recurrence_files(tracer, predictor.model, out_dir)
    log.info("evaluated %d images x %d bins; wrote %s and %s", len(data.dataset),
             len(data.bin_info), csv_path, json_path)
    return EvalResult(out_dir, csv_path, pairs_path, json_path, metrics_path, bins_path,
                      grid_path, examples.tiles_dir,
                      saved.finish() if saved is not None else None, summary)


def build_summary(config: EvalConfig, data: EvalData, predictor: Predictor,
                  metrics: ImageMetricScorer, fid: FIDScorer) -> dict[str, Any]:
    """summary.json: the per-bin summary, what each bin used, provenance and latency."""
    per_bin_fid, overall_fid = fid.result()
    summary = summarize(metrics.result(), dataset_metrics={"fid": per_bin_fid},
                        overall_dataset_metrics={"fid": overall_fid},
                        resamples=config.resamples, seed=config.seed)
    for label, info in data.bin_info.items():
        if label in summary["bins"]:
            summary["bins"][label].update(info)
    summary["evaluation"] = {
        "format": EVAL_FORMAT,
        "source": predictor.source,
        "dataset": to_dict(data.dataset_config),
        "n_images_per_bin": len(data.dataset),
        "masks": {"bank": str(config.masks), "n_masks": len(data.entries),
                  "pairing": "image i with mask i mod M of each bin"},
        "batch_size": config.batch_size,
        "precision": predictor.precision,
        "device": predictor.device,
        "seed": config.seed,
        "grid_examples": config.grid_examples,
        "id_scheme": "bin<b>/<image name>",
        "predictions_scheme": "bin<b>/<image name without image extension>.png",
    }
    if config.run is not None:
        summary["run"] = dict(config.run)
    summary["latency"] = predictor.latency()
    return summary


__all__ = ["EvalResult", "attach_tracer", "build_summary", "evaluate", "make_predictor"]
