"""The configuration of one evaluation, apart from the code that runs it.

Kept out of ``rfr/evaluate/api.py`` so that the pipeline can validate a profile's
``evaluate`` section without importing the metrics and the models: a DVC stage depends
on the code it imports, and the training stages must not be rerun because a metric
changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfr.config import ConfigError, check_int, check_literal, from_dict, load_yaml
from rfr.data.config import DatasetConfig
from rfr.precision import Precision

# Bootstrap resamples per (bin, metric) for the confidence intervals (rfr.evaluate.aggregate).
DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class EvalConfig:
    """What to score, on which images and holes, and where to write the results.

    Fields:
        checkpoint: this suite's or the authors' checkpoint (exactly one of checkpoint
            and predictions).
        predictions: a folder of another method's outputs (see the module doc's naming
            scheme).
        dataset: the test images (``split`` should be "test"; ``size`` is S).
        masks: a mask bank folder written by ``rfr masks`` (manifest.csv + PNGs). Masks of
            another size are resized (nearest) to S, with a warning.
        out_dir: where the CSVs, JSON and grid go.
        batch_size: images per forward pass.
        limit: images per bin (the first ``limit`` of the split); None = all.
        precision: "fp32" or "bf16" (autocast) for the model's forward passes.
        seed: seed of the bootstrap confidence intervals.
        grid_examples: images per bin in examples.png (0 = no grid).
        device: where the model runs ("cpu", "cuda"); metrics are computed on the CPU.
        latency_batches: timed forward passes (after one warm-up) for ms/image.
        resamples: bootstrap resamples per (bin, metric).
        lpips_weights / inception_weights: explicit weight files; None = torch hub cache;
            when absent the metric is recorded as unavailable with the reason.
        save_predictions: also write the composites to ``out_dir/predictions``.
        num_workers: DataLoader workers.
        run: what the pipeline calls this run ({"name", "dataset", "variant", "seed"});
            copied into metrics.json so that a report can find its runs by content.
        recurrence: for RFR-Net models, record how the feature-level hole shrinks across
            the recurrences (``recurrence.json``, ``recurrence.png``).
    """

    checkpoint: str | None = None
    predictions: str | None = None
    dataset: DatasetConfig = field(default_factory=lambda: DatasetConfig(split="test"))
    masks: str = "data/masks"
    out_dir: str = "results/eval"
    batch_size: int = 8
    limit: int | None = None
    precision: Precision = "fp32"
    seed: int = 0
    grid_examples: int = 4
    device: str = "cpu"
    latency_batches: int = 3
    resamples: int = DEFAULT_RESAMPLES
    lpips_weights: str | None = None
    inception_weights: str | None = None
    save_predictions: bool = False
    num_workers: int = 0
    run: dict[str, Any] | None = None
    recurrence: bool = True

    def __post_init__(self) -> None:
        check_literal(self, "precision")
        if (self.checkpoint is None) == (self.predictions is None):
            raise ConfigError("give exactly one of checkpoint (a model to run) and predictions "
                              "(a folder of another method's outputs)")
        for name in ("batch_size", "latency_batches", "resamples"):
            check_int(self, name, 1)
        for name in ("grid_examples", "num_workers"):
            check_int(self, name, 0)
        check_int(self, "limit", 1, optional=True)
        if not isinstance(self.dataset, DatasetConfig):
            raise ConfigError(f"dataset must be a DatasetConfig, got {type(self.dataset)}")


def load_eval_config(path: str | Path) -> EvalConfig:
    """An EvalConfig from a YAML mapping (unknown keys are errors)."""
    return from_dict(EvalConfig, load_yaml(path), str(path))


__all__ = ["DEFAULT_RESAMPLES", "EvalConfig", "load_eval_config"]
