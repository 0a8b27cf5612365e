"""BatchNorm over the global batch of a multi-rank run, on CPU (gloo) as on GPU (nccl).

With data-parallel training each rank sees ``B / W`` images; plain BatchNorm normalises
each rank's shard with that shard's statistics, so 2 ranks x 3 images do not train like
1 rank x 6. ``torch.nn.SyncBatchNorm`` fixes that on GPUs only: on CPU tensors it raises
"SyncBatchNorm expected input tensor to be on GPU". ``SyncBatchNorm2d`` does the same
arithmetic with autograd-aware collectives, which every backend runs:

- per channel, each rank sums its count and ``sum x``, and
  ``torch.distributed.nn.functional.all_reduce`` adds them over the ranks: the global
  mean; then each rank sums its squared deviations from that mean, all-reduced too: the
  global *biased* variance. Both collectives are differentiable (the backward
  all-reduces the gradients), so the input gradient is that of the global batch;
- the input is normalised with that mean and variance, as BatchNorm2d does on the
  concatenated batch;
- ``running_mean`` and ``running_var`` (the *unbiased* global variance) move with
  ``momentum`` (or the cumulative average when ``momentum`` is None), and
  ``num_batches_tracked`` counts, exactly as BatchNorm2d's on the whole batch.

Whenever batch statistics are not synchronised (eval mode, running statistics used, no
process group or a world of one) the layer is plain ``nn.BatchNorm2d``, whose subclass it
is: the frozen-BatchNorm finetune phase (``rfr.model.batchnorm``) switches it like any other,
and its state dict has BatchNorm2d's keys, so checkpoints load into the plain model.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are those of the global batch.

    ``process_group``: the ranks to synchronise over (None: the default group)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group: Any = None, device: Any = None, dtype: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats,
                         device=device, dtype=dtype)
        self.process_group = process_group

    def synchronises(self) -> bool:
        """Whether this forward uses the global batch's statistics: in training mode
        (batch statistics) within a process group of more than one rank."""
        return (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(self.process_group) > 1)

    def forward(self, input: Tensor) -> Tensor:
        if not self.synchronises():
            return super().forward(input)
        self._check_input_dim(input)
        average = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                average = 1.0 / float(self.num_batches_tracked)

        dtype = torch.promote_types(input.dtype, torch.float32)
        x = input.to(dtype)
        channels = x.shape[1]
        # Two passes: the global mean from the counts and sums, then the global sum of
        # squared deviations from it. Sums of squares minus the squared mean would need
        # one collective less, but cancel badly in channels of small variance (measured
        # on RFR-Net: gradients 5x further from float64 than BatchNorm2d's own).
        first = global_sum(torch.cat([x.sum(dim=(0, 2, 3)),
                                      x.new_full((1,), float(x.numel() // channels))]),
                           self.process_group)
        count = first[-1].detach()
        n = float(count)
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got "
                             f"{int(n)} over all ranks (input size {list(input.shape)})")
        mean = first[:channels] / count
        centered = x - mean.view(1, -1, 1, 1)
        var = global_sum((centered * centered).sum(dim=(0, 2, 3)), self.process_group) / count
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():  # BatchNorm2d's update: the unbiased variance
                self.running_mean.mul_(1 - average).add_(
                    mean.detach().to(self.running_mean.dtype), alpha=average)
                self.running_var.mul_(1 - average).add_(
                    (var.detach() * (n / (n - 1))).to(self.running_var.dtype),
                    alpha=average)
        scale = torch.rsqrt(var + self.eps)  # the biased variance, as BatchNorm2d uses
        if self.affine:
            scale = scale * self.weight.to(dtype)
        out = centered * scale.view(1, -1, 1, 1)
        if self.affine:
            out = out + self.bias.to(dtype).view(1, -1, 1, 1)
        return out.to(input.dtype)


def global_sum(tensor: Tensor, process_group: Any = None) -> Tensor:
    """The sum of ``tensor`` over the ranks, differentiable: the backward sums the
    gradients over the ranks too (``torch.distributed.nn.functional.all_reduce``).

    torch 2.14 deprecates that function in favour of the private
    ``torch.distributed._functional_collectives``; the public one is kept, and its
    FutureWarning (once per call site) silenced here."""
    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional",
                                category=FutureWarning)
        return all_reduce(tensor, op=dist.ReduceOp.SUM, group=process_group)


def convert_sync_batchnorm(module: nn.Module, process_group: Any = None) -> nn.Module:
    """``module`` with every ``nn.BatchNorm2d`` replaced by a ``SyncBatchNorm2d`` that
    keeps its parameters (the same tensors), buffers, eps, momentum, affine,
    track_running_stats and training flag; returns the new root when ``module`` itself
    is a BatchNorm2d. Other layers are kept as they are; their order and names (the
    state-dict keys) do not change."""
    converted = module
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, SyncBatchNorm2d):
        converted = SyncBatchNorm2d(module.num_features, module.eps, module.momentum,
                                    module.affine, module.track_running_stats, process_group)
        if module.affine:
            converted.weight = module.weight
            converted.bias = module.bias
        converted.running_mean = module.running_mean
        converted.running_var = module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        if hasattr(module, "qconfig"):
            converted.qconfig = module.qconfig
    for name, child in module.named_children():
        new = convert_sync_batchnorm(child, process_group)
        if new is not child:
            converted.add_module(name, new)
    return converted


__all__ = ["SyncBatchNorm2d", "convert_sync_batchnorm", "global_sum"]
