"""Ablation variants: a registered model plus a small delta over its default config.

``ablations/variants.yaml`` holds them all::

    variants:
      rfr_no_kca: {model: rfr, delta: {attention: none}, hypothesis: "..."}

``load_variants`` validates the file (unknown model, unknown or invalid key: a
``ConfigError`` that names the variant and lists what is known), ``variant_config`` gives
a variant's full plain config (with an optional shared ``width``), ``build_variant``
builds it, and ``count_gmacs`` counts the multiply-accumulates of one forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rfr.config import ConfigError, from_dict, load_yaml, replace_fields, to_dict
from rfr.model.api import count_parameters
from rfr.model.registry import MODEL_BUILDERS, MODELS, build_model

DEFAULT_VARIANTS_PATH = Path(__file__).resolve().parents[2] / "ablations" / "variants.yaml"
_VARIANT_KEYS = {"model", "delta", "hypothesis"}


def config_classes() -> dict[str, type]:
    """The config dataclass of every registered model that variants can use."""
    return {name: entry.config for name, entry in MODELS.items()}


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    delta: dict[str, Any] = field(default_factory=dict)
    hypothesis: str = ""


def _config_class(model: str, where: str) -> type:
    classes = config_classes()
    if model not in MODEL_BUILDERS or model not in classes:
        known = sorted(set(MODEL_BUILDERS) & set(classes))
        raise ConfigError(f"{where}: unknown model {model!r}; known models: {known}")
    return classes[model]


def validate_variant(variant: Variant) -> Variant:
    """Check the model exists and the delta is a valid change of its default config."""
    where = f"variant {variant.name!r}"
    cls = _config_class(variant.model, where)
    if not isinstance(variant.delta, Mapping):
        raise ConfigError(f"{where}: delta must be a mapping, got {type(variant.delta).__name__}")
    try:
        replace_fields(cls(), variant.delta)
    except ConfigError as exc:
        raise ConfigError(f"{where} (model {variant.model!r}): {exc}") from None
    return variant


def parse_variants(data: Mapping[str, Any], source: str = "variants") -> dict[str, Variant]:
    """Variants from the parsed YAML mapping ``{"variants": {name: {...}}}``."""
    if set(data) - {"variants"}:
        raise ConfigError(
            f"{source}: unknown top-level key(s) {sorted(set(data) - {'variants'})}; "
            f"expected only 'variants'"
        )
    entries = data.get("variants")
    if not isinstance(entries, Mapping) or not entries:
        raise ConfigError(f"{source}: expected a non-empty mapping under 'variants'")
    variants = {}
    for name, entry in entries.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: variant {name!r} must be a mapping")
        unknown = sorted(set(entry) - _VARIANT_KEYS)
        if unknown:
            raise ConfigError(
                f"{source}: variant {name!r} has unknown key(s) {unknown}; "
                f"known: {sorted(_VARIANT_KEYS)}"
            )
        if "model" not in entry:
            raise ConfigError(f"{source}: variant {name!r} has no 'model'")
        variant = Variant(
            name=str(name),
            model=entry["model"],
            delta=dict(entry.get("delta") or {}),
            hypothesis=str(entry.get("hypothesis", "")),
        )
        variants[variant.name] = validate_variant(variant)
    return variants


def load_variants(path: str | Path | None = None) -> dict[str, Variant]:
    """All variants of ``path`` (default: the repository's ``ablations/variants.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_VARIANTS_PATH
    return parse_variants(load_yaml(path), str(path))


def _resolve(name_or_variant: str | Variant, path: str | Path | None) -> Variant:
    if isinstance(name_or_variant, Variant):
        return validate_variant(name_or_variant)
    variants = load_variants(path)
    try:
        return variants[name_or_variant]
    except KeyError:
        raise ConfigError(
            f"unknown variant {name_or_variant!r}; known: {sorted(variants)}"
        ) from None


def variant_config(
    name_or_variant: str | Variant, width: int | None = None, path: str | Path | None = None
) -> dict[str, Any]:
    """The variant's full config as plain data: model defaults + delta (+ ``width``)."""
    variant = _resolve(name_or_variant, path)
    cls = _config_class(variant.model, f"variant {variant.name!r}")
    delta = dict(variant.delta)
    if width is not None:
        delta["width"] = width
    try:
        return to_dict(replace_fields(from_dict(cls, {}), delta))
    except ConfigError as exc:
        raise ConfigError(f"variant {variant.name!r} (model {variant.model!r}): {exc}") from None


def build_variant(
    name_or_variant: str | Variant, width: int | None = None, path: str | Path | None = None
) -> nn.Module:
    """Build a variant by name (from ``path``, default the repository's YAML) or object."""
    variant = _resolve(name_or_variant, path)
    return build_model(variant.model, variant_config(variant, width))


def count_gmacs(model: nn.Module, size: int, mask_channels: int = 1) -> float:
    """Multiply-accumulates (in billions) of one forward pass on a batch of one
    ``size x size`` image: FLOPs of convolutions, transposed convolutions, matrix products
    and the attention's batched products, as counted by ``FlopCounterMode``, halved.

    Element-wise work (BatchNorm, activations, partial-convolution mask updates done by
    sum-pooling) is not counted. The model is run in eval mode and restored."""
    was_training = model.training
    model.eval()
    image = torch.rand(1, 3, size, size)
    mask = torch.ones(1, mask_channels, size, size)
    mask[..., size // 4 : size // 2, size // 4 : size // 2] = 0
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(image * mask, mask)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9


@dataclass(frozen=True)
class VariantSummary:
    name: str
    model: str
    delta: dict[str, Any]
    parameters: int
    gmacs: float


def summarize_variants(
    size: int = 64, width: int | None = None, path: str | Path | None = None
) -> list[VariantSummary]:
    """Parameters and GMACs of every variant in the file, in file order."""
    rows = []
    for variant in load_variants(path).values():
        model = build_variant(variant, width)
        rows.append(VariantSummary(variant.name, variant.model, variant.delta,
                                   count_parameters(model), count_gmacs(model, size)))
    return rows


def format_variants_table(rows: list[VariantSummary], size: int, width: int | None) -> str:
    """A plain-text table: variant, model, delta, parameters, GMACs."""
    deltas = [", ".join(f"{k}={v}" for k, v in r.delta.items()) or "-" for r in rows]
    header = ("variant", "model", "delta", "params", f"GMACs@{size}")
    cells = [(r.name, r.model, d, f"{r.parameters:,}", f"{r.gmacs:.3f}")
             for r, d in zip(rows, deltas, strict=True)]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    right = (False, False, False, True, True)

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w)
                         for v, w, r in zip(values, widths, right, strict=True)).rstrip()

    out = [f"{len(rows)} variants, width {width if width is not None else 'default'}, "
           f"{size}x{size}, batch 1", line(header), line(tuple("-" * w for w in widths))]
    out += [line(c) for c in cells]
    return "\n".join(out)


__all__ = [
    "DEFAULT_VARIANTS_PATH",
    "Variant",
    "VariantSummary",
    "build_variant",
    "count_gmacs",
    "format_variants_table",
    "load_variants",
    "parse_variants",
    "summarize_variants",
    "validate_variant",
    "variant_config",
]
