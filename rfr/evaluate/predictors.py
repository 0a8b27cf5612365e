"""Predictors: where an evaluation's model outputs come from.

Two kinds, one interface (``predict(batch) -> B x 3 x S x S output``), so the scorers
and writers never ask which one they are fed:

- ``CheckpointPredictor``: a suite or authors' checkpoint run on the masked images
  (``torch.inference_mode``, fp32 or bf16 autocast). It also reports what it is
  (``source``: model, parameters, GMACs) and times itself (``latency``).
- ``FolderPredictor``: another method's outputs read from a predictions folder
  (``bin<b>/<name>.png``, see ``rfr.evaluate.api``); it has no model to count or time.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from rfr.config import to_dict
from rfr.data.image_io import ImageReadError, read_image
from rfr.evaluate.batches import EvalBatch
from rfr.evaluate.layout import prediction_relpath
from rfr.masks import format_bin
from rfr.model.api import count_parameters
from rfr.precision import Precision, precision_context


class PredictionError(ImageReadError):
    """A predictions folder lacks a file, or a file cannot be used; names the file."""


class Forward(Protocol):
    """Runs a model on a batch instead of a plain forward (recurrence tracing)."""

    def __call__(self, model: nn.Module, batch: EvalBatch) -> Tensor: ...


class Predictor(Protocol):
    """Model outputs for batches, and what to say about where they came from."""

    source: dict[str, Any]
    model: nn.Module | None
    precision: str | None
    device: str | None

    def predict(self, batch: EvalBatch) -> Tensor: ...

    def latency(self) -> dict[str, Any]: ...


def run_model(model: nn.Module, masked: Tensor, mask: Tensor, precision: Precision,
              device: torch.device) -> Tensor:
    """One forward on ``device`` under the precision's autocast; the output as fp32 CPU."""
    with precision_context(precision, device.type):
        output = model(masked.to(device), mask.to(device))
    return output.float().cpu()


def measure_latency(model: nn.Module, masked: Tensor, mask: Tensor, precision: Precision,
                    device: torch.device, batches: int) -> dict[str, Any]:
    """Median wall time of ``batches`` forward passes (after one warm-up), per image."""
    with torch.inference_mode():
        run_model(model, masked, mask, precision, device)
        times = []
        for _ in range(batches):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            run_model(model, masked, mask, precision, device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    per_image = statistics.median(times) * 1000 / masked.shape[0]
    return {"ms_per_image": per_image, "device": str(device), "batch_size": masked.shape[0],
            "batches": batches, "precision": precision, "threads": torch.get_num_threads(),
            "size": list(masked.shape[-2:]), "statistic": "median over batches"}


def gmacs_of(model: nn.Module, size: int) -> dict[str, Any]:
    """GMACs of one S x S forward via ``rfr.model.variants.count_gmacs``, or why not."""
    try:
        from rfr.model.variants import count_gmacs  # type: ignore[attr-defined]
    except ImportError as exc:
        return {"status": "unavailable",
                "reason": f"rfr.model.variants.count_gmacs cannot be imported: {exc}"}
    try:
        value = float(count_gmacs(model, size))
    except Exception as exc:  # a counting failure must not lose the evaluation
        return {"status": "unavailable",
                "reason": f"rfr.model.variants.count_gmacs failed: {type(exc).__name__}: {exc}"}
    return {"value": value, "input": [1, 3, size, size]}


class CheckpointPredictor:
    """A checkpoint's model on the masked images. ``forward``, when set (recurrence
    tracing), replaces the plain forward and must return the same output."""

    def __init__(self, path: str | Path, device: str, precision: Precision, size: int,
                 latency_batches: int) -> None:
        from rfr.model.checkpoint import open_checkpoint

        loaded = open_checkpoint(path)
        self.device = str(torch.device(device))
        self.precision: str | None = precision
        self._device = torch.device(device)
        self._precision = precision
        self._latency_batches = latency_batches
        self.model: nn.Module | None = loaded.model.to(self._device).eval()
        model = self.model
        self.source: dict[str, Any] = {
            "kind": "checkpoint", "path": str(path),
            "model": loaded.model_name,
            "file_format": loaded.file_format,
            "config": to_dict(model.config) if dataclasses.is_dataclass(
                getattr(model, "config", None)) else None,
            "parameters": count_parameters(model),
            "gmacs": gmacs_of(model, size),
        }
        self.forward: Forward | None = None
        self._latency_input: tuple[Tensor, Tensor] | None = None

    def predict(self, batch: EvalBatch) -> Tensor:
        assert self.model is not None
        masked = batch.masked
        with torch.inference_mode():
            if self.forward is not None:
                output = self.forward(self.model, batch)
            else:
                output = run_model(self.model, masked, batch.masks, self._precision,
                                   self._device)
        if self._latency_input is None:  # the first batch is the one timed
            self._latency_input = (masked, batch.masks)
        return output

    def latency(self) -> dict[str, Any]:
        if self.model is None or self._latency_input is None:
            return {"status": "unavailable", "reason": "no batch was run"}
        return measure_latency(self.model, *self._latency_input, self._precision,
                               self._device, self._latency_batches)


def read_prediction(root: Path, bin_index: int, name: str, size: int) -> Tensor:
    """One prediction as a 3 x S x S tensor, or PredictionError naming the file."""
    path = root / prediction_relpath(bin_index, name)
    if not path.is_file():
        raise PredictionError(
            f"prediction missing: {path} (for image {name!r} with a mask of bin "
            f"{format_bin(bin_index)}; expected <predictions>/bin<b>/<image name>.png, see "
            f"rfr.evaluate.api)"
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


class FolderPredictor:
    """Another method's outputs from a predictions folder (see ``rfr.evaluate.api``)."""

    model: nn.Module | None = None
    precision: str | None = None
    device: str | None = None

    def __init__(self, root: str | Path, size: int) -> None:
        self.root = Path(str(root))
        if not self.root.is_dir():
            raise PredictionError(f"predictions folder not found: {self.root}")
        self.size = size
        self.read: set[PurePosixPath] = set()  # relative paths of the predictions used
        reason = "a predictions folder has no model"
        self.source: dict[str, Any] = {
            "kind": "predictions", "path": str(self.root),
            "parameters": {"status": "unavailable", "reason": reason},
            "gmacs": {"status": "unavailable", "reason": reason}}

    def predict(self, batch: EvalBatch) -> Tensor:
        self.read.update(prediction_relpath(batch.bin_index, name) for name in batch.names)
        return torch.stack([read_prediction(self.root, batch.bin_index, name, self.size)
                            for name in batch.names])

    def check_no_extra(self) -> None:
        """After the pass: a ``bin<b>/*.png`` that no scored pair read is an error naming
        it, since it means the folder was written for other pairs (another test set,
        limit or mask bank) than the ones just scored."""
        extra = sorted(path for path in self.root.glob("bin*/**/*.png")
                       if PurePosixPath(path.relative_to(self.root).as_posix()) not in self.read)
        if extra:
            more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
            raise PredictionError(
                f"prediction {extra[0]}{more} matches no scored pair: the predictions folder "
                f"{self.root} was written for other pairs (dataset, --limit or mask bank) "
                f"than this evaluation's; score it with the flags it was written for")

    def latency(self) -> dict[str, Any]:
        return {"status": "unavailable", "reason": "a predictions folder has no model to time"}


__all__ = [
    "CheckpointPredictor",
    "FolderPredictor",
    "Forward",
    "PredictionError",
    "Predictor",
    "gmacs_of",
    "measure_latency",
    "read_prediction",
    "run_model",
]
