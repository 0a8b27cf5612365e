"""Table 1 of the paper, reproduced: metrics x hole-ratio bins, one column per method.

Each cell is the mean with its 95% CI over seeds and images; next to each method a
``published`` column holds only numbers cited in published.yaml. The best method of each
row is bold. Rows are per bin and, last, pooled over all bins ("all").

With released-checkpoint runs (``<dataset>-released-0``, the authors' file), the full
model has up to three column groups: "released checkpoint" (that run), "trained here"
(the profile's trained runs, when it has any) and "published". Without them the table
is the one above, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rfr.report.inputs import RunData
from rfr.report.published import ALL_BINS, Published
from rfr.report.summaries import Summarizer, Summary
from rfr.report.tables import (
    RANDOM_VGG_WARNING,
    Cell,
    Footnotes,
    Table,
    best_indexes,
    fmt_ci,
    fmt_metric,
    metric_title,
    number,
    ordered_metrics,
)

CSV_HEADER = ["dataset", "bin", "metric", "method", "mean", "ci_low", "ci_high", "n_seeds",
              "n_images", "published", "citation", "note"]


def bin_labels(runs: Sequence[RunData]) -> list[str]:
    """The bins of any of the runs, in NVIDIA bin order."""
    infos = {info.label: info.index for run in runs for info in run.bins}
    return sorted(infos, key=lambda label: infos[label])


def metric_names(runs: Sequence[RunData]) -> list[str]:
    return ordered_metrics(list(dict.fromkeys(m for run in runs for m in run.metric_names)))


def random_vgg_warning(runs: Sequence[RunData]) -> list[str]:
    """The prominent warning, naming the runs, when any trained with random VGG16."""
    names = [run.key.name for run in runs if run.vgg_random]
    if not names:
        return []
    if len(names) == len(runs) and len(names) > 3:
        return [f"{RANDOM_VGG_WARNING} (all {len(names)} runs here)"]
    return [f"{RANDOM_VGG_WARNING} (runs {', '.join(names)})"]


def summary_cell(metric: str, summary: Summary, notes: Footnotes) -> str:
    """Display text of a summary: mean [CI], or unavailable/undefined with a footnote."""
    if not summary.ok:
        reason = summary.reason
        if not reason.lower().startswith(metric):
            reason = f"{metric}: {reason}"
        return f"{summary.status} [{notes.mark(reason)}]"
    text = fmt_ci(metric, summary.mean, summary.ci)
    if summary.note:
        text += f" [{notes.mark(summary.note)}]"
    return text


def csv_summary(summary: Summary) -> list[str]:
    """mean, ci_low, ci_high cells: numbers, or the status in the mean cell."""
    if not summary.ok:
        return [summary.status, "", ""]
    low, high = summary.ci if summary.ci is not None else (None, None)
    return [number(summary.mean), number(low), number(high)]


RELEASED = "released checkpoint"
TRAINED = "trained here"


def column_groups(methods: Sequence[str], runs: Mapping[str, Sequence[RunData]],
                  released: Mapping[str, Sequence[RunData]]
                  ) -> list[tuple[str, list[tuple[str, Sequence[RunData]]]]]:
    """[(method, [(column label, its runs), ...])]: a method's released run first, then
    its trained runs; the plain method name labels the trained runs when the table has
    no released run at all (the table of a profile without one is unchanged)."""
    any_released = any(released.get(m) for m in methods)
    groups = []
    for method in methods:
        columns: list[tuple[str, Sequence[RunData]]] = []
        if released.get(method):
            columns.append((f"{method} ({RELEASED})", released[method]))
        if runs.get(method):
            columns.append((f"{method} ({TRAINED})" if any_released else method, runs[method]))
        groups.append((method, columns))
    return groups


def methods_table(dataset: str, methods: Sequence[str],
                  runs: Mapping[str, Sequence[RunData]], summarizer: Summarizer,
                  published: Published,
                  released: Mapping[str, Sequence[RunData]] | None = None) -> Table:
    """The ``methods_<dataset>`` table from each method's runs (one per seed) and, in
    ``released``, a method's released-checkpoint run (the full model only)."""
    released = released or {}
    groups = column_groups(methods, runs, released)
    all_runs = [run for _, columns in groups for _, column_runs in columns
                for run in column_runs]
    notes = Footnotes()
    header = ["Metric", "Hole ratio"]
    for method, columns in groups:
        header += [label for label, _ in columns] + [f"{method} (published)"]
    rows: list[list[Cell]] = []
    csv_rows: list[list[str]] = []
    rule_before: set[int] = set()
    levels: list[str | None] = [*bin_labels(all_runs), None]
    for metric in metric_names(all_runs):
        rule_before.add(len(rows))
        for level in levels:
            label = ALL_BINS if level is None else level
            columns = [(method, column, column_runs) for method, cols in groups
                       for column, column_runs in cols]
            summaries = [summarizer.summary(column_runs, metric, level)
                         for _, _, column_runs in columns]
            best = best_indexes(metric, [s.mean if s.ok else None for s in summaries])
            row = [Cell(metric_title(metric)), Cell(label)]
            index = 0
            for method, cols in groups:
                entry = published.get(method, dataset, label, metric)
                cited = ""
                if entry is not None:
                    citation = entry.citation + (f" ({entry.note})" if entry.note else "")
                    cited = f"{fmt_metric(metric, entry.value)} [{notes.mark(citation)}]"
                for column, column_runs in cols:
                    summary = summaries[index]
                    row.append(Cell(summary_cell(metric, summary, notes), index in best))
                    note = ["best"] if index in best else []
                    note += [r for r in (summary.reason, summary.note) if r]
                    if any(run.vgg_random for run in column_runs):
                        note.append(RANDOM_VGG_WARNING)
                    if entry is not None and entry.note:
                        note.append(f"published: {entry.note}")
                    csv_rows.append([dataset, label, metric, column, *csv_summary(summary),
                                     str(summary.n_seeds), str(summary.n_images),
                                     number(entry.value) if entry else "",
                                     entry.citation if entry else "", "; ".join(note)])
                    index += 1
                row.append(Cell(cited))
            rows.append(row)
    return Table(
        name=f"methods_{dataset}",
        title=f"Methods on {dataset}: mean [95% CI] over seeds and images, per hole-ratio bin",
        header=header, rows=rows, csv_header=CSV_HEADER, csv_rows=csv_rows,
        align="ll" + "r" * (len(header) - 2),
        warnings=random_vgg_warning(all_runs),
        notes=[
            f"Mean [95% CI]: two-level percentile bootstrap (seeds, then images) with "
            f"{summarizer.resamples} resamples; undefined images are left out of means. "
            f"Best method per row in bold. L1 in % of the intensity range.",
            f"Published columns hold only numbers cited in {published.path}; empty = none "
            f"cited.",
            *([f"{RELEASED.capitalize()}: the authors' released file, evaluated here on the "
               f"same test pairs (train/<dataset>-released-0/summary.json names it and its "
               f"SHA-256); {TRAINED}: this suite's runs of the profile."]
              if any(released.get(m) for m in methods) else []),
            *notes.lines()],
        rule_before=rule_before)


__all__ = ["CSV_HEADER", "RELEASED", "TRAINED", "bin_labels", "column_groups",
           "methods_table", "metric_names", "random_vgg_warning", "summary_cell"]
