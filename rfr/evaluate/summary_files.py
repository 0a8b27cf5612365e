"""The three summary files of an evaluation: summary.json, metrics.json and bins.csv.

``summary.json`` is the whole record (per-bin means with CIs, provenance, latency): what
the report reads. ``metrics.json`` and ``bins.csv`` are views of it for DVC:
``dvc metrics show`` wants a small flat file of numbers (the summary is thousands of
characters on one row of its table), and ``dvc plots`` wants one row per bin so that a
metric can be drawn against the mean hole ratio and overlaid across runs. Neither view
carries a reason or a status: a metric without a number is left out (metrics.json) or
its column is (bins.csv), and the reason stays in summary.json.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rfr.atomic import write_json_atomic, write_text_atomic
from rfr.evaluate.aggregate import write_bins_json

FLAT_METRICS = ("psnr", "ssim", "l1", "l1_hole", "lpips", "fid")
ALWAYS_IN_BINS = ("psnr", "ssim", "l1", "l1_hole")  # lpips/fid only when available
BINS_COLUMNS = ("bin", "bin_index", "mean_hole_ratio")


def entry_number(entry: Mapping[str, Any] | None) -> float | None:
    """The number of one summary entry (``mean`` of a per-image metric, ``value`` of a
    dataset metric), or None when it has none (unavailable, undefined, absent)."""
    if not entry or entry.get("status", "ok") != "ok":
        return None
    value = entry.get("mean", entry.get("value"))
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def flat_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """metrics.json: the overall mean of each metric with a number, then ms_per_image."""
    overall = summary["overall"]["metrics"]
    flat = {name: number for name in FLAT_METRICS
            if (number := entry_number(overall.get(name))) is not None}
    latency = summary.get("latency") or {}
    ms = latency.get("ms_per_image")
    if ms is not None and math.isfinite(float(ms)):
        flat["ms_per_image"] = float(ms)
    return flat


def available_in_bins(summary: Mapping[str, Any]) -> list[str]:
    """The metric columns of bins.csv: the four pixel metrics, then lpips/fid where the
    run computed them (not unavailable overall)."""
    overall = summary["overall"]["metrics"]
    columns = list(ALWAYS_IN_BINS)
    for name in ("lpips", "fid"):
        entry = overall.get(name)
        if entry is not None and entry.get("status") != "unavailable":
            columns.append(name)
    return columns


def bins_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """bins.csv as rows of cells (header first). A per-bin value without a number (FID
    of a one-image bin, l1_hole of a bin without holes) is an empty cell, as in
    per_image.csv; floats are repr() so they read back exactly."""
    metrics = available_in_bins(summary)
    rows = [[*BINS_COLUMNS, *metrics]]
    for label, entry in summary["bins"].items():
        cells = [label, str(int(entry["bin_index"])), repr(float(entry["mean_hole_ratio"]))]
        for name in metrics:
            number = entry_number(entry["metrics"].get(name))
            cells.append("" if number is None else repr(number))
        rows.append(cells)
    return rows


def write_summary_json(summary: Mapping[str, Any], path: Path) -> Path:
    return write_bins_json(summary, path)


def write_metrics_json(summary: Mapping[str, Any], path: Path) -> Path:
    return write_json_atomic(path, flat_metrics(summary), indent=2, allow_nan=False)


def write_bins_csv(summary: Mapping[str, Any], path: Path) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(bins_rows(summary))
    return write_text_atomic(path, buffer.getvalue())


__all__ = [
    "FLAT_METRICS",
    "available_in_bins",
    "bins_rows",
    "entry_number",
    "flat_metrics",
    "write_bins_csv",
    "write_metrics_json",
    "write_summary_json",
]
