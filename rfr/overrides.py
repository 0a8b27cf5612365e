"""``-S key=value``: one setting of a run config or of a profile, changed on the command
line (``rfr train --config c.yaml -S steps=10 -S loss.hole=6.0``; ``rfr train --params
params.yaml ... -S train.lr=1.0e-4``; ``rfr profile demo -S model.width=32``).

The key is dotted, the value is read as YAML (so ``6.0`` is a number, ``true`` a bool,
``null`` None and ``[0, 1]`` a list; a float needs a dot and a signed exponent, as in a
config file). Each override is checked on its own against the schema before it is
applied, so an unknown key (with the known ones listed) or a value of the wrong type is a
ConfigError that names ``-S key=value``; the config or profile it changes is then checked
whole, as if the file had said so.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, get_args, get_origin, get_type_hints

from rfr.errors import ConfigError


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"loss.hole=6.0"`` -> (["loss", "hole"], 6.0)."""
    import yaml

    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"-S takes KEY=VALUE with a dotted KEY (-S loss.hole=6.0), "
                          f"got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"-S {text}: the value is not valid YAML: {exc}") from None
    return parts, value


def config_hint(root: Any, parts: Sequence[str], text: str,
                above: Sequence[str] = ()) -> Any:
    """The type hint of the dotted key ``parts`` under ``root`` (a config dataclass, or a
    field hint); a ConfigError naming ``-S text`` if there is no such key. ``above`` is
    the dotted key of ``root`` itself (a profile section), for the message."""
    from rfr.config import describe, strip_optional

    hint = root
    for index, part in enumerate(parts):
        hint = strip_optional(hint)
        origin, args = get_origin(hint), get_args(hint)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            names = sorted(f.name for f in dataclasses.fields(hint) if f.init)
            if part not in names:
                where = ".".join([*above, *parts[:index]])
                raise ConfigError(f"-S {text}: unknown key {part!r}"
                                  f"{f' under {where}' if where else ''} for "
                                  f"{hint.__name__}; known keys: {names}")
            hint = get_type_hints(hint)[part]
        elif isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
            hint = args[1]
        elif hint is Any or hint in (dict, Mapping):
            return Any
        else:
            raise ConfigError(f"-S {text}: {'.'.join([*above, *parts[:index]])} is "
                              f"{describe(hint)}, it has no key {part!r}")
    return hint


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str], root: Any,
                    resolve: Any = None) -> dict[str, Any]:
    """``data`` (a parsed config or profile; not changed) with each ``key=value`` set.

    Each value is checked against the hint of its key under ``root`` first; ``resolve``
    (parts, text) -> hint replaces that lookup where a schema is not one dataclass tree
    (a profile: ``profile_hint``)."""
    from rfr.config import check_type

    result = copy.deepcopy(dict(data))
    for text in overrides:
        parts, value = parse_override(text)
        hint = resolve(parts, text) if resolve is not None else config_hint(root, parts, text)
        check_type(value, hint, "", f"-S {text}")
        target = result
        for part in parts[:-1]:
            if not isinstance(target.get(part), Mapping):
                target[part] = {}
            target[part] = dict(target[part])
            target = target[part]
        target[parts[-1]] = value
    return result


def profile_hint(parts: Sequence[str], text: str) -> Any:
    """The hint of a dotted profile key: the sections that feed a run config are that
    config's fields (``rfr.profile_schema.SECTION_CONFIGS``), ``datasets.<name>.data``
    DatasetConfig's, ``model`` the fields of every model's config, ``masks`` the
    arguments of ``rfr masks``; the rest is the profile schema's own tree."""
    from rfr.data.config import DatasetConfig
    from rfr.profile_schema import (
        SECTION_CONFIGS,
        Profile,
        Recurrence,
        ReportSection,
        Schedule,
        mask_bank_hints,
    )

    section, rest = parts[0], list(parts[1:])
    if section in SECTION_CONFIGS and rest:
        return config_hint(SECTION_CONFIGS[section], rest, text, [section])
    if section == "datasets" and len(rest) >= 2 and rest[1] in ("data", "schedule"):
        cls = DatasetConfig if rest[1] == "data" else Schedule
        return config_hint(cls, rest[2:], text, [section, *rest[:2]])
    if section == "recurrence" and rest:
        return config_hint(Recurrence, rest, text, [section])
    if section == "report" and rest:
        return config_hint(ReportSection, rest, text, [section])
    if section == "model" and rest:
        from rfr.model.variants import config_classes

        classes = [cls for cls in config_classes().values()
                   if rest[0] in {f.name for f in dataclasses.fields(cls)}]
        if not classes:
            known = sorted({f.name for cls in config_classes().values()
                            for f in dataclasses.fields(cls)})
            raise ConfigError(f"-S {text}: unknown key {rest[0]!r} for the model section; "
                              f"known keys (fields of the models' configs): {known}")
        return config_hint(classes[0], rest, text, [section])
    if section == "masks" and rest:
        hints = mask_bank_hints(None)
        if rest[0] not in hints or len(rest) > 1:
            raise ConfigError(f"-S {text}: unknown key {'.'.join(rest)!r} for masks; "
                              f"known keys: {list(hints)}")
        return hints[rest[0]]
    return config_hint(Profile, parts, text)


def with_overrides_named(error: ConfigError, overrides: Sequence[str]) -> ConfigError:
    """``error`` (of the whole config, checked after the overrides) saying which ``-S``
    were applied, since the value it names may come from one of them."""
    if not overrides:
        return error
    return type(error)(f"{error} (with {' '.join(f'-S {text}' for text in overrides)})")


__all__ = ["apply_overrides", "config_hint", "parse_override", "profile_hint",
           "with_overrides_named"]
