"""A one-shot partial-convolution encoder-decoder of RFR-Net's size (the paper's "same
model size, no recurrence" comparison).

Built from the same kinds of blocks as the rest of the suite and sized so that, with the
defaults, its parameter count is within 5% of ``RFRNet`` at the same ``width`` (checked
for widths 64, 32, 16 and 8 in ``tests/test_baselines.py``):

* encoder: ``levels`` stride-2 partial convolutions (kernels 7, 5, 5, 3; channels ``w, 2w,
  4w, 8w``), ReLU, BatchNorm except after the first; with the default 4 levels the
  deepest features are at 1/16 of the input, as in RFR-Net's RFR module;
* bottleneck: ``blocks`` residual blocks ``x + ReLU(BN(pconv3x3_dilation2(x, m)))`` at
  ``8w`` channels (RFR-Net's dilated convolutions, but each with its own weights and run
  once instead of a shared module run ``iter_num`` times). Each is a *partial*
  convolution, so the mask grows by the dilation (2 positions at 1/16 of the input) per
  block, 22 positions with the default 11 blocks. An earlier version passed the mask
  through unchanged: the first decoder layer then multiplied the bottleneck by the
  encoder's mask, and every hole pixel beyond the encoder's reach came out exactly 0 (at
  256x256, 35 % of a centred 192 px square; ``tests/test_reach.py``);
* decoder: as in PConv U-Net (``baselines.pconv``): nearest upsampling of features and
  mask, concatenation with the skip (the input image and its mask are the last), 3 x 3
  partial convolutions, BatchNorm and LeakyReLU 0.2; the last layer outputs 3 channels
  with a bias and no activation (raw output).

Inputs whose sides are not a multiple of ``2 ** levels`` are padded and the output cropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from baselines.pconv import PartialConvUNet, encoder_channels
from rfr.config import check_int, from_dict
from rfr.model.batchnorm import freeze_batchnorm_in
from rfr.model.partial_conv import PartialConv2d


@dataclass(frozen=True)
class EncDecConfig:
    """One-shot encoder-decoder knobs; the defaults match RFR-Net's size at any width.

    Fields:
        width: channels of the first level (as ``RFRNetConfig.width``); level i has
            ``min(width * 2**i, 8 * width)`` channels.
        levels: stride-2 encoder levels (= decoder levels).
        blocks: residual dilated 3 x 3 blocks at the bottleneck (11 makes the default
            network 2.3% smaller than RFR-Net at every width from 8 to 64).
    """

    width: int = 64
    levels: int = 4
    blocks: int = 11

    def __post_init__(self) -> None:
        check_int(self, "width", 1)
        check_int(self, "levels", 2, 8)
        check_int(self, "blocks", 0)


class DilatedResidualBlock(nn.Module):
    """``(x, m) -> (x + ReLU(BN(pconv(x, m))), m')``: a residual block that carries the mask,
    so that features it fills count as known for the decoder."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = PartialConv2d(channels, channels, 3, 1, 2, dilation=2, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        y, updated = self.conv(x, mask)
        return x + F.relu(self.bn(y)), updated


class MaskedBlocks(nn.ModuleList):
    """Blocks run in order on ``(features, mask)`` (``nn.Sequential`` passes one value)."""

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        for block in self:
            x, mask = block(x, mask)
        return x, mask


class EncoderDecoder(PartialConvUNet):
    """The PConv-style U-Net with ``blocks`` residual dilated blocks at its deepest level."""

    def __init__(self, config: EncDecConfig | None = None) -> None:
        config = config or EncDecConfig()
        deep = encoder_channels(config.width, config.levels)[-1]
        bottleneck = MaskedBlocks(DilatedResidualBlock(deep) for _ in range(config.blocks))
        super().__init__(config.width, config.levels, bottleneck)
        self.config = config

    @classmethod
    def from_config(
        cls, config: EncDecConfig | Mapping[str, Any] | None = None
    ) -> EncoderDecoder:
        if isinstance(config, Mapping):
            config = from_dict(EncDecConfig, config)
        return cls(config)

    def train(self, mode: bool = True, freeze_batchnorm: bool = False) -> EncoderDecoder:
        """``freeze_batchnorm=True``: every BatchNorm layer stays in eval mode (the RFR-Net
        finetune recipe, so that the two are finetuned alike)."""
        super().train(mode)
        if mode and freeze_batchnorm:
            freeze_batchnorm_in(self)
        return self
