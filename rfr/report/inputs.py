"""Load one run's files from the results folder into plain, checked data.

A run is ``<dataset>-<variant>-<seed>``; its evaluation lives in ``R/metrics/<run>/`` and
its training summary in ``R/train/<run>/``. The report reads the ``summary.json`` of both
(the whole record: bins, provenance, cost); their ``metrics.json`` are flat numeric views
for ``dvc metrics`` and hold nothing the report needs. Every file the report needs is
opened here, so a missing or stale file fails before anything is written, with a message
that names the file and says to run ``dvc repro``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rfr.evaluate.aggregate import read_per_image_csv
from rfr.report.errors import ReportError

METRICS_DIR = "metrics"
TRAIN_DIR = "train"
SUMMARY_JSON = "summary.json"  # rfr.evaluate.layout and rfr.train.run_log write it
PER_IMAGE_CSV = "per_image.csv"
EXAMPLES_PNG = "examples.png"
RECURRENCE_JSON = "recurrence.json"
RECURRENCE_PNG = "recurrence.png"
CURVES_DIR = Path("plots") / "metrics" / "train"
# Where rfr.train.loop's dvclive writes when the pipeline does not flatten it.
CURVES_DIRS = (CURVES_DIR, Path("dvclive") / CURVES_DIR)
REPRO_HINT = "run `dvc repro` to produce it"


@dataclass(frozen=True, order=True)
class RunKey:
    """Which run: the names params.yaml uses."""

    dataset: str
    variant: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.variant}-{self.seed}"


@dataclass(frozen=True)
class BinInfo:
    """What summary.json says about one hole-ratio bin of a run."""

    label: str
    index: int
    mean_hole_ratio: float | None


@dataclass(frozen=True)
class RunData:
    """One run's evaluation and training summary, ready for the tables.

    per_image[metric]: {image id: value}, NaN = undefined for that image; a metric whose
    column is ``unavailable`` is absent here and present in ``unavailable`` with the reason
    from summary.json (never a number).
    """

    key: RunKey
    metrics_dir: Path
    train_dir: Path
    summary: Mapping[str, Any]
    train: Mapping[str, Any]
    image_bins: Mapping[str, str]
    per_image: Mapping[str, Mapping[str, float]]
    unavailable: Mapping[str, str]
    metric_names: tuple[str, ...]
    bins: tuple[BinInfo, ...] = field(default=())

    @property
    def vgg_random(self) -> bool:
        """True when the training losses used a randomly initialised VGG16."""
        return bool(self.train.get("vgg_random", False))

    @property
    def examples_png(self) -> Path:
        return self.metrics_dir / EXAMPLES_PNG

    @property
    def recurrence_json(self) -> Path:
        return self.metrics_dir / RECURRENCE_JSON

    @property
    def recurrence_png(self) -> Path:
        return self.metrics_dir / RECURRENCE_PNG

    @property
    def evaluation(self) -> Mapping[str, Any]:
        value = self.summary.get("evaluation")
        return value if isinstance(value, Mapping) else {}

    def bin_labels(self) -> tuple[str, ...]:
        return tuple(info.label for info in self.bins)

    def ids_in(self, bin_label: str | None) -> list[str]:
        """Image ids of one bin (None = all bins), in file order."""
        return [i for i, b in self.image_bins.items() if bin_label is None or b == bin_label]

    def dataset_entry(self, metric: str, bin_label: str | None) -> Mapping[str, Any] | None:
        """The summary.json entry of a metric for one bin (None = overall)."""
        block = (self.summary.get("overall") if bin_label is None
                 else self.summary.get("bins", {}).get(bin_label))
        if not isinstance(block, Mapping):
            return None
        entry = block.get("metrics", {}).get(metric)
        return entry if isinstance(entry, Mapping) else None

    def metric_kind(self, metric: str) -> str:
        """"per-image" or "dataset" (FID), as summary.json declares it."""
        info = self.summary.get("metrics", {}).get(metric, {})
        return str(info.get("kind", "per-image")) if isinstance(info, Mapping) else "per-image"


def _missing(path: Path, key: RunKey) -> ReportError:
    return ReportError(f"{path}: missing (run {key.name}); {REPRO_HINT}")


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or broken file is a ReportError."""
    if not path.is_file():
        raise ReportError(f"{path}: missing ({what}); {REPRO_HINT}")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: unreadable ({exc}); delete it and {REPRO_HINT}") from exc
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object; delete it and {REPRO_HINT}")
    return data


def _unavailable_reason(summary: Mapping[str, Any], metric: str, path: Path) -> str:
    blocks = [summary.get("overall", {}), *summary.get("bins", {}).values()]
    for block in blocks:
        entry = block.get("metrics", {}).get(metric) if isinstance(block, Mapping) else None
        if isinstance(entry, Mapping) and entry.get("reason"):
            return str(entry["reason"])
    return f"marked unavailable in {path}"


def _bins(summary: Mapping[str, Any], path: Path) -> tuple[BinInfo, ...]:
    bins = summary.get("bins")
    if not isinstance(bins, Mapping):
        raise ReportError(f"{path}: no 'bins' (not written by rfr.evaluate.api); {REPRO_HINT}")
    infos = []
    for order, (label, block) in enumerate(bins.items()):
        index = block.get("bin_index", order) if isinstance(block, Mapping) else order
        ratio = block.get("mean_hole_ratio") if isinstance(block, Mapping) else None
        infos.append(BinInfo(str(label), int(index),
                             None if ratio is None else float(ratio)))
    return tuple(sorted(infos, key=lambda info: info.index))


def _check_run_block(summary: Mapping[str, Any], key: RunKey, path: Path) -> None:
    """A summary.json that names another run is stale (copied or renamed): refuse it."""
    run = summary.get("run")
    if not isinstance(run, Mapping):
        return
    expected = {"name": key.name, "dataset": key.dataset, "variant": key.variant,
                "seed": key.seed}
    wrong = {k: run[k] for k in expected if k in run and run[k] != expected[k]}
    if wrong:
        raise ReportError(f"{path}: its 'run' block {dict(run)} does not match run {key.name} "
                          f"({wrong}); the file is stale: delete it and {REPRO_HINT}")


def _train_summary(path: Path, key: RunKey) -> dict[str, Any]:
    data = read_json(path, f"training summary of run {key.name}")
    # Accept the flat dvclive-style keys ("train/total") as well as {"train": {...}}.
    train = dict(data.get("train") or {})
    for name, value in data.items():
        if name.startswith("train/"):
            train.setdefault(name.split("/", 1)[1], value)
    data["train"] = train
    return data


def load_run(results_dir: Path, key: RunKey) -> RunData:
    """Read and check one run's summary.json, per_image.csv and training summary."""
    metrics_dir = results_dir / METRICS_DIR / key.name
    train_dir = results_dir / TRAIN_DIR / key.name
    metrics_path = metrics_dir / SUMMARY_JSON
    csv_path = metrics_dir / PER_IMAGE_CSV
    train_path = train_dir / SUMMARY_JSON
    for path in (metrics_path, csv_path, train_path):
        if not path.is_file():
            raise _missing(path, key)
    summary = read_json(metrics_path, f"evaluation of run {key.name}")
    _check_run_block(summary, key, metrics_path)
    try:
        table = read_per_image_csv(csv_path)
    except (OSError, ValueError, TypeError) as exc:
        raise ReportError(f"{csv_path}: unreadable ({exc}); delete it and {REPRO_HINT}") from exc
    per_image: dict[str, dict[str, float]] = {}
    unavailable: dict[str, str] = {}
    for name in table.metric_names:
        if name in table.unavailable:
            unavailable[name] = _unavailable_reason(summary, name, metrics_path)
            continue
        per_image[name] = {row.image_id: float(row.values[name]) for row in table.rows}
    names = list(table.metric_names)
    for name, info in summary.get("metrics", {}).items():
        if isinstance(info, Mapping) and info.get("kind") == "dataset" and name not in names:
            names.append(name)
    return RunData(
        key=key, metrics_dir=metrics_dir, train_dir=train_dir, summary=summary,
        train=_train_summary(train_path, key),
        image_bins={row.image_id: row.bin for row in table.rows},
        per_image=per_image, unavailable=unavailable, metric_names=tuple(names),
        bins=_bins(summary, metrics_path))


def load_runs(results_dir: Path, keys: list[RunKey]) -> dict[RunKey, RunData]:
    """Every run of ``keys`` (each read once), in the given order."""
    runs: dict[RunKey, RunData] = {}
    for key in keys:
        if key not in runs:
            runs[key] = load_run(results_dir, key)
    return runs


def read_curve(run: RunData, term: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, values) of one training-loss curve (a dvclive TSV), or None if absent."""
    candidates = [run.train_dir / folder / f"{term}.tsv" for folder in CURVES_DIRS]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return None
    steps, values = [], []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames is None or "step" not in reader.fieldnames \
                or term not in reader.fieldnames:
            raise ReportError(f"{path}: expected tab-separated columns 'step' and '{term}', "
                              f"got {reader.fieldnames}; delete it and {REPRO_HINT}")
        for row in reader:
            try:
                step, value = int(float(row["step"])), float(row[term])
            except (TypeError, ValueError) as exc:
                raise ReportError(f"{path}: bad row {row} ({exc})") from exc
            if math.isfinite(value):
                steps.append(step)
                values.append(value)
    return np.asarray(steps), np.asarray(values)


__all__ = ["BinInfo", "RunData", "RunKey", "load_run", "load_runs", "read_curve", "read_json"]
