"""The one bootstrap (rfr/evaluate/bootstrap.py) behind the per-run CIs
(rfr.evaluate.aggregate.bootstrap_ci, summary.json) and the report's
(rfr.report.stats.hierarchical_bootstrap_ci): the two agree draw for draw on one seed, the
draws come in the documented order, and every interval is a function of its inputs and
stream only. Expected values come from the functions or from numpy directly, never from
pinned numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rfr.evaluate.aggregate
import rfr.report.stats
from rfr.evaluate.aggregate import ImageRecord, bootstrap_ci, summarize, table_from_records
from rfr.evaluate.bootstrap import (
    CHUNK,
    check_settings,
    mean_ci,
    percentile_interval,
    resampled_means,
    stream_seed,
)
from rfr.report.stats import hierarchical_bootstrap_ci

CASES = [  # (n values, resamples, seed): the last one spans several chunks
    (2, 2000, 0),
    (20, 2000, 7),
    (37, 500, stream_seed(0, "demo", "psnr")),
    (3000, 3 * (CHUNK // 3000) + 5, 1),
]


@pytest.mark.parametrize(("n", "resamples", "seed"), CASES)
def test_one_seed_is_the_same_interval_in_aggregate_and_report(n, resamples, seed) -> None:
    values = np.random.default_rng(n).normal(30, 2, size=n)
    single = bootstrap_ci(values, resamples=resamples, seed=seed)
    assert single == hierarchical_bootstrap_ci(values[None, :], resamples=resamples, seed=seed)
    assert single == mean_ci(values[None, :], resamples=resamples, seed=seed)
    assert single == bootstrap_ci(values, resamples=resamples, seed=seed)  # deterministic


def test_one_seed_with_undefined_images_is_the_bootstrap_of_the_defined_ones() -> None:
    values = np.random.default_rng(4).normal(size=30)
    with_gaps = values.copy()
    with_gaps[[3, 17, 29]] = math.nan
    assert (hierarchical_bootstrap_ci(with_gaps[None, :], resamples=800, seed=2)
            == bootstrap_ci(values[np.isfinite(with_gaps)], resamples=800, seed=2))


def test_draws_come_in_the_documented_order() -> None:
    rng = np.random.default_rng(5)
    row = rng.normal(size=25)
    want = row[np.random.default_rng(9).integers(0, 25, size=(300, 25))].mean(axis=1)
    assert np.array_equal(resampled_means(row[None, :], resamples=300, seed=9), want)

    matrix = rng.normal(size=(3, 25))
    matrix[1, 4] = math.nan  # undefined in one seed only
    draws = np.random.default_rng(9)
    images = draws.integers(0, 25, size=(300, 25))  # image ids first, shared by the seeds
    seeds = draws.integers(0, 3, size=(300, 3))  # then the seeds
    want = []
    for image_ids, seed_ids in zip(images, seeds, strict=True):
        selected = matrix[seed_ids][:, image_ids]
        want.append(selected[np.isfinite(selected)].mean())
    got = resampled_means(matrix, resamples=300, seed=9)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_streams_are_shared_and_per_label() -> None:
    assert rfr.evaluate.aggregate.stream_seed is rfr.report.stats.stream_seed is stream_seed
    matrix = np.random.default_rng(6).normal(size=(2, 30))
    first = mean_ci(matrix, resamples=400, seed=stream_seed(0, "a", "psnr"))
    assert first == mean_ci(matrix, resamples=400, seed=stream_seed(0, "a", "psnr"))
    assert first != mean_ci(matrix, resamples=400, seed=stream_seed(0, "b", "psnr"))

    values = np.random.default_rng(7).normal(30, 2, size=12)
    rows = [ImageRecord(f"i{k}", "low", {"psnr": float(v)}) for k, v in enumerate(values)]
    entry = summarize(table_from_records(rows), resamples=300, seed=4)["bins"]["low"]
    assert entry["metrics"]["psnr"]["ci95"] == list(
        bootstrap_ci(values, resamples=300, seed=stream_seed(4, "low", "psnr")))


def test_interval_leaves_out_empty_resamples_and_settings_are_checked() -> None:
    means = np.array([1.0, math.nan, 2.0, 3.0, math.nan])
    assert percentile_interval(means, 0.5) == percentile_interval(means[np.isfinite(means)], 0.5)
    assert mean_ci(np.array([[1.0, math.nan]]), resamples=10, seed=0) is None
    for resamples, confidence in ((0, 0.95), (10, 1.0), (10, 0.0)):
        with pytest.raises(ValueError, match="resamples >= 1"):
            check_settings(resamples, confidence)
        with pytest.raises(ValueError, match="resamples >= 1"):
            bootstrap_ci([1.0, 2.0], resamples=resamples, confidence=confidence)
        with pytest.raises(ValueError, match="resamples >= 1"):
            hierarchical_bootstrap_ci([[1.0, 2.0]], resamples=resamples, confidence=confidence,
                                      seed=0)
