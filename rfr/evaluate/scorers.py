"""Scorers: each turns predictions into one kind of result, batch by batch.

Every scorer has ``add(prediction)`` (called once per batch) and ``result()``, the way
LaMa's evaluator keeps its metrics as separate objects: adding a metric is adding a
scorer, not another branch in the evaluation loop.

- ``ImageMetricScorer``: the per-image metrics of ``rfr.evaluate.metrics.image_metrics`` (PSNR,
  SSIM, L1, hole L1, LPIPS when requested) into a ``MetricTable``.
- ``FIDScorer``: FID per bin and over all images (composites against ground truth).
- ``RecurrenceTracer``: RFR-Net's hole fraction per recurrence. It needs the model's
  internal masks, so it is handed the model and runs the forward itself (the predictor
  calls it instead of the plain forward, see ``CheckpointPredictor.forward``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from rfr.evaluate.aggregate import MetricTable
from rfr.evaluate.batches import EvalBatch, Prediction
from rfr.evaluate.metrics import (
    DatasetMetricResult,
    FIDAccumulator,
    InceptionFeatures,
    LPIPSAlex,
    Unavailable,
    image_metrics,
)
from rfr.evaluate.recurrence import RecurrenceRecord, trace_known_fractions, write_recurrence
from rfr.model.api import RFRNet
from rfr.precision import Precision


class ImageMetricScorer:
    """Per-image metrics of the composites, one table row per image."""

    def __init__(self, lpips: LPIPSAlex | Unavailable | None) -> None:
        self.lpips = lpips
        self.table = MetricTable()

    def add(self, prediction: Prediction) -> None:
        batch = prediction.batch
        results = image_metrics(prediction.output, batch.images, batch.masks, lpips=self.lpips)
        self.table.add_batch(batch.ids, [batch.label] * len(batch.indices), results)

    def result(self) -> MetricTable:
        return self.table


class FIDScorer:
    """FID of each bin's composites against the same bin's ground truth, and overall."""

    def __init__(self, network: InceptionFeatures | Unavailable) -> None:
        self.accumulator = FIDAccumulator(network)

    def add(self, prediction: Prediction) -> None:
        batch = prediction.batch
        self.accumulator.add([batch.label] * len(batch.indices), batch.images,
                             prediction.filled)

    def result(self) -> tuple[dict[str, DatasetMetricResult], DatasetMetricResult]:
        """(per bin, over all images)."""
        return self.accumulator.results(), self.accumulator.result()


class RecurrenceTracer:
    """recurrence.json/.png of an RFR-Net checkpoint (``rfr.evaluate.recurrence``): the forward
    is RFRNet.trace, whose output is the model's output, so nothing is run twice."""

    def __init__(self, precision: Precision, device: str, examples: int) -> None:
        self.record = RecurrenceRecord()
        self.precision = precision
        self.device = torch.device(device)
        self.examples = examples

    def __call__(self, model: nn.Module, batch: EvalBatch) -> Tensor:
        assert isinstance(model, RFRNet)
        output, levels = trace_known_fractions(model, batch.masked, batch.masks,
                                               self.precision, self.device)
        self.record.add(batch.label, batch.bin_index, batch.indices, levels, batch.masks,
                        output, batch.images, self.examples)
        return output

    def result(self) -> RecurrenceRecord:
        return self.record


def write_recurrence_files(tracer: RecurrenceTracer | None, model: nn.Module | None,
                           out_dir: Path) -> None:
    """recurrence.json always (``not applicable`` without a tracer), recurrence.png when
    traced: the pipeline declares both as outputs of every evaluation."""
    write_recurrence(tracer.result() if tracer is not None else None, model, out_dir)


__all__ = ["FIDScorer", "ImageMetricScorer", "RecurrenceTracer", "write_recurrence_files"]
