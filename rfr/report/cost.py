"""What each model costs: parameters, GMACs, latency, training time and speed.

One row per dataset x variant over all its seeds. Parameters and GMACs come from the
evaluation (they are properties of the architecture, so the first seed's are shown);
latency, training time and steps/s are means over the seeds. Anything a run could not
measure is shown as unavailable with the run's reason, never as 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rfr.report.inputs import RunData
from rfr.report.methods import random_vgg_warning
from rfr.report.tables import Cell, Footnotes, Table, number

CSV_HEADER = ["dataset", "variant", "parameters", "gmacs", "latency_ms", "train_seconds",
              "steps_per_second", "n_seeds"]
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Value:
    """A measured number, or why there is none."""

    value: float | int | None
    reason: str = ""


def _status_value(entry: Any, key: str, what: str) -> Value:
    if isinstance(entry, bool):
        return Value(None, f"{what}: not recorded")
    if isinstance(entry, (int, float)):
        return Value(entry)
    if isinstance(entry, Mapping):
        if isinstance(entry.get(key), (int, float)) and not isinstance(entry.get(key), bool):
            return Value(entry[key])
        return Value(None, f"{what}: {entry.get('reason') or entry.get('status') or 'missing'}")
    return Value(None, f"{what}: not recorded")


def _mean(values: Sequence[Value], what: str) -> Value:
    for value in values:
        if value.value is None:
            return value
    numbers = [float(v.value) for v in values if v.value is not None]
    if not numbers or not all(math.isfinite(n) for n in numbers):
        return Value(None, f"{what}: not recorded")
    return Value(sum(numbers) / len(numbers))


def parameters_of(run: RunData) -> Value:
    source = run.evaluation.get("source", {})
    value = _status_value(source.get("parameters") if isinstance(source, Mapping) else None,
                          "value", "parameters")
    if value.value is None and isinstance(run.train.get("parameters"), int):
        return Value(run.train["parameters"])
    return value


def gmacs_of(run: RunData) -> Value:
    source = run.evaluation.get("source", {})
    return _status_value(source.get("gmacs") if isinstance(source, Mapping) else None,
                         "value", "GMACs")


def latency_of(run: RunData) -> Value:
    return _status_value(run.summary.get("latency"), "ms_per_image", "latency")


def _train_value(run: RunData, key: str, what: str) -> Value:
    value = run.train.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Value(value)
    return Value(None, f"{what}: not in {run.train_dir}/summary.json")


def _display(value: Value, notes: Footnotes, digits: int | None) -> Cell:
    if value.value is None:
        return Cell(f"{UNAVAILABLE} [{notes.mark(value.reason)}]")
    if digits is None:
        return Cell(f"{int(value.value):,}")
    return Cell(f"{float(value.value):.{digits}f}")


def cost_table(rows: Sequence[tuple[str, str]],
               runs: Mapping[tuple[str, str], Sequence[RunData]]) -> Table:
    """The ``cost`` table; ``rows`` are (dataset, variant) pairs in display order."""
    notes = Footnotes()
    display: list[list[Cell]] = []
    csv_rows: list[list[str]] = []
    devices: set[str] = set()
    for dataset, variant in rows:
        group = runs[(dataset, variant)]
        for run in group:
            latency = run.summary.get("latency")
            if isinstance(latency, Mapping) and latency.get("device"):
                devices.add(str(latency["device"]))
        values = [
            parameters_of(group[0]),
            gmacs_of(group[0]),
            _mean([latency_of(r) for r in group], "latency"),
            _mean([_train_value(r, "seconds", "training time") for r in group], "training time"),
            _mean([_train_value(r, "steps_per_second", "steps/s") for r in group], "steps/s"),
        ]
        display.append([Cell(dataset), Cell(variant),
                        *(_display(v, notes, d) for v, d in zip(values, (None, 3, 2, 1, 2),
                                                                strict=True)),
                        Cell(str(len(group)))])
        csv_rows.append([dataset, variant,
                         *(number(v.value) if v.value is not None else UNAVAILABLE
                           for v in values), str(len(group))])
    all_runs = [run for group in runs.values() for run in group]
    device_note = (f"Latency: median ms per image over timed batches, measured on "
                   f"{', '.join(sorted(devices))}." if devices else
                   "Latency: median ms per image over timed batches.")
    return Table(
        name="cost", title="Cost: model size, compute, latency and training time",
        header=["Dataset", "Variant", "Parameters", "GMACs", "Latency (ms/image)",
                "Training time (s)", "Steps/s", "Seeds"],
        rows=display, csv_header=CSV_HEADER, csv_rows=csv_rows, align="llrrrrrr",
        warnings=random_vgg_warning(all_runs),
        notes=["Parameters and GMACs (one S x S forward pass) of the first seed's model; "
               "latency, training time and steps/s are means over the seeds.",
               device_note, *notes.lines()])


__all__ = ["CSV_HEADER", "cost_table", "gmacs_of", "latency_of", "parameters_of"]
