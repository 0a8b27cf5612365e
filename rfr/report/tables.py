"""A small table model and its three writers: Markdown (GitHub), LaTeX (booktabs), CSV.

Each report table is built once as display cells plus a long-form CSV and written three
ways, so the three files cannot disagree. Display cells carry formatted text (and a bold
flag for the best method); the CSV carries full-precision numbers for anyone who wants to
recompute. Warnings (random VGG16 weights) go above the table, footnotes (unavailable
metrics with their reasons, citations) below it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rfr.evaluate.metrics import HIGHER_IS_BETTER

RANDOM_VGG_WARNING = ("losses computed with random VGG16 weights: not comparable to "
                      "published numbers")
METRIC_TITLES = {"psnr": "PSNR (dB)", "ssim": "SSIM", "l1": "L1 (%)", "l1_hole": "Hole L1 (%)",
                 "lpips": "LPIPS", "fid": "FID"}
METRIC_ORDER = ("psnr", "ssim", "l1", "l1_hole", "lpips", "fid")
# Display scale and decimals per metric (L1 in percent as in the paper's Table 1).
_SCALE = {"l1": 100.0, "l1_hole": 100.0}
_DECIMALS = {"psnr": 2, "ssim": 4, "l1": 2, "l1_hole": 2, "lpips": 4, "fid": 2}


@dataclass(frozen=True)
class Cell:
    text: str
    bold: bool = False


class Footnotes:
    """Numbered-by-letter footnotes; the same text gets the same mark."""

    def __init__(self) -> None:
        self._marks: dict[str, str] = {}

    def mark(self, text: str) -> str:
        if text not in self._marks:
            index = len(self._marks)
            letters = ""
            while True:
                letters = chr(ord("a") + index % 26) + letters
                index = index // 26 - 1
                if index < 0:
                    break
            self._marks[text] = letters
        return self._marks[text]

    def lines(self) -> list[str]:
        return [f"[{mark}] {text}" for text, mark in self._marks.items()]


@dataclass
class Table:
    """name: file stem; header/rows: the display table; csv_*: the long form."""

    name: str
    title: str
    header: list[str]
    rows: list[list[Cell]]
    csv_header: list[str]
    csv_rows: list[list[str]]
    align: str = ""  # one of l/r per column; default: first column l, the rest r
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rule_before: set[int] = field(default_factory=set)  # row indexes that start a group

    def column_align(self) -> str:
        return self.align or "l" + "r" * (len(self.header) - 1)


# --- number formatting --------------------------------------------------------------------


def metric_title(metric: str) -> str:
    return METRIC_TITLES.get(metric, metric)


def ordered_metrics(names: Sequence[str]) -> list[str]:
    """Known metrics in the paper's order, then any others in the given order."""
    known = [m for m in METRIC_ORDER if m in names]
    return known + [m for m in names if m not in METRIC_ORDER]


def display_scale(metric: str) -> float:
    """Factor from the suite's units to display units (L1 in %)."""
    return _SCALE.get(metric, 1.0)


def fmt_metric(metric: str, value: float | None) -> str:
    """A metric value in display units (L1 in %)."""
    if value is None or not math.isfinite(value):
        return ""
    decimals = _DECIMALS.get(metric, 4)
    return f"{value * _SCALE.get(metric, 1.0):.{decimals}f}"


def fmt_delta(metric: str, value: float | None) -> str:
    """A signed difference; one that rounds to zero has no sign."""
    text = fmt_metric(metric, value)
    if not text or float(text) == 0:
        return text.lstrip("-")
    return text if text.startswith("-") else f"+{text}"


def fmt_ci(metric: str, mean: float | None, ci: tuple[float, float] | None) -> str:
    text = fmt_metric(metric, mean)
    if ci is None:
        return text
    return f"{text} [{fmt_metric(metric, ci[0])}, {fmt_metric(metric, ci[1])}]"


def fmt_p(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def number(value: float | int | None) -> str:
    """Full-precision CSV number; empty for no number."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return repr(float(value)) if math.isfinite(value) else ""


def best_indexes(metric: str, values: Sequence[float | None]) -> set[int]:
    """Indexes of the best value(s) (ties share it); none when the direction is unknown."""
    higher = HIGHER_IS_BETTER.get(metric)
    finite = [(v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if higher is None or len(finite) < 2:
        return set()
    target = max(v for v, _ in finite) if higher else min(v for v, _ in finite)
    return {i for v, i in finite if v == target}


# --- writers ------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


def to_markdown(table: Table) -> str:
    lines = [f"## {_md_escape(table.title)}", ""]
    for warning in table.warnings:
        lines += [f"> **Warning:** {_md_escape(warning)}", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in table.header) + " |")
    rules = {"l": ":---", "r": "---:", "c": ":---:"}
    lines.append("|" + "|".join(rules[a] for a in table.column_align()) + "|")
    for row in table.rows:
        cells = [f"**{_md_escape(c.text)}**" if c.bold and c.text else _md_escape(c.text)
                 for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines += ["", *(f"- {_md_escape(note)}" for note in table.notes)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                  "Δ": r"$\Delta$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A ``table`` float with a booktabs tabular (needs ``\\usepackage{booktabs}``)."""
    label = latex_escape(table.name).replace("\\_", "-")
    lines = ["% Written by `rfr report`; do not edit (regenerate with `dvc repro`).",
             "% Needs \\usepackage{booktabs}.",
             r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(table.title)}}}", rf"\label{{tab:{label}}}"]
    for warning in table.warnings:
        lines.append(rf"\textbf{{Warning: {latex_escape(warning)}}}\par\smallskip")
    lines += [rf"\begin{{tabular}}{{{table.column_align()}}}", r"\toprule",
              " & ".join(latex_escape(h) for h in table.header) + r" \\", r"\midrule"]
    for index, row in enumerate(table.rows):
        if index in table.rule_before and index > 0:
            lines.append(r"\midrule")
        cells = [rf"\textbf{{{latex_escape(c.text)}}}" if c.bold and c.text
                 else latex_escape(c.text) for c in row]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
        lines += [latex_escape(note) + r"\par" for note in table.notes]
        lines.append(r"\end{minipage}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.csv_header)
    writer.writerows(table.csv_rows)
    return buffer.getvalue()


def write_table(table: Table, out_dir: Path) -> list[Path]:
    """Write ``<name>.md``, ``.tex`` and ``.csv`` into out_dir; returns the paths."""
    paths = []
    for suffix, render in ((".md", to_markdown), (".tex", to_latex), (".csv", to_csv)):
        path = out_dir / f"{table.name}{suffix}"
        path.write_text(render(table))
        paths.append(path)
    return paths


__all__ = [
    "METRIC_ORDER",
    "RANDOM_VGG_WARNING",
    "Cell",
    "Footnotes",
    "Table",
    "best_indexes",
    "display_scale",
    "fmt_ci",
    "fmt_delta",
    "fmt_metric",
    "fmt_p",
    "latex_escape",
    "metric_title",
    "number",
    "ordered_metrics",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_table",
]
