"""The report's figures, rendered with matplotlib's Agg canvas, byte-deterministic.

Each figure is written as PNG and PDF. Determinism matters because the pipeline (DVC)
tracks the outputs by hash: a re-run with the same inputs must not look like a change. So
figures are drawn on a bare ``Figure`` (no pyplot global state) inside matplotlib's
``default`` style (a user's matplotlibrc cannot change them), at a fixed dpi, with the
time stamps and software versions left out of the file metadata.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
from matplotlib import style as mpl_style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rfr.report.summaries import Summary
from rfr.report.tables import display_scale, metric_title

DPI = 150
PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None}


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>.png`` and ``<stem>.pdf`` without time stamps; returns both paths."""
    png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
    with style():
        figure.savefig(png, dpi=DPI, metadata=PNG_METADATA)
        figure.savefig(pdf, dpi=DPI, metadata=PDF_METADATA)
    return [png, pdf]


def style() -> AbstractContextManager[None]:
    """The fixed style every figure is drawn and saved in (ignores matplotlibrc)."""
    return mpl_style.context("default")


def _errorbar(axes, xs: Sequence[float], summaries: Sequence[Summary], metric: str,
              **kwargs: object) -> None:
    scale = display_scale(metric)
    points = [(x, s) for x, s in zip(xs, summaries, strict=True) if s.ok]
    if not points:
        return
    x = np.asarray([p[0] for p in points], dtype=float)
    y = np.asarray([p[1].mean for p in points], dtype=float) * scale
    low = np.asarray([p[1].ci[0] if p[1].ci else p[1].mean for p in points]) * scale
    high = np.asarray([p[1].ci[1] if p[1].ci else p[1].mean for p in points]) * scale
    yerr = np.vstack([np.maximum(y - low, 0), np.maximum(high - y, 0)])
    axes.errorbar(x, y, yerr=yerr, capsize=3, marker="o", markersize=4, **kwargs)


def metric_vs_hole(dataset: str,
                   data: Mapping[str, Mapping[str, Sequence[tuple[float, Summary]]]]) -> Figure:
    """One panel per metric: the metric against the bins' mean hole ratio, a line with CI
    error bars per method. data[metric][method] = [(hole ratio, summary), ...]."""
    with style():
        figure = new_figure(4.0 * max(1, len(data)), 3.4)
        for index, (metric, series) in enumerate(data.items()):
            axes = figure.add_subplot(1, len(data), index + 1)
            for method, points in series.items():
                _errorbar(axes, [p[0] for p in points], [p[1] for p in points], metric,
                          label=method)
            axes.set_xlabel("hole ratio (bin mean)")
            axes.set_ylabel(metric_title(metric))
            axes.grid(True, alpha=0.3)
            if index == 0:
                axes.legend(fontsize="small")
        figure.suptitle(f"{dataset}: metrics vs hole ratio (mean, 95% CI)")
        figure.tight_layout()
    return figure


def metric_vs_iternum(dataset: str,
                      data: Mapping[str, Sequence[tuple[int, Summary]]],
                      full_iter: int) -> Figure:
    """One panel per metric: the metric (all bins pooled) against IterNum."""
    with style():
        figure = new_figure(4.0 * max(1, len(data)), 3.4)
        for index, (metric, points) in enumerate(data.items()):
            axes = figure.add_subplot(1, len(data), index + 1)
            _errorbar(axes, [p[0] for p in points], [p[1] for p in points], metric,
                      color="C0")
            axes.axvline(full_iter, color="0.6", linestyle=":", linewidth=1)
            axes.set_xticks(sorted({p[0] for p in points}))
            axes.set_xlabel("IterNum (recurrences)")
            axes.set_ylabel(metric_title(metric))
            axes.grid(True, alpha=0.3)
        figure.suptitle(f"{dataset}: metrics vs IterNum, all bins (mean, 95% CI); "
                        f"dotted: full model ({full_iter})")
        figure.tight_layout()
    return figure


def qualitative(dataset: str, titles: Sequence[str], row_labels: Sequence[str],
                tiles: Sequence[Sequence[np.ndarray]]) -> Figure:
    """A grid of image tiles with titled columns and labelled rows."""
    rows, cols = len(tiles), len(titles)
    with style():
        figure = new_figure(1.7 * cols, 1.7 * rows + 0.5)
        for r, row in enumerate(tiles):
            for c, tile in enumerate(row):
                axes = figure.add_subplot(rows, cols, r * cols + c + 1)
                axes.imshow(tile, interpolation="nearest")
                axes.set_xticks([])
                axes.set_yticks([])
                if r == 0:
                    axes.set_title(titles[c], fontsize="small")
                if c == 0:
                    axes.set_ylabel(f"hole {row_labels[r]}", fontsize="small")
        figure.suptitle(f"{dataset}: examples (first example of each bin)")
        figure.tight_layout()
    return figure


def recurrence(title: str, curves: Mapping[str, Sequence[float]],
               overall: Sequence[float] | None, image: np.ndarray | None,
               tiles: str = "masked input, feature mask before and after each recurrence, "
                            "composite") -> Figure:
    """Remaining hole ratio vs recurrence index per bin, with recurrence.png beside it (or
    below it, when the tiles make a wide strip)."""
    wide = image is not None and image.shape[1] > 2.5 * image.shape[0]
    with style():
        if image is None:
            figure = new_figure(5.0, 4.0)
            grid = figure.add_gridspec(1, 1)
        elif wide:
            figure = new_figure(9.0, 4.0 + 9.0 * image.shape[0] / image.shape[1])
            grid = figure.add_gridspec(2, 1, height_ratios=[4.0, 9.0 * image.shape[0]
                                                            / image.shape[1] + 0.3])
        else:
            figure = new_figure(11.0, 4.5)
            grid = figure.add_gridspec(1, 2, width_ratios=[1, 1.6])
        axes = figure.add_subplot(grid[0, 0])
        for label, ratios in curves.items():
            axes.plot(range(len(ratios)), ratios, marker="o", markersize=3, label=label)
        if overall:
            axes.plot(range(len(overall)), overall, color="black", linestyle="--",
                      label="all bins")
        length = max((len(r) for r in curves.values()), default=1)
        axes.set_xticks(range(length))
        axes.set_xlabel("recurrence (0 = before the first)")
        axes.set_ylabel("remaining hole ratio (feature mask)")
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small", title="hole ratio bin")
        if image is not None:
            picture = figure.add_subplot(grid[1, 0] if wide else grid[0, 1])
            picture.imshow(image, interpolation="nearest")
            picture.set_axis_off()
            picture.set_title(f"per bin: {tiles} (hole white)", fontsize="small")
        figure.suptitle(title)
        figure.tight_layout()
    return figure


def training_curves(dataset: str,
                    curves: Mapping[str, Sequence[tuple[int, np.ndarray, np.ndarray]]],
                    term: str = "total") -> Figure:
    """The training loss against step, one colour per variant (one line per seed)."""
    with style():
        figure = new_figure(6.5, 4.0)
        axes = figure.add_subplot(1, 1, 1)
        for index, (variant, runs) in enumerate(curves.items()):
            for number, (_seed, steps, values) in enumerate(runs):
                axes.plot(steps, values, color=f"C{index % 10}", linewidth=1,
                          label=variant if number == 0 else None)
        values = [v for runs in curves.values() for _, _, vs in runs for v in vs]
        if values and min(values) > 0 and max(values) / min(values) > 20 \
                and math.isfinite(max(values)):
            axes.set_yscale("log")
        axes.set_xlabel("step")
        axes.set_ylabel(f"training loss ({term})")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small", ncol=2)
        figure.suptitle(f"{dataset}: training curves (one line per seed)")
        figure.tight_layout()
    return figure


__all__ = [
    "DPI",
    "metric_vs_hole",
    "metric_vs_iternum",
    "new_figure",
    "qualitative",
    "recurrence",
    "save_figure",
    "training_curves",
]
