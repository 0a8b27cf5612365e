"""PartialConv2d against the arithmetic of Liu et al.'s multi-channel reference layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rfr.model.partial_conv import PartialConv2d


def reference_partial_conv(layer: PartialConv2d, x: torch.Tensor, mask: torch.Tensor):
    """NVIDIA's multi-channel layer, computed the long way: a C_out x C_in convolution
    of ones counts the valid inputs of every window."""
    c_out, c_in, kh, kw = layer.weight.shape
    ones = torch.ones(c_out, c_in, kh, kw, dtype=x.dtype)
    count = F.conv2d(mask, ones, None, layer.stride, layer.padding, layer.dilation)
    ratio = (c_in * kh * kw) / (count + 1e-8)
    updated = count.clamp(0, 1)
    ratio = ratio * updated
    raw = F.conv2d(x * mask, layer.weight, layer.bias, layer.stride, layer.padding,
                   layer.dilation)
    if layer.bias is None:
        return raw * ratio, updated
    bias = layer.bias.view(1, -1, 1, 1)
    return ((raw - bias) * ratio + bias) * updated, updated


def binary_mask(shape, hole_fraction, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) >= hole_fraction).float()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(
    "kernel,stride,padding,dilation", [(7, 2, 3, 1), (7, 1, 3, 1), (3, 1, 1, 1), (3, 1, 2, 2)]
)
def test_matches_reference_layer_with_multichannel_mask(bias, kernel, stride, padding,
                                                        dilation):
    torch.manual_seed(0)
    layer = PartialConv2d(5, 6, kernel, stride, padding, dilation, bias=bias)
    if bias:
        torch.nn.init.normal_(layer.bias)
    x = torch.randn(2, 5, 24, 20)
    # Channels differ: the count must sum over input channels exactly like the reference.
    mask = binary_mask((2, 5, 24, 20), 0.6, seed=1)
    out, updated = layer(x, mask)
    ref_out, ref_updated = reference_partial_conv(layer, x, mask)
    assert updated.shape[1] == 1
    assert torch.equal(updated.expand_as(ref_updated), ref_updated)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)


def test_one_channel_mask_stands_for_all_input_channels():
    torch.manual_seed(0)
    layer = PartialConv2d(4, 3, 7, 1, 3, bias=False)
    x = torch.randn(2, 4, 16, 16)
    mask1 = binary_mask((2, 1, 16, 16), 0.5, seed=2)
    out1, upd1 = layer(x, mask1)
    out4, upd4 = layer(x, mask1.expand(-1, 4, -1, -1))
    assert torch.equal(upd1, upd4)
    assert torch.equal(out1, out4)


def test_mask_update_counts_are_exact_and_clamped():
    layer = PartialConv2d(3, 2, 3, 1, 1, bias=False)
    mask = torch.zeros(1, 3, 5, 5)
    mask[0, :, 2, 2] = 1.0  # one valid pixel in the middle
    ratio, updated = layer.mask_update(mask)
    # The 3x3 neighbourhood of the centre sees the pixel on 3 channels: 3 of 27 valid.
    expected_updated = torch.zeros(1, 1, 5, 5)
    expected_updated[0, 0, 1:4, 1:4] = 1.0
    assert torch.equal(updated, expected_updated)
    assert ratio[0, 0, 2, 2].item() == pytest.approx(27 / 3, rel=1e-6)
    assert ratio[0, 0, 0, 0].item() == 0.0


def test_outputs_are_zero_where_no_valid_input_even_with_bias():
    torch.manual_seed(0)
    layer = PartialConv2d(2, 2, 3, 1, 1, bias=True)
    torch.nn.init.constant_(layer.bias, 5.0)
    mask = torch.zeros(1, 1, 9, 9)
    mask[..., :3, :3] = 1
    out, updated = layer(torch.randn(1, 2, 9, 9), mask)
    assert torch.all(out[..., updated[0, 0] == 0] == 0)
    assert torch.all(out[..., :2, :2] != 0)


def test_stateless_between_calls():
    """The reference layer caches its mask ratio; a second call must not see the first."""
    torch.manual_seed(0)
    layer = PartialConv2d(3, 4, 3, 1, 1, bias=False)
    x = torch.randn(1, 3, 12, 12)
    mask_a = binary_mask((1, 1, 12, 12), 0.3, seed=3)
    mask_b = binary_mask((1, 1, 12, 12), 0.8, seed=4)
    first_b, _ = layer(x, mask_b)
    layer(x, mask_a)
    second_b, _ = layer(x, mask_b)
    assert torch.equal(first_b, second_b)
    assert not any(name.startswith("window") for name in layer.state_dict())


def test_counts_stay_exact_under_bf16_autocast():
    """Counts up to C_in*k*k = 3136 are not representable in bf16; the update runs in fp32."""
    layer = PartialConv2d(64, 8, 7, 1, 3, bias=False)
    mask = binary_mask((1, 64, 16, 16), 0.5, seed=5)
    ratio_fp32, updated_fp32 = layer.mask_update(mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ratio_bf16, updated_bf16 = layer.mask_update(mask)
    assert ratio_bf16.dtype == torch.float32
    assert torch.equal(ratio_bf16, ratio_fp32)
    assert torch.equal(updated_bf16, updated_fp32)


def test_no_gradient_flows_into_the_mask_but_into_input_and_weights():
    layer = PartialConv2d(3, 4, 3, 1, 1, bias=True)
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    mask = binary_mask((1, 1, 8, 8), 0.4, seed=6).requires_grad_(True)
    out, updated = layer(x, mask)
    out.sum().backward()
    assert not updated.requires_grad
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert layer.weight.grad is not None and layer.bias.grad is not None


def test_rejects_wrong_mask_channels():
    layer = PartialConv2d(4, 4, 3, 1, 1)
    with pytest.raises(ValueError, match="mask has 2 channels; expected 1 or 4"):
        layer(torch.zeros(1, 4, 8, 8), torch.ones(1, 2, 8, 8))
