"""Baselines compared with RFR-Net: PConv U-Net (Liu et al. 2018, ``baselines.pconv``) and
a one-shot encoder-decoder of RFR-Net's size (``baselines.encoder_decoder``). Both obey the
suite's forward contract ``model(masked_image, mask) -> raw output`` and are registered in
``rfr.models.MODEL_BUILDERS`` as ``"pconv"`` and ``"encdec"``.

This package imports nothing at load time: ``rfr.models`` imports the two builders below,
and the baseline modules import ``rfr.config`` (whose package imports ``rfr.models``), so
eager imports here would be a cycle. Classes are loaded on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

_LAZY = {
    "PConvConfig": "baselines.pconv",
    "PConvUNet": "baselines.pconv",
    "EncDecConfig": "baselines.encoder_decoder",
    "EncoderDecoder": "baselines.encoder_decoder",
}


def build_pconv(config: Mapping[str, Any] | None = None) -> Any:
    """PConv U-Net from a plain config mapping (keys of ``PConvConfig``)."""
    from baselines.pconv import PConvUNet

    return PConvUNet.from_config(dict(config or {}))


def build_encdec(config: Mapping[str, Any] | None = None) -> Any:
    """One-shot encoder-decoder from a plain config mapping (keys of ``EncDecConfig``)."""
    from baselines.encoder_decoder import EncoderDecoder

    return EncoderDecoder.from_config(dict(config or {}))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'baselines' has no attribute {name!r}")


__all__ = [
    "EncDecConfig",
    "EncoderDecoder",
    "PConvConfig",
    "PConvUNet",
    "build_encdec",
    "build_pconv",
]
