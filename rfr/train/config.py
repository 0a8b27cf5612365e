"""The configuration of one training run, apart from the loop that runs it.

Kept out of ``rfr/train/loop.py`` so that the pipeline can validate a profile's ``train``
section, and decide whether a run folder can be resumed, without importing the training
loop, the losses and the models: a DVC stage depends on the code it imports, and the
evaluation and report stages must not be rerun because the loop changed.

**Runtime knobs.** Some fields cannot change any number a run produces: how often a
checkpoint is written and how many are kept (a resumed run ends bit-identical to an
uninterrupted one), DataLoader workers (every sample is a pure function of the seed and
its index), and the progress bar. They are ``RUNTIME_FIELDS``. The rule, stated once
here and enforced by ``tests/test_runtime_knobs.py``: a runtime field is never a stage
parameter. In a profile they live in the ``runtime:`` section, which no stage of
``dvc.yaml`` declares, so toggling one does not retrain the matrix; every other setting
that reaches a run is in a tracked section. Logging verbosity (``rfr -v``) and progress
of the other verbs (``--no-progress``) are command-line flags, outside params altogether.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfr.config import (
    ConfigError,
    LossConfig,
    check_int,
    check_literal,
    from_dict,
    load_yaml,
    to_dict,
)
from rfr.data.config import DatasetConfig
from rfr.masks import MASK_KINDS
from rfr.precision import Precision

CHECKPOINT_DIR = "checkpoints"
LAST_NAME = "last.pth"
# Fields that cannot change any number of a run (see the module docstring).
RUNTIME_FIELDS = ("checkpoint_every", "keep_checkpoints", "num_workers", "progress")
# Fields that may change between a run and its resume: the runtime knobs, where the run's
# files go, and the device (a run moved to another machine resumes there; its numbers
# are then those of a mixed run, which run.json and the checkpoints record).
RESUME_FREE_KEYS = (*RUNTIME_FIELDS, "out_dir", "curves_dir", "device")


@dataclass(frozen=True)
class TrainConfig:
    """Fields:
        model: a key of ``rfr.model.api.MODEL_BUILDERS`` ("rfr").
        model_config: that model's config mapping (e.g. {"width": 8}).
        dataset: the training images (``DatasetConfig``; its ``size`` is the image size).
        loss: loss weights and ``vgg_weights`` ("imagenet" | path | "random"; random is
            for tests and smoke runs and is recorded in run.json and the checkpoints).
        batch_size: images per step over all ranks: the *global* batch (the authors' 6).
            It is split evenly, ``batch_size // gpus`` images per rank, so it must be
            divisible by ``gpus``. Global, not per rank, so that the tracked number is
            the recipe's whatever the machine: the same profile trains the same batch on
            one GPU or on several, and 1 rank x 6 sees exactly the samples and masks of
            2 ranks x 3 at every step (``rfr.train.loop.shard_indices``).
        gpus: the number of ranks (processes) one run uses: GPUs, or gloo processes when
            ``device`` is cpu. ``rfr train`` launches them through torchrun when it is
            above 1; ``train()`` refuses to run under another WORLD_SIZE. It changes the
            numbers (per-rank BatchNorm statistics, float rounding of the averaged
            gradient), so it is a tracked setting, not a runtime knob.
        sync_batchnorm: with more than one rank, BatchNorm layers normalise phase-1
            batches with the statistics of the global batch
            (``rfr.train.sync_batchnorm``), so that 2 x 3 trains like 1 x 6; without it each
            rank normalises its own shard (what plain DDP does). No effect on one rank.
        small_map_gemm: train with the CPU GEMM versions of the RFR module's layers on
            the deepest map (``rfr.model.small_map_conv.use_small_map_gemm``: about 2x
            faster weight gradients on 4 x 4 maps; the paths are never taken at
            256 x 256 or off the CPU). The weight gradients differ from oneDNN's in float
            summation order, so it changes the numbers: a tracked setting, not a
            runtime knob. Checkpoints are those of the plain model either way.
        steps: phase 1 steps (Adam at ``lr``).
        finetune_steps: phase 2 steps (fresh Adam at ``finetune_lr``, BatchNorm frozen).
        lr, finetune_lr: the authors' 2e-4 and 5e-5.
        checkpoint_every: write a checkpoint every N steps (and always at the end).
        keep_checkpoints: keep the newest K step checkpoints (0 keeps all).
        seed: seeds model init, data order, masks and per-step RNG.
        mask_kind: training masks, a ``rfr.masks.generate_mask`` kind: "strokes" (the
            authors' free-form strokes, their ``run.py`` mask mode 1; mean hole 0.53 at
            256x256), "boxes", or "mixed" (strokes plus boxes; mean hole 0.58).
        out_dir: where checkpoints, logs and curves go; a run resumes from its last.pth.
        precision: "fp32" or "bf16" (autocast for forward and loss; opt-in).
        num_workers: DataLoader workers (does not change the result).
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ...
        progress: show a tqdm progress bar (rank 0).
        curves_dir: where the dvclive curves and the training summary (``summary.json``:
            last loss terms, wall time, steps/s, parameters, VGG source; ``metrics.json``:
            its flat numbers) go; None =
            ``out_dir/dvclive``. The pipeline keeps them apart from the checkpoints so that
            they can be committed while the checkpoints stay in the DVC cache.
    """

    model: str = "rfr"
    model_config: dict[str, Any] = field(default_factory=dict)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    batch_size: int = 6
    gpus: int = 1
    sync_batchnorm: bool = False
    small_map_gemm: bool = False
    steps: int = 1000
    finetune_steps: int = 0
    lr: float = 2e-4
    finetune_lr: float = 5e-5
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    seed: int = 0
    mask_kind: str = "strokes"
    out_dir: str = "runs/train"
    precision: Precision = "fp32"
    num_workers: int = 0
    device: str = "auto"
    progress: bool = True
    curves_dir: str | None = None

    def __post_init__(self) -> None:
        check_literal(self, "precision")
        for name in ("batch_size", "gpus", "checkpoint_every"):
            check_int(self, name, 1)
        if self.batch_size % self.gpus:
            raise ConfigError(f"batch_size {self.batch_size} is not divisible by gpus "
                              f"{self.gpus}: batch_size is the global batch, split evenly "
                              f"over the ranks; choose a batch_size that is a multiple of "
                              f"gpus (or another gpus)")
        if not isinstance(self.sync_batchnorm, bool):
            raise ConfigError(f"sync_batchnorm must be true or false, got "
                              f"{self.sync_batchnorm!r}")
        for name in ("steps", "finetune_steps", "keep_checkpoints", "num_workers"):
            check_int(self, name, 0)
        if self.steps + self.finetune_steps < 1:
            raise ConfigError("steps + finetune_steps must be at least 1")
        for name in ("lr", "finetune_lr"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        check_int(self, "seed", 0, 2**32 - 1)
        if self.mask_kind not in MASK_KINDS:
            raise ConfigError(f"mask_kind must be one of {list(MASK_KINDS)}, "
                              f"got {self.mask_kind!r}")
        if not isinstance(self.model_config, Mapping):
            raise ConfigError(f"model_config must be a mapping, got {self.model_config!r}")

    @property
    def total_steps(self) -> int:
        return self.steps + self.finetune_steps

    @property
    def rank_batch_size(self) -> int:
        """Images per rank and step: the global ``batch_size`` split over ``gpus``."""
        return self.batch_size // self.gpus

    def phase(self, step: int) -> str:
        """Phase of the step that starts after ``step`` completed steps."""
        return "train" if step < self.steps else "finetune"


def load_train_config(path: str | Path, set_keys: Sequence[str] = (),
                      **overrides: Any) -> TrainConfig:
    """A TrainConfig from YAML (unknown keys are errors), with the command line's
    ``-S key=value`` settings (``set_keys``, dotted keys: ``rfr.overrides``) and then the
    top-level ``overrides`` of its flags (None: not given)."""
    from rfr.overrides import apply_overrides, with_overrides_named

    data = apply_overrides(load_yaml(path), set_keys, TrainConfig)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return from_dict(TrainConfig, data, str(path))
    except ConfigError as exc:
        raise with_overrides_named(exc, set_keys) from None


def comparable_config(config: TrainConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The fields that must agree for a checkpoint to be resumed under ``config``."""
    data = to_dict(config) if not isinstance(config, Mapping) else dict(config)
    return {k: v for k, v in data.items() if k not in RESUME_FREE_KEYS}


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any],
                       prefix: str = "") -> list[str]:
    """Readable "key: checkpoint a, now b" lines, nested keys dotted."""
    diffs = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: checkpoint {a!r}, now {b!r}")
    return diffs


__all__ = [
    "CHECKPOINT_DIR",
    "LAST_NAME",
    "RESUME_FREE_KEYS",
    "RUNTIME_FIELDS",
    "TrainConfig",
    "comparable_config",
    "config_differences",
    "load_train_config",
]
