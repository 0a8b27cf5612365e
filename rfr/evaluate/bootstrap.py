"""The percentile bootstrap of a mean, shared by the per-run metrics and the report.

One resampling for both: `rfr.evaluate.aggregate.bootstrap_ci` (one run's images, the CIs in
``results/metrics/*/summary.json``) calls it with a one-row matrix, and
`rfr.report.stats.hierarchical_bootstrap_ci` (seeds x images, the report's tables) with
one row per training seed. So with one seed the two give the same interval by
construction, draw for draw.

A resample, in the order the random numbers are drawn (which fixes every interval for a
given seed, so changing the order changes published numbers):

1. image ids with replacement: one ``rng.integers(0, n_images, (size, n_images))`` per
   chunk of `CHUNK` // n_images resamples, shared by every seed (each run of a dataset is
   scored on the same (image, hole) pairs);
2. with more than one seed only, seeds with replacement:
   ``rng.integers(0, n_seeds, (size, n_seeds))`` for the same chunk;
3. the statistic: the mean of the defined (finite) values selected, NaN when none is.

The interval is the (1 - confidence) / 2 and (1 + confidence) / 2 percentiles of the
resampled means (linear interpolation, NaN means left out). Streams come from
`stream_seed`: one per (bin, metric) or table cell, so an interval does not change when
other bins, metrics or cells are added.
"""

from __future__ import annotations

import zlib

import numpy as np

CONFIDENCE = 0.95
CHUNK = 1 << 22  # resampled values drawn at once (32 MiB of indices)


def stream_seed(seed: int, *labels: str) -> np.random.SeedSequence:
    """A reproducible random stream per label tuple (crc32 is stable across processes,
    unlike ``hash``), so one cell's interval never depends on which other cells exist."""
    return np.random.SeedSequence([seed, *(zlib.crc32(label.encode()) for label in labels)])


def check_settings(resamples: int, confidence: float) -> None:
    """Raise ValueError unless resamples >= 1 and 0 < confidence < 1."""
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"need resamples >= 1 and 0 < confidence < 1, got {resamples}, "
                         f"{confidence}")


def resampled_means(matrix: np.ndarray, *, resamples: int,
                    seed: int | np.random.SeedSequence) -> np.ndarray:
    """`resamples` bootstrap means of a seeds x images float matrix (non-finite =
    undefined), drawn as the module docstring says; shape (resamples,), NaN for a resample
    that selects no defined value."""
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"expected a non-empty seeds x images matrix, got shape {array.shape}")
    n_seeds, n_images = array.shape
    defined = np.isfinite(array)
    values = np.where(defined, array, 0.0)
    weights = defined.astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, CHUNK // n_images)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        size = stop - start
        image_draw = rng.integers(0, n_images, size=(size, n_images))
        if n_seeds == 1:
            sums = values[0][image_draw].sum(axis=1)
            counts = weights[0][image_draw].sum(axis=1)
        else:
            offsets = (np.arange(size) * n_images)[:, None]
            image_counts = np.bincount((image_draw + offsets).ravel(),
                                       minlength=size * n_images).reshape(size, n_images)
            seed_draw = rng.integers(0, n_seeds, size=(size, n_seeds))
            offsets = (np.arange(size) * n_seeds)[:, None]
            seed_counts = np.bincount((seed_draw + offsets).ravel(),
                                      minlength=size * n_seeds).reshape(size, n_seeds)
            sums = ((seed_counts @ values) * image_counts).sum(axis=1)
            counts = ((seed_counts @ weights) * image_counts).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[start:stop] = sums / counts
    return means


def percentile_interval(means: np.ndarray, confidence: float = CONFIDENCE
                        ) -> tuple[float, float]:
    """The central `confidence` percentile interval of `means`, NaNs left out."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(means, [tail, 100 - tail])
    return float(low), float(high)


def mean_ci(matrix: np.ndarray, *, resamples: int, seed: int | np.random.SeedSequence,
            confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean of a seeds x images matrix (non-finite =
    undefined). Image columns undefined in every seed are dropped first; None when fewer
    than two values are defined (no interval exists)."""
    check_settings(resamples, confidence)
    array = np.asarray(matrix, dtype=np.float64)
    keep = np.isfinite(array).any(axis=0)
    array = array[:, keep]
    if np.isfinite(array).sum() < 2:
        return None
    return percentile_interval(resampled_means(array, resamples=resamples, seed=seed),
                               confidence)


__all__ = [
    "CHUNK",
    "CONFIDENCE",
    "check_settings",
    "mean_ci",
    "percentile_interval",
    "resampled_means",
    "stream_seed",
]
