"""The shared field validators every config dataclass uses, and the type check that
`from_dict` runs on every field at load (YAML is loose: `2e-4` is a string, `yes` a bool)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pytest

from baselines.encoder_decoder import EncDecConfig
from baselines.pconv import PConvConfig
from rfr.config import (
    ConfigError,
    LossConfig,
    RFRNetConfig,
    check_int,
    from_dict,
    replace_fields,
)
from rfr.data import DatasetConfig
from rfr.evaluate.api import EvalConfig
from rfr.train.loop import TrainConfig


@dataclass(frozen=True)
class Knobs:
    steps: int = 1
    seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        check_int(self, "steps", 1)
        check_int(self, "seed", 0, 2**32 - 1)
        check_int(self, "limit", 1, optional=True)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"steps": 0}, "steps must be an integer >= 1, got 0"),
        ({"steps": True}, "steps must be an integer >= 1, got True"),
        ({"steps": 2.0}, "steps must be an integer >= 1, got 2.0"),
        ({"seed": 2**32}, r"seed must be an integer in \[0, 4294967295\], got 4294967296"),
        ({"seed": -1}, r"seed must be an integer in \[0, 4294967295\]"),
        ({"limit": 0}, "limit must be an integer >= 1 or null, got 0"),
    ],
)
def test_check_int_rejects_with_the_field_and_range(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Knobs(**kwargs)


def test_check_int_accepts_bounds_and_null():
    assert Knobs(steps=1, seed=2**32 - 1, limit=None).seed == 2**32 - 1
    assert Knobs(limit=1).limit == 1


def test_from_dict_names_unknown_keys_and_replace_fields_validates():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['stpes'\] for Knobs"):
        from_dict(Knobs, {"stpes": 3})
    assert replace_fields(Knobs(), {"steps": 5}).steps == 5
    with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
        replace_fields(Knobs(), {"steps": 0})


# --- type checks at load: every field against its type hint ------------------------------


@dataclass(frozen=True)
class Inner:
    weight: float = 1.0
    name: str = "x"


@dataclass(frozen=True)
class Typed:
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    label: str = "a"
    kind: Literal["fp32", "bf16"] = "fp32"
    limit: int | None = None
    path: Optional[str] = None  # noqa: UP045 -- the typing spelling must work too
    extra: dict[str, Any] = field(default_factory=dict)
    view: Mapping[str, Any] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=list)
    bins: tuple[int, ...] = ()
    pair: tuple[int, str] = (0, "a")
    anything: Any = None
    inner: Inner = field(default_factory=Inner)
    maybe_inner: Inner | None = None


@pytest.mark.parametrize("data,message", [
    ({"count": "3"}, "count: expected an integer, got '3' (str)"),
    ({"count": 2.0}, "count: expected an integer, got 2.0 (float)"),
    ({"count": True}, "count: expected an integer, got True (bool)"),
    ({"rate": "six"}, "rate: expected a number, got 'six' (str)"),
    ({"rate": False}, "rate: expected a number, got False (bool)"),
    ({"rate": "2e-4"}, "rate: expected a number, got '2e-4' (str); YAML reads 2e-4 as a "
                       "string (a YAML float needs a dot, and a sign in its exponent): "
                       "write 2.0e-4"),
    ({"rate": "1.5e7"}, "rate: expected a number, got '1.5e7' (str); YAML reads 1.5e7 as a "
                        "string (a YAML float needs a dot, and a sign in its exponent): "
                        "write 1.5e+7"),
    ({"rate": "2.0e-4"}, "rate: expected a number, got '2.0e-4' (str); write the number "
                         "without quotes"),
    ({"limit": "3"}, "limit: expected an integer or null, got '3' (str)"),
    ({"flag": "yes"}, "flag: expected true or false, got 'yes' (str)"),
    ({"flag": 1}, "flag: expected true or false, got 1 (int)"),
    ({"label": 16}, "label: expected a string, got 16 (int)"),
    ({"label": None}, "label: expected a string, got None (NoneType)"),
    ({"kind": "fp16"}, "kind: expected one of ['fp32', 'bf16'], got 'fp16' (str)"),
    ({"limit": "all"}, "limit: expected an integer or null, got 'all' (str)"),
    ({"limit": False}, "limit: expected an integer or null, got False (bool)"),
    ({"path": 3}, "path: expected a string or null, got 3 (int)"),
    ({"extra": [1, 2]}, "extra: expected a mapping, got [1, 2] (list)"),
    ({"extra": {1: "a"}}, "extra.1: expected a key that is a string, got 1 (int)"),
    ({"view": "a=1"}, "view: expected a mapping, got 'a=1' (str)"),
    ({"sizes": 3}, "sizes: expected a list, got 3 (int)"),
    ({"sizes": "123"}, "sizes: expected a list, got '123' (str)"),
    ({"sizes": [1, "2"]}, "sizes[1]: expected an integer, got '2' (str)"),
    ({"bins": [1, 2.5]}, "bins[1]: expected an integer, got 2.5 (float)"),
    ({"pair": [1]}, "pair: expected a list of 2 items, got [1] (list)"),
    ({"pair": [1, 2]}, "pair[1]: expected a string, got 2 (int)"),
    ({"inner": 3}, "inner: expected a mapping of Inner fields, got 3 (int)"),
    ({"inner": {"weight": "heavy"}}, "inner.weight: expected a number, got 'heavy' (str)"),
    ({"maybe_inner": {"name": 1}}, "maybe_inner.name: expected a string, got 1 (int)"),
    ({"maybe_inner": "x"}, "maybe_inner: expected a mapping of Inner fields or null, "
                           "got 'x' (str)"),
])
def test_from_dict_refuses_a_wrong_type_naming_file_key_expected_and_got(data, message):
    with pytest.raises(ConfigError) as caught:
        from_dict(Typed, data, "params.yaml", path="train")
    assert str(caught.value).startswith(f"params.yaml: train.{message}")
    with pytest.raises(ConfigError) as caught:
        from_dict(Typed, data, "file.yaml")
    assert str(caught.value).startswith(f"file.yaml: {message}")


@pytest.mark.parametrize("data", [
    {"count": 3, "rate": 2, "flag": True, "label": "b", "kind": "bf16"},  # int for a float
    {"rate": 2.0e-4, "limit": None, "path": None, "maybe_inner": None},  # None: Optional
    {"limit": 5, "path": "p", "anything": object()},
    {"extra": {"a": [1, {"b": None}]}, "view": {}, "sizes": [1, 2], "bins": (3, 4)},
    {"bins": [3, 4], "pair": [1, "x"], "sizes": []},
    {"inner": {"weight": 3}, "maybe_inner": {"name": "y"}},
    {"inner": Inner(2.0), "maybe_inner": Inner()},
    {},
])
def test_from_dict_accepts_the_right_types(data):
    config = from_dict(Typed, data, "params.yaml")
    for key, value in data.items():
        if key in ("inner", "maybe_inner") and isinstance(value, dict):
            assert getattr(config, key) == Inner(**value)
        else:
            assert getattr(config, key) is value or getattr(config, key) == value


def test_from_dict_without_a_source_names_the_key_only():
    with pytest.raises(ConfigError, match=r"^inner\.weight: expected a number"):
        from_dict(Typed, {"inner": {"weight": "x"}})
    with pytest.raises(ConfigError, match=r"^expected a mapping of Typed fields, got 3"):
        from_dict(Typed, 3)  # type: ignore[arg-type]


def test_type_check_runs_before_the_validators_which_get_the_prefix():
    # "0" would pass `int("0")`-style code and then fail the range check; it is a type error.
    with pytest.raises(ConfigError, match=r"^k\.yaml: steps: expected an integer, got '0'"):
        from_dict(Knobs, {"steps": "0"}, "k.yaml")
    with pytest.raises(ConfigError, match=r"^k\.yaml: steps must be an integer >= 1, got 0"):
        from_dict(Knobs, {"steps": 0}, "k.yaml")


def test_nested_unknown_keys_name_the_file_and_the_section():
    with pytest.raises(ConfigError, match=r"^p\.yaml: train\.inner: unknown key\(s\) "
                                          r"\['wieght'\] for Inner; known keys"):
        from_dict(Typed, {"inner": {"wieght": 1}}, "p.yaml", path="train")


@pytest.mark.parametrize("cls,data,message", [
    (LossConfig, {"hole": "six"}, "hole: expected a number, got 'six' (str)"),
    (LossConfig, {"vgg_weights": None}, "vgg_weights: expected a string, got None"),
    (RFRNetConfig, {"attention": "kcaa"}, "attention: expected one of ['kca', 'naive', "
                                          "'none'], got 'kcaa' (str)"),
    (RFRNetConfig, {"width": "16"}, "width: expected an integer, got '16' (str)"),
    (TrainConfig, {"lr": "2e-4"}, "lr: expected a number, got '2e-4' (str); YAML reads"),
    (TrainConfig, {"progress": "no"}, "progress: expected true or false, got 'no' (str)"),
    (TrainConfig, {"curves_dir": 1}, "curves_dir: expected a string or null, got 1 (int)"),
    (TrainConfig, {"dataset": {"size": 6.4}}, "dataset.size: expected an integer, got 6.4"),
    (TrainConfig, {"loss": {"hole": "six"}}, "loss.hole: expected a number, got 'six'"),
    (TrainConfig, {"model_config": "width=8"}, "model_config: expected a mapping"),
    (EvalConfig, {"checkpoint": "c", "limit": "all"}, "limit: expected an integer or null"),
    (EvalConfig, {"checkpoint": "c", "run": [1]}, "run: expected a mapping or null, got [1]"),
    (EvalConfig, {"checkpoint": "c", "save_predictions": "true"},
     "save_predictions: expected true or false, got 'true' (str)"),
    (DatasetConfig, {"on_error": "ignore"}, "on_error: expected one of ['raise', 'skip']"),
    (DatasetConfig, {"root": 7}, "root: expected a string or null, got 7 (int)"),
    (PConvConfig, {"layers": "7"}, "layers: expected an integer, got '7' (str)"),
    (EncDecConfig, {"blocks": 1.5}, "blocks: expected an integer, got 1.5 (float)"),
])
def test_every_config_class_gets_the_type_check(cls, data, message):
    with pytest.raises(ConfigError) as caught:
        from_dict(cls, data, "c.yaml")
    assert str(caught.value).startswith(f"c.yaml: {message}")


def test_replace_fields_keeps_working_on_nested_and_tuple_values():
    config = from_dict(TrainConfig, {"loss": {"hole": 5}, "lr": 1})
    assert replace_fields(config, {"steps": 7}).loss.hole == 5
    with pytest.raises(ConfigError, match=r"^loss\.tv: expected a number"):
        replace_fields(config, {"loss": {"tv": "x"}})


# --- the check is pydantic's, over a schema derived from the dataclass fields ------------


@dataclass(frozen=True)
class Shapes:
    needed: int
    either: int | str = 0
    items: list[Inner] = field(default_factory=list)
    named: dict[str, Inner] = field(default_factory=dict)


def test_schema_of_a_dataclass_is_a_closed_typed_dict():
    from pydantic import TypeAdapter, ValidationError

    from rfr.config import schema_of

    adapter = TypeAdapter(schema_of(Inner))
    assert adapter.validate_python({"weight": 2}) == {"weight": 2}
    assert adapter.validate_python(Inner()) == Inner()
    with pytest.raises(ValidationError):
        adapter.validate_python({"weight": True})
    with pytest.raises(ValidationError):
        adapter.validate_python({"wieght": 1.0})


def test_containers_of_dataclasses_are_built_and_a_union_is_named_whole():
    config = from_dict(Shapes, {"needed": 1, "items": [{"weight": 2}],
                                "named": {"a": {"name": "b"}}})
    assert config.items == [Inner(weight=2)] and config.named == {"a": Inner(name="b")}
    assert from_dict(Shapes, {"needed": 1, "either": "x"}).either == "x"
    with pytest.raises(ConfigError, match=r"^s\.yaml: either: expected an integer or a "
                                          r"string, got 2\.5 \(float\)$"):
        from_dict(Shapes, {"needed": 1, "either": 2.5}, "s.yaml")
    with pytest.raises(ConfigError, match=r"^items\[0\]\.weight: expected a number"):
        from_dict(Shapes, {"needed": 1, "items": [{"weight": "x"}]})
    with pytest.raises(ConfigError, match=r"^named\.a: unknown key\(s\) \['nme'\] for Inner"):
        from_dict(Shapes, {"needed": 1, "named": {"a": {"nme": "b"}}})


def test_a_missing_required_field_and_several_unknown_keys_are_named():
    with pytest.raises(ConfigError, match=r"^s\.yaml: missing key 'needed' for Shapes$"):
        from_dict(Shapes, {}, "s.yaml")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['a', 'b'\] for Knobs; known "
                                          r"keys: \['limit', 'seed', 'steps'\]"):
        from_dict(Knobs, {"b": 1, "steps": "x", "a": 2})


def test_values_are_kept_as_given_and_mappings_of_any_kind_are_read():
    from types import MappingProxyType

    config = from_dict(TrainConfig, {"lr": 1, "dataset": MappingProxyType({"size": 32})})
    assert config.lr == 1 and isinstance(config.lr, int)  # as written; no silent cast
    assert config.dataset.size == 32
