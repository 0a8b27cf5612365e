"""One table cell: a metric of one method (all its seeds) on one bin, as mean and 95% CI.

The cell is where the three kinds of "no number" of ``rfr.evaluate.aggregate`` are kept apart: an
unavailable metric (LPIPS without weights) stays unavailable with its reason, an undefined
one (hole L1 of a bin without holes) stays undefined, and undefined images are left out of
means instead of counting as 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rfr.report.inputs import RunData
from rfr.report.stats import (
    hierarchical_bootstrap_ci,
    pooled_mean,
    seed_averaged,
    stream_seed,
)

ALL = "all"


@dataclass(frozen=True)
class Summary:
    """status: "ok" (mean set), "unavailable" or "undefined" (reason set)."""

    status: str
    mean: float | None = None
    ci: tuple[float, float] | None = None
    n_seeds: int = 0
    n_images: int = 0
    reason: str = ""
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _bin_name(bin_label: str | None) -> str:
    return ALL if bin_label is None else bin_label


class Summarizer:
    """Cells of any runs/metric/bin, computed once.

    Each cell's bootstrap stream is seeded from the report seed and the cell's data
    identity (dataset, variant, seeds, bin, metric), so the same data get the same
    interval in every table and figure, and adding a row changes no other row.
    """

    def __init__(self, resamples: int, seed: int) -> None:
        self.resamples = resamples
        self.seed = seed
        self._cache: dict[tuple[object, ...], Summary] = {}

    def summary(self, runs: Sequence[RunData], metric: str, bin_label: str | None) -> Summary:
        cache_key = (tuple(run.key for run in runs), metric, bin_label)
        if cache_key not in self._cache:
            if any(run.metric_kind(metric) == "dataset" for run in runs):
                result = self._dataset_metric(runs, metric, bin_label)
            else:
                result = self._per_image_metric(runs, metric, bin_label)
            self._cache[cache_key] = result
        return self._cache[cache_key]

    def _stream(self, runs: Sequence[RunData], metric: str,
                bin_label: str | None) -> np.random.SeedSequence:
        first = runs[0].key
        seeds = ",".join(str(run.key.seed) for run in runs)
        return stream_seed(self.seed, first.dataset, first.variant, seeds,
                           _bin_name(bin_label), metric)

    def _per_image_metric(self, runs: Sequence[RunData], metric: str,
                          bin_label: str | None) -> Summary:
        n_seeds = len(runs)
        for run in runs:
            if metric in run.unavailable:
                return Summary("unavailable", n_seeds=n_seeds, reason=run.unavailable[metric])
            if metric not in run.per_image:
                return Summary("unavailable", n_seeds=n_seeds,
                               reason=f"{metric} was not evaluated in run {run.key.name}")
        ids = list(dict.fromkeys(i for run in runs for i in run.ids_in(bin_label)))
        if not ids:
            return Summary("undefined", n_seeds=n_seeds, reason="no images in this bin")
        matrix = np.asarray([[run.per_image[metric].get(i, math.nan) for i in ids]
                             for run in runs], dtype=np.float64)
        n_images = int(np.isfinite(matrix).any(axis=0).sum())
        if n_images == 0:
            return Summary("undefined", n_seeds=n_seeds,
                           reason=f"{metric} is undefined for every image of this bin")
        ci = hierarchical_bootstrap_ci(matrix, resamples=self.resamples,
                                       seed=self._stream(runs, metric, bin_label))
        note = "" if ci is not None else "one value: no confidence interval"
        return Summary("ok", pooled_mean(matrix), ci, n_seeds, n_images, note=note)

    def _dataset_metric(self, runs: Sequence[RunData], metric: str,
                        bin_label: str | None) -> Summary:
        n_seeds = len(runs)
        values = []
        n_images = 0
        for run in runs:
            entry = run.dataset_entry(metric, bin_label)
            if entry is None:
                return Summary("unavailable", n_seeds=n_seeds,
                               reason=f"{metric} missing from {run.metrics_dir}/summary.json")
            if "value" not in entry:
                status = "undefined" if entry.get("status") == "undefined" else "unavailable"
                return Summary(status, n_seeds=n_seeds,
                               reason=str(entry.get("reason") or entry.get("status")))
            values.append(float(entry["value"]))
            n_images = max(n_images, int(entry.get("n_images", 0)))
        matrix = np.asarray(values, dtype=np.float64)[:, None]  # seeds x 1 "image"
        ci = hierarchical_bootstrap_ci(matrix, resamples=self.resamples,
                                       seed=self._stream(runs, metric, bin_label))
        note = (f"{metric} is dataset-level: "
                + ("CI over seeds only" if ci is not None else "one seed, no CI"))
        return Summary("ok", float(np.mean(matrix)), ci, n_seeds, n_images, note=note)

    def per_image(self, runs: Sequence[RunData], metric: str,
                  bin_label: str | None) -> dict[str, float] | None:
        """Per image id (of the bin), the value averaged over the runs' seeds; None when the
        metric has no per-image values (unavailable, or dataset-level)."""
        if any(metric not in run.per_image for run in runs):
            return None
        return seed_averaged([{i: run.per_image[metric][i] for i in run.ids_in(bin_label)
                               if i in run.per_image[metric]} for run in runs])


__all__ = ["ALL", "Summarizer", "Summary"]
