"""A training run's state on disk: its checkpoints, and what a resume reads back.

``out_dir/checkpoints/step_XXXXXXX.pth`` is the suite's checkpoint format with a
``training`` entry (optimizer, step, phase, RNG states, data position, config, world
size); ``out_dir/last.pth`` is a hard link to the newest, replaced atomically. Resuming
needs only the weights, the optimizer state and the step (every random choice of a step
is a function of the seed and the step: ``rfr.train.sampling``); the RNG states and the data
position are stored for inspection and restored all the same.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rfr.atomic import link_atomic
from rfr.config import to_dict
from rfr.errors import CheckpointError, DivergedError, TrainingError
from rfr.model.checkpoint import read_checkpoint, save_checkpoint
from rfr.train.config import (
    CHECKPOINT_DIR,
    LAST_NAME,
    TrainConfig,
    comparable_config,
    config_differences,
)
from rfr.train.sampling import TrainingSamples


def rng_states(data_position: Mapping[str, int]) -> dict[str, Any]:
    """Every RNG state as tensors and plain data (checkpoints load with weights_only)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64)},
        "data": dict(data_position),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = states["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), None))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return out_dir / CHECKPOINT_DIR / f"step_{step:07d}.pth"


def link_last(out_dir: Path, target: Path) -> Path:
    """Point ``last.pth`` at ``target`` atomically (hard link, or a copy where links are
    not supported), so a reader never sees a half-written last.pth."""
    return link_atomic(out_dir / LAST_NAME, target)


def read_resume_state(out_dir: Path, config: TrainConfig, world_size: int) -> dict | None:
    """The payload of ``out_dir/last.pth``, or None for a new run; refuses a checkpoint
    made with another config (other than ``RESUME_FREE_KEYS``) or world size."""
    last = out_dir / LAST_NAME
    if not last.exists():
        return None
    payload = read_checkpoint(last)
    training = payload.get("training")
    if not isinstance(training, Mapping) or "step" not in training:
        raise CheckpointError(f"{last}: not a training checkpoint (no 'training' state)")
    diffs = config_differences(comparable_config(training["train_config"]),
                               comparable_config(config))
    if training.get("world_size", 1) != world_size:
        diffs.append(f"world_size: checkpoint {training.get('world_size', 1)}, now {world_size}")
    if diffs:
        raise TrainingError(
            f"cannot resume from {last}: the run in {out_dir} was made with another config "
            f"({'; '.join(diffs)}). Use the original config, or another --out directory "
            f"for a new run."
        )
    return payload


def nonfinite_weights(model: nn.Module) -> list[str]:
    """State-dict names of ``model``'s floating tensors holding a NaN or an infinity."""
    return [name for name, tensor in model.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def write_training_checkpoint(out_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                              step: int, phase: str, config: TrainConfig, world_size: int,
                              vgg: Mapping[str, Any], samples: TrainingSamples) -> Path:
    """Write the checkpoint of ``step``, point last.pth at it and drop the checkpoints
    beyond ``config.keep_checkpoints``; refuses (DivergedError) non-finite weights.

    The training loop checks the weights on every rank before (``rfr.train.loop``'s collective
    check); this check stays so that no caller can write a diverged checkpoint."""
    bad = nonfinite_weights(model)
    if bad:
        raise DivergedError(f"step {step}: weight {bad[0]} is not finite; no checkpoint "
                            f"written, the previous one is kept")
    next_global = step * config.batch_size  # the global batch: any world size
    epoch, position = divmod(next_global, len(samples.dataset))
    training = {
        "step": step,
        "phase": phase,
        "optimizer": optimizer.state_dict(),
        "rng": rng_states({"next_global_sample": next_global, "epoch": epoch,
                           "position": position}),
        "train_config": to_dict(config),
        "world_size": world_size,
        "vgg_weights": dict(vgg),
        "torch_version": str(torch.__version__),
    }
    path = save_checkpoint(checkpoint_path(out_dir, step), model, config.model,
                           dict(config.model_config), training=training)
    link_last(out_dir, path)
    if config.keep_checkpoints:
        old = sorted((out_dir / CHECKPOINT_DIR).glob("step_*.pth"))[:-config.keep_checkpoints]
        for stale in old:
            stale.unlink(missing_ok=True)
    return path


__all__ = [
    "checkpoint_path",
    "link_last",
    "nonfinite_weights",
    "read_resume_state",
    "restore_rng_states",
    "rng_states",
    "write_training_checkpoint",
]
