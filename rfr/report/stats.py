"""Statistics of the report: a two-level bootstrap, paired Wilcoxon tests, Holm's method.

**Why two levels.** A method's number varies with the training seed and with the test
images. Resampling only images treats one training run as the method and gives intervals
that are too narrow; resampling only seeds ignores the images. So each bootstrap resample
draws the seeds with replacement and, independently, the image ids with replacement (the
same ids for every drawn seed, because every run of a dataset is scored on the same
(image, hole) pairs), and takes the mean of the selected values. The resampling is
`rfr.evaluate.bootstrap`'s, which `rfr.evaluate.aggregate.bootstrap_ci` uses too, so with
one seed the two are the same computation and the report and the per-run summary.json agree there.

**Why Wilcoxon on per-image values.** Variants of one dataset are scored on the same images
and masks, so a paired test removes the (large) image-to-image variation. Per-image values
are first averaged over the seeds both models have, so the test is about the models, not
about one seed; the two-sided signed-rank test makes no normality assumption.

**Why Holm.** A study tests several variants on several metrics; Holm-Bonferroni controls
the family-wise error rate without the independence that other corrections assume.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from rfr.evaluate.bootstrap import CONFIDENCE, mean_ci, stream_seed


def pooled_mean(matrix: np.ndarray) -> float:
    """Mean of the defined (finite) values of a seeds x images matrix; NaN when none."""
    finite = matrix[np.isfinite(matrix)]
    return float(finite.mean()) if finite.size else math.nan


def hierarchical_bootstrap_ci(matrix: np.ndarray | Sequence[Sequence[float]], *,
                              resamples: int,
                              seed: int | np.random.SeedSequence,
                              confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile interval of the mean of a seeds x images matrix (NaN = undefined).

    Per resample: image ids drawn with replacement (shared by all seeds), then seeds drawn
    with replacement (skipped for one seed); the statistic is the mean of the defined
    values selected. Image columns undefined in every seed are dropped first. Returns None
    when fewer than two values are defined (no interval exists). `rfr.evaluate.bootstrap.mean_ci`.
    """
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected a seeds x images matrix, got shape {array.shape}")
    return mean_ci(array, resamples=resamples, seed=seed, confidence=confidence)


@dataclass(frozen=True)
class PairedTest:
    """A two-sided Wilcoxon signed-rank test of ``a - b`` over paired images.

    p is None when no test exists (fewer than one non-zero difference); note says why.
    """

    p: float | None
    statistic: float | None
    n_pairs: int
    mean_difference: float | None
    note: str = ""


def paired_values(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """Values of the ids present and defined in both, in a's order."""
    ids = [i for i in a if i in b and math.isfinite(a[i]) and math.isfinite(b[i])]
    return (np.asarray([a[i] for i in ids], dtype=np.float64),
            np.asarray([b[i] for i in ids], dtype=np.float64))


def wilcoxon_paired(a: Mapping[str, float], b: Mapping[str, float]) -> PairedTest:
    """Wilcoxon signed-rank test (scipy's defaults, two-sided) of a vs b paired by id."""
    left, right = paired_values(a, b)
    n = int(left.size)
    if n == 0:
        return PairedTest(None, None, 0, None, "no image has a defined value in both")
    differences = left - right
    mean_difference = float(differences.mean())
    if not np.any(differences != 0):
        return PairedTest(None, None, n, mean_difference,
                          "identical values on every image: no test")
    result = scipy_stats.wilcoxon(differences, alternative="two-sided")
    p = float(result.pvalue)
    return PairedTest(p if math.isfinite(p) else None, float(result.statistic), n,
                      mean_difference, "" if math.isfinite(p) else "scipy returned no p")


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in the input order; None stays None and does not
    count towards the family size."""
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(present)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, index) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def seed_averaged(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per image id, the mean of its defined values over the given seeds (NaN if none)."""
    ids = list(dict.fromkeys(i for values in per_seed for i in values))
    averaged = {}
    for image_id in ids:
        values = [v[image_id] for v in per_seed if image_id in v and math.isfinite(v[image_id])]
        averaged[image_id] = sum(values) / len(values) if values else math.nan
    return averaged


__all__ = [
    "CONFIDENCE",
    "PairedTest",
    "hierarchical_bootstrap_ci",
    "holm",
    "paired_values",
    "pooled_mean",
    "seed_averaged",
    "stream_seed",
    "wilcoxon_paired",
]
