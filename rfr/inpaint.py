"""Inpaint one image of any size with any suite model, keeping the known pixels exact.

The network runs at most at ``max_side`` pixels on the longer side: RFR-Net's attention
holds (H/8 * W/8)^2 scores per image, which for a 2048 x 2048 photo would be 64 GiB.
A larger image is downscaled for the network (a pixel is known there only if everything
it covers is known), and the output is upsampled into the holes; the composite keeps
every known pixel of the original at full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rfr.model.api import composite
from rfr.precision import Precision, precision_context  # re-exported: older imports

__all__ = ["Precision", "inpaint", "precision_context"]


@torch.inference_mode()
def inpaint(
    model: nn.Module,
    image: Tensor,
    mask: Tensor,
    precision: Precision = "fp32",
    max_side: int = 1024,
) -> Tensor:
    """Inpaint a 3 x H x W image with a 1 x H x W mask (1 = known); returns the composite."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be 3 x H x W, got {tuple(image.shape)}")
    if mask.dim() != 3 or mask.shape[0] != 1:
        raise ValueError(f"mask must be 1 x H x W, got {tuple(mask.shape)}")
    if image.shape[-2:] != mask.shape[-2:]:
        raise ValueError(
            f"image is {image.shape[2]}x{image.shape[1]} (WxH) but mask is "
            f"{mask.shape[2]}x{mask.shape[1]}"
        )
    if max_side < 16:
        raise ValueError(f"max_side must be at least 16 (the network's size step), got {max_side}")
    model.eval()
    device = next(model.parameters()).device
    full_image = image[None].to(device)
    full_mask = mask[None].to(device)
    net_image, net_mask = full_image, full_mask
    height, width = image.shape[-2:]
    scale = max_side / max(height, width)
    if scale < 1:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        net_image = F.interpolate(full_image, size=size, mode="area")
        net_mask = (F.interpolate(full_mask, size=size, mode="area") >= 1 - 1e-6).float()
    with precision_context(precision, device.type):
        output = model(net_image * net_mask, net_mask).float()
    if output.shape[-2:] != (height, width):
        output = F.interpolate(output, size=(height, width), mode="bilinear",
                               align_corners=False)
    return composite(output, full_image, full_mask).clamp(0, 1)[0].cpu()
