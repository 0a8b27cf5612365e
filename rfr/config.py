"""Typed configuration: every knob of a model or a loss is a dataclass field.

Configuration is data. A variant is a base config plus a small dict of changed keys
(`replace_fields`), and YAML files map one-to-one onto these dataclasses
(`from_dict`), so a typo in a YAML key is an error instead of a silently ignored knob.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

AttentionKind = Literal["kca", "naive", "none"]
MergeKind = Literal["adaptive", "concat"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the field and the fix."""


@dataclass(frozen=True)
class RFRNetConfig:
    """RFR-Net's architecture knobs. The defaults are the authors' released network.

    Fields:
        iter_num: recurrences of the RFR module (the paper's IterNum; authors: 6).
        attention: "kca" (Knowledge Consistent Attention, scores carried across
            recurrences), "naive" (the same attention in every recurrence with no score
            accumulation) or "none" (no attention layer at all). With iter_num 1 there is
            no previous recurrence, so "kca" and "naive" build the same network.
        merge: "adaptive" (the authors' mask-weighted average of the recurrence outputs)
            or "concat" (a 1x1 convolution over their concatenation; its weights depend
            on iter_num, so a concat model is tied to one IterNum).
        width: base channel count (authors: 64). Must be a multiple of 8 because the tail
            uses width/2 and width/8 channels. Small widths make CPU runs feasible.
        kernel_size: kernel of the partial convolutions inside the recurrence and the one
            before it (7 = released; 5 = the authors' RFRNet_Smaller_Hole variant).
    """

    iter_num: int = 6
    attention: AttentionKind = "kca"
    merge: MergeKind = "adaptive"
    width: int = 64
    kernel_size: int = 7

    def __post_init__(self) -> None:
        check_literal(self, "attention")
        check_literal(self, "merge")
        check_int(self, "iter_num", 1)
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 8 \
                or self.width % 8:
            raise ConfigError(
                f"width must be a positive multiple of 8 (the tail uses width/8 channels), "
                f"got {self.width!r}"
            )
        if self.kernel_size not in (5, 7):
            raise ConfigError(
                f"kernel_size must be 7 (released RFR-Net) or 5 (the authors' smaller-hole "
                f"variant), got {self.kernel_size!r}"
            )


@dataclass(frozen=True)
class LossConfig:
    """Weights of the training loss terms (authors' values) and where VGG16 comes from.

    vgg_weights: "imagenet" (torchvision's ImageNet VGG16 file, looked up in the torch
    hub cache), a path to that file, or "random" (tests and smoke runs only: every loss
    or result computed this way is labelled as such).
    """

    valid: float = 1.0
    hole: float = 6.0
    perceptual: float = 0.05
    style: float = 120.0
    tv: float = 0.1
    vgg_weights: str = "imagenet"


def check_literal(instance: Any, name: str) -> None:
    """Reject a value outside the field's Literal[...] choices, naming the choices."""
    hints = get_type_hints(type(instance))
    choices = get_args(hints[name])
    value = getattr(instance, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_int(instance: Any, name: str, low: int | None = None, high: int | None = None,
              *, optional: bool = False) -> None:
    """Reject a field that is not an integer in [low, high] (bool is not an integer here:
    YAML's ``yes`` must not become a batch size of 1); ``optional`` also allows None."""
    value = getattr(instance, name)
    if optional and value is None:
        return
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if not (is_int and (low is None or value >= low) and (high is None or value <= high)):
        if low is not None and high is not None:
            wanted = f"an integer in [{low}, {high}]"
        elif low is not None:
            wanted = f"an integer >= {low}"
        else:
            wanted = "an integer"
        raise ConfigError(f"{name} must be {wanted}{' or null' if optional else ''}, "
                          f"got {value!r}")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from a plain mapping (parsed YAML), recursing into nested
    dataclass fields; unknown keys are an error that lists the known ones."""
    data = dict(data or {})
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ConfigError(
            f"{prefix}unknown key(s) {unknown} for {cls.__name__}; known keys: {sorted(known)}"
        )
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = _unwrap_optional(hints[name])
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            value = from_dict(hint, value, f"{where}.{name}" if where else name)
        kwargs[name] = value
    return cls(**kwargs)


def _unwrap_optional(hint: Any) -> Any:
    if get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data form of a config dataclass (for checkpoints, logs and YAML)."""
    return dataclasses.asdict(config)


def replace_fields(config: T, delta: Mapping[str, Any]) -> T:
    """A variant: `config` with the keys in `delta` changed, validated like the base."""
    merged = {**to_dict(config), **dict(delta)}
    return from_dict(type(config), merged)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with an error that names the file when it is not one."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


__all__ = [
    "AttentionKind",
    "ConfigError",
    "check_int",
    "check_literal",
    "LossConfig",
    "MergeKind",
    "RFRNetConfig",
    "from_dict",
    "load_yaml",
    "replace_fields",
    "to_dict",
]
