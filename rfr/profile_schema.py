"""The schema of a profile (``params.yaml``): one typed tree, and the rules between its
sections in one place.

A profile is checked like any other config: ``rfr.config.from_dict(Profile, params)``,
i.e. pydantic's strict check of the whole tree (unknown keys forbidden, every value
against its type), then ``Profile.__post_init__``, the one validator of the rules that
relate two sections. The sections that feed a run config are checked by that config's
own dataclass, the very schema ``rfr train --config`` and ``rfr evaluate --config`` use:

- ``train``: TrainConfig fields but the per-run keys (``TRAIN_RUN_KEYS``, set by the
  pipeline) and the runtime knobs;
- ``runtime``: only ``RUNTIME_FIELDS`` (TrainConfig fields), read untracked;
- ``evaluate``: EvalConfig fields but ``EVAL_RUN_KEYS``;
- ``datasets.<name>.data``: DatasetConfig fields but ``split`` (chosen by the stage);
  ``datasets.<name>.schedule``: ``steps`` and ``finetune_steps`` (TrainConfig fields);
- ``model``: fields of the configs of the models the profile's variants use;
- ``masks``: a mask source (``rfr.masks.source``): the arguments of
  ``rfr.masks.write_mask_bank`` but out_dir, or ``source: nvidia`` and NvidiaSource's keys;
- ``report``: ``ReportSection`` (checked in full by ``rfr report``).

So a field is declared once, in its dataclass, and ``SECTION_CONFIGS`` says which
dataclass a section's keys belong to (``rfr.overrides`` walks it for ``-S key=value``).
The messages start with the file (the ``where`` of ``from_dict``); the rules raise
PipelineError, the type errors ConfigError (its base class).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rfr.config import from_dict
from rfr.data.config import DatasetConfig
from rfr.errors import PipelineError
from rfr.evaluate.config import EvalConfig
from rfr.train.config import RUNTIME_FIELDS, TrainConfig

FULL_MODEL = "rfr"
SECTIONS = ("profile", "paths", "datasets", "compare", "ablation", "model", "train", "masks",
            "evaluate", "recurrence", "report")
# The section of knobs that cannot change any number (rfr/train/config.py states the
# rule): the train and evaluate stages read it untracked, and no stage declares it.
RUNTIME_SECTION = "runtime"
# Set by the pipeline for every run; not profile settings.
TRAIN_RUN_KEYS = ("model", "model_config", "dataset", "steps", "finetune_steps", "seed",
                  "out_dir", "curves_dir")
EVAL_RUN_KEYS = ("checkpoint", "predictions", "dataset", "masks", "out_dir", "run")
# Stand-ins for the run keys an EvalConfig needs to be constructible.
EVAL_PLACEHOLDERS = {"checkpoint": "<the run's checkpoint>"}
RECURRENCE_KEYS = ("size", "per_bin", "seed")


@dataclass(frozen=True)
class Paths:
    """Folders of dvc.yaml's paths (used there only)."""

    data: str
    runs: str
    results: str


@dataclass(frozen=True)
class Schedule:
    """Training steps of every run on one dataset (TrainConfig's steps, finetune_steps)."""

    steps: int
    finetune_steps: int


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the runs: its DatasetConfig fields (but split) and its schedule."""

    data: dict[str, Any]
    schedule: Schedule


@dataclass(frozen=True)
class Compare:
    """The comparison matrix: every dataset x variant x seed is a run."""

    datasets: list[str]
    variants: list[str]
    seeds: list[int]


@dataclass(frozen=True)
class Ablation:
    """The ablation matrix on one compared dataset; its full model comes from compare."""

    dataset: str
    variants: list[str]
    seeds: list[int]


@dataclass(frozen=True)
class Recurrence:
    """The architecture-level hole-shrinking record (rfr.evaluate.recurrence)."""

    size: int
    per_bin: int
    seed: int


@dataclass(frozen=True)
class ReportSection:
    """How ``rfr report`` summarises the runs. The defaults are the report's own
    (``rfr.report.settings``, not imported here: the train and evaluate stages import this
    module, and a report change must not retrain them); the report checks the values."""

    published: str = "results/published.yaml"
    resamples: int = 2000
    seed: int = 0
    qualitative_bins: list[int] = dataclasses.field(default_factory=lambda: [1, 3, 5])


# Which config dataclass the keys of a free-form section belong to (for -S overrides too).
SECTION_CONFIGS: dict[str, type] = {"train": TrainConfig, "runtime": TrainConfig,
                                    "evaluate": EvalConfig}


@dataclass(frozen=True)
class Profile:
    """A whole profile; ``__post_init__`` holds every rule between sections."""

    profile: str
    paths: Paths
    datasets: dict[str, DatasetEntry]
    compare: Compare
    ablation: Ablation
    model: dict[str, Any]
    train: dict[str, Any]
    masks: dict[str, Any]
    evaluate: dict[str, Any]
    recurrence: dict[str, Any]
    report: ReportSection | None
    runtime: dict[str, Any] | None = None
    # The authors' released checkpoints to evaluate: {dataset: .pth file} (their format,
    # loaded strictly; dvc.yaml's evaluate-released stage). Empty: none.
    released: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        """The rules between sections, in the order a reader fixes them.

        1. ``datasets``: at least one; each ``data`` is a DatasetConfig but its split, each
           ``schedule`` a valid pair of TrainConfig step counts.
        2. ``compare`` and ``ablation``: non-empty lists without duplicates, known
           variants, seeds >= 0; ``compare.datasets`` are keys of ``datasets``.
        3. The ablations are paired with the full model's compare runs: ``ablation.dataset``
           is compared, ``compare.variants`` has ``rfr`` and ``ablation.variants`` has not,
           ``ablation.seeds`` are compare seeds.
        4. ``runtime`` holds only runtime knobs, and ``train``/``evaluate`` none of them
           (toggling a progress bar must not retrain every run).
        5. ``train`` and ``evaluate`` leave the per-run keys to the pipeline and are valid
           TrainConfig/EvalConfig settings (ranges, and rules such as batch_size divisible
           by gpus, are the dataclasses' own).
        6. ``model`` fits the config of every model the variants of the profile use.
        7. ``masks`` is a mask source (``rfr.masks.source``); ``recurrence`` is exactly
           size, per_bin and seed, integers.
        8. ``released`` maps compared datasets to checkpoint paths. An evaluation-only
           profile (``compare.seeds: []``, so nothing is trained) has no ablation runs
           either (``ablation.variants`` and ``ablation.seeds`` empty).
        """
        from rfr.model.variants import load_variants

        self._check_datasets()
        known_variants = load_variants()
        self._check_matrix(known_variants)
        self._check_runtime()
        for section, cls, run_keys, placeholders in (
                ("train", TrainConfig, TRAIN_RUN_KEYS, {}),
                ("evaluate", EvalConfig, EVAL_RUN_KEYS, EVAL_PLACEHOLDERS)):
            settings = getattr(self, section)
            refuse_run_keys(settings, section, run_keys)
            from_dict(cls, {**placeholders, **settings}, path=section)
        models = sorted({known_variants[name].model
                         for name in [*self.compare.variants, *self.ablation.variants]})
        self._check_model(models)
        self._check_masks()
        check_recurrence(self.recurrence)
        self._check_released()

    def _check_released(self) -> None:
        for dataset, path in self.released.items():
            if dataset not in self.compare.datasets:
                raise PipelineError(f"released: {dataset!r} is not one of compare.datasets "
                                    f"{self.compare.datasets} (its test split is prepared "
                                    f"there)")
            if not path:
                raise PipelineError(f"released.{dataset}: give the checkpoint file")

    def _check_datasets(self) -> None:
        if not self.datasets:
            raise PipelineError("datasets must map names to {data, schedule}")
        for key, entry in self.datasets.items():
            if "split" in entry.data:
                raise PipelineError(f"datasets.{key}.data must not set split (train and "
                                    f"test are chosen by the stage)")
            from_dict(DatasetConfig, {**entry.data, "split": "train"},
                      path=f"datasets.{key}.data")
            from_dict(TrainConfig, dataclasses.asdict(entry.schedule),
                      path=f"datasets.{key}.schedule")

    def _check_matrix(self, known_variants: Mapping[str, Any]) -> None:
        compare, ablation = self.compare, self.ablation
        trains = bool(compare.seeds)
        if not trains and (ablation.variants or ablation.seeds):
            raise PipelineError("compare.seeds is empty (an evaluation-only profile: nothing "
                                "is trained), so ablation.variants and ablation.seeds must "
                                "be empty too")
        for section, value in (("compare", compare), ("ablation", ablation)):
            may_be_empty = section == "ablation" and not trains
            for variant in _names(value.variants, f"{section}.variants", may_be_empty):
                if variant not in known_variants:
                    raise PipelineError(f"{section}.variants: unknown variant {variant!r}; "
                                        f"known: {sorted(known_variants)}")
            # No seeds: an evaluation-only profile (released checkpoints), nothing trained.
            for seed in _names(value.seeds, f"{section}.seeds",
                               may_be_empty or section == "compare"):
                if seed < 0:
                    raise PipelineError(f"{section}.seeds must be integers >= 0, "
                                        f"got {seed!r}")
        for dataset in _names(compare.datasets, "compare.datasets"):
            if dataset not in self.datasets:
                raise PipelineError(f"compare.datasets names {dataset!r}, which is not "
                                    f"under datasets ({sorted(self.datasets)})")
        if ablation.dataset not in compare.datasets:
            raise PipelineError(
                f"ablation.dataset {ablation.dataset!r} must be one of compare.datasets "
                f"{compare.datasets}: the full model's runs there are the reference every "
                f"ablation is paired with")
        if FULL_MODEL not in compare.variants:
            raise PipelineError(f"compare.variants must include {FULL_MODEL!r}, the "
                                f"reference of the ablations")
        if FULL_MODEL in ablation.variants:
            raise PipelineError(f"ablation.variants must not list {FULL_MODEL!r}; its runs "
                                f"come from compare (same dataset and seeds)")
        missing_seeds = sorted(set(ablation.seeds) - set(compare.seeds))
        if missing_seeds:
            raise PipelineError(f"ablation.seeds {missing_seeds} are not in compare.seeds "
                                f"{compare.seeds}; the full model needs a run with every "
                                f"ablation seed")

    def _check_runtime(self) -> None:
        runtime = self.runtime or {}
        unknown = sorted(set(runtime) - set(RUNTIME_FIELDS))
        if unknown:
            raise PipelineError(
                f"{RUNTIME_SECTION}: {unknown} cannot go here: the section holds only knobs "
                f"that cannot change any number ({list(RUNTIME_FIELDS)}), because no stage "
                f"tracks it; put the others in their tracked section")
        from_dict(TrainConfig, dict(runtime), path=RUNTIME_SECTION)
        for section in ("train", "evaluate"):
            misplaced = sorted(set(getattr(self, section)) & set(RUNTIME_FIELDS))
            if misplaced:
                raise PipelineError(
                    f"{section}: {misplaced} cannot change any number, so they belong under "
                    f"{RUNTIME_SECTION}: (untracked); in {section} DVC would rerun every run "
                    f"when one is toggled (see rfr/train/config.py)")

    def _check_model(self, models: Sequence[str]) -> None:
        """Shared by every variant the profile runs: each key must fit the config of each
        of those models that has it, and be a field of at least one (no silent typo)."""
        classes = model_config_classes(models)
        fields = {cls: {f.name for f in dataclasses.fields(cls)} for cls in classes}
        known = set().union(*fields.values())
        unknown = sorted(set(self.model) - known)
        if unknown:
            raise PipelineError(f"model: unknown key(s) {unknown}; known keys (fields of the "
                                f"configs of {list(models)}): {sorted(known)}")
        for cls in classes:
            from_dict(cls, {k: v for k, v in self.model.items() if k in fields[cls]},
                      path="model")

    def _check_masks(self) -> None:
        """The mask source (``rfr masks --params`` writes it): the seeded bank, exactly
        per_bin, size and seed (``source: bank`` or no ``source``), or ``source: nvidia``
        with the NVIDIA test set's keys (``rfr.masks.source``), each of its type, so a bad
        value fails at load."""
        from rfr.masks.source import mask_source

        mask_source(self.masks)


def model_config_classes(models: Sequence[str]) -> list[type]:
    """The config dataclasses of ``models`` (keys of rfr.model.registry.MODELS)."""
    from rfr.model.variants import config_classes

    return [config_classes()[name] for name in models]


def mask_bank_hints(source: str | None = "bank") -> dict[str, Any]:
    """{key: type hint} of the ``masks:`` keys of one source (``bank``: the arguments of
    ``rfr.masks.write_mask_bank`` but out_dir; ``nvidia``: ``NvidiaSource``'s fields), or
    of every source with ``source`` itself when ``source`` is None (for ``-S``)."""
    from rfr.masks.source import MASK_SOURCES, SOURCE_KEY, source_hints

    if source is not None:
        return source_hints(source)
    hints: dict[str, Any] = {SOURCE_KEY: str}
    for name in MASK_SOURCES:
        hints.update(source_hints(name))
    return hints


def check_recurrence(settings: Mapping[str, Any], source: str = "") -> None:
    """Exactly size, per_bin and seed, integers (``rfr recurrence`` reads them)."""
    prefix = f"{source}: " if source else ""
    if set(settings) != set(RECURRENCE_KEYS):
        raise PipelineError(f"{prefix}recurrence must have exactly size, per_bin and seed, "
                            f"got {sorted(settings)}")
    from_dict(Recurrence, settings, source, path="recurrence")


def refuse_run_keys(settings: Mapping[str, Any], section: str, run_keys: Sequence[str],
                    source: str = "") -> None:
    """A settings section must leave the per-run keys to the pipeline."""
    clashes = sorted(set(settings) & set(run_keys))
    if clashes:
        prefix = f"{source}: " if source else ""
        raise PipelineError(f"{prefix}{section} must not set {clashes}: the pipeline sets "
                            f"them per run (datasets.<name>, model, the matrix's dataset, "
                            f"variant and seed, the paths)")


def _names(value: list, what: str, allow_empty: bool = False) -> list:
    if not value and not allow_empty:
        raise PipelineError(f"{what} must be a non-empty list, got {value!r}")
    if len(set(map(str, value))) != len(value):
        raise PipelineError(f"{what} has duplicates: {value!r}")
    return value


def check_profile(params: Mapping[str, Any], source: str) -> Profile:
    """``params`` against the profile schema: a ConfigError (PipelineError for the rules
    between sections) naming ``source`` and the dotted key; the typed Profile if it fits."""
    for name in SECTIONS:
        if name not in params:
            raise PipelineError(f"{source}: missing section {name!r} (see "
                                f"profiles/demo.yaml)")
    return from_dict(Profile, params, source)


__all__ = [
    "EVAL_RUN_KEYS",
    "FULL_MODEL",
    "Profile",
    "RUNTIME_SECTION",
    "SECTIONS",
    "SECTION_CONFIGS",
    "TRAIN_RUN_KEYS",
    "check_profile",
    "check_recurrence",
    "mask_bank_hints",
    "model_config_classes",
    "refuse_run_keys",
]
