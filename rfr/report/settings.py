"""The report's view of params.yaml: only the ``compare``, ``ablation`` and ``report`` keys.

The report must not depend on how runs were trained or evaluated (those keys belong to other
stages of the pipeline); it only needs to know which runs exist and how to summarise them.
Reading nothing else keeps the report's DVC dependencies honest: changing a training knob
re-runs training, and the report follows through its inputs, not through params.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfr.masks import NVIDIA_BINS
from rfr.report.errors import ReportError

DEFAULT_PUBLISHED = "results/published.yaml"
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
DEFAULT_QUALITATIVE_BINS = (1, 3, 5)
FULL_MODEL = "rfr"


@dataclass(frozen=True)
class ReportSettings:
    """Which runs the report reads, and how it summarises them."""

    compare_datasets: tuple[str, ...]
    compare_variants: tuple[str, ...]
    compare_seeds: tuple[int, ...]
    ablation_dataset: str
    ablation_variants: tuple[str, ...]
    ablation_seeds: tuple[int, ...]
    published: Path
    resamples: int
    seed: int
    qualitative_bins: tuple[int, ...]
    # Datasets with a released-checkpoint run <dataset>-released-0 (params' released:).
    released_datasets: tuple[str, ...] = ()

    @property
    def trains(self) -> bool:
        """False for an evaluation-only profile (released checkpoints, no trained runs)."""
        return bool(self.compare_seeds)

    @property
    def ablation_only_variants(self) -> tuple[str, ...]:
        """Ablation variants with runs of their own (the full model comes from compare)."""
        return tuple(v for v in self.ablation_variants if v != FULL_MODEL)


def _section(params: Mapping[str, Any], key: str, required: bool) -> Mapping[str, Any]:
    # Only params[key]: the report may not look at (or iterate over) any other key.
    try:
        section = params[key]
    except KeyError:
        if required:
            raise ReportError(f"params: no '{key}' section; the report needs "
                              f"'{key}' in params.yaml") from None
        return {}
    if section is None and not required:
        return {}
    if not isinstance(section, Mapping):
        raise ReportError(f"params: '{key}' must be a mapping, got {type(section).__name__}")
    return section


def _strings(section: Mapping[str, Any], where: str, key: str) -> tuple[str, ...]:
    value = section.get(key)
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ReportError(f"params: {where}.{key} must be a list of names, got {value!r}")
    if not all(isinstance(item, str) and item for item in value):
        raise ReportError(f"params: {where}.{key} must hold non-empty names, got {value!r}")
    if len(set(value)) != len(value):
        raise ReportError(f"params: {where}.{key} lists a name twice: {value!r}")
    return tuple(value)


def _ints(value: Any, where: str, minimum: int = 0) -> tuple[int, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ReportError(f"params: {where} must be a list of integers, got {value!r}")
    if not all(isinstance(item, int) and not isinstance(item, bool) and item >= minimum
               for item in value):
        raise ReportError(f"params: {where} must hold integers >= {minimum}, got {value!r}")
    if len(set(value)) != len(value):
        raise ReportError(f"params: {where} lists a value twice: {value!r}")
    return tuple(value)


def _int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ReportError(f"params: {where} must be an integer >= {minimum}, got {value!r}")
    return value


def parse_settings(params: Mapping[str, Any]) -> ReportSettings:
    """Validate the sections; a wrong shape is a ReportError naming the key."""
    compare = _section(params, "compare", required=True)
    ablation = _section(params, "ablation", required=True)
    report = _section(params, "report", required=False)
    released = tuple(_section(params, "released", required=False))

    datasets = _strings(compare, "compare", "datasets")
    variants = _strings(compare, "compare", "variants")
    seeds = _ints(compare.get("seeds"), "compare.seeds")
    if not datasets or not variants or not (seeds or released):
        raise ReportError("params: compare.datasets, compare.variants and compare.seeds must "
                          "each list at least one entry (compare.seeds may be empty only "
                          "when released: names checkpoints to evaluate)")
    unknown = sorted(set(released) - set(datasets))
    if unknown:
        raise ReportError(f"params: released names {unknown}, which are not in "
                          f"compare.datasets {list(datasets)}")
    ablation_dataset = ablation.get("dataset")
    if not isinstance(ablation_dataset, str) or ablation_dataset not in datasets:
        raise ReportError(
            f"params: ablation.dataset {ablation_dataset!r} must be one of compare.datasets "
            f"{list(datasets)}: the full model's runs on it come from the compare stage")
    ablation_variants = _strings(ablation, "ablation", "variants")
    ablation_seeds = _ints(ablation.get("seeds"), "ablation.seeds")
    if not ablation_seeds and seeds:
        raise ReportError("params: ablation.seeds must list at least one seed")
    extra = sorted(set(ablation_seeds) - set(seeds))
    if extra:
        raise ReportError(
            f"params: ablation.seeds {list(ablation_seeds)} has seed(s) {extra} that are not "
            f"in compare.seeds {list(seeds)}; the full model's runs come from the compare "
            f"stage, so every ablation seed must be a compare seed")
    if ablation_variants and FULL_MODEL not in variants:
        raise ReportError(
            f"params: compare.variants {list(variants)} lacks '{FULL_MODEL}', the reference of "
            f"every ablation study; add it or empty ablation.variants")

    published = report.get("published", DEFAULT_PUBLISHED)
    if not isinstance(published, str) or not published:
        raise ReportError(f"params: report.published must be a path, got {published!r}")
    bins = _ints(report.get("qualitative_bins", list(DEFAULT_QUALITATIVE_BINS)),
                 "report.qualitative_bins")
    if any(b >= len(NVIDIA_BINS) for b in bins):
        raise ReportError(f"params: report.qualitative_bins {list(bins)} must index "
                          f"rfr.masks.NVIDIA_BINS (0..{len(NVIDIA_BINS) - 1})")
    return ReportSettings(
        compare_datasets=datasets,
        compare_variants=variants,
        compare_seeds=seeds,
        ablation_dataset=ablation_dataset,
        ablation_variants=ablation_variants,
        ablation_seeds=ablation_seeds,
        published=Path(published),
        resamples=_int(report.get("resamples", DEFAULT_RESAMPLES), "report.resamples", 1),
        seed=_int(report.get("seed", DEFAULT_SEED), "report.seed", 0),
        qualitative_bins=bins,
        released_datasets=released,
    )


__all__ = ["FULL_MODEL", "ReportSettings", "parse_settings"]
