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
    released: {}          # {dataset: the authors' .pth}: run <dataset>-released-0

The ``released`` profile evaluates the authors' files and trains nothing
(``compare.seeds: []``); ``rfr profile released --checkpoint celeba=FILE`` fills
``released:`` (a missing file fails there), and dvc.yaml's ``evaluate-released`` stage
runs ``released_eval_config`` per entry.

The profile's schema, and every rule between its sections, is ``rfr.profile_schema``
(``validate_params``); its ``train``, ``evaluate``, ``model`` and ``datasets`` entries are
checked by the very dataclasses that ``rfr train --config`` and ``rfr evaluate --config``
read. The command line may change single keys with ``-S key=value`` (``load_params``'s
``overrides``; ``rfr.overrides``): untracked by DVC, unless ``rfr profile -S`` writes them
into params.yaml.

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
from rfr.errors import ConfigError, PipelineError
from rfr.evaluate.config import EvalConfig
from rfr.model.variants import load_variants, variant_config
from rfr.overrides import with_overrides_named
from rfr.profile_schema import (  # noqa: F401 -- SECTIONS: re-exported for the stages' users
    EVAL_RUN_KEYS,
    FULL_MODEL,
    RUNTIME_SECTION,
    SECTIONS,
    TRAIN_RUN_KEYS,
    check_profile,
    check_recurrence,
    refuse_run_keys,
)
from rfr.train.config import (
    LAST_NAME,
    TrainConfig,
    comparable_config,
    config_differences,
)

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO_ROOT / "profiles"
PARAMS_FILE = "params.yaml"
PATH_KEYS = ("data", "runs", "results")
# Datasets read from a folder the user provides (the demo sets ship with scikit-image).
DATASETS_WITH_ROOT = ("celeba", "paris", "places2", "folder")
# A derived profile: its base's params with the listed dotted keys replaced.
DERIVED_FROM = "derived_from"
CHANGES = "changes"


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

    def __contains__(self, key: object) -> bool:
        return key in self._data  # a membership test reads no value

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


def validate_params(params: Mapping[str, Any], source: str = PARAMS_FILE,
                    check_roots: bool = True) -> None:
    """Raise ConfigError (PipelineError for the rules between sections) for a profile
    that does not fit the profile schema (``rfr.profile_schema``), naming the key and the
    fix.

    With ``check_roots`` every dataset that lives in a user folder must name one that
    exists, so a paper-profile run stops before any work when a root is missing."""
    if isinstance(params, TrackedParams):
        params = params._data  # validating reads every key; that is not a stage's read
    check_profile(params, source)
    if check_roots:
        check_dataset_roots(params, source)


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


def load_params(path: str | Path = PARAMS_FILE, check_roots: bool = True,
                overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read and validate a profile (``params.yaml`` or ``profiles/<name>.yaml``; a derived
    profile is resolved against its base first), with the command line's ``-S key=value``
    settings applied (dotted profile keys, ``rfr.overrides``). Those are not in the file,
    so DVC does not track them: they are for runs outside ``dvc repro``."""
    params = resolve_derived(load_yaml(path), str(path))
    params = apply_profile_overrides(params, overrides)
    try:
        validate_params(params, str(path), check_roots=check_roots)
    except ConfigError as exc:
        raise with_overrides_named(exc, overrides) from None
    return params


def apply_profile_overrides(params: Mapping[str, Any],
                            overrides: Sequence[str]) -> dict[str, Any]:
    """``params`` with each ``-S key=value`` set, each checked against the profile
    schema on its own (the whole profile is checked by the caller)."""
    if not overrides:
        return dict(params)
    from rfr.overrides import apply_overrides, profile_hint

    return apply_overrides(params, overrides, None, resolve=profile_hint)


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
    refuse_run_keys(settings, section, run_keys, "params")
    return settings


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
    """Make the run folder of a pipeline training stage fit for ``rfr.train.loop.train``.

    Returns "new" (no checkpoint), "resume" (an interrupted run of this very config: it
    goes on from its last checkpoint) or "fresh" (the folder held a finished run, a run of
    another config or an unreadable checkpoint: DVC asked for this stage to run again, so
    the folder and the run's curves are removed and training starts over)."""
    from rfr.model.checkpoint import CheckpointError, read_checkpoint

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
    record (rfr.evaluate.recurrence.architecture_propagation) of the full model's architecture."""
    settings = _tracked(params)["recurrence"].plain()
    check_recurrence(settings, "params")
    return settings


def report_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The sections ``rfr report`` reads: ``compare``, ``ablation``, ``report`` and
    ``released`` (which datasets have a released-checkpoint run)."""
    tracked = _tracked(params)
    found = {name: tracked[name].plain() for name in ("compare", "ablation", "report")}
    found["released"] = tracked["released"].plain() if "released" in tracked else {}
    return found


RELEASED_VARIANT = "released"  # run <dataset>-released-0: the authors' checkpoint


def released_eval_config(params: Mapping[str, Any], dataset: str, masks: str | Path,
                         out_dir: str | Path) -> EvalConfig:
    """Reads ``released.<dataset>``, ``datasets.<dataset>.data`` and ``evaluate``: the
    evaluation of the authors' checkpoint as run ``<dataset>-released-0``. The file must
    exist and be in the authors' format (``rfr.model.checkpoint.require_authors_format``;
    the evaluation itself loads it strictly)."""
    from rfr.model.checkpoint import require_authors_format

    tracked = _tracked(params)
    released = tracked["released"] if "released" in tracked else {}
    if dataset not in released:
        raise PipelineError(f"params: released has no checkpoint for {dataset!r} (it has "
                            f"{sorted(released)}); give it with `rfr profile "
                            f"{params.get('profile', 'released')} --checkpoint "
                            f"{dataset}=FILE`")
    checkpoint = released[dataset]
    if not Path(checkpoint).is_file():
        raise PipelineError(f"released.{dataset}: checkpoint not found: {checkpoint}")
    require_authors_format(checkpoint)
    return eval_config(tracked, dataset, RELEASED_VARIANT, 0, checkpoint, masks, out_dir)


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


def parse_assignments(pairs: Sequence[str], flag: str, form: str) -> dict[str, str]:
    """``["celeba=/data/celeba", ...]`` -> {"celeba": "/data/celeba"}; ``flag`` and
    ``form`` (``--root``, ``NAME=FOLDER``) name the option in the error."""
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise PipelineError(f"{flag} takes {form}, got {pair!r}")
        found[name] = value
    return found


def parse_roots(pairs: Sequence[str]) -> dict[str, str]:
    """``rfr profile --root NAME=FOLDER``, repeated."""
    return parse_assignments(pairs, "--root", "NAME=FOLDER")


def parse_checkpoints(pairs: Sequence[str]) -> dict[str, str]:
    """``rfr profile --checkpoint DATASET=FILE``, repeated."""
    return parse_assignments(pairs, "--checkpoint", "DATASET=FILE")


def check_released_files(params: Mapping[str, Any], source: str = PARAMS_FILE) -> None:
    """Every checkpoint of ``released`` must be an existing file (named if not)."""
    missing = [f"{dataset}: {path}" for dataset, path in (params.get("released") or {}).items()
               if not Path(path).is_file()]
    if missing:
        raise PipelineError(f"{source}: released checkpoint(s) not found: "
                            f"{'; '.join(missing)}")


def use_profile(name: str, roots: Mapping[str, str] | None = None,
                dest: str | Path = PARAMS_FILE, overrides: Sequence[str] = (),
                checkpoints: Mapping[str, str] | None = None) -> Path:
    """Write ``profiles/<name>.yaml`` to ``dest`` (params.yaml), with dataset roots and
    released checkpoints (``released:``) filled in and the ``-S key=value`` settings
    applied (then tracked, as params.yaml holds them), after checking it: a missing root
    or checkpoint file fails here, before any stage runs."""
    source = profile_path(name)
    text = source.read_text()
    raw = yaml.safe_load(text)
    params = resolve_derived(raw, str(source))
    derived = DERIVED_FROM in raw
    roots = dict(roots or {})
    checkpoints = dict(checkpoints or {})
    for flag, given in (("--root", roots), ("--checkpoint", checkpoints)):
        unknown = sorted(set(given) - set(params["datasets"]))
        if unknown:
            raise PipelineError(f"{flag} for {unknown}: profile {name!r} has the datasets "
                                f"{sorted(params['datasets'])}")
    missing = [f"{key}={path}" for key, path in checkpoints.items() if not Path(path).is_file()]
    if missing:
        raise PipelineError(f"--checkpoint: file not found: {', '.join(missing)}")
    params = apply_profile_overrides(params, overrides)
    if not params["compare"]["seeds"] and not (checkpoints or params.get("released")):
        raise PipelineError(f"profile {name!r} trains nothing and evaluates the released "
                            f"checkpoints: give each with --checkpoint DATASET=FILE")
    if roots or derived or overrides or checkpoints:
        for key, folder in roots.items():
            params["datasets"][key]["data"]["root"] = str(Path(folder).expanduser())
        if checkpoints:
            params["released"] = {**(params.get("released") or {}),
                                  **{key: str(Path(file).expanduser().resolve())
                                     for key, file in checkpoints.items()}}
        header = "".join(line + "\n" for line in text.splitlines()
                         if line.startswith("#"))
        text = header + yaml.safe_dump(params, sort_keys=False)
    try:
        validate_params(params, str(source))
    except ConfigError as exc:
        raise with_overrides_named(exc, overrides) from None
    check_released_files(params, str(source))
    return write_text_atomic(dest, text)


__all__ = [
    "FULL_MODEL",
    "PipelineError",
    "TrackedParams",
    "apply_profile_overrides",
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
    "check_released_files",
    "parse_checkpoints",
    "released_eval_config",
    "reset_stale_run",
    "run_name",
    "runs",
    "train_config",
    "use_profile",
    "validate_params",
]
