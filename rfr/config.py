"""Typed configuration: every knob of a model or a loss is a dataclass field.

Configuration is data. A variant is a base config plus a small dict of changed keys
(`replace_fields`), and YAML files map one-to-one onto these dataclasses
(`from_dict`), so a typo in a YAML key is an error instead of a silently ignored knob,
and a value of the wrong type (`hole: six`, `lr: 2e-4`, which YAML reads as a string) is
an error naming the file and the key instead of a crash at training step 1.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from rfr.errors import ConfigError

AttentionKind = Literal["kca", "naive", "none"]
MergeKind = Literal["adaptive", "concat"]

T = TypeVar("T")


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


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "", *,
              path: str = "") -> T:
    """Build dataclass `cls` from a plain mapping (parsed YAML), recursing into nested
    dataclass fields.

    Unknown keys are an error that lists the known ones, and every value is checked
    against its field's type hint first (``check_type``), so that a wrong value fails
    here, naming ``where`` (the file or a label) and the dotted key, and not at step 1 of
    a training run. ``path`` is the dotted key of ``data`` itself in that file (e.g.
    "train" for the train section of a profile). The ``__post_init__`` validators then
    check ranges; their errors get the same ``where: path:`` prefix."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(_located(where, path,
                                   _expected(f"a mapping of {cls.__name__} fields", data)))
    data = dict(data)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(_located(
            where, path,
            f"unknown key(s) {unknown} for {cls.__name__}; known keys: {sorted(known)}"))
    hints = get_type_hints(cls)
    kwargs = {name: check_type(value, hints[name], _join(path, name), where)
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if not (where or path):
            raise
        raise type(exc)(_located(where, path, str(exc))) from None


def check_type(value: Any, hint: Any, key: str, where: str = "") -> Any:
    """Check ``value`` (parsed YAML) against the type hint ``hint``; return it, with
    mappings for nested dataclass fields turned into those dataclasses.

    YAML is loose where a config must not be: ``yes`` is a bool, ``2e-4`` is a string,
    ``16`` is not a string. So: an int field takes an int but not a bool, a float field an
    int or a float but not a bool, a bool field a bool, a str field a str, a Literal field
    one of its choices, ``X | None`` null or an X, a mapping/list field a mapping/list
    whose items fit, Any anything. A mismatch is a ConfigError
    ``"{where}: {key}: expected ..., got ..."`` (``key`` is the dotted key in the file)."""
    try:
        return _check(value, hint, key, where)
    except _Mismatch as exc:
        raise ConfigError(_located(where, exc.key, exc.text)) from None


class _Mismatch(Exception):
    """A value does not fit its hint; ``key`` is where, ``text`` "expected ..., got ..."."""

    def __init__(self, key: str, text: str) -> None:
        super().__init__(key, text)
        self.key = key
        self.text = text


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _located(where: str, key: str, message: str) -> str:
    return "".join(f"{part}: " for part in (where, key) if part) + message


def _expected(wanted: str, value: Any, hint: str = "") -> str:
    return f"expected {wanted}, got {value!r} ({type(value).__name__}){hint}"


_NUMBER = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?)(\d+))?")


def _float_hint(value: Any) -> str:
    """Why a number-like string is a string: PyYAML (YAML 1.1) reads a float only with a
    dot and, if it has an exponent, a sign in it, so ``2e-4`` and ``2.0e3`` are strings."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    match = _NUMBER.fullmatch(text)
    if not match:
        return ""
    loaded = yaml.safe_load(text)  # digits, signs, a dot, an e: always parses
    if isinstance(loaded, int | float) and not isinstance(loaded, bool):
        return "; write the number without quotes"
    sign, whole, fraction, exp_sign, exponent = match.groups()
    spelled = f"{sign}{whole}.{fraction or '0'}"
    if exponent is not None:
        spelled += f"e{exp_sign or '+'}{exponent}"
    return (f"; YAML reads {text} as a string (a YAML float needs a dot, and a sign in its "
            f"exponent): write {spelled}")


def describe(hint: Any) -> str:
    """What a value of type ``hint`` looks like in YAML, for error messages."""
    origin = get_origin(hint)
    if hint is Any:
        return "anything"
    if hint is type(None):
        return "null"
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if origin is Literal:
        return f"one of {list(get_args(hint))}"
    if origin in (typing.Union, types.UnionType):
        args = sorted(get_args(hint), key=lambda a: a is type(None))
        return " or ".join(describe(a) for a in args)
    if dataclasses.is_dataclass(hint):
        return f"a mapping of {hint.__name__} fields"
    container = origin if isinstance(origin, type) else hint
    if isinstance(container, type):
        if issubclass(container, Mapping):
            return "a mapping"
        if issubclass(container, (list, tuple)) or container is Sequence:
            return "a list"
        return f"a {container.__name__}"
    return str(hint)


def _check(value: Any, hint: Any, key: str, where: str) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is Any or isinstance(hint, TypeVar):
        return value
    if origin in (typing.Union, types.UnionType):
        return _check_union(value, hint, key, where)
    if origin is Literal:
        # 1 == True and 0 == False: a bool only matches a bool choice.
        if not any(value == c and isinstance(value, bool) == isinstance(c, bool)
                   for c in args):
            raise _Mismatch(key, _expected(describe(hint), value))
        return value
    if hint is type(None):
        if value is not None:
            raise _Mismatch(key, _expected("null", value))
        return value
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return from_dict(hint, value, where, path=key)  # type: ignore[arg-type]
        ok = False
    else:
        container = origin if isinstance(origin, type) else hint
        if not isinstance(container, type):
            return value  # a hint this checker does not know (Callable, ...): trust it
        if issubclass(container, Mapping):
            return _check_mapping(value, args, key, where)
        if issubclass(container, (list, tuple)) or container is Sequence:
            return _check_sequence(value, container, args, key, where)
        ok = isinstance(value, container)
    if not ok:
        raise _Mismatch(key, _expected(describe(hint), value,
                                       _float_hint(value) if hint is float else ""))
    return value


def _check_union(value: Any, hint: Any, key: str, where: str) -> Any:
    args = get_args(hint)
    if value is None and type(None) in args:
        return value
    arms = [a for a in args if a is not type(None)]
    if len(arms) == 1:
        try:
            return _check(value, arms[0], key, where)
        except _Mismatch as exc:
            if exc.key != key:
                raise  # an item deeper down is wrong: name it, not the whole value
            hint_text = _float_hint(value) if arms[0] is float else ""
            raise _Mismatch(key, _expected(describe(hint), value, hint_text)) from None
    for arm in arms:
        try:
            return _check(value, arm, key, where)
        except _Mismatch:
            continue
    raise _Mismatch(key, _expected(describe(hint), value))


def _check_mapping(value: Any, args: tuple[Any, ...], key: str, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise _Mismatch(key, _expected("a mapping", value))
    if len(args) != 2:
        return value
    key_hint, value_hint = args
    checked = {}
    for name, item in value.items():
        try:
            _check(name, key_hint, _join(key, str(name)), where)
        except _Mismatch:
            raise _Mismatch(_join(key, str(name)),
                            _expected(f"a key that is {describe(key_hint)}", name)) from None
        checked[name] = _check(item, value_hint, _join(key, str(name)), where)
    if all(checked[name] is value[name] for name in checked):
        return value
    return checked


def _check_sequence(value: Any, container: type, args: tuple[Any, ...], key: str,
                    where: str) -> Any:
    # YAML has lists only, and dataclasses.asdict keeps tuples: either is fine for both.
    if not isinstance(value, list | tuple):
        raise _Mismatch(key, _expected("a list", value))
    if not args:
        return value
    if container is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise _Mismatch(key, _expected(f"a list of {len(args)} items", value))
        hints = list(args)
    else:
        hints = [args[0]] * len(value)
    checked = [_check(item, item_hint, f"{key}[{index}]", where)
               for index, (item, item_hint) in enumerate(zip(value, hints, strict=True))]
    if all(new is old for new, old in zip(checked, value, strict=True)):
        return value
    return type(value)(checked)


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
    "check_type",
    "describe",
    "LossConfig",
    "MergeKind",
    "RFRNetConfig",
    "from_dict",
    "load_yaml",
    "replace_fields",
    "to_dict",
]
