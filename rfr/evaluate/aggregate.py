"""Per-image metric rows, per-bin means with bootstrap confidence intervals, CSV and JSON.

Evaluation produces one row per image (id, hole-ratio bin, one value per metric) and one
summary per bin. Three kinds of "no number" are kept apart, because a report must never
show a missing number as 0 or let it vanish into a mean:

- **unavailable** (a whole metric, e.g. LPIPS without the AlexNet weights): the row value
  is None, the table keeps the reason; the CSV cell says ``unavailable``; the JSON entry is
  ``{"status": "unavailable", "reason": ...}`` with no value.
- **undefined for one image** (``l1_hole`` of an image without holes): the row value is
  NaN; the CSV cell is empty; the image is left out of that metric's mean and counted in
  ``n_undefined``. A bin where every image is undefined gets ``{"status": "undefined"}``.
- **dataset-level metrics** (FID) have no per-image value; they enter the JSON per bin
  as one value with ``n_images``, or as unavailable/undefined with the reason.

Confidence intervals: percentile bootstrap of the mean (resample the bin's images with
replacement `resamples` times, default 2000; take the 2.5th and 97.5th percentiles of the
resampled means), computed by `rfr.evaluate.bootstrap`, the resampling the report uses too. Each
(bin, metric) draws from its own stream, seeded from `seed`, the bin and the metric name,
so a CI does not change when other bins or metrics are added. A bin with one value has a
mean but no CI (``ci95: null``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rfr.evaluate.bootstrap import CONFIDENCE, mean_ci, stream_seed
from rfr.evaluate.config import DEFAULT_RESAMPLES
from rfr.evaluate.metrics import HIGHER_IS_BETTER, DatasetMetricResult, MetricResult

FORMAT = "rfr-bench per-bin metrics v1"
UNAVAILABLE_CELL = "unavailable"
DEFAULT_CONFIDENCE = CONFIDENCE
DEFAULT_SEED = 0


@dataclass(frozen=True)
class ImageRecord:
    """One image's metrics. values[name]: a float, NaN (undefined for this image) or None
    (metric unavailable; the reason is in the owning `MetricTable`)."""

    image_id: str
    bin: str
    values: Mapping[str, float | None]


class MetricTable:
    """Rows of per-image metrics plus, per unavailable metric, why it is unavailable.

    Fill it batch by batch with `add_batch` (from `rfr.evaluate.metrics.image_metrics`) or row by
    row with `add`. The first row fixes the metric columns and their order; every later
    row must have the same ones, so a metric can never be silently absent from some rows.
    """

    def __init__(self) -> None:
        self.rows: list[ImageRecord] = []
        self.metric_names: list[str] = []
        self.unavailable: dict[str, str] = {}
        self._ids: set[str] = set()

    def add(self, record: ImageRecord, reasons: Mapping[str, str] | None = None) -> None:
        """Append one row; every None value needs a reason (here or recorded before)."""
        reasons = reasons or {}
        if record.image_id in self._ids:
            raise ValueError(f"duplicate image id {record.image_id!r}")
        if self.rows and list(record.values) != self.metric_names:
            raise ValueError(
                f"{record.image_id}: metrics {list(record.values)} differ from the table's "
                f"{self.metric_names}; every row needs the same metrics (None = unavailable)"
            )
        values: dict[str, float | None] = {}
        new_reasons: dict[str, str] = {}
        for name, value in record.values.items():
            if value is None:
                reason = reasons.get(name) or self.unavailable.get(name)
                if not reason:
                    raise ValueError(f"{record.image_id}: {name} is None (unavailable) but no "
                                     f"reason was given")
                new_reasons[name] = reason
                values[name] = None
            elif isinstance(value, numbers.Real) and not isinstance(value, bool):
                values[name] = float(value)
            else:
                raise TypeError(f"{record.image_id}: {name} must be a real number or None, "
                                f"got {type(value).__name__}")
        for name, reason in new_reasons.items():
            self.unavailable.setdefault(name, reason)
        if not self.rows:
            self.metric_names = list(values)
        self._ids.add(record.image_id)
        self.rows.append(ImageRecord(str(record.image_id), str(record.bin), values))

    def add_batch(self, image_ids: Sequence[str], bins: Sequence[str],
                  results: Mapping[str, MetricResult]) -> None:
        """Append one row per image of a batch of `MetricResult`s (all of length B)."""
        size = len(image_ids)
        if len(bins) != size:
            raise ValueError(f"{size} image ids but {len(bins)} bins")
        columns: dict[str, list[float] | None] = {}
        reasons: dict[str, str] = {}
        for name, result in results.items():
            if result.values is None:
                columns[name] = None
                reasons[name] = result.unavailable_reason or "unavailable"
            else:
                values = [float(v) for v in result.values.reshape(-1).tolist()]
                if len(values) != size:
                    raise ValueError(f"{name}: {len(values)} values for {size} images")
                columns[name] = values
        for index, (image_id, label) in enumerate(zip(image_ids, bins, strict=True)):
            values = {name: None if column is None else column[index]
                      for name, column in columns.items()}
            self.add(ImageRecord(str(image_id), str(label), values), reasons)

    @property
    def bins(self) -> list[str]:
        """Bin labels in the order first seen."""
        return list(dict.fromkeys(row.bin for row in self.rows))


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, resamples: int = DEFAULT_RESAMPLES,
                 confidence: float = DEFAULT_CONFIDENCE,
                 seed: int | np.random.SeedSequence = DEFAULT_SEED) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of `values` (at least 2).

    Draws `resamples` samples of the same size with replacement, takes each sample's mean
    and returns the (1 - confidence) / 2 and (1 + confidence) / 2 percentiles (linear
    interpolation). Deterministic for a given seed. The percentile bootstrap is simple and
    makes no normality assumption; for a few dozen images per bin it is a little narrow,
    which docs/metrics.md states. The resampling is `rfr.evaluate.bootstrap.mean_ci` on one row.
    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size < 2:
        raise ValueError(f"a bootstrap CI needs at least 2 values, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError("bootstrap values must be finite (drop undefined values first)")
    interval = mean_ci(array[None, :], resamples=resamples, seed=seed, confidence=confidence)
    assert interval is not None  # two or more finite values always have one
    return interval


def summarize_metric(values: Sequence[float | None], *, reason: str | None = None,
                     resamples: int = DEFAULT_RESAMPLES,
                     seed: int | np.random.SeedSequence = DEFAULT_SEED) -> dict[str, Any]:
    """The JSON entry of one per-image metric over one set of images (see module doc):
    unavailable if any value is None (never a mean over the available part only)."""
    if reason is not None or any(value is None for value in values):
        return {"status": "unavailable", "reason": reason or "unavailable"}
    finite = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    n_undefined = len(values) - finite.size
    if finite.size == 0:
        return {"status": "undefined", "n_undefined": n_undefined,
                "reason": "no image in this set has a defined value"}
    entry: dict[str, Any] = {"status": "ok", "mean": float(finite.mean()), "n": int(finite.size)}
    if finite.size >= 2:
        entry["ci95"] = list(bootstrap_ci(finite, resamples=resamples, seed=seed))
        entry["std"] = float(finite.std(ddof=1))
    else:
        entry["ci95"] = None
    if n_undefined:
        entry["n_undefined"] = n_undefined
    return entry


def dataset_metric_entry(result: DatasetMetricResult) -> dict[str, Any]:
    """The JSON entry of a dataset-level metric (FID) for one set of images."""
    entry: dict[str, Any] = {"status": result.status, "n_images": result.n_images}
    if result.value is not None:
        entry["value"] = float(result.value)
    else:
        entry["reason"] = result.unavailable_reason
    if result.note:
        entry["note"] = result.note
    return entry


def summarize(table: MetricTable, *,
              dataset_metrics: Mapping[str, Mapping[str, DatasetMetricResult]] | None = None,
              overall_dataset_metrics: Mapping[str, DatasetMetricResult] | None = None,
              resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """The per-bin summary as plain data, ready for `write_bins_json`.

    dataset_metrics: {metric: {bin: result}} (e.g. {"fid": FIDAccumulator.results()});
    overall_dataset_metrics: {metric: result over all images} (FIDAccumulator.result()).
    Layout: {"format", "bootstrap", "metrics": {name: {kind, higher_is_better}},
    "bins": {bin: {"n_images", "metrics": {name: entry}}}, "overall": {same as a bin}}.
    """
    dataset_metrics = dataset_metrics or {}
    overall_dataset_metrics = overall_dataset_metrics or {}
    metrics_info: dict[str, Any] = {}
    for name in table.metric_names:
        metrics_info[name] = {"kind": "per-image", "higher_is_better": HIGHER_IS_BETTER.get(name)}
    for name in list(dataset_metrics) + list(overall_dataset_metrics):
        metrics_info[name] = {"kind": "dataset", "higher_is_better": HIGHER_IS_BETTER.get(name)}

    def summarise_rows(labels: tuple[str, ...], rows: list[ImageRecord]) -> dict[str, Any]:
        entries: dict[str, Any] = {}
        for name in table.metric_names:
            values = [row.values[name] for row in rows]
            entries[name] = summarize_metric(
                values, reason=table.unavailable.get(name) if None in values else None,
                resamples=resamples, seed=stream_seed(seed, *labels, name))
        return {"n_images": len(rows), "metrics": entries}

    bins: dict[str, Any] = {}
    for label in table.bins:
        bins[label] = summarise_rows((label,), [row for row in table.rows if row.bin == label])
        for name, per_bin in dataset_metrics.items():
            if label in per_bin:
                bins[label]["metrics"][name] = dataset_metric_entry(per_bin[label])
    for name, per_bin in dataset_metrics.items():
        stray = [label for label in per_bin if label not in bins]
        if stray:
            raise ValueError(f"{name} has results for bins without rows: {stray}")
    overall = summarise_rows((), table.rows)  # a stream of its own: one label fewer
    for name, result in overall_dataset_metrics.items():
        overall["metrics"][name] = dataset_metric_entry(result)
    return {
        "format": FORMAT,
        "bootstrap": {"method": "percentile", "statistic": "mean", "resamples": resamples,
                      "confidence": DEFAULT_CONFIDENCE, "seed": seed},
        "metrics": metrics_info,
        "bins": bins,
        "overall": overall,
    }


def write_bins_json(summary: Mapping[str, Any], path: str | Path) -> Path:
    """Write the summary; NaN or inf anywhere is an error (JSON has no such numbers, and a
    missing value must be a status, not a NaN)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2, allow_nan=False)
    _atomic_write(path, text + "\n")
    return path


def _format_cell(value: float | None) -> str:
    if value is None:
        return UNAVAILABLE_CELL
    if math.isnan(value):
        return ""
    return repr(float(value))


def write_per_image_csv(table: MetricTable, path: str | Path) -> Path:
    """One row per image: ``id, bin, <metric>...``. Cells: the value (round-trip repr),
    empty for undefined (NaN), ``unavailable`` for an unavailable metric."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "bin", *table.metric_names])
    for row in table.rows:
        writer.writerow([row.image_id, row.bin,
                         *(_format_cell(row.values[name]) for name in table.metric_names)])
    _atomic_write(path, buffer.getvalue())
    return path


def read_per_image_csv(path: str | Path) -> MetricTable:
    """Read a CSV written by `write_per_image_csv` back into a table (the reasons of
    unavailable metrics live in the JSON; here they say where to find them)."""
    path = Path(path)
    table = MetricTable()
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or header[:2] != ["id", "bin"]:
            raise ValueError(f"{path}: not a per-image metrics CSV (header {header!r})")
        names = header[2:]
        for line_number, cells in enumerate(reader, start=2):
            if len(cells) != len(header):
                raise ValueError(f"{path}:{line_number}: {len(cells)} cells, expected "
                                 f"{len(header)}")
            values: dict[str, float | None] = {}
            for name, cell in zip(names, cells[2:], strict=True):
                values[name] = (None if cell == UNAVAILABLE_CELL
                                else math.nan if cell == "" else float(cell))
            reasons = {name: f"marked unavailable in {path} (reason in the per-bin JSON)"
                       for name, value in values.items() if value is None}
            table.add(ImageRecord(cells[0], cells[1], values), reasons)
    return table


def aggregate(table: MetricTable, csv_path: str | Path, json_path: str | Path, *,
              dataset_metrics: Mapping[str, Mapping[str, DatasetMetricResult]] | None = None,
              overall_dataset_metrics: Mapping[str, DatasetMetricResult] | None = None,
              resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Write the per-image CSV and the per-bin JSON; returns the summary."""
    summary = summarize(table, dataset_metrics=dataset_metrics,
                        overall_dataset_metrics=overall_dataset_metrics,
                        resamples=resamples, seed=seed)
    write_per_image_csv(table, csv_path)
    write_bins_json(summary, json_path)
    return summary


def _atomic_write(path: Path, text: str) -> None:
    """Write via a sibling temporary file and rename, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def table_from_records(records: Iterable[ImageRecord],
                       reasons: Mapping[str, str] | None = None) -> MetricTable:
    """A table from ready-made records (tests, other tools)."""
    table = MetricTable()
    for record in records:
        table.add(record, reasons)
    return table


__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "FORMAT",
    "UNAVAILABLE_CELL",
    "ImageRecord",
    "MetricTable",
    "aggregate",
    "bootstrap_ci",
    "dataset_metric_entry",
    "read_per_image_csv",
    "summarize",
    "summarize_metric",
    "table_from_records",
    "write_bins_json",
    "write_per_image_csv",
]
