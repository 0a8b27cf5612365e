"""The data of dvc.yaml's top-level plots: every run's series in one long-format CSV.

DVC overlays series only inside one plot definition, and a top-level plot names its data
files literally: it cannot be templated over the params matrix, whose runs differ per
profile (demo, smoke, rehearsal, paper). Per-stage plots of each run's own files give one
plot per run and series instead (168 on the demo profile). So the report, which knows
every run of the profile, writes ``R/plots/``:

- ``train_loss.csv``: ``run, dataset, variant, seed, step`` and one column per loss term,
  from each run's dvclive curves (``R/train/<run>/plots/metrics/train/<term>.tsv``);
- ``bins.csv``: the same run columns, then each run's bins.csv row (``bin, bin_index,
  mean_hole_ratio`` and the metric means), built by the writer of the per-run bins.csv
  from the same summary.json, so the numbers are the same.

dvc.yaml draws them with the ``runs`` templates in ``.dvc/plots/``, which colour the lines
by the ``run`` column (DVC's own templates colour by file, field and revision only).

A curve longer than ``MAX_CURVE_POINTS`` rows keeps every k-th step and its last one: a
paper-profile run logs millions of steps, and the plots page embeds every point. The
report's own training figure and the per-run TSVs keep every step.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rfr.atomic import write_text_atomic
from rfr.evaluate.summary_files import bins_rows
from rfr.report.errors import ReportError
from rfr.report.inputs import REPRO_HINT, RunData, read_curve

PLOTS_DIR = "plots"
TRAIN_LOSS_CSV = "train_loss.csv"
BINS_CSV = "bins.csv"
RUN_COLUMNS = ("run", "dataset", "variant", "seed")
LOSS_TERMS = ("total", "valid", "hole", "perceptual", "style", "tv")
MAX_CURVE_POINTS = 500


@dataclass(frozen=True)
class PlotData:
    """One CSV of ``R/plots``: its file name, header and rows of cells."""

    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _run_cells(run: RunData) -> tuple[str, ...]:
    return run.key.name, run.key.dataset, run.key.variant, str(run.key.seed)


def thin(steps: Sequence[int], limit: int = MAX_CURVE_POINTS) -> list[int]:
    """At most about ``limit`` of ``steps`` (sorted): every k-th one and the last."""
    if len(steps) <= limit:
        return list(steps)
    every = math.ceil(len(steps) / limit)
    kept = list(steps[::every])
    if kept[-1] != steps[-1]:
        kept.append(steps[-1])
    return kept


def train_loss_data(runs: Iterable[RunData]) -> PlotData:
    """train_loss.csv: one row per run and kept step that has a finite total loss (a
    row without one would draw as a gap or a zero); other terms may be empty cells."""
    rows: list[tuple[str, ...]] = []
    for run in runs:
        values: dict[str, dict[int, float]] = {}
        for term in LOSS_TERMS:
            curve = read_curve(run, term)
            if curve is not None:
                values[term] = {int(s): float(v) for s, v in zip(*curve, strict=True)}
        for step in thin(sorted(values.get("total", {}))):
            rows.append((*_run_cells(run), str(step),
                         *(repr(values[t][step]) if step in values.get(t, {}) else ""
                           for t in LOSS_TERMS)))
    return PlotData(TRAIN_LOSS_CSV, (*RUN_COLUMNS, "step", *LOSS_TERMS), tuple(rows))


def bins_data(runs: Iterable[RunData]) -> PlotData:
    """bins.csv: every run's bins, with the union of their metric columns (a run without
    LPIPS has empty cells there)."""
    per_run: list[tuple[RunData, list[list[str]]]] = []
    header: list[str] = []
    for run in runs:
        try:
            table = bins_rows(run.summary)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReportError(f"{run.metrics_dir}/summary.json: bins without bin_index or "
                              f"mean_hole_ratio ({type(exc).__name__}: {exc}); delete it "
                              f"and {REPRO_HINT}") from exc
        header += [column for column in table[0] if column not in header]
        per_run.append((run, table))
    rows = []
    for run, table in per_run:
        for cells in table[1:]:
            by_column = dict(zip(table[0], cells, strict=True))
            rows.append((*_run_cells(run), *(by_column.get(c, "") for c in header)))
    return PlotData(BINS_CSV, (*RUN_COLUMNS, *header), tuple(rows))


def plot_data(runs: Iterable[RunData]) -> list[PlotData]:
    """Both CSVs, built (and checked) before the report writes anything."""
    runs = list(runs)
    return [train_loss_data(runs), bins_data(runs)]


def write_plot_data(data: Sequence[PlotData], directory: Path) -> list[Path]:
    """Write each CSV into ``directory`` (which the caller has emptied)."""
    paths = []
    for item in data:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(item.header)
        writer.writerows(item.rows)
        paths.append(write_text_atomic(directory / item.name, buffer.getvalue()))
    return paths


__all__ = ["BINS_CSV", "MAX_CURVE_POINTS", "PLOTS_DIR", "TRAIN_LOSS_CSV", "PlotData",
           "bins_data", "plot_data", "thin", "train_loss_data", "write_plot_data"]
