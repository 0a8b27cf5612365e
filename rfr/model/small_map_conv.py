"""Convolutions that run the RFR module's tiny feature maps through plain GEMMs.

Why this exists: at the demo's 64 x 64 images the RFR module's deepest layers meet
512-1024 channels with 4 x 4 maps, six times per training step (once per recurrence),
and on CPU oneDNN is slow for some of those shapes (``benchmarks/conv_backward.py``
prints the figures for every RFR-Net layer shape, so the choices can be re-checked on
other machines):

* ``SmallMapConv2d`` (the dilated ``enc_4`` to ``enc_6``, ``dec_5``, ``dec_4``): oneDNN's
  backward-weights kernel. For the 1024 -> 512 layer, forward and backward take 21 ms
  with it and 11 ms when the weight gradient is the input unfolded and one GEMM (2-core
  CPU, batch 6; six such calls per step for each of the five layers). Only the weight
  gradient changes: the forward pass is the very same ``F.conv2d`` call (outputs, and
  the authors' checkpoints run through them, stay bit-identical) and the input gradient
  is still autograd's own (the convolution runs on a detached weight, so autograd
  computes the input gradient alone).
* ``SmallMapConvTranspose2d`` (``dec_3``): under bf16 autocast, oneDNN's transposed
  convolution from a 4 x 4 map takes 40 ms forward and backward, GEMMs plus
  ``fold``/``unfold`` 20 ms. In fp32 oneDNN is as fast and is kept.

The GEMM results equal oneDNN's up to float summation order. The paths are taken only
on the CPU (other devices keep torch's own kernels: nothing was measured there), only
on maps of at most ``SMALL_MAP_POSITIONS`` positions (oneDNN wins on larger ones, so at
the paper's 256 x 256 nothing changes) and depend on shapes and dtypes only, never on
timings: runs stay deterministic.

Under autocast the bf16 copy of a weight is made once per ``cast_scope()`` (one forward
pass of RFR-Net), not once per recurrence: autocast's own cache cannot be used because
these layers pass the weight to their kernels detached or through their own autograd
function.

**Opt-in.** ``rfr.model.rfrnet`` builds torch's plain layers; ``use_small_map_gemm(model)``
swaps the layers named in ``GEMM_LAYERS`` for these classes in place (same Parameter
objects) and opens a ``cast_scope()`` around each forward pass of ``model``. The weight
gradients then differ from oneDNN's in float summation order, so trained numbers change:
the swap is the tracked training setting ``TrainConfig.small_map_gemm``, never a runtime
knob. Evaluation and inference keep the plain layers (their fp32 forward is the same
``F.conv2d``, and without gradients the convolutions' GEMM path is never taken).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Largest map (H x W positions: the output of a convolution, the input of a transposed
# one) that takes a GEMM path. Measured on a 2-core AMD EPYC (Zen 4), torch 2.14, batch
# 6: GEMMs win at 4 x 4 for these layers, lose at 8 x 8 (benchmarks/conv_backward.py).
SMALL_MAP_POSITIONS = 16

# Casts of weights to the autocast dtype made inside the current cast_scope(), by id.
_scope_casts: dict[tuple[int, torch.dtype], Tensor] | None = None


@contextlib.contextmanager
def cast_scope() -> Iterator[None]:
    """Within this block each weight is cast to the autocast dtype at most once. Weights
    must not change inside it (one forward pass); the copies are dropped on exit."""
    global _scope_casts
    outer = _scope_casts
    if outer is None:
        _scope_casts = {}
    try:
        yield
    finally:
        _scope_casts = outer


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def _weight_in(weight: Tensor, dtype: torch.dtype | None) -> Tensor:
    """``weight`` cast to ``dtype`` (None: as it is), once per cast_scope. The cast is
    differentiable: as with autocast's own cache, the gradients of every use are summed
    in ``dtype`` and cast back to the weight's dtype once."""
    if dtype is None or dtype == weight.dtype:
        return weight
    key = (id(weight), dtype)
    if _scope_casts is not None and key in _scope_casts:
        return _scope_casts[key]
    cast = weight.to(dtype)
    if _scope_casts is not None:
        _scope_casts[key] = cast
    return cast


class _WeightGradient(torch.autograd.Function):
    """Identity on a convolution's output whose backward adds the weight's gradient:
    ``w[o, i, ky, kx] = sum_{b, p} grad_out[b, o, p] * unfold(x)[b, (i, ky, kx), p]``."""

    @staticmethod
    def forward(ctx: Any, output: Tensor, x: Tensor, weight: Tensor,
                conv: nn.Conv2d) -> Tensor:
        ctx.save_for_backward(x)
        ctx.geometry = conv.kernel_size, conv.dilation, conv.padding, conv.stride
        ctx.weight_shape, ctx.weight_dtype = weight.shape, weight.dtype
        ctx.compute_dtype = output.dtype
        return output.view_as(output)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        kernel_size, dilation, padding, stride = ctx.geometry
        columns = F.unfold(x.to(ctx.compute_dtype), kernel_size, dilation=dilation,
                           padding=padding, stride=stride)  # B x (I k k) x P
        columns = columns.transpose(0, 1).reshape(columns.shape[1], -1)
        rows = grad_output.to(ctx.compute_dtype).transpose(0, 1)
        rows = rows.reshape(grad_output.shape[1], -1)  # O x (B P)
        grad_weight = torch.mm(rows, columns.t()).view(ctx.weight_shape)
        return grad_output, None, grad_weight.to(ctx.weight_dtype), None


def output_positions(conv: nn.Conv2d, height: int, width: int) -> int:
    """Number of output positions of ``conv`` on a ``height x width`` input."""
    positions = 1
    for length, k, s, p, d in zip((height, width), conv.kernel_size, conv.stride,
                                  conv.padding, conv.dilation, strict=True):
        positions *= (length + 2 * p - d * (k - 1) - 1) // s + 1
    return positions


class SmallMapConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same state-dict keys, same forward) with the GEMM
    weight gradient on output maps of at most ``SMALL_MAP_POSITIONS`` positions."""

    def takes_gemm_path(self, x: Tensor) -> bool:
        return (x.device.type == "cpu" and torch.is_grad_enabled()
                and self.weight.requires_grad and self.groups == 1
                and self.padding_mode == "zeros" and not isinstance(self.padding, str)
                and output_positions(self, x.shape[-2], x.shape[-1]) <= SMALL_MAP_POSITIONS)

    def forward(self, x: Tensor) -> Tensor:
        if not self.takes_gemm_path(x):
            return super().forward(x)
        weight = _weight_in(self.weight, _autocast_dtype(x.device.type))
        output = F.conv2d(x, weight.detach(), self.bias, self.stride, self.padding,
                          self.dilation)
        return _WeightGradient.apply(output, x, weight, self)


class _ConvTranspose2dGemm(torch.autograd.Function):
    """Transposed convolution as ``fold(W^T @ x)``; backward ``W @ unfold(g)`` and
    ``x @ unfold(g)^T``, all in the weight's dtype."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, conv: nn.ConvTranspose2d) -> Tensor:
        dtype = weight.dtype
        batch, channels, height, width = x.shape
        x = x.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            columns = torch.mm(weight.reshape(channels, -1).t(),
                               x.transpose(0, 1).reshape(channels, -1))  # (O k k) x (B P)
            columns = columns.view(columns.shape[0], batch, height * width).transpose(0, 1)
            size = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in zip(
                (height, width), conv.stride, conv.padding, conv.dilation, conv.kernel_size,
                strict=True)]
            # Overlapping taps are summed in fp32 at least, as oneDNN accumulates.
            columns = columns.to(torch.promote_types(dtype, torch.float32))
            output = F.fold(columns, size, conv.kernel_size, dilation=conv.dilation,
                            padding=conv.padding, stride=conv.stride).to(dtype)
        ctx.save_for_backward(x, weight)
        ctx.conv_geometry = conv.kernel_size, conv.dilation, conv.padding, conv.stride
        return output

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        kernel_size, dilation, padding, stride = ctx.conv_geometry
        batch, channels, height, width = x.shape
        with torch.autocast(x.device.type, enabled=False):
            columns = F.unfold(grad_output.to(x.dtype), kernel_size, dilation=dilation,
                               padding=padding, stride=stride)  # B x (O k k) x P
            columns = columns.transpose(0, 1).reshape(columns.shape[1], -1)
            grad_x = grad_weight = None
            if ctx.needs_input_grad[0]:
                grad_x = torch.mm(weight.reshape(channels, -1), columns)
                grad_x = grad_x.view(channels, batch, height, width).transpose(0, 1)
            if ctx.needs_input_grad[1]:
                grad_weight = torch.mm(x.transpose(0, 1).reshape(channels, -1), columns.t())
                grad_weight = grad_weight.view(weight.shape)
        return grad_x, grad_weight, None


class SmallMapConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters, same state-dict keys) that, under bf16 or
    fp16 autocast, computes through GEMMs when its *input* map has at most
    ``SMALL_MAP_POSITIONS`` positions; in fp32 it is ``nn.ConvTranspose2d`` exactly."""

    def takes_gemm_path(self, x: Tensor) -> bool:
        if x.device.type != "cpu":
            return False
        return (_autocast_dtype("cpu") in (torch.bfloat16, torch.float16)
                and self.bias is None and self.groups == 1 and self.padding_mode == "zeros"
                and not any(self.output_padding)
                and x.shape[-2] * x.shape[-1] <= SMALL_MAP_POSITIONS)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is not None or not self.takes_gemm_path(x):
            return super().forward(x, output_size)
        weight = _weight_in(self.weight, _autocast_dtype(x.device.type))
        return _ConvTranspose2dGemm.apply(x, weight, self)


# --- the opt-in swap ------------------------------------------------------------------

# Which layers the swap replaces, by module name. Names, not shapes: they are fixed by the
# authors' checkpoint keys (``RFRModule.enc_4.0.weight``, ...), so the rule cannot drift
# when a width or an image size changes, and they are the layers the measurements of
# ``benchmarks/conv_backward.py`` picked: the RFR module's five dilated 3 x 3 convolutions,
# which run on the deepest map (1/16 of the image: 4 x 4 at the demo's 64 x 64), and
# ``dec_3``, the transposed convolution up from that map. ``enc_3`` (whose output is that
# map too) and the other layers are as fast with oneDNN and stay plain.
GEMM_LAYERS: dict[re.Pattern[str], tuple[type[nn.Module], type[nn.Module]]] = {
    re.compile(r"(?:^|\.)RFRModule\.(?:enc_[456]|dec_[54])\.0$"): (nn.Conv2d, SmallMapConv2d),
    re.compile(r"(?:^|\.)RFRModule\.dec_3\.0$"): (nn.ConvTranspose2d, SmallMapConvTranspose2d),
}


def _gemm_class(name: str, module: nn.Module) -> type[nn.Module] | None:
    """The GEMM class replacing ``module`` (named ``name`` in its model), or None. Only a
    layer of exactly torch's class is replaced: an already swapped one is left alone."""
    for pattern, (plain, gemm) in GEMM_LAYERS.items():
        if pattern.search(name) and type(module) is plain:
            return gemm
    return None


def _gemm_twin(module: nn.Conv2d | nn.ConvTranspose2d, cls: type[nn.Module]) -> nn.Module:
    """An instance of ``cls`` with ``module``'s geometry holding ``module``'s very Parameter
    objects (built on the meta device: its own initial weights would be thrown away)."""
    common = dict(stride=module.stride, padding=module.padding, dilation=module.dilation,
                  groups=module.groups, bias=module.bias is not None,
                  padding_mode=module.padding_mode, device="meta")
    if issubclass(cls, nn.ConvTranspose2d):
        common["output_padding"] = module.output_padding
    twin = cls(module.in_channels, module.out_channels, module.kernel_size, **common)
    twin.weight = module.weight
    twin.bias = module.bias
    twin.train(module.training)
    return twin


def _install_cast_scope(model: nn.Module) -> None:
    """Open a ``cast_scope()`` when ``model``'s forward starts and close it when it ends,
    raised exceptions included (``always_call``): one bf16 copy of each swapped weight per
    forward pass. The scope belongs to the swap because only the GEMM layers read it
    (``_weight_in``); the plain network needs none."""
    open_scopes: list[contextlib.AbstractContextManager[None]] = []

    def enter(module: nn.Module, args: tuple[Any, ...]) -> None:
        scope = cast_scope()
        scope.__enter__()
        open_scopes.append(scope)

    def leave(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if open_scopes:
            open_scopes.pop().__exit__(None, None, None)

    model.register_forward_pre_hook(enter)
    model.register_forward_hook(leave, always_call=True)


def use_small_map_gemm(model: nn.Module) -> int:
    """Replace, in place, ``model``'s layers named by ``GEMM_LAYERS`` by their GEMM
    versions; returns how many were replaced (0 for a model without an RFR module).

    The replacements hold the same Parameter objects, under the same names: the state
    dict, checkpoints and an optimizer built before or after are those of the plain
    model. Call it before ``DistributedDataParallel`` wraps the model (DDP records the
    module tree it is given). Each forward pass of ``model`` then runs in one
    ``cast_scope()``; call the model itself, not only a submodule, to get one."""
    swaps = [(name, module, cls) for name, module in model.named_modules()
             if (cls := _gemm_class(name, module)) is not None]
    for name, module, cls in swaps:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, _gemm_twin(module, cls))
    if swaps:
        _install_cast_scope(model)
    return len(swaps)
