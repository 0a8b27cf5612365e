"""The suite's forward contract, shared by RFR-Net and the baselines.

Every model is ``model(masked_image, mask) -> raw output``: ``B x 3 x H x W`` pixels in
[0, 1], mask ``B x 1|3 x H x W`` with 1 = known and 0 = hole. ``check_inputs`` enforces
the shapes, ``pad_to_multiple`` pads an input to the size a network needs (the caller
crops back), and ``composite`` is the one rule that puts the raw output into the holes.
Plain tensor functions: this module imports nothing of the suite.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def check_inputs(masked_image: Tensor, mask: Tensor) -> None:
    """Enforce the suite's forward contract with messages that say what was expected."""
    if masked_image.dim() != 4 or masked_image.shape[1] != 3:
        raise ValueError(
            f"masked_image must be B x 3 x H x W, got shape {tuple(masked_image.shape)}"
        )
    if mask.dim() != 4 or mask.shape[1] not in (1, 3):
        raise ValueError(f"mask must be B x 1 x H x W or B x 3 x H x W, got {tuple(mask.shape)}")
    if mask.shape[0] != masked_image.shape[0] or mask.shape[-2:] != masked_image.shape[-2:]:
        raise ValueError(
            f"mask {tuple(mask.shape)} does not match masked_image {tuple(masked_image.shape)} "
            f"in batch size or H x W"
        )


def composite(output: Tensor, image: Tensor, mask: Tensor) -> Tensor:
    """The suite's one compositing rule: model output in the holes, known pixels elsewhere
    (mask 1 = known; a 1-channel mask broadcasts over the colour channels)."""
    return output * (1 - mask) + image * mask


def pad_to_multiple(image: Tensor, mask: Tensor, multiple: int) -> tuple[Tensor, Tensor]:
    """Pad bottom and right to a multiple of ``multiple`` (the authors' net crashes on
    other sizes). Reflection keeps image and mask consistent and invents no known pixel
    that is not a mirror of a real one; images too small to reflect are replicated."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return image, mask
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    padding = (0, pad_w, 0, pad_h)
    return F.pad(image, padding, mode=mode), F.pad(mask, padding, mode=mode)


__all__ = ["check_inputs", "composite", "pad_to_multiple"]
