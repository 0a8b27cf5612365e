"""Published numbers for the tables' ``published`` columns, read from a cited YAML file.

The report never types in a number from a paper: a published value appears only when
``results/published.yaml`` holds it with a citation (paper + table, or a repository file
URL), so every such number can be checked at its source. The file is validated strictly:
an entry without a citation, with an unknown metric or a malformed bin is an error that
names the file and the entry's index, because a silently skipped entry would leave an
empty cell that looks like "not published".

Values are in the suite's units (``rfr.evaluate.metrics``): PSNR in dB, SSIM in [0, 1], L1 and hole
L1 as fractions of the [0, 1] intensity range (a paper's "L1 (%)" of 2.50 is 0.025),
LPIPS, FID. An L1 above 1 is rejected as a percentage entered by mistake.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from rfr.evaluate.metrics import HIGHER_IS_BETTER
from rfr.masks import NVIDIA_BINS, format_bin
from rfr.report.errors import ReportError

ALL_BINS = "all"
BIN_LABELS = (*(format_bin(i) for i in range(len(NVIDIA_BINS))), ALL_BINS)
METRICS = tuple(HIGHER_IS_BETTER)
_REQUIRED = ("method", "dataset", "bin", "metric", "value", "citation")
_KEYS = {*_REQUIRED, "note"}
_FRACTION_METRICS = {"ssim", "l1", "l1_hole"}


@dataclass(frozen=True)
class PublishedEntry:
    """One cited number."""

    method: str
    dataset: str
    bin: str
    metric: str
    value: float
    citation: str
    note: str = ""


class Published:
    """Lookup of cited numbers by (method, dataset, bin, metric)."""

    def __init__(self, entries: list[PublishedEntry], path: Path) -> None:
        self.path = path
        self.entries = entries
        self._index = {(e.method, e.dataset, e.bin, e.metric): e for e in entries}

    def get(self, method: str, dataset: str, bin_label: str,
            metric: str) -> PublishedEntry | None:
        return self._index.get((method, dataset, bin_label, metric))


def _entry(raw: object, index: int, path: Path) -> PublishedEntry:
    where = f"{path}: entry {index}"
    if not isinstance(raw, Mapping):
        raise ReportError(f"{where}: must be a mapping with keys {list(_REQUIRED)}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ReportError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise ReportError(f"{where}: missing {missing}; every entry needs {list(_REQUIRED)}")
    citation = raw["citation"]
    if not isinstance(citation, str) or not citation.strip():
        raise ReportError(f"{where}: needs a non-empty citation (paper and table, or a "
                          f"repository file URL); uncited numbers are not reported")
    for key in ("method", "dataset"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise ReportError(f"{where}: {key} must be a non-empty name, got {raw[key]!r}")
    metric = raw["metric"]
    if metric not in METRICS:
        raise ReportError(f"{where}: unknown metric {metric!r}; known: {list(METRICS)}")
    label = raw["bin"]
    if label not in BIN_LABELS:
        raise ReportError(f"{where}: malformed bin {label!r}; use a label as "
                          f"rfr.masks.format_bin writes it, one of {list(BIN_LABELS)}")
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)):
        raise ReportError(f"{where}: value must be a finite number, got {value!r}")
    if metric in _FRACTION_METRICS and not 0 <= float(value) <= 1:
        raise ReportError(f"{where}: {metric} {value!r} is outside [0, 1]; values are in the "
                          f"suite's units (a paper's 'L1 (%)' of 2.5 is entered as 0.025)")
    note = raw.get("note") or ""
    if not isinstance(note, str):
        raise ReportError(f"{where}: note must be text, got {note!r}")
    return PublishedEntry(raw["method"], raw["dataset"], label, metric, float(value),
                          citation.strip(), note)


def load_published(path: str | Path) -> Published:
    """Read and validate published.yaml (``entries:`` list); errors name file and entry."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: published numbers file not found (report.published in "
                          f"params.yaml); create it with 'entries: []' if there are none")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ReportError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping) or "entries" not in data:
        raise ReportError(f"{path}: expected a mapping with an 'entries' list at the top level")
    unknown = sorted(set(data) - {"entries"})
    if unknown:
        raise ReportError(f"{path}: unknown top-level key(s) {unknown}; only 'entries'")
    raw_entries = data["entries"] if data["entries"] is not None else []
    if not isinstance(raw_entries, list):
        raise ReportError(f"{path}: 'entries' must be a list")
    entries: list[PublishedEntry] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for index, raw in enumerate(raw_entries):
        entry = _entry(raw, index, path)
        key = (entry.method, entry.dataset, entry.bin, entry.metric)
        if key in seen:
            raise ReportError(f"{path}: entry {index} repeats entry {seen[key]} "
                              f"({', '.join(key)}); keep one number per cell")
        seen[key] = index
        entries.append(entry)
    return Published(entries, path)


__all__ = ["ALL_BINS", "BIN_LABELS", "Published", "PublishedEntry", "load_published"]
