"""Checkpoints: this suite's format, the authors' format, and atomic writes.

The suite's format is a dict that says what it is (``format``), which model and config
built it (so a file alone rebuilds its model), and the weights; training adds optimizer,
step and RNG states under ``training``. The authors' format is
``{'n_iter': int, 'generator': state_dict, 'optimizer_G': ...}``; its architecture is
inferred from the weight shapes (width, and kernel size 7 or 5 for the smaller-hole model).

Files are always read with ``weights_only=True``: a checkpoint is data, and unpickling
arbitrary objects from a downloaded file would execute code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rfr.atomic import atomic_open
from rfr.config import RFRNetConfig, to_dict
from rfr.errors import CheckpointError
from rfr.model.api import RFRNet, build_model
from rfr.model.state_dicts import preview, state_dict_mismatches, torch_load_detail

FORMAT_NAME = "rfr-bench"
FORMAT_VERSION = 1
AUTHORS_KEY = "generator"


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    model_name: str,
    config: Any,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Write the suite's format atomically; ``config`` is a config dataclass or a mapping."""
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "config": config if isinstance(config, Mapping) else to_dict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if training is not None:
        payload["training"] = dict(training)
    return atomic_torch_save(payload, path)


def save_authors_checkpoint(path: str | Path, state_dict: Mapping[str, Tensor],
                            n_iter: int = 0) -> Path:
    """Write a state dict in the authors' format (for interoperability and tests)."""
    return atomic_torch_save({"n_iter": n_iter, AUTHORS_KEY: dict(state_dict)}, path)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same directory, fsync, then rename: a
    crash mid-write leaves the previous file intact, never a truncated one."""
    with atomic_open(path, "wb", fsync=True) as handle:
        torch.save(obj, handle)
    return Path(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file's dict safely, turning every failure into a clear error."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; all mean "unusable"
        detail = torch_load_detail(exc)
        if "Unsupported global" in detail:
            raise CheckpointError(
                f"{path}: refused to load: it contains Python objects other than tensors "
                f"and plain containers, so it could run code when unpickled. Only weight "
                f"files (state dicts) are accepted. Detail: {detail}"
            ) from exc
        raise CheckpointError(
            f"{path}: cannot be read as a PyTorch checkpoint (truncated, corrupt, or not a "
            f"torch.save file; a plain pickle is not accepted either): {detail}"
        ) from exc
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{path}: not an RFR-Net checkpoint: expected a dict, found {type(payload).__name__}"
        )
    return payload


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A ready model and what its file said about it: the registry name it was built from
    and which format the file was in ("rfr-bench" or "authors")."""

    model: nn.Module
    model_name: str
    file_format: str


def load_checkpoint(path: str | Path) -> nn.Module:
    """A ready model (eval mode, CPU) from this suite's checkpoint or the authors' one."""
    return open_checkpoint(path).model


def open_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Like `load_checkpoint`, keeping the model's registry name and the file's format."""
    path = Path(path)
    payload = read_checkpoint(path)
    if payload.get("format") == FORMAT_NAME:
        model = _load_suite_format(path, payload)
        return LoadedCheckpoint(model, str(payload["model"]), FORMAT_NAME)
    if AUTHORS_KEY in payload:
        return _load_authors_format(path, payload)
    found = preview(sorted(str(k) for k in payload))
    raise CheckpointError(
        f"{path}: not an RFR-Net checkpoint: expected the authors' format (a dict with "
        f"'{AUTHORS_KEY}': state_dict) or this suite's (a dict with format='{FORMAT_NAME}'); "
        f"found keys {found}"
    )


def require_authors_format(path: str | Path) -> LoadedCheckpoint:
    """The model of an authors' released file, refusing any other format.

    ``open_checkpoint`` takes either format; a released-checkpoint evaluation must not
    score one of this suite's files by mistake (it would be labelled "released"). The
    weights load strictly (``load_state_dict_strict``): a missing, unexpected or
    mis-shaped key fails, naming it."""
    path = Path(path)
    payload = read_checkpoint(path)
    if payload.get("format") == FORMAT_NAME:
        raise CheckpointError(
            f"{path}: is this suite's checkpoint format ('format': '{FORMAT_NAME}'), not the "
            f"authors' released one ({{'{AUTHORS_KEY}': state_dict, ...}}); a released "
            f"evaluation takes only the authors' files")
    if AUTHORS_KEY not in payload:
        raise CheckpointError(
            f"{path}: not the authors' checkpoint format: no '{AUTHORS_KEY}' state dict "
            f"(found keys {preview(sorted(str(k) for k in payload))})")
    return _load_authors_format(path, payload)


def _load_authors_format(path: Path, payload: dict[str, Any]) -> LoadedCheckpoint:
    state_dict = _as_state_dict(path, payload[AUTHORS_KEY], f"'{AUTHORS_KEY}'")
    model = RFRNet(infer_authors_config(path, state_dict))
    load_state_dict_strict(model, state_dict, path)
    return LoadedCheckpoint(model.eval(), "rfr", "authors")


def _load_suite_format(path: Path, payload: dict[str, Any]) -> nn.Module:
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: {FORMAT_NAME} checkpoint format version {version!r}; this version of "
            f"the suite reads version {FORMAT_VERSION}"
        )
    for key in ("model", "config", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{path}: {FORMAT_NAME} checkpoint lacks '{key}'")
    try:
        model = build_model(payload["model"], payload["config"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: cannot rebuild its model: {exc}") from exc
    state_dict = _as_state_dict(path, payload["state_dict"], "'state_dict'")
    load_state_dict_strict(model, state_dict, path)
    return model.eval()


def _as_state_dict(path: Path, value: Any, where: str) -> dict[str, Tensor]:
    if not isinstance(value, Mapping) or not all(isinstance(v, Tensor) for v in value.values()):
        raise CheckpointError(f"{path}: {where} is not a state dict (a mapping of tensors)")
    return dict(value)


def infer_authors_config(path: Path, state_dict: Mapping[str, Tensor]) -> RFRNetConfig:
    """The authors' files carry no config; width and kernel size show in the weights."""
    for key in ("Pconv1.weight", "Pconv2.weight"):
        if key not in state_dict:
            raise CheckpointError(
                f"{path}: the '{AUTHORS_KEY}' state dict has no '{key}': not an RFR-Net "
                f"generator"
            )
    width = int(state_dict["Pconv1.weight"].shape[0])
    kernel_size = int(state_dict["Pconv2.weight"].shape[-1])
    try:
        return RFRNetConfig(width=width, kernel_size=kernel_size)
    except ValueError as exc:
        raise CheckpointError(f"{path}: unsupported RFR-Net architecture: {exc}") from exc


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Tensor],
                           path: str | Path) -> None:
    """Load every key, or fail listing the missing, unexpected and mis-shaped ones.

    The authors load with ``strict=False``, which silently leaves missing layers random.
    """
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    problems = state_dict_mismatches(state_dict, expected)
    if problems:
        config = getattr(model, "config", None)
        raise CheckpointError(
            f"{path}: weights do not fit the model"
            + (f" {config}" if config is not None else "")
            + ": "
            + "; ".join(problems)
        )
    model.load_state_dict(state_dict, strict=True)
