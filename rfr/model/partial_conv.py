"""Partial convolution (Liu et al., ECCV 2018), stateless and cheap on masks.

The arithmetic is that of NVIDIA's reference layer with ``multi_channel=True`` (the one
RFR-Net uses): the convolution sees ``x * mask``, its output is rescaled by
``window_size / valid_count`` and zeroed where the window held no valid pixel, and the
updated mask is ``clamp(valid_count, 0, 1)``.

Two differences in *how* it is computed, not *what*:

* The reference layer counts valid pixels with a full ``C_out x C_in x k x k`` convolution
  of ones. Every output channel of that convolution is the same number: the window sum of
  the mask summed over input channels. We sum the channels first and convolve one channel
  with a ``k x k`` ones kernel. For binary masks both counts are small integers, so the
  results are bit-identical, at a fraction of the cost.
* The reference layer caches the mask ratio on the module and reuses it when the next call
  has no mask, a classic source of wrong results. Nothing is cached here.

Masks are ``B x C_in x H x W`` or ``B x 1 x H x W``; a one-channel mask stands for the
same mask on every input channel. The returned mask always has one channel, standing for
all output channels (the reference layer returns ``C_out`` identical copies).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The reference layer's guard against dividing by a zero count; kept for bit-equality.
_COUNT_EPS = 1e-8


class PartialConv2d(nn.Conv2d):
    """``forward(x, mask) -> (output, updated_mask)``; see the module docstring."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias
        )
        # Not persistent: it is a constant, and the authors' state dicts do not have it.
        self.register_buffer("window_ones", torch.ones(1, 1, *self.kernel_size), persistent=False)
        self.window_size = float(in_channels * self.kernel_size[0] * self.kernel_size[1])

    def mask_update(self, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(ratio, updated_mask)``, each ``B x 1 x H' x W'``, in float32.

        Computed outside autocast: under bf16, counts above 256 would not be exact.
        """
        if mask.shape[1] not in (1, self.in_channels):
            raise ValueError(
                f"mask has {mask.shape[1]} channels; expected 1 or {self.in_channels} "
                f"(the input's channels)"
            )
        with torch.no_grad(), torch.autocast(mask.device.type, enabled=False):
            dtype = torch.float64 if mask.dtype == torch.float64 else torch.float32
            mask = mask.to(dtype)
            if mask.shape[1] == 1:
                count = self.window_sum(mask) * float(self.in_channels)
            else:
                count = self.window_sum(mask.sum(dim=1, keepdim=True))
            ratio = self.window_size / (count + _COUNT_EPS)
            updated = count.clamp(0, 1)
            ratio = ratio * updated
        return ratio, updated

    def window_sum(self, mask: Tensor) -> Tensor:
        """Sum of a one-channel mask over each convolution window (zero padding).

        A sum-pool is several times faster than a one-channel convolution on the CPU and
        gives the same integers for binary masks; it has no dilation, hence the fallback.
        """
        if self.dilation == (1, 1):
            return F.avg_pool2d(mask, self.kernel_size, self.stride, self.padding,
                                count_include_pad=True, divisor_override=1)
        return F.conv2d(mask, self.window_ones.to(mask.dtype), None, self.stride,
                        self.padding, self.dilation)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"input has {x.shape[1]} channels; expected {self.in_channels}")
        ratio, updated = self.mask_update(mask)
        raw = F.conv2d(x * mask.to(x.dtype), self.weight, None, self.stride, self.padding,
                       self.dilation)
        # The ratio stays float32 (under bf16 autocast the product is promoted): a ratio
        # rounded to 8 bits would bias every rescaled activation near hole borders.
        out = raw * ratio
        if self.bias is not None:
            out = (out + self.bias.view(1, -1, 1, 1)) * updated
        return out, updated
