"""Finetuning with frozen BatchNorm, the one mode switch every model in the suite shares."""

from __future__ import annotations

from torch import nn


def freeze_batchnorm_in(module: nn.Module) -> None:
    """Put every BatchNorm layer under ``module`` in eval mode: running statistics are
    used and kept, the affine weights still train (the authors' finetune phase)."""
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            child.eval()
