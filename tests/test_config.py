"""The shared field validators every config dataclass uses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rfr.config import ConfigError, check_int, from_dict, replace_fields


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
