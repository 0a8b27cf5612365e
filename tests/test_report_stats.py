"""The report's statistics and small building blocks, checked against hand computations
and scipy: two-level bootstrap, paired Wilcoxon, Holm, study derivation, writers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from rfr.evaluate.aggregate import bootstrap_ci
from rfr.model.variants import Variant, load_variants
from rfr.report.stats import (
    hierarchical_bootstrap_ci,
    holm,
    pooled_mean,
    seed_averaged,
    stream_seed,
    wilcoxon_paired,
)
from rfr.report.studies import derive_studies
from rfr.report.tables import Cell, Table, fmt_delta, latex_escape, to_latex, to_markdown


def test_one_seed_is_exactly_the_image_bootstrap_of_rfr_aggregate() -> None:
    values = np.random.default_rng(3).normal(30, 2, size=40)
    ours = hierarchical_bootstrap_ci(values[None, :], resamples=500,
                                     seed=stream_seed(0, "a", "psnr"))
    theirs = bootstrap_ci(values, resamples=500, seed=stream_seed(0, "a", "psnr"))
    assert ours == theirs


def test_interval_contains_the_mean_and_narrows_with_more_images() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 100, 1000):
        matrix = rng.normal(30, 2, size=(2, n))
        low, high = hierarchical_bootstrap_ci(matrix, resamples=400, seed=1)
        assert low < pooled_mean(matrix) < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_seed_resampling_widens_the_interval_when_seeds_disagree() -> None:
    images = np.random.default_rng(1).normal(30, 1, size=50)
    agree = np.stack([images, images + 0.01])
    disagree = np.stack([images, images + 2.0])
    low_a, high_a = hierarchical_bootstrap_ci(agree, resamples=400, seed=0)
    low_d, high_d = hierarchical_bootstrap_ci(disagree, resamples=400, seed=0)
    assert high_d - low_d > 2 * (high_a - low_a)
    # the resampled seeds reach both runs: the interval spans most of the 2 dB offset
    assert low_d < images.mean() + 0.5 and high_d > images.mean() + 1.5


def test_undefined_values_are_left_out_and_too_few_values_give_no_interval() -> None:
    matrix = np.asarray([[1.0, math.nan, 3.0], [math.nan, math.nan, 5.0]])
    assert pooled_mean(matrix) == pytest.approx(3.0)
    low, high = hierarchical_bootstrap_ci(matrix, resamples=200, seed=0)
    assert 1.0 <= low <= high <= 5.0
    assert hierarchical_bootstrap_ci(np.asarray([[2.0, math.nan]]), resamples=10, seed=0) is None
    assert math.isnan(pooled_mean(np.full((2, 2), math.nan)))


def test_bootstrap_is_reproducible_per_label_and_independent_across_labels() -> None:
    matrix = np.random.default_rng(2).normal(size=(2, 30))
    first = hierarchical_bootstrap_ci(matrix, resamples=300, seed=stream_seed(0, "x", "psnr"))
    again = hierarchical_bootstrap_ci(matrix, resamples=300, seed=stream_seed(0, "x", "psnr"))
    other = hierarchical_bootstrap_ci(matrix, resamples=300, seed=stream_seed(0, "y", "psnr"))
    assert first == again and first != other


def test_wilcoxon_equals_scipy_on_the_paired_differences() -> None:
    rng = np.random.default_rng(5)
    full = {f"img{i}": float(v) for i, v in enumerate(rng.normal(30, 1, 25))}
    shifted = {k: v - 0.5 + float(rng.normal(0, 0.1)) for k, v in full.items()}
    noisy = {k: v + float(rng.normal(0, 0.5)) for k, v in full.items()}
    for variant in (shifted, noisy):
        test = wilcoxon_paired(variant, full)
        differences = np.asarray([variant[k] - full[k] for k in full])
        expected = scipy_stats.wilcoxon(differences)
        assert test.p == pytest.approx(expected.pvalue, rel=1e-12)
        assert test.statistic == expected.statistic and test.n_pairs == 25
    assert wilcoxon_paired(shifted, full).p < 1e-4
    assert wilcoxon_paired(noisy, full).p > 0.05


def test_wilcoxon_pairs_by_id_and_says_when_there_is_no_test() -> None:
    a = {"x": 1.0, "y": 2.0, "z": math.nan, "only_a": 5.0}
    b = {"y": 2.5, "x": 1.5, "z": 3.0}
    test = wilcoxon_paired(a, b)
    assert test.n_pairs == 2 and test.mean_difference == pytest.approx(-0.5)
    same = wilcoxon_paired({"x": 1.0}, {"x": 1.0})
    assert same.p is None and "identical" in same.note
    assert wilcoxon_paired({"x": 1.0}, {"y": 1.0}).n_pairs == 0


def test_holm_against_a_hand_computation() -> None:
    # sorted: 0.01 x 4 = 0.04; 0.03 x 3 = 0.09; 0.04 x 2 = 0.08 -> 0.09 (monotone); 0.2 x 1
    assert holm([0.01, 0.04, 0.03, None, 0.2]) == pytest.approx(
        [0.04, 0.09, 0.09, None, 0.2])
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([]) == [] and holm([None]) == [None]


def test_seed_average_skips_undefined_values() -> None:
    averaged = seed_averaged([{"a": 1.0, "b": math.nan}, {"a": 3.0, "b": 4.0, "c": math.nan}])
    assert averaged["a"] == 2.0 and averaged["b"] == 4.0 and math.isnan(averaged["c"])


def test_studies_are_derived_from_the_repository_deltas() -> None:
    names = ["rfr_iter8", "rfr_no_kca", "rfr_concat_merge", "rfr_iter1", "rfr_naive_attention"]
    studies, warnings = derive_studies(names, load_variants())
    assert warnings == []
    table = {s.name: [(m.variant, m.setting) for m in s.members] for s in studies}
    assert table == {
        "attention": [("rfr", "kca"), ("rfr_no_kca", "none"), ("rfr_naive_attention", "naive")],
        "merge": [("rfr", "adaptive"), ("rfr_concat_merge", "concat")],
        "iternum": [("rfr_iter1", "1"), ("rfr", "6"), ("rfr_iter8", "8")],
    }


def test_study_names_follow_the_delta_not_the_variant_name() -> None:
    variants = {
        "small_kernel": Variant("small_kernel", "rfr", {"kernel_size": 5}),
        "deep": Variant("deep", "rfr", {"iter_num": 10}),
        "two_keys": Variant("two_keys", "rfr", {"iter_num": 3, "merge": "concat"}),
        "pconv": Variant("pconv", "pconv", {}),
    }
    studies, warnings = derive_studies(list(variants), variants)
    assert [(s.name, [m.setting for m in s.members]) for s in studies] == [
        ("iternum", ["6", "10"]), ("kernel_size", ["5", "7"])]  # numeric: ascending
    assert any("two_keys" in w for w in warnings) and any("pconv" in w for w in warnings)


def test_writers_escape_special_characters() -> None:
    table = Table(name="t_x", title="50% of a_b", header=["Metric", "Δ"],
                  rows=[[Cell("a|b"), Cell("1 & 2", bold=True)]],
                  csv_header=["a"], csv_rows=[["1"]], notes=["[a] $5 #1 ~x^2 {y}"])
    tex = to_latex(table)
    assert r"50\% of a\_b" in tex and r"\textbf{1 \& 2}" in tex and r"$\Delta$" in tex
    assert r"\$5 \#1 \textasciitilde{}x\textasciicircum{}2 \{y\}" in tex
    assert latex_escape("back\\slash") == r"back\textbackslash{}slash"
    markdown = to_markdown(table)
    assert r"| a\|b | **1 & 2** |" in markdown
    assert fmt_delta("ssim", -1e-7) == "0.0000" and fmt_delta("psnr", 0.5) == "+0.50"
    assert fmt_delta("l1", -0.001) == "-0.10"
