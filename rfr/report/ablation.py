"""Ablation tables: each study's variants against the full model, with paired tests.

For every variant and metric: mean [95% CI] over seeds and images (all bins pooled in the
display table; the CSV also has one row per bin), the difference from the full model, and
a two-sided Wilcoxon signed-rank test against the full model on per-image values averaged
over the seeds both have, paired by image id. p-values are Holm-adjusted within the study:
the family is every (variant, metric) test of the study at the same bin level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rfr.report.inputs import RunData
from rfr.report.methods import bin_labels, csv_summary, metric_names, random_vgg_warning
from rfr.report.methods import summary_cell as _summary_cell
from rfr.report.published import ALL_BINS
from rfr.report.settings import FULL_MODEL
from rfr.report.stats import PairedTest, holm, wilcoxon_paired
from rfr.report.studies import Study
from rfr.report.summaries import Summarizer, Summary
from rfr.report.tables import (
    Cell,
    Footnotes,
    Table,
    fmt_delta,
    fmt_p,
    metric_title,
    number,
)

CSV_HEADER = ["study", "dataset", "variant", "setting", "bin", "metric", "mean", "ci_low",
              "ci_high", "delta_vs_full", "p_wilcoxon", "p_holm", "n_pairs", "n_seeds", "note"]


@dataclass(frozen=True)
class Comparison:
    """One variant vs the full model on one metric and bin level."""

    summary: Summary
    delta: float | None
    test: PairedTest | None
    p_holm: float | None = None


def paired_test(variant_runs: Sequence[RunData], full_runs: Sequence[RunData], metric: str,
                level: str | None, summarizer: Summarizer) -> PairedTest | None:
    """The Wilcoxon test on the seeds common to both; None without per-image values."""
    seeds = {run.key.seed for run in variant_runs} & {run.key.seed for run in full_runs}
    if not seeds:
        return PairedTest(None, None, 0, None, "no seed in common with the full model")
    ours = summarizer.per_image([r for r in variant_runs if r.key.seed in seeds], metric, level)
    full = summarizer.per_image([r for r in full_runs if r.key.seed in seeds], metric, level)
    if ours is None or full is None:
        return None
    return wilcoxon_paired(ours, full)


def compare_study(study: Study, runs: Mapping[str, Sequence[RunData]], metrics: Sequence[str],
                  levels: Sequence[str | None], summarizer: Summarizer,
                  ) -> dict[tuple[str, str, str | None], Comparison]:
    """Every (variant, metric, level) of the study; Holm within each level."""
    full_runs = runs[FULL_MODEL]
    results: dict[tuple[str, str, str | None], Comparison] = {}
    for level in levels:
        keys, tests = [], []
        for member in study.members:
            for metric in metrics:
                summary = summarizer.summary(runs[member.variant], metric, level)
                if member.variant == FULL_MODEL:
                    results[(member.variant, metric, level)] = Comparison(summary, None, None)
                    continue
                reference = summarizer.summary(full_runs, metric, level)
                delta = None
                if summary.mean is not None and reference.mean is not None:
                    delta = summary.mean - reference.mean
                test = paired_test(runs[member.variant], full_runs, metric, level, summarizer)
                results[(member.variant, metric, level)] = Comparison(summary, delta, test)
                keys.append((member.variant, metric, level))
                tests.append(test.p if test is not None else None)
        for key, adjusted in zip(keys, holm(tests), strict=True):
            old = results[key]
            results[key] = Comparison(old.summary, old.delta, old.test, adjusted)
    return results


def _note(comparison: Comparison, variant: str, vgg_random: bool) -> str:
    parts = []
    if variant == FULL_MODEL:
        parts.append("reference (full model)")
    if comparison.summary.reason:
        parts.append(comparison.summary.reason)
    if comparison.summary.note:
        parts.append(comparison.summary.note)
    if variant != FULL_MODEL and comparison.test is None:
        parts.append("no per-image values: no paired test")
    elif comparison.test is not None and comparison.test.note:
        parts.append(comparison.test.note)
    if vgg_random:
        parts.append("trained with random VGG16 weights")
    return "; ".join(parts)


def ablation_table(study: Study, dataset: str, runs: Mapping[str, Sequence[RunData]],
                   summarizer: Summarizer) -> Table:
    """The ``ablation_<study>`` table; ``runs`` maps each member variant to its runs."""
    members = [runs[m.variant] for m in study.members]
    all_runs = [run for member_runs in members for run in member_runs]
    metrics = metric_names(all_runs)
    levels: list[str | None] = [None, *bin_labels(all_runs)]
    results = compare_study(study, runs, metrics, levels, summarizer)
    notes = Footnotes()
    header = ["Metric", "Variant", study.key, "Mean [95% CI]", "Δ vs full", "p (Wilcoxon)",
              "p (Holm)", "n pairs"]
    rows: list[list[Cell]] = []
    rule_before: set[int] = set()
    for metric in metrics:
        rule_before.add(len(rows))
        for index, member in enumerate(study.members):
            comparison = results[(member.variant, metric, None)]
            test = comparison.test
            rows.append([
                Cell(metric_title(metric) if index == 0 else ""),
                Cell(member.variant, member.variant == FULL_MODEL),
                Cell(member.setting),
                Cell(_summary_cell(metric, comparison.summary, notes)),
                Cell(fmt_delta(metric, comparison.delta)),
                Cell(fmt_p(test.p) if test is not None else ""),
                Cell(fmt_p(comparison.p_holm)),
                Cell(str(test.n_pairs) if test is not None else ""),
            ])
    csv_rows = []
    for level in levels:
        for member in study.members:
            vgg = any(run.vgg_random for run in runs[member.variant])
            for metric in metrics:
                comparison = results[(member.variant, metric, level)]
                test = comparison.test
                csv_rows.append([
                    study.name, dataset, member.variant, member.setting,
                    ALL_BINS if level is None else level, metric,
                    *csv_summary(comparison.summary), number(comparison.delta),
                    number(test.p) if test is not None else "", number(comparison.p_holm),
                    str(test.n_pairs) if test is not None else "",
                    str(comparison.summary.n_seeds), _note(comparison, member.variant, vgg)])
    return Table(
        name=f"ablation_{study.name}",
        title=f"Ablation of the {study.title} on {dataset}: all hole-ratio bins pooled",
        header=header, rows=rows, csv_header=CSV_HEADER, csv_rows=csv_rows,
        align="lllrrrrr", warnings=random_vgg_warning(all_runs),
        notes=[
            f"Reference: the full model {FULL_MODEL} (bold). Mean [95% CI] over seeds and "
            f"images (two-level percentile bootstrap, {summarizer.resamples} resamples); "
            f"Δ = variant mean - full-model mean; L1 in %.",
            "p (Wilcoxon): two-sided signed-rank test against the full model on per-image "
            "values averaged over the seeds both have, paired by image id. p (Holm): "
            "Holm-Bonferroni adjusted over every (variant, metric) test of this study. "
            "Per-bin rows are in the CSV.",
            *notes.lines()],
        rule_before=rule_before)


__all__ = ["CSV_HEADER", "Comparison", "ablation_table", "compare_study", "paired_test"]
