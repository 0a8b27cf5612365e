"""RFR-Net's training loss (Li et al. 2020), term for term as in the authors' model.py.

total = tv*0.1 + style*120 + perceptual*0.05 + valid*1 + hole*6 (weights from LossConfig).
The reductions follow the authors exactly, including their quirks, because the point of
this project is to reproduce their numbers:
- valid/hole L1 are means over *all* B*3*H*W values of the masked difference, not over
  the known/hole pixels only;
- VGG16 sees pixels in [0, 1] without ImageNet mean/std normalisation;
- the Gram matrix is un-normalised and the |difference| is divided by c*h*w inside the
  mean, so the style term is a mean over c*c entries of (|G_a - G_b| / (c*h*w)).
Mask convention: 1 = known pixel, 0 = hole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from rfr.config import LossConfig
from rfr.model.api import composite
from rfr.weights import RANDOM_VGG_DESCRIPTION, resolve_vgg16_state_dict

# Indices into torchvision's vgg16().features; each block ends after a max-pool.
VGG_BLOCKS: tuple[tuple[int, int], ...] = ((0, 5), (5, 10), (10, 17))
LOSS_TERMS: tuple[str, ...] = ("valid", "hole", "perceptual", "style", "tv")


class VGG16Features(nn.Module):
    """Frozen VGG16 features after pool1, pool2 and pool3 (the authors' loss network).

    Args:
        state_dict: a torchvision vgg16 state dict ("features.N.weight" keys; other keys
            are ignored), or None for a seeded random init like torchvision's.
        source: label saying where the weights came from (reports print it).
        seed: the random init's seed, so that random-VGG smoke runs are repeatable.

    The parameters never require grad and the module stays in eval mode whatever its
    parent does, so a `model.train()` or an optimiser over all parameters cannot touch it.
    """

    def __init__(
        self,
        state_dict: Mapping[str, Tensor] | None = None,
        *,
        source: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        layers = _vgg16_feature_layers(VGG_BLOCKS[-1][1])
        if state_dict is None:
            _init_like_torchvision(layers, seed)
            default_source = f"{RANDOM_VGG_DESCRIPTION} (seed {seed})"
        else:
            prefix = "features."
            wanted = {key for key in layers.state_dict()}
            subset = {
                key[len(prefix) :]: value
                for key, value in state_dict.items()
                if key.startswith(prefix) and key[len(prefix) :] in wanted
            }
            layers.load_state_dict(subset, strict=True)
            default_source = "VGG16 weights from a given state dict"
        self.is_random: bool = state_dict is None
        self.source: str = source or default_source
        self.blocks = nn.ModuleList(layers[start:stop] for start, stop in VGG_BLOCKS)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_spec(cls, spec: str | Path, *, seed: int = 0) -> VGG16Features:
        """Build from a `LossConfig.vgg_weights` value: "imagenet", "random" or a path."""
        resolved = resolve_vgg16_state_dict(spec)
        if resolved.is_random:
            return cls(None, seed=seed)
        return cls(resolved.state_dict, source=resolved.description)

    def train(self, mode: bool = True) -> VGG16Features:
        # Frozen feature extractor: ignore `mode`, always eval.
        return super().train(False)

    def forward(self, images: Tensor) -> list[Tensor]:
        """[pool1, pool2, pool3] features of B x 3 x H x W images in [0, 1]."""
        features = []
        x = images
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class InpaintingLoss(nn.Module):
    """The authors' loss as named terms, so training curves can show each one.

    Args:
        config: term weights and `vgg_weights` (where VGG16 comes from).
        vgg: an explicit feature network (tests, or sharing one between losses); when
            given, `config.vgg_weights` is not read.

    forward(output, target, mask) -> {"valid", "hole", "perceptual", "style", "tv"}
    (unweighted scalars) and "total" (the weighted sum to back-propagate).
    """

    def __init__(self, config: LossConfig | None = None, vgg: VGG16Features | None = None):
        super().__init__()
        self.config = config if config is not None else LossConfig()
        self.vgg = vgg if vgg is not None else VGG16Features.from_spec(self.config.vgg_weights)

    @property
    def vgg_source(self) -> str:
        return self.vgg.source

    @property
    def uses_random_vgg(self) -> bool:
        return self.vgg.is_random

    def forward(self, output: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
        validate_inputs(output, target, mask)
        mask = mask.to(dtype=output.dtype)
        comp = composite(output, target, mask)
        target_feats, output_feats, comp_feats = self.features(target, output, comp)
        terms = {
            "valid": masked_l1(target, output, mask),
            "hole": masked_l1(target, output, 1 - mask),
            "perceptual": perceptual_loss(target_feats, output_feats)
            + perceptual_loss(target_feats, comp_feats),
            "style": style_loss(target_feats, output_feats) + style_loss(target_feats, comp_feats),
            "tv": total_variation(comp * (1 - mask)),
        }
        terms["total"] = weighted_total(terms, self.config)
        return terms

    def features(
        self, target: Tensor, output: Tensor, comp: Tensor
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """VGG features of target, output and comp: the target's in a pass without
        autograd (it is ground truth), output and comp together in one batched pass.

        Keeping the target out of the autograd pass saves its share of the backward (about
        a third of VGG's) and of the kept activations. A perfect prediction still gets
        exactly zero perceptual and style loss: the convolution kernels compute each image
        of a batch the same way whatever the batch size
        (``tests/test_losses.py::test_perfect_prediction_gives_exactly_zero``).
        """
        batch = output.shape[0]
        with torch.no_grad():
            target_feats = self.vgg(target.detach())
        feats = self.vgg(torch.cat([output, comp], dim=0))
        output_feats = [f[:batch] for f in feats]
        comp_feats = [f[batch:] for f in feats]
        return target_feats, output_feats, comp_feats


def weighted_total(terms: Mapping[str, Tensor], config: LossConfig) -> Tensor:
    """The authors' weighted sum, in their order (tv, style, perceptual, valid, hole) so
    that float rounding matches theirs too."""
    return (
        terms["tv"] * config.tv
        + terms["style"] * config.style
        + terms["perceptual"] * config.perceptual
        + terms["valid"] * config.valid
        + terms["hole"] * config.hole
    )


def masked_l1(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """mean(|a - b| * mask) over all elements (authors' reduction; a 1-channel mask is
    broadcast so the mean still runs over B*3*H*W)."""
    return torch.mean(torch.abs(a - b) * mask)


def gram_matrix(features: Tensor) -> Tensor:
    """Un-normalised Gram matrices F F^T (B x c x c) of B x c x h x w features.

    Computed in at least float32 with autocast off: sums over h*w products overflow
    float16 at training resolution.
    """
    b, c, h, w = features.shape
    device_type = features.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        flat = features.reshape(b, c, h * w)
        if flat.dtype in (torch.float16, torch.bfloat16):
            flat = flat.float()
        return torch.matmul(flat, flat.transpose(1, 2))


def style_loss(feats_a: Sequence[Tensor], feats_b: Sequence[Tensor]) -> Tensor:
    """Sum over levels of mean(|G(a) - G(b)| / (c*h*w)), as the authors compute it."""
    _check_levels(feats_a, feats_b)
    total = feats_a[0].new_zeros((), dtype=torch.promote_types(feats_a[0].dtype, torch.float32))
    for a, b in zip(feats_a, feats_b, strict=True):
        _, c, h, w = a.shape
        total = total + torch.mean(torch.abs(gram_matrix(a) - gram_matrix(b)) / (c * h * w))
    return total


def perceptual_loss(feats_a: Sequence[Tensor], feats_b: Sequence[Tensor]) -> Tensor:
    """Sum over levels of mean |a - b|."""
    _check_levels(feats_a, feats_b)
    total = feats_a[0].new_zeros(())
    for a, b in zip(feats_a, feats_b, strict=True):
        total = total + torch.mean(torch.abs(a - b))
    return total


def total_variation(x: Tensor) -> Tensor:
    """mean |vertical neighbour difference| + mean |horizontal neighbour difference|."""
    vertical = torch.mean(torch.abs(x[:, :, 1:, :] - x[:, :, :-1, :]))
    horizontal = torch.mean(torch.abs(x[:, :, :, 1:] - x[:, :, :, :-1]))
    return vertical + horizontal


def validate_inputs(output: Tensor, target: Tensor, mask: Tensor) -> None:
    """Reject shapes the loss would otherwise broadcast into wrong numbers silently."""
    if output.dim() != 4 or output.shape[1] != 3:
        raise ValueError(f"output must be B x 3 x H x W, got shape {tuple(output.shape)}")
    if target.shape != output.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} differs from output shape {tuple(output.shape)}"
        )
    if mask.dim() != 4 or mask.shape[1] not in (1, 3):
        raise ValueError(
            f"mask must be B x 1 x H x W or B x 3 x H x W (1 = known, 0 = hole), "
            f"got shape {tuple(mask.shape)}"
        )
    b, _, h, w = output.shape
    if (mask.shape[0], mask.shape[2], mask.shape[3]) != (b, h, w):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match the images' batch and size {(b, h, w)}"
        )


def _check_levels(feats_a: Sequence[Tensor], feats_b: Sequence[Tensor]) -> None:
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError(
            f"need the same non-zero number of feature levels, got {len(feats_a)} and "
            f"{len(feats_b)}"
        )


def _vgg16_feature_layers(stop: int) -> nn.Sequential:
    """torchvision's vgg16 `features[:stop]`, allocated on CPU without the ~2 s random init
    of the unused 120M-parameter classifier (the model is built on the meta device)."""
    with torch.device("meta"):
        model = torchvision.models.vgg16(weights=None)
    return model.features[:stop].to_empty(device="cpu")


def _init_like_torchvision(layers: nn.Sequential, seed: int) -> None:
    """torchvision's VGG conv init (Kaiming normal, fan_out, zero bias) from a private
    generator, so a seed fixes the weights without touching the global RNG."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in layers.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


__all__ = [
    "LOSS_TERMS",
    "VGG_BLOCKS",
    "InpaintingLoss",
    "VGG16Features",
    "composite",
    "gram_matrix",
    "masked_l1",
    "perceptual_loss",
    "style_loss",
    "total_variation",
    "validate_inputs",
    "weighted_total",
]
