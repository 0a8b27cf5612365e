"""``write_report``: read every run, build the tables and figures, write them.

Everything that can fail because of the inputs (params, published.yaml, a missing or stale
run file, a grid of the wrong size) is read and checked before anything is written, so a
failed report leaves the previous tables and figures in place. Then ``R/tables``,
``R/figures`` and ``R/plots`` (the data of dvc.yaml's top-level plots,
``rfr.report.plot_data``) are replaced as a whole (a removed variant's table must not
linger), and nothing else in the results folder is touched.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from rfr.config import ConfigError, RFRNetConfig
from rfr.masks import NVIDIA_BINS
from rfr.model.variants import load_variants
from rfr.report import figures
from rfr.report.ablation import ablation_table
from rfr.report.cost import cost_table
from rfr.report.errors import ReportError
from rfr.report.grid import ExampleTiles, read_example_tiles
from rfr.report.inputs import REPRO_HINT, RunData, RunKey, load_runs, read_curve, read_json
from rfr.report.methods import bin_labels, methods_table, random_vgg_warning
from rfr.report.plot_data import PLOTS_DIR, PlotData, plot_data, write_plot_data
from rfr.report.published import Published, load_published
from rfr.report.reach import reach_table
from rfr.report.settings import FULL_MODEL, ReportSettings, parse_settings
from rfr.report.studies import Study, derive_studies
from rfr.report.summaries import Summarizer
from rfr.report.tables import Table, write_table

log = logging.getLogger("rfr.report")

TABLES_DIR = "tables"
FIGURES_DIR = "figures"
ARCHITECTURE_RECURRENCE_DIR = "recurrence"  # written by `rfr recurrence` (a pipeline stage)
CURVE_METRICS = ("psnr", "ssim", "l1")
# The variant of a released-checkpoint run <dataset>-released-0 (rfr.pipeline's
# RELEASED_VARIANT; tests/test_released.py checks they agree).
RELEASED_VARIANT = "released"


@dataclass(frozen=True)
class ReportResult:
    """What the report wrote, and what the reader should know (warnings)."""

    tables_dir: Path
    figures_dir: Path
    tables: tuple[Path, ...]
    figures: tuple[Path, ...]
    warnings: tuple[str, ...]
    plots: tuple[Path, ...] = ()  # R/plots: the data of dvc.yaml's top-level plots


FigureJob = tuple[str, Callable[[], Figure]]


def plan_runs(settings: ReportSettings) -> list[RunKey]:
    """Every run the report reads: compare runs, then the ablation-only runs."""
    keys = [RunKey(d, v, s) for d in settings.compare_datasets
            for v in settings.compare_variants for s in settings.compare_seeds]
    keys += [RunKey(settings.ablation_dataset, v, s) for v in settings.ablation_only_variants
             for s in settings.ablation_seeds]
    return keys


def _id_warnings(runs: Mapping[RunKey, RunData]) -> list[str]:
    """Paired tests assume every run of a dataset scored the same image ids."""
    warnings = []
    first: dict[str, RunData] = {}
    for key, run in runs.items():
        reference = first.setdefault(key.dataset, run)
        if set(run.image_bins) != set(reference.image_bins):
            warnings.append(f"runs {reference.key.name} and {key.name} scored different image "
                            f"ids; only shared ids are paired (re-run `dvc repro` so both use "
                            f"the same images and mask bank)")
    return warnings


def _published_warnings(published: Published, settings: ReportSettings) -> list[str]:
    methods = set(settings.compare_variants)
    datasets = set(settings.compare_datasets)
    unused = [e for e in published.entries if e.method not in methods or e.dataset not in datasets]
    if not unused:
        return []
    return [f"{len(unused)} of {len(published.entries)} entries of {published.path} match no "
            f"compared (method, dataset) and are not shown"]


def _bin_x(runs: Sequence[RunData], label: str) -> float:
    """The bin's mean hole ratio over the runs, or its centre when none is recorded."""
    ratios = [info.mean_hole_ratio for run in runs for info in run.bins
              if info.label == label and info.mean_hole_ratio is not None]
    if ratios:
        return float(np.mean(ratios))
    index = next(info.index for run in runs for info in run.bins if info.label == label)
    low, high = NVIDIA_BINS[index]
    return (low + high) / 2


def _hole_figure(dataset: str, methods: Sequence[str], runs: Mapping[str, Sequence[RunData]],
                 summarizer: Summarizer) -> FigureJob | None:
    all_runs = [run for m in methods for run in runs[m]]
    labels = bin_labels(all_runs)
    data = {}
    for metric in CURVE_METRICS:
        series = {m: [(_bin_x(all_runs, b), summarizer.summary(runs[m], metric, b))
                      for b in labels] for m in methods}
        if any(s.ok for points in series.values() for _, s in points):
            data[metric] = series
    if not data:
        return None
    return f"metric_vs_hole_{dataset}", lambda: figures.metric_vs_hole(dataset, data)


def _iternum_figure(study: Study, dataset: str, runs: Mapping[str, Sequence[RunData]],
                    summarizer: Summarizer) -> FigureJob | None:
    data = {}
    for metric in CURVE_METRICS:
        points = [(int(m.setting), summarizer.summary(runs[m.variant], metric, None))
                  for m in study.members]
        if any(s.ok for _, s in points):
            data[metric] = points
    if not data:
        return None
    full_iter = RFRNetConfig().iter_num
    return "metric_vs_iternum", lambda: figures.metric_vs_iternum(dataset, data, full_iter)


def _qualitative_figure(dataset: str, methods: Sequence[str], runs: Sequence[RunData],
                        bins: Sequence[int], warnings: list[str]) -> FigureJob | None:
    """Tiles read now (a missing tile fails before anything is written), drawn later."""
    skipped = [r.key.name for r in runs if r.evaluation.get("grid_examples") == 0]
    if skipped:
        warnings.append(f"qualitative_{dataset}: runs {skipped} wrote no example tiles "
                        f"(grid_examples 0); figure skipped")
        return None
    grids: list[ExampleTiles] = [read_example_tiles(run, bins) for run in runs]
    present = [b for b in bins if all(b in g.bins for g in grids)]
    missing = [b for b in bins if b not in present]
    if missing:
        warnings.append(f"qualitative_{dataset}: bin(s) {missing} of report.qualitative_bins "
                        f"have no examples in every run; left out")
    if not present:
        return None
    reference = grids[0]
    rows, labels = [], []
    for b in present:
        for grid, run in zip(grids[1:], runs[1:], strict=True):
            if not np.array_equal(grid.tile(b, 0), reference.tile(b, 0)):
                warnings.append(f"qualitative_{dataset}: {run.key.name} shows another masked "
                                f"input than {runs[0].key.name} in bin {b}")
        rows.append([reference.tile(b, 0), *(g.tile(b, 1) for g in grids), reference.tile(b, 2)])
        labels.append(next(i.label for i in runs[0].bins if i.index == b))
    titles = ["masked input", *methods, "ground truth"]
    return f"qualitative_{dataset}", lambda: figures.qualitative(dataset, titles, labels, rows)


def _recurrence_figure(json_path: Path, png_path: Path, source: str, stem: str,
                       warnings: list[str]) -> FigureJob | None:
    """Hole ratio per recurrence (curves per bin) beside the mask tiles, from a
    recurrence.json/.png pair written by rfr.evaluate.recurrence (an evaluated run, or the
    architecture-level pipeline stage)."""
    data = read_json(json_path, f"recurrence of {source}")
    if data.get("status") != "ok":
        warnings.append(f"recurrence: {json_path} says {data.get('status')!r} "
                        f"({data.get('reason', 'no reason')}); figure skipped")
        return None
    bins = data.get("bins")
    if not isinstance(bins, Mapping):
        raise ReportError(f"{json_path}: status ok but no 'bins'; delete it and "
                          f"{REPRO_HINT}")
    try:
        ordered = sorted(bins.items(), key=lambda item: item[1].get("bin_index", 0))
        curves = {label: [float(r) for r in entry["hole_ratio"]] for label, entry in ordered}
        overall = [float(r) for r in (data.get("overall") or {}).get("hole_ratio") or []]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{json_path}: malformed ({type(exc).__name__}: {exc}); "
                          f"delete it and {REPRO_HINT}") from exc
    if not png_path.is_file():
        raise ReportError(f"{png_path}: missing ({source}); {REPRO_HINT}")
    with Image.open(png_path) as opened:
        image = np.asarray(opened.convert("RGB"))
    iter_num = data.get("iter_num", len(next(iter(curves.values()), [0])) - 1)
    size = f", {data['size']}x{data['size']}" if "size" in data else ""
    title = f"RFR-Net's hole shrinking across recurrences\n({source}, IterNum {iter_num}{size})"
    columns = data.get("figure_columns")
    tiles = (", ".join(columns[:2]) + ", ..., " + ", ".join(columns[-1:])
             if isinstance(columns, list) and len(columns) > 3 else None)
    if tiles is None:
        return stem, lambda: figures.recurrence(title, curves, overall, image)
    return stem, lambda: figures.recurrence(title, curves, overall, image, tiles)


def _training_figure(dataset: str, runs: Mapping[str, Sequence[RunData]],
                     warnings: list[str]) -> FigureJob | None:
    curves: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    missing = []
    for variant, group in runs.items():
        for run in group:
            curve = read_curve(run, "total")
            if curve is None:
                missing.append(run.key.name)
            else:
                curves.setdefault(variant, []).append((run.key.seed, *curve))
    if missing:
        warnings.append(f"training_curves: no total-loss curve for runs {missing}")
    if not curves:
        return None
    return "training_curves", lambda: figures.training_curves(dataset, curves)


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def write_report(params: Mapping[str, Any], results_dir: str | Path) -> ReportResult:
    """Write the methods, ablation and cost tables and the figures into
    ``results_dir/tables`` and ``results_dir/figures``, and the top-level plots' data
    into ``results_dir/plots`` (each replaced as a whole).

    params: the parsed params.yaml; only ``compare``, ``ablation`` and ``report`` are read.
    Raises ReportError for anything the user must fix (it names the file and the fix).
    """
    settings = parse_settings(params)
    results_dir = Path(results_dir)
    published = load_published(settings.published)
    try:
        variants = load_variants()
    except ConfigError as exc:
        raise ReportError(f"ablation variants: {exc}") from exc
    studies, warnings = derive_studies(settings.ablation_variants, variants)
    runs = load_runs(results_dir, plan_runs(settings))
    released_runs = load_runs(results_dir, [RunKey(d, RELEASED_VARIANT, 0)
                                            for d in settings.released_datasets])
    warnings += _id_warnings(runs) + _published_warnings(published, settings)
    vgg = random_vgg_warning(list(runs.values()))
    warnings = vgg + warnings
    summarizer = Summarizer(settings.resamples, settings.seed)

    tables: list[Table] = []
    jobs: list[FigureJob | None] = []
    compare: dict[tuple[str, str], list[RunData]] = {
        (d, v): [runs[RunKey(d, v, s)] for s in settings.compare_seeds]
        for d in settings.compare_datasets for v in settings.compare_variants}
    for dataset in settings.compare_datasets:
        by_method = {v: compare[(dataset, v)] for v in settings.compare_variants}
        released = {FULL_MODEL: [run for key, run in released_runs.items()
                                 if key.dataset == dataset]}
        tables.append(methods_table(dataset, settings.compare_variants, by_method, summarizer,
                                    published, released))
        if settings.trains:
            jobs.append(_hole_figure(dataset, settings.compare_variants, by_method,
                                     summarizer))
    if not settings.trains:  # evaluation only: the released runs' methods tables
        return _write_outputs(results_dir, tables, jobs, plot_data(released_runs.values()),
                              warnings)

    ablation_dataset = settings.ablation_dataset
    ablation: dict[str, list[RunData]] = {}
    if settings.ablation_variants:
        ablation = {v: [runs[RunKey(ablation_dataset, v, s)] for s in settings.ablation_seeds]
                    for v in (FULL_MODEL, *settings.ablation_only_variants)}
    for study in studies:
        members = {m.variant: ablation[m.variant] for m in study.members}
        tables.append(ablation_table(study, ablation_dataset, members, summarizer))
        if study.key == "iter_num":
            jobs.append(_iternum_figure(study, ablation_dataset, members, summarizer))
    if not any(study.key == "iter_num" for study in studies):
        warnings.append("no IterNum study among ablation.variants: metric_vs_iternum skipped")

    cost_rows = [(d, v) for d in settings.compare_datasets
                 for v in (*settings.compare_variants,
                           *(settings.ablation_only_variants if d == ablation_dataset else ()))]
    cost_runs = {**compare, **{(ablation_dataset, v): ablation[v]
                               for v in settings.ablation_only_variants}}
    tables.append(cost_table(cost_rows, cost_runs))

    first_seed = settings.compare_seeds[0]
    for dataset in settings.compare_datasets:
        jobs.append(_qualitative_figure(
            dataset, settings.compare_variants,
            [runs[RunKey(dataset, v, first_seed)] for v in settings.compare_variants],
            settings.qualitative_bins, warnings))
    if FULL_MODEL in settings.compare_variants:
        full = runs.get(RunKey(ablation_dataset, FULL_MODEL, settings.ablation_seeds[0]))
        if full is not None:
            jobs.append(_recurrence_figure(full.recurrence_json, full.recurrence_png,
                                           f"trained run {full.key.name}", "recurrence",
                                           warnings))
    architecture = results_dir / ARCHITECTURE_RECURRENCE_DIR
    if (architecture / "recurrence.json").is_file():
        record = read_json(architecture / "recurrence.json", "rfr recurrence")
        if isinstance(record.get("reach"), Mapping):
            tables.append(reach_table(record["reach"], architecture / "recurrence.json"))
        else:
            warnings.append(f"{architecture / 'recurrence.json'} has no 'reach' record: "
                            f"reach table skipped; {REPRO_HINT}")
        jobs.append(_recurrence_figure(architecture / "recurrence.json",
                                       architecture / "recurrence.png",
                                       "released architecture, untrained: masks do not "
                                       "depend on the weights",
                                       "recurrence_architecture", warnings))
    else:
        warnings.append(f"no {architecture / 'recurrence.json'} (rfr recurrence): "
                        f"recurrence_architecture figure skipped")
    curve_runs = ablation or ({FULL_MODEL: compare[(ablation_dataset, FULL_MODEL)]}
                              if FULL_MODEL in settings.compare_variants else {})
    jobs.append(_training_figure(ablation_dataset, curve_runs, warnings))
    plots = plot_data([*runs.values(), *released_runs.values()])
    return _write_outputs(results_dir, tables, jobs, plots, warnings)


def _write_outputs(results_dir: Path, tables: Sequence[Table],
                   jobs: Sequence[FigureJob | None], plots: Sequence[PlotData],
                   warnings: Sequence[str]) -> ReportResult:
    """Replace R/tables, R/figures and R/plots with the report's outputs."""
    tables_dir = _fresh_dir(results_dir / TABLES_DIR)
    figures_dir = _fresh_dir(results_dir / FIGURES_DIR)
    table_paths = [path for table in tables for path in write_table(table, tables_dir)]
    plot_paths = write_plot_data(plots, _fresh_dir(results_dir / PLOTS_DIR))
    figure_paths = []
    for job in jobs:
        if job is None:
            continue
        stem, render = job
        figure_paths += figures.save_figure(render(), figures_dir, stem)
    for warning in warnings:
        log.warning("%s", warning)
    return ReportResult(tables_dir, figures_dir, tuple(table_paths), tuple(figure_paths),
                        tuple(warnings), tuple(plot_paths))


__all__ = ["ReportResult", "plan_runs", "write_report"]
