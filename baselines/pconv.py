"""PConv U-Net (Liu et al., "Image Inpainting for Irregular Holes Using Partial
Convolutions", ECCV 2018), built from the suite's ``PartialConv2d``.

At the default ``PConvConfig()`` this is the paper's network for 256 x 256 inputs:

* encoder: 7 stride-2 partial convolutions, kernels 7, 5, 5, 3, 3, 3, 3, channels 64, 128,
  256, 512, 512, 512, 512, ReLU, BatchNorm except after the first layer;
* decoder: nearest 2x upsampling of features *and* mask, concatenation with the encoder
  level of the same size (features with features, mask with mask; the input image and
  its mask are the last skip), a 3 x 3 partial convolution, BatchNorm and LeakyReLU 0.2;
  the last layer has no BatchNorm and no activation and outputs 3 channels with a bias
  (the raw output; the caller composites).

``width`` scales every channel count by ``width / 64`` (channels ``[w, 2w, 4w, 8w, 8w, 8w,
8w]``), the same knob as ``RFRNetConfig.width``. Convolutions followed by BatchNorm have no
bias; the two without BatchNorm (first encoder layer, last decoder layer) have one.
Inputs whose sides are not a multiple of ``2 ** layers`` are padded (bottom and right)
with ``rfr.model.contract.pad_to_multiple`` and the output is cropped back.

Finetuning (``train(True, freeze_batchnorm=True)``) freezes the BatchNorm layers of the
*encoder only*, as Liu et al. describe; the decoder's BatchNorm keeps training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rfr.config import check_int, from_dict
from rfr.model.batchnorm import freeze_batchnorm_in
from rfr.model.contract import check_inputs, pad_to_multiple
from rfr.model.partial_conv import PartialConv2d

# Liu et al.'s encoder kernels; levels beyond the 4th use 3 x 3.
ENCODER_KERNELS = (7, 5, 5, 3)
# Channel multipliers of width per level (capped at 8, as 64 -> 512 in the paper).
MAX_MULTIPLIER = 8


@dataclass(frozen=True)
class PConvConfig:
    """PConv U-Net knobs.

    Fields:
        width: channels of the first level (paper: 64); level i has
            ``min(width * 2**i, 8 * width)`` channels.
        layers: encoder (= decoder) depth (paper: 7 at 256 x 256; inputs are padded to
            a multiple of ``2 ** layers``).
    """

    width: int = 64
    layers: int = 7

    def __post_init__(self) -> None:
        check_int(self, "width", 1)
        check_int(self, "layers", 2, 8)


def encoder_channels(width: int, layers: int) -> list[int]:
    return [width * min(2**i, MAX_MULTIPLIER) for i in range(layers)]


def encoder_kernels(layers: int) -> list[int]:
    return [ENCODER_KERNELS[i] if i < len(ENCODER_KERNELS) else 3 for i in range(layers)]


class PConvLayer(nn.Module):
    """Partial convolution, optional BatchNorm, optional activation; carries the mask."""

    def __init__(self, conv: PartialConv2d, bn: bool, act: nn.Module | None) -> None:
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(conv.out_channels) if bn else None
        self.act = act

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        x, mask = self.conv(x, mask)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x, mask


def _expand(mask: Tensor, channels: int) -> Tensor:
    return mask if mask.shape[1] == channels else mask[:, :1].expand(-1, channels, -1, -1)


class PartialConvUNet(nn.Module):
    """A partial-convolution U-Net: Liu et al.'s encoder and decoder around an optional
    ``bottleneck`` at the deepest level (none for PConv): a module ``(features, mask) ->
    (features, mask)`` that must update the mask for what it fills. The one-shot encoder-decoder
    baseline is this network with residual blocks there, so both share one forward.

    ``model(masked_image, mask) -> raw output``, the suite's forward contract.
    """

    def __init__(self, width: int, levels: int, bottleneck: nn.Module | None = None) -> None:
        super().__init__()
        channels = encoder_channels(width, levels)
        kernels = encoder_kernels(levels)
        self.levels = levels
        self.encoder = nn.ModuleList()
        in_ch = 3
        for i, (out_ch, k) in enumerate(zip(channels, kernels, strict=True)):
            first = i == 0
            conv = PartialConv2d(in_ch, out_ch, k, 2, k // 2, bias=first)
            self.encoder.append(PConvLayer(conv, bn=not first, act=nn.ReLU(inplace=True)))
            in_ch = out_ch
        self.bottleneck = bottleneck
        # decoder[j] produces level L-2-j's size; its skip is encoder level L-2-j (or the
        # input image for the last one).
        self.decoder = nn.ModuleList()
        skips = [3, *channels[:-1]]
        for level in reversed(range(levels)):
            last = level == 0
            out_ch = 3 if last else skips[level]
            conv = PartialConv2d(in_ch + skips[level], out_ch, 3, 1, 1, bias=last)
            act = None if last else nn.LeakyReLU(0.2, inplace=True)
            self.decoder.append(PConvLayer(conv, bn=not last, act=act))
            in_ch = out_ch

    def forward(self, masked_image: Tensor, mask: Tensor) -> Tensor:
        check_inputs(masked_image, mask)
        height, width = masked_image.shape[-2:]
        image, mask = pad_to_multiple(masked_image, mask, 2**self.levels)
        features, masks = [image], [_expand(mask, 3)]
        for layer in self.encoder:
            x, m = layer(features[-1], masks[-1])
            features.append(x)
            masks.append(m)
        x, m = features.pop(), masks.pop()
        if self.bottleneck is not None:
            x, m = self.bottleneck(x, m)
        for layer in self.decoder:
            skip, skip_mask = features.pop(), masks.pop()
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            m = F.interpolate(m, scale_factor=2.0, mode="nearest")
            x_in = torch.cat([x, skip], dim=1)
            m_in = torch.cat([_expand(m, x.shape[1]), _expand(skip_mask, skip.shape[1])], dim=1)
            x, m = layer(x_in, m_in)
        return x[..., :height, :width]


class PConvUNet(PartialConvUNet):
    """Liu et al.'s PConv U-Net; see the module docstring."""

    def __init__(self, config: PConvConfig | None = None) -> None:
        config = config or PConvConfig()
        super().__init__(config.width, config.layers)
        self.config = config

    @classmethod
    def from_config(cls, config: PConvConfig | Mapping[str, Any] | None = None) -> PConvUNet:
        if isinstance(config, Mapping):
            config = from_dict(PConvConfig, config)
        return cls(config)

    def train(self, mode: bool = True, freeze_batchnorm: bool = False) -> PConvUNet:
        """``train(True, freeze_batchnorm=True)`` is Liu et al.'s finetune mode: the
        *encoder's* BatchNorm layers stay in eval mode (running statistics used and kept);
        the decoder's keep training."""
        super().train(mode)
        if mode and freeze_batchnorm:
            freeze_batchnorm_in(self.encoder)
        return self
