"""Typed configuration: every knob of a model or a loss is a dataclass field.

Configuration is data. A variant is a base config plus a small dict of changed keys
(`replace_fields`), and YAML files map one-to-one onto these dataclasses
(`from_dict`), so a typo in a YAML key is an error instead of a silently ignored knob,
and a value of the wrong type (`hole: six`, `lr: 2e-4`, which YAML reads as a string) is
an error naming the file and the key instead of a crash at training step 1.

The check is pydantic's (v2, strict mode, unknown keys forbidden) over a schema derived
from the dataclasses' own fields (``schema_of``), so a field is declared once, as a
dataclass field with its type hint; pydantic is imported on the first check, not at
``import rfr.config`` (the command line starts without it). Ranges and rules between the
fields of one config stay in the dataclasses' ``__post_init__`` (``check_int``,
``check_literal``), so a config built in code is held to them too. The whole profile
(``params.yaml``) is checked against ``rfr.profile_schema``, built from these same
dataclasses.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Required,
    TypeVar,
    get_args,
    get_origin,
    get_type_hints,
)

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

    The mapping is checked first against the pydantic schema derived from the
    dataclass's fields (``schema_of``: unknown keys forbidden, strict types), so that a
    wrong value fails here, naming ``where`` (the file or a label) and the dotted key,
    and not at step 1 of a training run. ``path`` is the dotted key of ``data`` itself in
    that file (e.g. "train" for the train section of a profile). The ``__post_init__``
    validators then check ranges and the rules between fields; their errors get the same
    ``where: path:`` prefix. The values are the given ones (an int stays an int in a float
    field, a list stays a list), so a config written back is the config read."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(_located(where, path,
                                   _expected(f"a mapping of {cls.__name__} fields", data)))
    data = dict(data)
    _validate(cls, data, path, where)
    return _construct(cls, data, path, where)


def check_type(value: Any, hint: Any, key: str, where: str = "") -> Any:
    """Check ``value`` (parsed YAML) against the type hint ``hint``; return it, with
    mappings for nested dataclass fields turned into those dataclasses.

    YAML is loose where a config must not be: ``yes`` is a bool, ``2e-4`` is a string,
    ``16`` is not a string. So (pydantic's strict mode): an int field takes an int but not
    a bool, a float field an int or a float but not a bool, a bool field a bool, a str
    field a str, a Literal field one of its choices, ``X | None`` null or an X, a
    mapping/list field a mapping/list whose items fit (a list or a tuple for either: YAML
    has lists only, and dataclasses.asdict keeps tuples), Any anything. A mismatch is a
    ConfigError ``"{where}: {key}: expected ..., got ..."`` (``key`` is the dotted key in
    the file)."""
    _validate(hint, value, key, where)
    return _build(value, hint, key, where)


def schema_of(hint: Any) -> Any:
    """The pydantic type that checks a value of type ``hint`` (a config dataclass, or any
    field hint): a dataclass becomes a closed TypedDict of its init fields (unknown keys
    forbidden, every key optional but those without a default), which also takes an
    instance of the dataclass; lists and tuples take either; the rest is the hint itself,
    checked in strict mode. A TypedDict and not a pydantic model, because the check must
    not build anything: the dataclass is built from the given values afterwards, so that
    its ``__post_init__`` runs on the values as written (and a field may be called
    ``model_config``)."""
    origin, args = get_origin(hint), get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_schema(hint)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(schema_of(arg) for arg in args)]  # noqa: UP007
    if origin is Literal or not args:
        if hint in (list, tuple) or hint is Sequence:
            return Annotated[hint, _lax()]
        return hint
    if origin in (list, tuple) or origin is Sequence:
        items = tuple(arg if arg is Ellipsis else schema_of(arg) for arg in args)
        return Annotated[origin[items], _lax()]
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return origin[tuple(schema_of(arg) for arg in args)]
    return hint


_STRICT = {"extra": "forbid", "strict": True, "arbitrary_types_allowed": True}


def _lax() -> Any:
    """List or tuple, whichever YAML or asdict gave; the items stay strict."""
    from pydantic import Strict

    return Strict(False)


@functools.cache
def _dataclass_schema(cls: type) -> Any:
    from pydantic import ConfigDict, WrapValidator
    from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

    hints = get_type_hints(cls)
    keys = {}
    for item in dataclasses.fields(cls):
        if not item.init:
            continue
        required = (item.default is dataclasses.MISSING
                    and item.default_factory is dataclasses.MISSING)
        keys[item.name] = (Required if required else NotRequired)[schema_of(hints[item.name])]
    schema = TypedDict(cls.__name__, keys)  # type: ignore[operator]
    schema.__pydantic_config__ = ConfigDict(**_STRICT)  # type: ignore[attr-defined]

    def instance_or_mapping(value: Any, handler: Any) -> Any:
        if isinstance(value, cls):
            return value
        return handler(dict(value) if isinstance(value, Mapping) else value)

    return Annotated[schema, WrapValidator(instance_or_mapping)]


@functools.lru_cache(maxsize=256)
def _adapter(hint: Any) -> Any:
    from pydantic import ConfigDict, TypeAdapter

    schema = schema_of(hint)
    if dataclasses.is_dataclass(hint):
        return TypeAdapter(schema)  # the TypedDict carries its own (strict) config
    return TypeAdapter(schema, config=ConfigDict(**_STRICT))


def _validate(hint: Any, value: Any, key: str, where: str) -> None:
    """Raise ConfigError, in the house format, for the first pydantic error of ``value``."""
    from pydantic import ValidationError

    try:
        adapter = _adapter(hint)
    except TypeError:  # an unhashable hint: no cache
        adapter = _adapter.__wrapped__(hint)
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        raise ConfigError(_message(exc.errors(), hint, value, key, where)) from None


_ABSENT = object()


def _message(errors: list[Any], hint: Any, value: Any, key: str, where: str) -> str:
    """pydantic's error, in the words the rest of the suite uses: the dotted key (``a.b``,
    ``a[1]``), what the field takes (``describe``) and what it got, with the YAML float
    hint; an unknown key lists the known ones."""
    chosen = errors[0]
    for error in errors:  # unknown keys of a level first, as the keys are read first
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden" and tuple(chosen["loc"])[:len(loc) - 1] == loc[:-1]:
            chosen = error
            break
    loc = list(chosen["loc"])
    described = hint
    while loc:
        hint = strip_optional(hint)
        origin, args = get_origin(hint), get_args(hint)
        step = loc[0]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            names = [item.name for item in dataclasses.fields(hint) if item.init]
            if chosen["type"] == "extra_forbidden" and len(loc) == 1:
                unknown = sorted(str(e["loc"][-1]) for e in errors
                                 if e["type"] == "extra_forbidden"
                                 and tuple(e["loc"][:-1]) == tuple(chosen["loc"][:-1]))
                return _located(where, key, f"unknown key(s) {unknown} for {hint.__name__}; "
                                            f"known keys: {sorted(names)}")
            if chosen["type"] == "missing" and len(loc) == 1:
                return _located(where, key, f"missing key {step!r} for {hint.__name__}")
            if step not in names:
                break
            hints = get_type_hints(hint)
            loc.pop(0)
            hint = described = hints[step]
            value = value.get(step, _ABSENT) if isinstance(value, Mapping) else _ABSENT
            key = _join(key, step)
        elif isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
            loc.pop(0)
            if loc and loc[0] == "[key]":
                return _located(where, _join(key, str(step)),
                                _expected(f"a key that is {describe(args[0])}", step))
            hint = described = args[1]
            value = value.get(step, _ABSENT) if isinstance(value, Mapping) else _ABSENT
            key = _join(key, str(step))
        elif origin in (list, tuple) or origin is Sequence:
            fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
            if not isinstance(step, int):
                break
            if fixed and chosen["type"] == "missing":
                return _located(where, key, _expected(f"a list of {len(args)} items", value))
            loc.pop(0)
            hint = described = (args[step] if fixed else args[0]) if args else Any
            value = value[step] if isinstance(value, list | tuple) and step < len(value) \
                else _ABSENT
            key = f"{key}[{step}]"
        else:
            break  # a union of several types: pydantic's remaining steps name its arms
    if value is _ABSENT:
        value = chosen.get("input")
    stripped = strip_optional(hint)
    if (get_origin(stripped) is tuple and chosen["type"] in ("too_long", "too_short")
            and not loc):
        return _located(where, key, _expected(f"a list of {len(get_args(stripped))} items",
                                              value))
    float_hint = _float_hint(value) if strip_optional(described) is float else ""
    return _located(where, key, _expected(describe(described), value, float_hint))


def strip_optional(hint: Any) -> Any:
    """X for ``X | None`` (pydantic checks it as a nullable X, no step in the location)."""
    if get_origin(hint) in (typing.Union, types.UnionType):
        arms = [arm for arm in get_args(hint) if arm is not type(None)]
        if len(arms) == 1:
            return arms[0]
    return hint


def _has_dataclass(hint: Any) -> bool:
    if dataclasses.is_dataclass(hint):
        return True
    return any(_has_dataclass(arg) for arg in get_args(hint) if arg is not Ellipsis)


def _build(value: Any, hint: Any, key: str, where: str) -> Any:
    """``value`` (already checked) with each mapping for a dataclass field turned into
    that dataclass; every other value is returned as given."""
    if not _has_dataclass(hint) or value is None:
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        return _construct(hint, dict(value), key, where)
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            if dataclasses.is_dataclass(arm) and isinstance(value, Mapping | arm):
                return _build(value, arm, key, where)
        return value
    if origin in (list, tuple) or origin is Sequence:
        fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
        items = list(args) if fixed else [args[0]] * len(value)
        return type(value)(_build(item, item_hint, f"{key}[{index}]", where)
                           for index, (item, item_hint) in enumerate(zip(value, items,
                                                                         strict=True)))
    if isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
        return {name: _build(item, args[1], _join(key, str(name)), where)
                for name, item in value.items()}
    return value


def _construct(cls: type[T], data: dict[str, Any], path: str, where: str) -> T:
    """``cls(**data)`` once ``data`` passed the check; a validator's error gets the
    ``where: path:`` prefix."""
    hints = get_type_hints(cls)
    kwargs = {name: _build(value, hints[name], _join(path, name), where)
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if not (where or path):
            raise
        raise type(exc)(_located(where, path, str(exc))) from None


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
    "schema_of",
    "strip_optional",
    "load_yaml",
    "replace_fields",
    "to_dict",
]
