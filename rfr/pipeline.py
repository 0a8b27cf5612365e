"""The DVC pipeline's side of the library: profiles, run names, and stage configs.

``dvc.yaml`` runs one ``rfr`` verb per stage; each verb turns ``params.yaml`` (the active
profile) into the config dataclass of its library call here. A stage must declare
exactly the params keys it reads, or DVC reruns too much or, worse, too little. So every
builder reads the params through ``TrackedParams``, which records each key it touches,
and ``tests/test_pipeline.py`` checks the record against the ``params:`` list of the
stage in ``dvc.yaml``.

A profile (``profiles/<name>.yaml``; ``rfr profile NAME`` copies it to ``params.yaml``)::

    profile: demo
    paths: {data: data, runs: runs, results: results}   # used in dvc.yaml paths only
    datasets:                                          # every dataset the runs use
      demo-scenes:
        data: {name: demo-scenes, size: 64}            # DatasetConfig fields but split
        schedule: {steps: 100, finetune_steps: 25}     # training steps on this dataset
    compare:  {datasets: [...], variants: [rfr, pconv, encdec], seeds: [0, 1]}
    ablation: {dataset: demo-scenes, variants: [rfr_no_kca, ...], seeds: [0, 1]}
    model:    {width: 16}                              # shared by every variant
    train:    {batch_size: 6, lr: 2.0e-4, ..., loss: {vgg_weights: random},
               gpus: 1, sync_batchnorm: false}         # global batch_size over gpus ranks
    runtime:  {checkpoint_every: 25, keep_checkpoints: 1}  # untracked: changes no number
    masks:    {per_bin: 16, size: 64, seed: 0}
    evaluate: {batch_size: 16, ...}                    # EvalConfig fields
    recurrence: {size: 256, per_bin: 8, seed: 0}       # hole shrinking of the architecture
    report:   {published: results/published.yaml, ...}

A derived profile (``profiles/rehearsal.yaml``) names a base and the dotted keys it
changes (``derived_from: paper``, ``changes: {train.batch_size: 1, ...}``); it can only
change keys its base has (``resolve_derived``), so it runs the base's very matrix.

The full model ``rfr`` of the ablation dataset comes from the compare runs: the ablation
dataset must be one of the compared datasets and its seeds a subset of theirs, so each
ablation run has a full-model run with the same seed to be paired with.

A training stage's run folder is a persistent DVC output, so that an interrupted
``dvc repro`` resumes each run from its last checkpoint. When DVC reruns a stage whose run
had finished (its code, data or params changed, or ``-f``), the run starts afresh
instead (``reset_stale_run``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from rfr.atomic import write_json_atomic, write_text_atomic
from rfr.config import from_dict, load_yaml
from rfr.data import DatasetConfig, build_dataset
from rfr.errors import PipelineError
from rfr.eval_config import EvalConfig
from rfr.train_config import (
    LAST_NAME,
    RUNTIME_FIELDS,
    TrainConfig,
    comparable_config,
    config_differences,
)
from rfr.variants import load_variants, variant_config

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO_ROOT / "profiles"
PARAMS_FILE = "params.yaml"
FULL_MODEL = "rfr"
SECTIONS = ("profile", "paths", "datasets", "compare", "ablation", "model", "train", "masks",
            "evaluate", "recurrence", "report")
PATH_KEYS = ("data", "runs", "results")
# Datasets read from a folder the user provides (the demo sets ship with scikit-image).
DATASETS_WITH_ROOT = ("celeba", "paris", "places2", "folder")
# Set by the pipeline for every run; not profile settings.
# The section of knobs that cannot change any number (rfr/train_config.py states the
# rule): the train and evaluate stages read it untracked, and no stage declares it.
RUNTIME_SECTION = "runtime"
# A derived profile: its base's params with the listed dotted keys replaced.
DERIVED_FROM = "derived_from"
CHANGES = "changes"
TRAIN_RUN_KEYS = ("model", "model_config", "dataset", "steps", "finetune_steps", "seed",
                  "out_dir", "curves_dir")
EVAL_RUN_KEYS = ("checkpoint", "predictions", "dataset", "masks", "out_dir", "run")


def run_name(dataset: str, variant: str, seed: int) -> str:
    """``<dataset>-<variant>-<seed>``: the folder name of a run under runs/ and results/."""
    return f"{dataset}-{variant}-{seed}"


class TrackedParams(Mapping[str, Any]):
    """A read-only view of params that records the dotted key of every value read.

    ``read`` holds e.g. {"train", "datasets.demo-scenes.data"}; reading a nested mapping
    whole (``plain``) records its own key. The pipeline test compares the record with the
    stage's ``params:`` declaration in dvc.yaml."""

    def __init__(self, data: Mapping[str, Any], prefix: str = "",
                 read: set[str] | None = None) -> None:
        self._data = data
        self._prefix = prefix
        self.read: set[str] = read if read is not None else set()

    def _key(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def __getitem__(self, key: str) -> Any:
        try:
            value = self._data[key]
        except KeyError:
            where = self._prefix.rstrip(".") or "the top level"
            raise PipelineError(f"params: {where} has no key {key!r}") from None
        if isinstance(value, Mapping):
            return TrackedParams(value, self._key(key) + ".", self.read)
        self.read.add(self._key(key))
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def plain(self) -> dict[str, Any]:
        """The whole mapping as plain data, recorded as read."""
        self.read.add(self._prefix.rstrip("."))
        return json.loads(json.dumps(self._data))

    def untracked(self, key: str) -> dict[str, Any]:
        """Section ``key`` as plain data, *not* recorded: only for the runtime section,
        whose knobs cannot change a number (so no stage may declare it); {} if absent."""
        if key != RUNTIME_SECTION:
            raise PipelineError(f"params: only {RUNTIME_SECTION!r} may be read untracked, "
                                f"not {key!r}")
        return json.loads(json.dumps(self._data.get(key) or {}))


def _section(params: Mapping[str, Any], name: str, source: str) -> Any:
    if name not in params:
        raise PipelineError(f"{source}: missing section {name!r} (see profiles/demo.yaml)")
    return params[name]


def _names(value: Any, what: str, source: str) -> list:
    if not isinstance(value, list) or not value:
        raise PipelineError(f"{source}: {what} must be a non-empty list, got {value!r}")
    if len(set(map(str, value))) != len(value):
        raise PipelineError(f"{source}: {what} has duplicates: {value!r}")
    return value


def validate_params(params: Mapping[str, Any], source: str = PARAMS_FILE,
                    check_roots: bool = True) -> None:
    """Raise PipelineError for an inconsistent profile, naming the key and the fix.

    With ``check_roots`` every dataset that lives in a user folder must name one that
    exists, so a paper-profile run stops before any work when a root is missing."""
    for name in SECTIONS:
        _section(params, name, source)
    paths = params["paths"]
    if not isinstance(paths, Mapping) or any(key not in paths for key in PATH_KEYS):
        raise PipelineError(f"{source}: paths must give {list(PATH_KEYS)}")
    datasets = params["datasets"]
    if not isinstance(datasets, Mapping) or not datasets:
        raise PipelineError(f"{source}: datasets must map names to {{data, schedule}}")
    for key, entry in datasets.items():
        where = f"{source}: datasets.{key}"
        if not isinstance(entry, Mapping) or set(entry) != {"data", "schedule"}:
            raise PipelineError(f"{where} must have exactly the keys data and schedule")
        if not isinstance(entry["data"], Mapping):
            raise PipelineError(f"{where}.data must be a mapping of DatasetConfig fields")
        if "split" in entry["data"]:
            raise PipelineError(f"{where}.data must not set split (train and test are "
                                f"chosen by the stage)")
        from_dict(DatasetConfig, {**entry["data"], "split": "train"}, source,
                  path=f"datasets.{key}.data")
        schedule = entry["schedule"]
        if not isinstance(schedule, Mapping) or set(schedule) != {"steps", "finetune_steps"}:
            raise PipelineError(f"{where}.schedule must have exactly steps and finetune_steps")
        # The schedule's keys are TrainConfig fields of every run on this dataset.
        from_dict(TrainConfig, schedule, source, path=f"datasets.{key}.schedule")
    known_variants = load_variants()
    compare = params["compare"]
    ablation = params["ablation"]
    for section, value in (("compare", compare), ("ablation", ablation)):
        if not isinstance(value, Mapping):
            raise PipelineError(f"{source}: {section} must be a mapping")
        for variant in _names(value.get("variants"), f"{section}.variants", source):
            if variant not in known_variants:
                raise PipelineError(f"{source}: {section}.variants: unknown variant "
                                    f"{variant!r}; known: {sorted(known_variants)}")
        for seed in _names(value.get("seeds"), f"{section}.seeds", source):
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise PipelineError(f"{source}: {section}.seeds must be integers >= 0, "
                                    f"got {seed!r}")
    for dataset in _names(compare.get("datasets"), "compare.datasets", source):
        if dataset not in datasets:
            raise PipelineError(f"{source}: compare.datasets names {dataset!r}, which is not "
                                f"under datasets ({sorted(datasets)})")
    if ablation.get("dataset") not in compare["datasets"]:
        raise PipelineError(
            f"{source}: ablation.dataset {ablation.get('dataset')!r} must be one of "
            f"compare.datasets {compare['datasets']}: the full model's runs there are the "
            f"reference every ablation is paired with")
    if FULL_MODEL not in compare["variants"]:
        raise PipelineError(f"{source}: compare.variants must include {FULL_MODEL!r}, the "
                            f"reference of the ablations")
    if FULL_MODEL in ablation["variants"]:
        raise PipelineError(f"{source}: ablation.variants must not list {FULL_MODEL!r}; its "
                            f"runs come from compare (same dataset and seeds)")
    missing_seeds = sorted(set(ablation["seeds"]) - set(compare["seeds"]))
    if missing_seeds:
        raise PipelineError(f"{source}: ablation.seeds {missing_seeds} are not in "
                            f"compare.seeds {compare['seeds']}; the full model needs a run "
                            f"with every ablation seed")
    models = {known_variants[name].model for name in [*compare["variants"],
                                                       *ablation["variants"]]}
    _check_runtime_section(params, source)
    _check_run_section(params, "train", TrainConfig, TRAIN_RUN_KEYS, {}, source)
    _check_run_section(params, "evaluate", EvalConfig, EVAL_RUN_KEYS,
                       {"checkpoint": "<the run's checkpoint>"}, source)
    _check_model_section(params["model"], sorted(models), source)
    _check_masks_section(params["masks"], source)
    if check_roots:
        check_dataset_roots(params, source)


def _check_run_section(params: Mapping[str, Any], section: str, cls: type,
                       run_keys: Sequence[str], placeholders: Mapping[str, Any],
                       source: str) -> None:
    """Type-check a settings section that ``train_config``/``eval_config`` merge into
    every run's ``cls``, at load, with the section's own keys in the message.

    The check is the dataclass's (``from_dict``: known keys, each value against its
    field's hint, then ``__post_init__``), so it follows the dataclass without a key list
    here. The per-run keys are the pipeline's (a clash is refused as it would be at the
    stage); ``placeholders`` stand in for the run keys the dataclass needs to be
    constructible (an EvalConfig needs a checkpoint)."""
    settings = params[section]
    if not isinstance(settings, Mapping):
        raise PipelineError(f"{source}: {section} must be a mapping of {cls.__name__} "
                            f"fields, got {settings!r}")
    _refuse_run_keys(settings, section, run_keys, source)
    from_dict(cls, {**placeholders, **settings}, source, path=section)


def _check_runtime_section(params: Mapping[str, Any], source: str) -> None:
    """``runtime`` (optional) holds only the knobs that cannot change a number, and no
    tracked section holds any of them: otherwise toggling a progress bar would retrain
    every run (rfr/train_config.py states the rule)."""
    runtime = params.get(RUNTIME_SECTION) or {}
    if not isinstance(runtime, Mapping):
        raise PipelineError(f"{source}: {RUNTIME_SECTION} must be a mapping of "
                            f"{list(RUNTIME_FIELDS)}, got {runtime!r}")
    unknown = sorted(set(runtime) - set(RUNTIME_FIELDS))
    if unknown:
        raise PipelineError(
            f"{source}: {RUNTIME_SECTION}: {unknown} cannot go here: the section holds only "
            f"knobs that cannot change any number ({list(RUNTIME_FIELDS)}), because no "
            f"stage tracks it; put the others in their tracked section")
    from_dict(TrainConfig, dict(runtime), source, path=RUNTIME_SECTION)
    for section in ("train", "evaluate"):
        misplaced = sorted(set(params.get(section) or {}) & set(RUNTIME_FIELDS))
        if misplaced:
            raise PipelineError(
                f"{source}: {section}: {misplaced} cannot change any number, so they belong "
                f"under {RUNTIME_SECTION}: (untracked); in {section} DVC would rerun every "
                f"run when one is toggled (see rfr/train_config.py)")


def _check_model_section(model: Any, models: Sequence[str], source: str) -> None:
    """The model section is shared by every variant the profile runs, so each of its keys
    must fit the config dataclass of each of those models that has it (and be a field of
    at least one, so a typo is not silently ignored)."""
    from rfr.variants import config_classes

    if not isinstance(model, Mapping):
        raise PipelineError(f"{source}: model must be a mapping, got {model!r}")
    classes = [config_classes()[name] for name in models]
    fields = {cls: {f.name for f in dataclasses.fields(cls)} for cls in classes}
    known = set().union(*fields.values())
    unknown = sorted(set(model) - known)
    if unknown:
        raise PipelineError(f"{source}: model: unknown key(s) {unknown}; known keys (fields "
                            f"of the configs of {list(models)}): {sorted(known)}")
    for cls in classes:
        from_dict(cls, {k: v for k, v in model.items() if k in fields[cls]}, source,
                  path="model")


def _check_masks_section(masks: Any, source: str) -> None:
    """The masks section is the arguments of ``rfr masks`` (dvc.yaml interpolates each),
    i.e. of ``rfr.masks.write_mask_bank`` but its out_dir: exactly those keys, each of the
    type of its parameter, so a bad value fails at load rather than in the masks stage."""
    import inspect
    from typing import get_type_hints

    from rfr.config import check_type
    from rfr.masks import write_mask_bank

    names = [name for name in inspect.signature(write_mask_bank).parameters
             if name != "out_dir"]
    if not isinstance(masks, Mapping) or set(masks) != set(names):
        got = sorted(masks) if isinstance(masks, Mapping) else masks
        raise PipelineError(f"{source}: masks must have exactly the keys {names}, got {got!r}")
    hints = get_type_hints(write_mask_bank)
    for name in names:
        check_type(masks[name], hints[name], f"masks.{name}", source)


def check_dataset_roots(params: Mapping[str, Any], source: str = PARAMS_FILE) -> None:
    """Every user-folder dataset of the runs must name an existing root."""
    problems = []
    for key in params["compare"]["datasets"]:
        data = params["datasets"][key]["data"]
        if data.get("name") not in DATASETS_WITH_ROOT:
            continue
        root = data.get("root")
        if root is None:
            problems.append(f"{key}: no root given")
        elif not Path(root).is_dir():
            problems.append(f"{key}: root {root} is not a folder")
    if problems:
        raise PipelineError(
            f"{source}: dataset roots missing: {'; '.join(problems)}. Give each one with "
            f"`rfr profile {params.get('profile', 'paper')} --root NAME=FOLDER` (the expected "
            f"layouts are in docs/datasets.md)")


def load_params(path: str | Path = PARAMS_FILE, check_roots: bool = True) -> dict[str, Any]:
    """Read and validate a profile (``params.yaml`` or ``profiles/<name>.yaml``; a derived
    profile is resolved against its base first)."""
    params = resolve_derived(load_yaml(path), str(path))
    validate_params(params, str(path), check_roots=check_roots)
    return params


def runs(params: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """Every (dataset, variant, seed) the profile trains: compare, then ablation."""
    compare, ablation = params["compare"], params["ablation"]
    found = [(d, v, s) for d in compare["datasets"] for v in compare["variants"]
             for s in compare["seeds"]]
    found += [(ablation["dataset"], v, s) for v in ablation["variants"]
              for s in ablation["seeds"]]
    return found


# --- stage configs: each reads only what its dvc.yaml stage declares -------------------


def _tracked(params: Mapping[str, Any]) -> TrackedParams:
    return params if isinstance(params, TrackedParams) else TrackedParams(params)


def _settings(tracked: TrackedParams, section: str, run_keys: Sequence[str]) -> dict[str, Any]:
    """A stage's settings section, which must leave the per-run keys to the pipeline."""
    settings = tracked[section].plain()
    _refuse_run_keys(settings, section, run_keys, "params")
    return settings


def _refuse_run_keys(settings: Mapping[str, Any], section: str, run_keys: Sequence[str],
                     source: str) -> None:
    """A settings section must leave the per-run keys to the pipeline."""
    clashes = sorted(set(settings) & set(run_keys))
    if clashes:
        raise PipelineError(f"{source}: {section} must not set {clashes}: the pipeline sets "
                            f"them per run (datasets.<name>, model, the matrix's dataset, "
                            f"variant and seed, the paths)")


def dataset_config(params: Mapping[str, Any], dataset: str, split: str) -> DatasetConfig:
    """The dataset of ``datasets.<dataset>.data`` at ``split``."""
    data = _tracked(params)["datasets"][dataset]["data"]
    return from_dict(DatasetConfig, {**data.plain(), "split": split},
                     f"datasets.{dataset}.data")


def train_config(params: Mapping[str, Any], dataset: str, variant: str, seed: int,
                 out_dir: str | Path, curves_dir: str | Path | None) -> TrainConfig:
    """Reads ``datasets.<dataset>``, ``model`` and ``train``.

    ``train`` holds every tracked TrainConfig field, ``gpus`` and ``sync_batchnorm``
    included: they change the numbers (the split of the global ``batch_size``, the
    BatchNorm statistics), so they are never runtime knobs, and a stage retrains when one
    changes. ``rfr train`` launches torchrun for ``gpus`` > 1 itself, so the stage
    command stays the same."""
    tracked = _tracked(params)
    train = _settings(tracked, "train", TRAIN_RUN_KEYS)
    found = load_variants()
    if variant not in found:
        raise PipelineError(f"unknown variant {variant!r}; known: {sorted(found)}")
    width = tracked["model"].plain().get("width")
    schedule = tracked["datasets"][dataset]["schedule"].plain()
    data = {**tracked["datasets"][dataset]["data"].plain(), "split": "train"}
    config = {
        **train,
        **tracked.untracked(RUNTIME_SECTION),
        "model": found[variant].model,
        "model_config": variant_config(found[variant], width),
        "dataset": data,
        "steps": schedule["steps"],
        "finetune_steps": schedule["finetune_steps"],
        "seed": seed,
        "out_dir": str(out_dir),
        "curves_dir": None if curves_dir is None else str(curves_dir),
    }
    return from_dict(TrainConfig, config, f"train run {run_name(dataset, variant, seed)}")


def reset_stale_run(config: TrainConfig) -> str:
    """Make the run folder of a pipeline training stage fit for ``rfr.train.train``.

    Returns "new" (no checkpoint), "resume" (an interrupted run of this very config: it
    goes on from its last checkpoint) or "fresh" (the folder held a finished run, a run of
    another config or an unreadable checkpoint: DVC asked for this stage to run again, so
    the folder and the run's curves are removed and training starts over)."""
    from rfr.checkpoint import CheckpointError, read_checkpoint

    out_dir = Path(config.out_dir)
    last = out_dir / LAST_NAME
    if not last.exists():
        return "new"
    try:
        training = read_checkpoint(last)["training"]
        step = int(training["step"])
        diffs = config_differences(comparable_config(training["train_config"]),
                                   comparable_config(config))
    except (CheckpointError, KeyError, TypeError, ValueError) as exc:
        reason = f"its checkpoint {last} is unusable ({exc})"
    else:
        if not diffs and step < config.total_steps:
            return "resume"
        reason = (f"it holds a finished run ({step} steps)" if not diffs
                  else f"it holds a run of another config ({'; '.join(diffs)})")
    log.warning("starting %s afresh: %s", out_dir, reason)
    shutil.rmtree(out_dir)
    if config.curves_dir is not None:
        shutil.rmtree(config.curves_dir, ignore_errors=True)
    return "fresh"


def eval_config(params: Mapping[str, Any], dataset: str, variant: str, seed: int,
                checkpoint: str | Path, masks: str | Path, out_dir: str | Path) -> EvalConfig:
    """Reads ``datasets.<dataset>.data`` and ``evaluate``."""
    tracked = _tracked(params)
    evaluate = _settings(tracked, "evaluate", EVAL_RUN_KEYS)
    data = {**tracked["datasets"][dataset]["data"].plain(), "split": "test"}
    runtime = tracked.untracked(RUNTIME_SECTION)
    config = {
        **evaluate,
        **{key: runtime[key] for key in ("num_workers",) if key in runtime},
        "checkpoint": str(checkpoint),
        "dataset": data,
        "masks": str(masks),
        "out_dir": str(out_dir),
        "run": {"name": run_name(dataset, variant, seed), "dataset": dataset,
                "variant": variant, "seed": seed},
    }
    return from_dict(EvalConfig, config, f"evaluate run {run_name(dataset, variant, seed)}")


def recurrence_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """Reads ``recurrence``: size, per_bin, seed of the architecture-level hole-shrinking
    record (rfr.recurrence.architecture_propagation) of the full model's architecture."""
    settings = _tracked(params)["recurrence"].plain()
    if set(settings) != {"size", "per_bin", "seed"}:
        raise PipelineError(f"params: recurrence must have exactly size, per_bin and seed, "
                            f"got {sorted(settings)}")
    return settings


def report_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The sections ``rfr report`` reads: ``compare``, ``ablation`` and ``report``."""
    tracked = _tracked(params)
    return {name: tracked[name].plain() for name in ("compare", "ablation", "report")}


# --- prepare -------------------------------------------------------------------------------


def prepare_dataset(params: Mapping[str, Any], dataset: str, out: str | Path,
                    progress: bool = True) -> dict[str, Any]:
    """Open both splits of ``dataset`` (so a missing or malformed dataset fails here, with
    the adapter's message, before any training), and write a manifest of them: split
    sizes, the test image names and one SHA-256 over the preprocessed test tensors. The
    manifest is what the train and evaluate stages depend on, so a change in the test
    images or their preprocessing reruns evaluation."""
    from tqdm import tqdm

    tracked = _tracked(params)
    train = build_dataset(dataset_config(tracked, dataset, "train"))
    test_config = dataset_config(tracked, dataset, "test")
    test = build_dataset(test_config)
    if len(train) == 0 or len(test) == 0:
        raise PipelineError(f"dataset {dataset!r}: empty split (train {len(train)}, test "
                            f"{len(test)} images); check datasets.{dataset}.data")
    digest = hashlib.sha256()
    for index in tqdm(range(len(test)), desc=f"prepare {dataset}", unit="img",
                      disable=not progress):
        image = test[index]["image"]
        digest.update(image.contiguous().numpy().tobytes())
    manifest = {
        "dataset": dataset,
        "config": dataclasses.asdict(test_config),
        "splits": {"train": len(train), "test": len(test)},
        "test_names": list(test.names),
        "test_sha256": digest.hexdigest(),
        "test_size": [3, test_config.size, test_config.size],
    }
    write_json_atomic(out, manifest, indent=2, sort_keys=True)
    return manifest


# --- profiles ------------------------------------------------------------------------------


def profile_names() -> list[str]:
    return sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{dotted key: leaf value}; a list is a leaf (a profile never changes half a list)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resolve_derived(params: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A derived profile (``derived_from: BASE`` and ``changes: {dotted.key: value}``) as
    the full params: BASE with exactly those leaves replaced and ``profile`` renamed.

    A change may only replace a leaf BASE has, never add a key or a section, so the
    derived profile runs the very stages, variants, seeds and settings of its base except
    for the listed keys, and cannot drift from it when the base changes. Any other
    profile is returned as it is."""
    if DERIVED_FROM not in params:
        return dict(params)
    extra = sorted(set(params) - {"profile", DERIVED_FROM, CHANGES})
    if extra:
        raise PipelineError(f"{source}: a derived profile has only profile, {DERIVED_FROM} "
                            f"and {CHANGES}; move {extra} into {CHANGES} as dotted keys")
    base_name = params[DERIVED_FROM]
    base_path = PROFILES_DIR / f"{base_name}.yaml"
    if not base_path.is_file():
        raise PipelineError(f"{source}: {DERIVED_FROM}: unknown profile {base_name!r}; "
                            f"known: {profile_names()}")
    base = load_yaml(base_path)
    if DERIVED_FROM in base:
        raise PipelineError(f"{source}: {DERIVED_FROM} {base_name!r} is itself derived; "
                            f"derive from a full profile")
    resolved = json.loads(json.dumps(base))
    base_leaves = flatten(base)
    changes = params.get(CHANGES) or {}
    if not isinstance(changes, Mapping):
        raise PipelineError(f"{source}: {CHANGES} must map dotted keys to values")
    for key, value in changes.items():
        if key not in base_leaves or key == "profile":
            raise PipelineError(f"{source}: {CHANGES}: {key!r} is not a setting of profile "
                                f"{base_name!r} (a derived profile only changes existing "
                                f"keys; their dotted names: rfr.pipeline.flatten)")
        *parents, leaf = key.split(".")
        section = resolved
        for part in parents:
            section = section[part]
        section[leaf] = json.loads(json.dumps(value))
    resolved["profile"] = params.get("profile", base_name)
    return resolved


def profile_path(name: str) -> Path:
    """``profiles/<name>.yaml``, or PipelineError listing the known profiles."""
    source = PROFILES_DIR / f"{name}.yaml"
    if not source.is_file():
        raise PipelineError(f"unknown profile {name!r}; known: {profile_names()}")
    return source


def read_profile(name: str) -> dict[str, Any]:
    """``profiles/<name>.yaml`` as params.yaml will hold it (a derived one resolved)."""
    source = profile_path(name)
    return resolve_derived(load_yaml(source), str(source))


def parse_roots(pairs: Sequence[str]) -> dict[str, str]:
    """``["celeba=/data/celeba", ...]`` -> {"celeba": "/data/celeba"}."""
    roots = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name or not folder:
            raise PipelineError(f"--root takes NAME=FOLDER, got {pair!r}")
        roots[name] = folder
    return roots


def use_profile(name: str, roots: Mapping[str, str] | None = None,
                dest: str | Path = PARAMS_FILE) -> Path:
    """Write ``profiles/<name>.yaml`` to ``dest`` (params.yaml), with dataset roots filled
    in, after checking it: a missing root fails here, before any stage runs."""
    source = profile_path(name)
    text = source.read_text()
    raw = yaml.safe_load(text)
    params = resolve_derived(raw, str(source))
    derived = DERIVED_FROM in raw
    roots = dict(roots or {})
    unknown = sorted(set(roots) - set(params["datasets"]))
    if unknown:
        raise PipelineError(f"--root for {unknown}: profile {name!r} has the datasets "
                            f"{sorted(params['datasets'])}")
    if roots or derived:
        for key, folder in roots.items():
            params["datasets"][key]["data"]["root"] = str(Path(folder).expanduser())
        header = "".join(line + "\n" for line in text.splitlines()
                         if line.startswith("#"))
        text = header + yaml.safe_dump(params, sort_keys=False)
    validate_params(params, str(source))
    return write_text_atomic(dest, text)


__all__ = [
    "FULL_MODEL",
    "PipelineError",
    "TrackedParams",
    "check_dataset_roots",
    "dataset_config",
    "eval_config",
    "flatten",
    "load_params",
    "prepare_dataset",
    "profile_names",
    "profile_path",
    "read_profile",
    "resolve_derived",
    "report_params",
    "reset_stale_run",
    "run_name",
    "runs",
    "train_config",
    "use_profile",
    "validate_params",
]
