"""Every model the suite can build, by name: ``MODELS[name] = (config class, builder)``.

One plain dict, so ``grep`` finds them all. The config class is the model's frozen
dataclass of knobs (what an ablation variant's delta is checked against, see
``rfr.model.variants``); the builder takes a plain mapping of that class's keys and returns the
``nn.Module``. ``MODEL_BUILDERS`` (name -> builder) and ``build_model`` are the views the
rest of the suite uses; ``rfr.model.api`` re-exports all three.

This module sits above the models: it imports RFR-Net (``rfr.model.rfrnet``) and the baselines
(``baselines``), and none of them imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from torch import nn

from baselines import EncDecConfig, PConvConfig, build_encdec, build_pconv
from rfr.config import RFRNetConfig
from rfr.model.rfrnet import RFRNet

ModelBuilder = Callable[[Mapping[str, Any]], nn.Module]


class RegisteredModel(NamedTuple):
    """A registered model: its config dataclass and its builder (plain mapping -> model)."""

    config: type
    builder: ModelBuilder


MODELS: dict[str, RegisteredModel] = {
    "rfr": RegisteredModel(RFRNetConfig, RFRNet.from_config),
    "pconv": RegisteredModel(PConvConfig, build_pconv),
    "encdec": RegisteredModel(EncDecConfig, build_encdec),
}

# name -> builder, for the callers that only build.
MODEL_BUILDERS: dict[str, ModelBuilder] = {name: entry.builder for name, entry in MODELS.items()}


def build_model(name: str, config: Mapping[str, Any] | None = None) -> nn.Module:
    """Build a registered model from its name and a plain config mapping."""
    try:
        builder = MODEL_BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_BUILDERS)}") from None
    return builder(config or {})


__all__ = ["MODELS", "MODEL_BUILDERS", "ModelBuilder", "RegisteredModel", "build_model"]
