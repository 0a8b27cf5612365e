"""Baselines compared with RFR-Net: PConv U-Net (Liu et al. 2018, ``baselines.pconv``) and
a one-shot encoder-decoder of RFR-Net's size (``baselines.encoder_decoder``). Both obey the
suite's forward contract ``model(masked_image, mask) -> raw output`` and are registered in
``rfr.model.registry.MODELS`` as ``"pconv"`` and ``"encdec"``.

The baselines import only the suite's layers and helpers (``rfr.config``, ``rfr.model``),
never ``rfr.model.api`` or ``rfr.model.registry``, so these imports are eager and cycle-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from baselines.encoder_decoder import EncDecConfig, EncoderDecoder
from baselines.pconv import PConvConfig, PConvUNet


def build_pconv(config: Mapping[str, Any] | None = None) -> PConvUNet:
    """PConv U-Net from a plain config mapping (keys of ``PConvConfig``)."""
    return PConvUNet.from_config(dict(config or {}))


def build_encdec(config: Mapping[str, Any] | None = None) -> EncoderDecoder:
    """One-shot encoder-decoder from a plain config mapping (keys of ``EncDecConfig``)."""
    return EncoderDecoder.from_config(dict(config or {}))


__all__ = [
    "EncDecConfig",
    "EncoderDecoder",
    "PConvConfig",
    "PConvUNet",
    "build_encdec",
    "build_pconv",
]
