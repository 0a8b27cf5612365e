"""The reach table: how much of each hole no output pixel of a model can fill.

A pixel out of reach gets a constant, whatever the photo and the training, so a method
that leaves one loses there by construction. The table shows it per hole-ratio bin of the
test-mask bank and for centred squares, for every registered model, from the ``reach``
record that ``rfr recurrence`` writes (``rfr.evaluate.recurrence.architecture_reach``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rfr.report.errors import ReportError
from rfr.report.inputs import REPRO_HINT
from rfr.report.tables import Cell, Table, number

CSV_HEADER = ["masks", "model", "mean_unreached", "max_unreached", "n_masks"]


def _percent(value: float) -> str:
    """Percent with two decimals; a share that is exactly 0 reads "0" (none at all)."""
    return "0" if value == 0 else f"{100 * value:.2f}"


def reach_table(record: Mapping[str, Any], source: Path) -> Table:
    """The ``reach`` table from the ``reach`` entry of the architecture's recurrence.json."""
    try:
        groups = [str(g) for g in record["groups"]]
        models = {str(name): dict(entries) for name, entries in record["models"].items()}
        size = int(record["size"])
        cells = {(name, group): (float(entries[group]["mean"]), float(entries[group]["max"]),
                                 int(entries[group]["n_masks"]))
                 for name, entries in models.items() for group in groups}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{source}: malformed 'reach' ({type(exc).__name__}: {exc}); "
                          f"delete it and {REPRO_HINT}") from exc
    rows, csv_rows = [], []
    for group in groups:
        row = [Cell(group), Cell(str(cells[(next(iter(models)), group)][2]))]
        for name in models:
            mean, worst, count = cells[(name, group)]
            row.append(Cell(f"{_percent(mean)} ({_percent(worst)})", bold=worst > 0))
            csv_rows.append([group, name, number(mean), number(worst), str(count)])
        rows.append(row)
    return Table(
        name="reach",
        title=f"Reach: % of the hole that no output pixel can fill ({size}x{size})",
        header=["Masks", "n", *(f"{name}: mean (max) %" for name in models)],
        rows=rows, csv_header=CSV_HEADER, csv_rows=csv_rows,
        notes=[f"Per group of masks, the share of each mask's hole pixels whose output "
               f"depends on no known pixel, mean and max over the group (bold: some are "
               f"unreached). Measured on the architectures with structural weights "
               f"(rfr/evaluate/reach.py), so it holds for any trained weights: those pixels get a "
               f"constant whatever the photo. Source: {source}."],
    )


__all__ = ["CSV_HEADER", "reach_table"]
