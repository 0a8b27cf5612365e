"""What a training run records besides its checkpoints: loss curves, train.log, run.json
and the summary a report reads.

**Curves.** ``curves_dir(config)`` (default ``out_dir/dvclive``) holds dvclive's layout:
``plots/metrics/train/<term>.tsv`` (columns ``step`` and the term, one row per step, from
0) and two summaries. ``summary.json`` is the whole record: the latest value of each term
under ``train``, the last ``step``, and at the end the ``training_summary`` (cost and
provenance); the report reads it, and a resume reads its wall time back from it.
``metrics.json`` is its flat numeric view for ``dvc metrics show`` (one short row per
run, where strings and nesting would make a row thousands of characters wide): the last
loss terms as ``loss_<term>`` (the prefix keeps them apart from the evaluation's
``l1_hole`` and the like in one table) and, once the run has finished, ``steps``,
``seconds``, ``steps_per_second`` and ``parameters``. The rows are written by dvclive's own
writer (``dvclive.plots.Metric``, which ``dvclive.Live.log_metric`` uses), not through
``dvclive.Live``: Live looks for a DVC repository on construction and, finding none
inside a Git repository, runs ``dvc init`` there (whatever ``save_dvc_exp`` and
``dvcyaml`` say), and on every ``next_step`` it reads back every curve file (for DVC
Studio, even when there is none), so a step costs time proportional to the steps before
it. This suite uses neither DVC experiments nor Studio.

**When rows reach the files.** ``TrainingCurves.log`` keeps a step's terms in memory;
``flush`` writes them, and the loop flushes right before each checkpoint is written (and
when the run stops on a diverged loss, whose last finite steps belong on its curves). So
after a crash the files hold the steps of the last checkpoint, which is where a resume
starts: it appends from there and every step appears once, with the values of the run
that produced the final weights. A crash between a flush and the end of its checkpoint
write leaves rows a resume repeats; a resumed ``TrainingCurves`` therefore skips any row
whose step its file already holds, so no file ever has a step twice.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import platform
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rfr.atomic import write_json_atomic
from rfr.config import to_dict
from rfr.errors import TrainingError
from rfr.model.api import count_parameters
from rfr.train.config import TrainConfig

TRAIN_LOGGER = "rfr.train.loop"  # the loop's logger, which train.log records
CURVES_PREFIX = "train"  # curve names are train/<term>
METRICS_FILE = "metrics.json"  # flat numbers, for `dvc metrics`
SUMMARY_FILE = "summary.json"  # everything, for the report and a resume
PLOTS_DIR = "plots"
LOSS_PREFIX = "loss_"  # metrics.json names a loss term loss_<term>
# The training_summary numbers that metrics.json repeats (the rest is provenance).
FLAT_SUMMARY_KEYS = ("steps", "seconds", "steps_per_second", "parameters")


def curves_dir(config: TrainConfig) -> Path:
    """Where the dvclive curves and the training summary go."""
    if config.curves_dir is not None:
        return Path(config.curves_dir)
    return Path(config.out_dir) / "dvclive"


class TrainingCurves:
    """The loss curves and summary of one run in ``directory`` (see the module doc).

    A new run removes the curves and summary of an earlier one there (as dvclive's Live
    does); a resumed one reads the summary back and appends."""

    def __init__(self, directory: Path, resume: bool) -> None:
        try:
            from dvclive.plots import Metric
        except ImportError as exc:
            raise TrainingError(
                "training curves need dvclive, which is not importable "
                f"({exc}); install it with: pip install 'dvclive>=3.40,<4'"
            ) from exc
        self.dir = Path(directory)
        self._metric = Metric
        self._writers: dict[str, Any] = {}
        self._pending: list[tuple[int, dict[str, float]]] = []
        plots = self.dir / PLOTS_DIR / Metric.subfolder
        summary = self.dir / SUMMARY_FILE
        self.summary: dict[str, Any] = {}
        self._on_disk: dict[str, int] = {}  # curve name -> last step its file holds
        if resume:
            self.summary = _read_summary(summary, self.dir / METRICS_FILE)
            self._on_disk = {tsv.relative_to(plots).with_suffix("").as_posix(): _last_step(tsv)
                             for tsv in plots.rglob("*.tsv")}
        else:
            shutil.rmtree(plots, ignore_errors=True)
            summary.unlink(missing_ok=True)
            (self.dir / METRICS_FILE).unlink(missing_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)

    def log(self, step: int, terms: Mapping[str, float]) -> None:
        """Keep the loss terms of ``step`` (0-based) until the next ``flush``."""
        self._pending.append((step, dict(terms)))

    def flush(self) -> None:
        """Write the kept rows to the curves and the latest values to the summaries."""
        for step, terms in self._pending:
            latest = self.summary.setdefault(CURVES_PREFIX, {})
            for term, value in terms.items():
                name = f"{CURVES_PREFIX}/{term}"
                if step > self._on_disk.get(name, -1):
                    writer = self._writers.get(name)
                    if writer is None:
                        writer = self._writers[name] = self._metric(name, self.dir / PLOTS_DIR)
                    writer.step = step
                    writer.dump(value)
                latest[term] = value
            self.summary["step"] = step
        self._pending.clear()
        self._write_summary()

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Flush and add ``summary`` (``training_summary``) to the summaries."""
        self.flush()
        self.summary.update(summary)
        self._write_summary()

    def _write_summary(self) -> None:
        # both in dvclive's metrics.json format (dvclive.serialize.dump_json: indent 4,
        # newline)
        write_json_atomic(self.dir / SUMMARY_FILE, self.summary, indent=4)
        write_json_atomic(self.dir / METRICS_FILE, flat_training_metrics(self.summary),
                          indent=4, allow_nan=False)


def _read_summary(summary: Path, metrics: Path) -> dict[str, Any]:
    """The summary a resume continues. A run started before summary.json existed kept
    the whole record in metrics.json (recognised by its ``train`` block); reading that
    keeps the wall time of its earlier invocations in the total."""
    if summary.exists():
        return json.loads(summary.read_text(encoding="utf-8"))
    if metrics.exists():
        old = json.loads(metrics.read_text(encoding="utf-8"))
        if isinstance(old, dict) and isinstance(old.get(CURVES_PREFIX), dict):
            return old
    return {}


def _number(value: Any) -> float | int | None:
    """A finite int or float as it is; anything else (None, a string, a bool, NaN) None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def flat_training_metrics(summary: Mapping[str, Any]) -> dict[str, float | int]:
    """metrics.json from a summary.json record: ``loss_<term>`` for each last loss term,
    then the numbers of ``FLAT_SUMMARY_KEYS`` it has. A value without a finite number (a
    diverged term, ``steps_per_second`` of a zero-time run) is left out, not written as
    NaN or null, so that every value DVC reads is a number."""
    flat: dict[str, float | int] = {}
    for term, value in (summary.get(CURVES_PREFIX) or {}).items():
        if (number := _number(value)) is not None:
            flat[LOSS_PREFIX + term] = number
    for key in FLAT_SUMMARY_KEYS:
        if (number := _number(summary.get(key))) is not None:
            flat[key] = number
    return flat


def _last_step(tsv: Path) -> int:
    """The step of the last row of a curve file (-1 when it has none)."""
    lines = tsv.read_text(encoding="utf-8").splitlines()
    if len(lines) < 2:
        return -1
    column = lines[0].split("\t").index("step")
    return int(lines[-1].split("\t")[column])


def add_file_log(out_dir: Path) -> logging.Handler:
    """Copy the loop's log (INFO and up) to ``out_dir/train.log``; returns the handler,
    which the caller removes and closes."""
    log = logging.getLogger(TRAIN_LOGGER)
    handler = logging.FileHandler(out_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


def training_summary(config: TrainConfig, model: nn.Module, vgg: Mapping[str, Any],
                     seconds: float, start: int, previous: Mapping[str, Any],
                     world_size: int) -> dict[str, Any]:
    """What a report needs of a finished run beside its loss curves: cost and provenance.
    A resumed run adds its wall time to that of the invocations before it."""
    total = seconds + (float(previous.get("seconds", 0.0)) if start else 0.0)
    return {
        "steps": config.total_steps,
        "seconds": total,
        "steps_per_second": config.total_steps / total if total > 0 else None,
        "parameters": count_parameters(model),
        "model": config.model,
        "dataset": config.dataset.name,
        "image_size": config.dataset.size,
        "batch_size": config.batch_size,  # global: over all ranks
        "rank_batch_size": config.batch_size // world_size,
        "world_size": world_size,
        "sync_batchnorm": config.sync_batchnorm and world_size > 1,
        "precision": config.precision,
        "vgg_weights": str(vgg["source"]),
        "vgg_random": bool(vgg["random"]),
    }


def run_metadata(config: TrainConfig, world_size: int, device: torch.device,
                 vgg: Mapping[str, Any], model: nn.Module) -> dict[str, Any]:
    """run.json: the config and the machine a run was started with."""
    return {
        "config": to_dict(config),
        "vgg_weights": {"spec": config.loss.vgg_weights, **vgg},
        "world_size": world_size,
        "device": str(device),
        "parameters": count_parameters(model),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(),
        "note": ("losses computed with RANDOM VGG16 weights: not comparable to published "
                 "numbers" if vgg["random"] else "VGG16: " + str(vgg["source"])),
    }


def write_json(path: Path, data: Any) -> Path:
    """run.json and out_dir/metrics.json: sorted keys, indent 2, atomic."""
    return write_json_atomic(path, data, indent=2, sort_keys=True, default=str)


__all__ = [
    "METRICS_FILE",
    "SUMMARY_FILE",
    "TrainingCurves",
    "add_file_log",
    "curves_dir",
    "flat_training_metrics",
    "run_metadata",
    "training_summary",
    "write_json",
]
