"""The GEMM paths of rfr.nn.small_map_conv: same forward, same gradients as torch's layers."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rfr.nn.small_map_conv as small_map_conv
from rfr.config import RFRNetConfig
from rfr.models import RFRNet
from rfr.nn.small_map_conv import (
    SmallMapConv2d,
    SmallMapConvTranspose2d,
    _ConvTranspose2dGemm,
    _weight_in,
    _WeightGradient,
    cast_scope,
)


def forward_backward(module: nn.Module, x: torch.Tensor, bf16: bool = False):
    """Output, input gradient and weight gradient of ``sum(output * probe)``."""
    module = copy.deepcopy(module)
    x = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), cast_scope():
        out = module(x)
    probe = torch.linspace(-1, 1, out.numel()).view(out.shape)
    (out.float() * probe).sum().backward()
    return out.detach().float(), x.grad, module.weight.grad


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def plain_conv(ours: SmallMapConv2d) -> nn.Conv2d:
    plain = nn.Conv2d(ours.in_channels, ours.out_channels, ours.kernel_size, ours.stride,
                      ours.padding, ours.dilation, bias=False)
    plain.load_state_dict(ours.state_dict())
    return plain


def plain_transposed(ours: SmallMapConvTranspose2d) -> nn.ConvTranspose2d:
    plain = nn.ConvTranspose2d(ours.in_channels, ours.out_channels, ours.kernel_size,
                               ours.stride, ours.padding, bias=False)
    plain.load_state_dict(ours.state_dict())
    return plain


@pytest.fixture
def dilated() -> SmallMapConv2d:
    torch.manual_seed(0)
    return SmallMapConv2d(48, 32, 3, 1, 2, dilation=2, bias=False)


def test_dilated_conv_on_a_4x4_map_takes_the_gemm_path_with_the_same_forward(dilated):
    x = torch.randn(3, 48, 4, 4)
    assert dilated.takes_gemm_path(x)
    ours, plain = forward_backward(dilated, x), forward_backward(plain_conv(dilated), x)
    assert torch.equal(ours[0], plain[0])  # the very same F.conv2d call
    assert torch.equal(ours[1], plain[1])  # autograd's own input gradient
    assert relative_error(ours[2], plain[2]) < 1e-5  # summation order only
    assert ours[2].abs().max() > 0.1


def test_gemm_path_is_not_taken_on_larger_maps_or_without_gradients(dilated):
    assert not dilated.takes_gemm_path(torch.randn(1, 48, 8, 8))  # 64 output positions
    with torch.no_grad():
        assert not dilated.takes_gemm_path(torch.randn(1, 48, 4, 4))
    assert not dilated.takes_gemm_path(torch.empty(1, 48, 4, 4, device="meta"))  # CPU only
    strided = SmallMapConv2d(8, 8, 3, 2, 1)
    assert strided.takes_gemm_path(torch.randn(1, 8, 8, 8))  # 8x8 in, 4x4 out
    assert not strided.takes_gemm_path(torch.randn(1, 8, 10, 10))  # 5x5 out


@pytest.mark.slow
def test_weight_gradient_matches_finite_differences_in_float64():
    torch.manual_seed(1)
    conv = SmallMapConv2d(3, 4, 3, 1, 2, dilation=2, bias=False).double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    weight = conv.weight.detach().clone().requires_grad_()

    def function(x, weight):
        out = F.conv2d(x, weight.detach(), None, conv.stride, conv.padding, conv.dilation)
        return _WeightGradient.apply(out, x, weight, conv)

    assert torch.autograd.gradcheck(function, (x, weight))


@pytest.mark.native_bf16
def test_dilated_conv_under_bf16_autocast_matches_autocasts_own_path(dilated):
    x = torch.randn(3, 48, 4, 4)
    ours = forward_backward(dilated, x, bf16=True)
    plain = forward_backward(plain_conv(dilated), x, bf16=True)
    assert torch.equal(ours[0], plain[0])
    assert relative_error(ours[1], plain[1]) < 1e-2
    assert relative_error(ours[2], plain[2]) < 1e-2
    assert ours[2].dtype == torch.float32  # the parameter's dtype, as autocast gives


@pytest.fixture
def transposed() -> SmallMapConvTranspose2d:
    torch.manual_seed(2)
    return SmallMapConvTranspose2d(64, 24, 4, 2, 1, bias=False)


def test_transposed_conv_is_torchs_own_in_fp32(transposed):
    x = torch.randn(2, 64, 4, 4)
    assert not transposed.takes_gemm_path(x)
    ours, plain = forward_backward(transposed, x), forward_backward(plain_transposed(transposed), x)
    for a, b in zip(ours, plain, strict=True):
        assert torch.equal(a, b)


@pytest.mark.native_bf16
def test_transposed_conv_under_bf16_takes_the_gemm_path_within_bf16_rounding(transposed):
    x = torch.randn(2, 64, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert transposed.takes_gemm_path(x)
        assert not transposed.takes_gemm_path(torch.randn(2, 64, 8, 8))
        assert not transposed.takes_gemm_path(torch.empty(2, 64, 4, 4, device="meta"))
    ours = forward_backward(transposed, x, bf16=True)
    plain = forward_backward(plain_transposed(transposed), x, bf16=True)
    exact = forward_backward(plain_transposed(transposed), x)  # fp32 reference
    assert ours[0].shape == plain[0].shape == (2, 24, 8, 8)
    for a, b, c in zip(ours, plain, exact, strict=True):
        # as close to fp32 as oneDNN's bf16 is (bf16 keeps 8 bits: 2^-8 = 0.0039)
        assert relative_error(a, c) < 2 * max(relative_error(b, c), 2**-8)
    assert ours[2].dtype == torch.float32


@pytest.mark.slow
def test_transposed_gemm_gradients_match_finite_differences_in_float64():
    torch.manual_seed(3)
    conv = SmallMapConvTranspose2d(3, 2, 4, 2, 1, bias=False).double()
    x = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    weight = conv.weight.detach().clone().requires_grad_()
    assert torch.allclose(_ConvTranspose2dGemm.apply(x, weight, conv),
                          F.conv_transpose2d(x, weight, None, 2, 1))
    assert torch.autograd.gradcheck(lambda x, w: _ConvTranspose2dGemm.apply(x, w, conv),
                                    (x, weight))


def test_cast_scope_casts_each_weight_once_and_forgets_on_exit():
    weight = nn.Parameter(torch.randn(4, 4))
    with cast_scope():
        first = _weight_in(weight, torch.bfloat16)
        assert _weight_in(weight, torch.bfloat16) is first
        with cast_scope():  # nested: the outer scope's casts are kept
            assert _weight_in(weight, torch.bfloat16) is first
    with cast_scope():
        assert _weight_in(weight, torch.bfloat16) is not first
    assert _weight_in(weight, None) is weight
    assert _weight_in(weight, torch.float32) is weight


@pytest.mark.slow
def test_rfrnet_gradients_with_and_without_the_gemm_paths_agree(monkeypatch):
    torch.manual_seed(4)
    model = RFRNet(RFRNetConfig(width=16)).train()
    image = torch.rand(2, 3, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.4).float()

    def run():
        net = copy.deepcopy(model)
        out = net(image * mask, mask)
        out.square().mean().backward()
        return out.detach(), {name: p.grad for name, p in net.named_parameters()}

    dec_5 = model.RFRModule.dec_5[0]  # sees 4 x 4 maps at 64 x 64 images
    assert dec_5.takes_gemm_path(torch.zeros(2, dec_5.in_channels, 4, 4))
    out, grads = run()
    monkeypatch.setattr(small_map_conv, "SMALL_MAP_POSITIONS", 0)  # oneDNN everywhere
    plain_out, plain_grads = run()
    assert torch.equal(out, plain_out)
    assert not dec_5.takes_gemm_path(torch.zeros(2, dec_5.in_channels, 4, 4))
    assert max(relative_error(grads[n], plain_grads[n]) for n in grads) < 1e-4
