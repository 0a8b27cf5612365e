"""RFR-Net (Li et al., CVPR 2020): the network, its RFR module and its forward trace.

Module names and their order follow the authors' released ``RFRNet`` so that their
checkpoints load key for key (see ``docs/faithfulness.md``). It obeys the suite's forward
contract (``rfr.model.contract``): ``model(masked_image, mask) -> output``, ``B x 3 x H x W``
pixels in [0, 1], mask ``B x 1|3 x H x W`` with 1 = known and 0 = hole; the output is raw
(the caller composites it with the known pixels). Importers usually reach it as
``rfr.model.api.RFRNet``; the registry of every model is ``rfr.model.registry``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rfr.config import RFRNetConfig, from_dict
from rfr.model.attention import AttentionModule, AttentionState
from rfr.model.batchnorm import freeze_batchnorm_in
from rfr.model.contract import check_inputs, pad_to_multiple
from rfr.model.partial_conv import PartialConv2d

# The network downsamples by 2 (Pconv1) and then by 8 (the RFR module's encoder).
SIZE_MULTIPLE = 16
# The authors' guard in the adaptive merge's division by the mean mask.
_MERGE_EPS = 1e-7


def _conv_bn_act(conv: nn.Module, channels: int, act: nn.Module) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), act)


class Bottleneck(nn.Module):
    """The ResNet bottleneck used as the authors' ``tail2`` (expansion 4, identity skip)."""

    def __init__(self, channels: int, planes: int) -> None:
        super().__init__()
        if planes * 4 != channels:
            raise ValueError(f"bottleneck needs channels == 4 * planes, got {channels}, {planes}")
        self.conv1 = nn.Conv2d(channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        return F.relu(self.bn3(self.conv3(out)) + x, inplace=True)


class RFRModule(nn.Module):
    """The feature-reasoning encoder-decoder run once per recurrence.

    Three stride-2 convolutions and three dilated ones, then a decoder with skip
    connections; the attention sits after ``dec_3``, at 1/8 of the input image's size.
    Plain torch layers; training may swap the ones on the deepest map for CPU GEMM
    versions (``rfr.model.small_map_conv.use_small_map_gemm``, opt-in).
    """

    def __init__(self, width: int, attention: str, iter_num: int) -> None:
        super().__init__()
        deep = width * 8
        channels = width
        for i in range(1, 4):
            conv = nn.Conv2d(channels, channels * 2, 3, 2, 1, bias=False)
            setattr(self, f"enc_{i}", _conv_bn_act(conv, channels * 2, nn.ReLU(inplace=True)))
            channels *= 2
        for i in range(4, 7):
            conv = nn.Conv2d(deep, deep, 3, 1, 2, dilation=2, bias=False)
            setattr(self, f"enc_{i}", _conv_bn_act(conv, deep, nn.ReLU(inplace=True)))
        if attention != "none":
            # With one recurrence there is nothing to be consistent with: KCA's blend
            # weight would be a parameter without gradient, which DDP rejects.
            accumulate = attention == "kca" and iter_num > 1
            self.att = AttentionModule(deep, accumulate=accumulate)
        for i in (5, 4):
            conv = nn.Conv2d(deep * 2, deep, 3, 1, 2, dilation=2, bias=False)
            setattr(self, f"dec_{i}", _conv_bn_act(conv, deep, nn.LeakyReLU(0.2, inplace=True)))
        self.dec_3 = _conv_bn_act(
            nn.ConvTranspose2d(deep * 2, deep, 4, 2, 1, bias=False), deep,
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.dec_2 = _conv_bn_act(
            nn.ConvTranspose2d(deep + width * 4, width * 4, 4, 2, 1, bias=False), width * 4,
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.dec_1 = _conv_bn_act(
            nn.ConvTranspose2d(width * 4 + width * 2, width, 4, 2, 1, bias=False), width,
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.has_attention = attention != "none"

    def forward(
        self, x: Tensor, mask: Tensor, attention_state: AttentionState | None
    ) -> tuple[Tensor, AttentionState | None]:
        skips = [x]
        for i in range(1, 7):
            skips.append(getattr(self, f"enc_{i}")(skips[-1]))
        h = skips[6]
        for i in (5, 4, 3, 2, 1):
            h = getattr(self, f"dec_{i}")(torch.cat([h, skips[i]], dim=1))
            if i == 3 and self.has_attention:
                h, attention_state = self.att(h, mask, attention_state)
        return h, attention_state


@dataclass
class RFRTrace:
    """Intermediate results of one forward pass, for figures and the walkthrough:
    the feature map and mask (at half resolution) before the recurrences and after each."""

    features: list[Tensor]
    masks: list[Tensor]
    output: Tensor


class RFRNet(nn.Module):
    """RFR-Net; ``RFRNet()`` is the authors' released architecture (31,224,065 parameters)."""

    def __init__(self, config: RFRNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or RFRNetConfig()
        w, k = config.width, config.kernel_size
        self.Pconv1 = PartialConv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.Pconv2 = PartialConv2d(w, w, k, 1, k // 2, bias=False)
        self.bn20 = nn.BatchNorm2d(w)
        self.Pconv21 = PartialConv2d(w, w, k, 1, k // 2, bias=False)
        self.Pconv22 = PartialConv2d(w, w, k, 1, k // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(w)
        self.RFRModule = RFRModule(w, config.attention, config.iter_num)
        if config.merge == "concat":
            self.merge_conv = nn.Conv2d(w * (config.iter_num + 1), w, 1, bias=False)
        self.Tconv = nn.ConvTranspose2d(w, w, 4, 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(w)
        self.tail1 = PartialConv2d(3 + w, w // 2, 3, 1, 1, bias=False)
        self.tail2 = Bottleneck(w // 2, w // 8)
        self.out = nn.Conv2d(w, 3, 3, 1, 1, bias=False)

    @classmethod
    def from_config(cls, config: RFRNetConfig | Mapping[str, Any] | None = None) -> RFRNet:
        if isinstance(config, Mapping):
            config = from_dict(RFRNetConfig, config)
        return cls(config)

    def forward(self, masked_image: Tensor, mask: Tensor) -> Tensor:
        return self.trace(masked_image, mask, keep_intermediates=False).output

    def trace(self, masked_image: Tensor, mask: Tensor, keep_intermediates: bool = True
              ) -> RFRTrace:
        """Forward pass that can also return the features and masks of every recurrence."""
        check_inputs(masked_image, mask)
        height, width = masked_image.shape[-2:]
        masked_image, mask = pad_to_multiple(masked_image, mask, SIZE_MULTIPLE)
        trace = self._forward_padded(masked_image, mask, keep_intermediates)
        trace.output = trace.output[..., :height, :width]
        return trace

    def _forward_padded(self, image: Tensor, mask: Tensor, keep: bool) -> RFRTrace:
        x, m = self.Pconv1(image, mask)
        x = F.relu(self.bn1(x), inplace=True)
        x, m = self.Pconv2(x, m)
        x = F.relu(self.bn20(x), inplace=True)
        features, masks = [x], [m]
        attention_state: AttentionState | None = None
        for _ in range(self.config.iter_num):
            x, m = self.Pconv21(x, m)
            x, m = self.Pconv22(x, m)
            # The authors use F.leaky_relu's default slope here (0.01), 0.2 elsewhere.
            x = F.leaky_relu(self.bn2(x), inplace=True)
            x, attention_state = self.RFRModule(x, m, attention_state)
            x = x * m
            features.append(x)
            masks.append(m)
        merged = self.merge(features, masks)
        up = F.leaky_relu(self.bn3(self.Tconv(merged)), inplace=True)
        up_mask = F.interpolate(masks[-1], scale_factor=2.0, mode="nearest")
        tail_in = torch.cat([image, up], dim=1)
        tail_mask = torch.cat(
            [mask.expand(-1, 3, -1, -1), up_mask.expand(-1, up.shape[1], -1, -1)], dim=1
        )
        t, _ = self.tail1(tail_in, tail_mask)
        t = F.leaky_relu(t, inplace=True)
        output = self.out(torch.cat([t, self.tail2(t)], dim=1))
        if not keep:
            features, masks = [], []
        return RFRTrace(features, masks, output)

    def merge(self, features: list[Tensor], masks: list[Tensor]) -> Tensor:
        """Fuse the feature maps of all recurrences (and the one before them)."""
        if self.config.merge == "concat":
            return self.merge_conv(torch.cat(features, dim=1))
        count = len(features)
        mean_feature = sum(f * m for f, m in zip(features, masks, strict=True)) / count
        mean_mask = sum(masks) / count
        return mean_feature / (mean_mask + _MERGE_EPS)

    def train(self, mode: bool = True, freeze_batchnorm: bool = False) -> RFRNet:
        """``train(True, freeze_batchnorm=True)`` is the authors' finetune mode: BatchNorm
        layers stay in eval mode, using and keeping their running statistics."""
        super().train(mode)
        if mode and freeze_batchnorm:
            freeze_batchnorm_in(self)
        return self


__all__ = ["SIZE_MULTIPLE", "Bottleneck", "RFRModule", "RFRNet", "RFRTrace"]
