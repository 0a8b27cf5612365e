"""The GEMM paths of rfr.model.small_map_conv: same forward, same gradients as torch's layers;
the opt-in swap (``use_small_map_gemm``, ``TrainConfig.small_map_gemm``) of RFR-Net's layers."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rfr.model.small_map_conv as small_map_conv
from rfr.config import RFRNetConfig
from rfr.model.api import RFRNet
from rfr.model.small_map_conv import (
    SmallMapConv2d,
    SmallMapConvTranspose2d,
    _ConvTranspose2dGemm,
    _weight_in,
    _WeightGradient,
    cast_scope,
    use_small_map_gemm,
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
    assert use_small_map_gemm(model) == 6
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


# --- the opt-in swap ------------------------------------------------------------------

# The layers the swap replaces: the RFR module's dilated convolutions and dec_3.
SWAPPED = {"RFRModule.enc_4.0": SmallMapConv2d, "RFRModule.enc_5.0": SmallMapConv2d,
           "RFRModule.enc_6.0": SmallMapConv2d, "RFRModule.dec_5.0": SmallMapConv2d,
           "RFRModule.dec_4.0": SmallMapConv2d, "RFRModule.dec_3.0": SmallMapConvTranspose2d}


def demo_batch(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    image = torch.rand(2, 3, size, size, generator=generator)
    mask = (torch.rand(2, 1, size, size, generator=generator) > 0.4).float()
    return image, mask


def test_plain_rfrnet_has_torch_layers_and_the_swap_shares_its_parameters(single_thread):
    torch.manual_seed(6)
    model = RFRNet(RFRNetConfig(width=16)).train()  # the demo's width
    assert not any(isinstance(m, SmallMapConv2d | SmallMapConvTranspose2d)
                   for m in model.modules())
    keys = list(model.state_dict())
    params = {name: id(p) for name, p in model.named_parameters()}
    before = {k: v.clone() for k, v in model.state_dict().items()}

    assert use_small_map_gemm(model) == 6
    found = {name: type(m) for name, m in model.named_modules()
             if isinstance(m, SmallMapConv2d | SmallMapConvTranspose2d)}
    assert found == SWAPPED
    assert {name: id(p) for name, p in model.named_parameters()} == params
    assert list(model.state_dict()) == keys
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(model.get_submodule(name).training for name in SWAPPED)
    assert use_small_map_gemm(model) == 0  # already swapped: nothing left to do
    plain = RFRNet(RFRNetConfig(width=16))
    plain.load_state_dict(model.state_dict())  # a swapped run's checkpoint loads as is
    assert use_small_map_gemm(nn.Sequential(nn.Conv2d(3, 3, 3))) == 0


def test_swapped_rfrnet_has_the_plain_output_and_close_gradients(single_thread):
    torch.manual_seed(7)
    plain = RFRNet(RFRNetConfig(width=16)).train()
    swapped = copy.deepcopy(plain)
    use_small_map_gemm(swapped)
    image, mask = demo_batch()

    def run(net):
        out = net(image * mask, mask)
        out.square().mean().backward()
        return out.detach(), {name: p.grad for name, p in net.named_parameters()}

    (out, grads), (plain_out, plain_grads) = run(swapped), run(plain)
    assert torch.equal(out, plain_out)
    for name, grad in plain_grads.items():
        scale = float(grad.abs().max())
        assert torch.allclose(grads[name], grad, rtol=1e-4, atol=1e-4 * scale), name
    layer = swapped.get_submodule("RFRModule.enc_4.0")
    assert layer.takes_gemm_path(torch.zeros(2, layer.in_channels, 4, 4))


def tiny_training(tmp_path, name: str, small_map_gemm: bool):
    from rfr.config import from_dict
    from rfr.train.loop import TrainConfig, train

    config = from_dict(TrainConfig, {
        "model_config": {"width": 8}, "dataset": {"name": "demo-scenes", "size": 32,
                                                  "limit": 4},
        "loss": {"vgg_weights": "random"}, "batch_size": 2, "steps": 2,
        "checkpoint_every": 100, "out_dir": str(tmp_path / name), "progress": False,
        "device": "cpu", "small_map_gemm": small_map_gemm})
    return train(config)


def test_small_map_gemm_training_is_deterministic_and_close_to_the_plain_one(
        tmp_path, single_thread):
    from rfr.model.checkpoint import load_checkpoint

    first = tiny_training(tmp_path, "a", True)
    again = tiny_training(tmp_path, "b", True)
    plain = tiny_training(tmp_path, "plain", False)
    assert sum(isinstance(m, SmallMapConv2d | SmallMapConvTranspose2d)
               for m in first.model.modules()) == 6
    assert not any(isinstance(m, SmallMapConv2d) for m in plain.model.modules())
    a, b, c = (r.model.state_dict() for r in (first, again, plain))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise deterministic
    assert not all(torch.equal(a[k], c[k]) for k in a)  # summation order differs
    # Adam moves a weight by about lr (2e-4) per step whatever its gradient's size, so a
    # rounding difference can flip a near-zero gradient entry and cost up to 2 x lr per
    # step; everything else agrees far closer.
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], c[k], rtol=0, atol=4 * 2 * 2e-4), k
    loaded = load_checkpoint(first.checkpoint).state_dict()  # the plain layers
    assert all(torch.equal(loaded[k], a[k]) for k in a)


def test_the_swap_opens_one_cast_scope_per_forward_pass_and_closes_it(single_thread):
    """The scope (one bf16 copy of each weight per pass) belongs to the swap: open during
    the swapped model's forward, even between its recurrences, closed after it, also
    when the forward raises."""
    torch.manual_seed(8)
    model = RFRNet(RFRNetConfig(width=8, iter_num=2))
    plain_seen: list[bool] = []
    hook = model.RFRModule.register_forward_pre_hook(
        lambda module, args: plain_seen.append(small_map_conv._scope_casts is not None))
    image, mask = demo_batch(32)
    model(image * mask, mask)
    assert plain_seen == [False, False]  # the plain network opens none
    hook.remove()

    use_small_map_gemm(model)
    seen: list[bool] = []
    model.RFRModule.register_forward_pre_hook(
        lambda module, args: seen.append(small_map_conv._scope_casts is not None))
    model(image * mask, mask)
    assert seen == [True, True] and small_map_conv._scope_casts is None
    with pytest.raises(ValueError):
        model(image * mask, mask[:, :, :5])  # a bad mask: check_inputs raises
    assert small_map_conv._scope_casts is None
