"""Ablation studies derived from the variants' deltas, not from their names.

A variant of the full model that changes one key of ``RFRNetConfig`` belongs to the study
of that key (``attention`` -> "attention", ``merge`` -> "merge", ``iter_num`` -> "iternum").
Deriving the studies from ``ablations/variants.yaml`` means a new variant lands in the right
table without touching the report, and a renamed one cannot end up in the wrong one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from rfr.config import RFRNetConfig
from rfr.model.variants import Variant
from rfr.report.errors import ReportError
from rfr.report.settings import FULL_MODEL

STUDY_NAMES = {"attention": "attention", "merge": "merge", "iter_num": "iternum"}
STUDY_TITLES = {"attention": "attention in the RFR module",
                "merge": "merging the recurrence outputs",
                "iternum": "number of recurrences (IterNum)"}


@dataclass(frozen=True)
class StudyMember:
    variant: str
    setting: str


@dataclass(frozen=True)
class Study:
    """One ablation: the changed config key and its members, full model included."""

    name: str
    key: str
    members: tuple[StudyMember, ...]

    @property
    def title(self) -> str:
        return STUDY_TITLES.get(self.name, f"{self.key}")

    @property
    def numeric(self) -> bool:
        return all(member.setting.lstrip("-").isdigit() for member in self.members)


def _setting(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def derive_studies(ablation_variants: Sequence[str], variants: Mapping[str, Variant],
                   ) -> tuple[list[Study], list[str]]:
    """Studies of the given variants (params' ablation.variants) and warnings for variants
    that fit none (another model, no delta, or several keys changed at once)."""
    defaults = RFRNetConfig()
    default_values = {f.name: getattr(defaults, f.name) for f in fields(RFRNetConfig)}
    by_key: dict[str, list[StudyMember]] = {}
    warnings: list[str] = []
    for name in ablation_variants:
        if name == FULL_MODEL:
            continue
        if name not in variants:
            raise ReportError(f"params: ablation variant {name!r} is not in "
                              f"ablations/variants.yaml (known: {sorted(variants)})")
        variant = variants[name]
        if variant.model != FULL_MODEL:
            warnings.append(f"ablation variant {name!r} is a {variant.model!r} model, not an "
                            f"ablation of {FULL_MODEL!r}; left out of the ablation tables")
            continue
        if len(variant.delta) != 1:
            warnings.append(f"ablation variant {name!r} changes {sorted(variant.delta) or 'no'} "
                            f"key(s); a study needs exactly one; left out of the ablation "
                            f"tables")
            continue
        ((key, value),) = variant.delta.items()
        by_key.setdefault(key, []).append(StudyMember(name, _setting(value)))
    studies = []
    for key, members in by_key.items():
        full = StudyMember(FULL_MODEL, _setting(default_values.get(key)))
        study = Study(STUDY_NAMES.get(key, key), key, (full, *members))
        if study.numeric:  # natural order, e.g. IterNum 1, 2, 3, 4, 6, 8
            study = Study(study.name, key,
                          tuple(sorted(study.members, key=lambda m: int(m.setting))))
        studies.append(study)
    order = list(STUDY_NAMES.values())
    studies.sort(key=lambda s: (order.index(s.name) if s.name in order else len(order), s.name))
    return studies, warnings


__all__ = ["Study", "StudyMember", "derive_studies"]
