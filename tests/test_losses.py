"""The training loss against hand-computed numbers and an independent three-pass version
of the authors' formulas (random VGG weights: the formulas, not the weights, are tested)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rfr.config import LossConfig
from rfr.train.losses import (
    LOSS_TERMS,
    InpaintingLoss,
    VGG16Features,
    gram_matrix,
    masked_l1,
    style_loss,
    total_variation,
)

RANDOM = LossConfig(vgg_weights="random")


@pytest.fixture(scope="module")
def vgg() -> VGG16Features:
    return VGG16Features(seed=0)


@pytest.fixture(scope="module")
def loss_fn(vgg: VGG16Features) -> InpaintingLoss:
    return InpaintingLoss(RANDOM, vgg=vgg)


def make_batch(seed: int = 0, b: int = 2, size: int = 32, mask_channels: int = 1):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, 3, size, size, generator=g)
    output = torch.rand(b, 3, size, size, generator=g)
    mask = (torch.rand(b, 1, size, size, generator=g) > 0.4).float()
    if mask_channels == 3:
        mask = mask.expand(b, 3, size, size).contiguous()
    return output, target, mask


def test_returns_named_scalar_terms(loss_fn: InpaintingLoss) -> None:
    terms = loss_fn(*make_batch())
    assert list(terms) == [*LOSS_TERMS, "total"]
    for name, value in terms.items():
        assert value.dim() == 0, name
        assert torch.isfinite(value), name
        assert value.item() > 0, name


def test_perfect_prediction_gives_exactly_zero(loss_fn: InpaintingLoss) -> None:
    _, target, _ = make_batch()
    full_mask = torch.ones(2, 1, 32, 32)
    terms = loss_fn(target.clone(), target, full_mask)
    assert {name: value.item() for name, value in terms.items()} == dict.fromkeys(terms, 0.0)


def test_gram_and_style_by_hand() -> None:
    # Level 1: one image, c=2 channels, h*w = 1*2 positions.
    a1 = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    b1 = torch.zeros_like(a1)
    expected_gram = torch.tensor([[[1 + 4, 3 + 8], [3 + 8, 9 + 16]]], dtype=torch.float32)
    assert torch.equal(gram_matrix(a1), expected_gram)
    # mean(|G_a - G_b|) / (c*h*w) = ((5 + 11 + 11 + 25) / 4) / (2*1*2) = 13 / 4
    # Level 2: c=1, h=w=2: G_a = 1 + 4 = 5, G_b = 4 ones -> 4, |5-4| / (1*2*2) = 1/4
    a2 = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).reshape(1, 1, 2, 2)
    b2 = torch.ones(1, 1, 2, 2)
    assert style_loss([a1], [b1]).item() == pytest.approx(13 / 4)
    assert style_loss([a1, a2], [b1, b2]).item() == pytest.approx(13 / 4 + 1 / 4)


def test_gram_of_half_features_does_not_overflow() -> None:
    # 4096 products of 10*10 = 409600, beyond float16's 65504.
    features = torch.full((1, 1, 64, 64), 10.0, dtype=torch.float16)
    gram = gram_matrix(features)
    assert gram.dtype == torch.float32
    assert gram.item() == 409600.0


def test_total_variation_by_hand() -> None:
    x = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]).reshape(1, 1, 2, 3)
    # vertical |2-0|, |2-1|, |2-3| -> mean 4/3; horizontal 1, 2, 0, 0 -> mean 3/4
    assert total_variation(x).item() == pytest.approx(4 / 3 + 3 / 4)


def test_valid_and_hole_l1_by_hand_with_one_and_three_channel_masks() -> None:
    output = torch.arange(12, dtype=torch.float32).reshape(1, 3, 2, 2)
    target = torch.zeros_like(output)
    mask1 = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).reshape(1, 1, 2, 2)
    mask3 = mask1.expand(1, 3, 2, 2)
    # known pixel (0, 0) holds 0, 4, 8 -> sum 12 over 12 values; the holes hold 66 - 12.
    for mask in (mask1, mask3):
        assert masked_l1(target, output, mask).item() == pytest.approx(12 / 12)
        assert masked_l1(target, output, 1 - mask).item() == pytest.approx(54 / 12)


@pytest.mark.slow
def test_one_channel_mask_equals_three_channel_mask(loss_fn: InpaintingLoss) -> None:
    output, target, mask1 = make_batch()
    mask3 = mask1.expand(-1, 3, -1, -1)
    terms1 = loss_fn(output, target, mask1)
    terms3 = loss_fn(output, target, mask3)
    for name in terms1:
        torch.testing.assert_close(terms1[name], terms3[name], msg=name)


@pytest.mark.slow
def test_bool_mask_equals_float_mask(loss_fn: InpaintingLoss) -> None:
    output, target, mask = make_batch()
    as_bool = loss_fn(output, target, mask.bool())
    as_float = loss_fn(output, target, mask)
    for name in as_float:
        torch.testing.assert_close(as_bool[name], as_float[name], msg=name)


@pytest.mark.parametrize(
    "config",
    [RANDOM, LossConfig(valid=2.0, hole=3.0, perceptual=0.5, style=7.0, tv=0.25)],
    ids=["authors", "custom"],
)
def test_total_is_weighted_sum(vgg: VGG16Features, config: LossConfig) -> None:
    terms = InpaintingLoss(config, vgg=vgg)(*make_batch(seed=3))
    weights = {name: getattr(config, name) for name in LOSS_TERMS}
    expected = sum(weights[name] * terms[name] for name in LOSS_TERMS)
    torch.testing.assert_close(terms["total"], expected)


def test_default_weights_are_the_authors() -> None:
    weights = {name: getattr(LossConfig(), name) for name in LOSS_TERMS}
    assert weights == {"valid": 1, "hole": 6, "perceptual": 0.05, "style": 120, "tv": 0.1}


def _reference_terms(vgg: VGG16Features, output, target, mask) -> dict[str, torch.Tensor]:
    """The authors' formulas written out independently, with three separate VGG passes."""
    mask = mask.expand_as(output)
    comp = output * (1 - mask) + target * mask
    ft, fo, fc = vgg(target), vgg(output), vgg(comp)

    def gram(f):
        return torch.einsum("bchw,bdhw->bcd", f, f)

    def style(fa, fb):
        return sum(
            (gram(a) - gram(b)).abs().div(a.shape[1] * a.shape[2] * a.shape[3]).mean()
            for a, b in zip(fa, fb, strict=True)
        )

    def perceptual(fa, fb):
        return sum((a - b).abs().mean() for a, b in zip(fa, fb, strict=True))

    x = comp * (1 - mask)
    return {
        "valid": ((target - output).abs() * mask).mean(),
        "hole": ((target - output).abs() * (1 - mask)).mean(),
        "perceptual": perceptual(ft, fo) + perceptual(ft, fc),
        "style": style(ft, fo) + style(ft, fc),
        "tv": (x[:, :, 1:] - x[:, :, :-1]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean(),
    }


@pytest.mark.slow
def test_batched_vgg_pass_matches_separate_passes(
    vgg: VGG16Features, loss_fn: InpaintingLoss
) -> None:
    output, target, mask = make_batch(seed=1)
    comp = output * (1 - mask) + target * mask
    batched = loss_fn.features(target, output, comp)
    separate = (vgg(target), vgg(output), vgg(comp))
    for got_levels, want_levels in zip(batched, separate, strict=True):
        for got, want in zip(got_levels, want_levels, strict=True):
            torch.testing.assert_close(got, want)

    terms = loss_fn(output, target, mask)
    reference = _reference_terms(vgg, output, target, mask)
    for name, want in reference.items():
        torch.testing.assert_close(terms[name], want, msg=name)


def test_vgg_features_are_pool1_pool2_pool3(vgg: VGG16Features) -> None:
    feats = vgg(torch.rand(2, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4)]


@pytest.mark.slow
def test_gradient_reaches_output_but_not_vgg(vgg: VGG16Features) -> None:
    loss_fn = InpaintingLoss(RANDOM, vgg=vgg)
    output, target, mask = make_batch(seed=2)
    output.requires_grad_(True)
    loss_fn(output, target, mask)["total"].backward()
    assert output.grad is not None
    assert torch.isfinite(output.grad).all()
    assert output.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in vgg.parameters())


def test_vgg_stays_frozen_in_eval_mode(vgg: VGG16Features) -> None:
    loss_fn = InpaintingLoss(RANDOM, vgg=vgg)
    loss_fn.train()
    assert loss_fn.training
    assert not any(m.training for m in vgg.modules())
    assert not any(p.requires_grad for p in loss_fn.parameters())


def test_random_vgg_is_labelled_and_seeded() -> None:
    loss_fn = InpaintingLoss(RANDOM)
    assert loss_fn.uses_random_vgg
    assert "random VGG16 weights" in loss_fn.vgg_source
    assert "NOT comparable" in loss_fn.vgg_source
    first = VGG16Features(seed=0).state_dict()
    again = VGG16Features(seed=0).state_dict()
    other = VGG16Features(seed=1).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["blocks.0.0.weight"], other["blocks.0.0.weight"])


@pytest.mark.slow
def test_float64_matches_float32(vgg: VGG16Features) -> None:
    output, target, mask = make_batch(seed=4)
    loss32 = InpaintingLoss(RANDOM, vgg=vgg)(output, target, mask)
    vgg64 = VGG16Features(seed=0).double()
    loss64 = InpaintingLoss(RANDOM, vgg=vgg64)(output.double(), target.double(), mask.double())
    for name in loss32:
        assert loss64[name].dtype == torch.float64, name
        torch.testing.assert_close(loss64[name].float(), loss32[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("output_shape", "target_shape", "mask_shape", "message"),
    [
        ((2, 3, 32, 32), (2, 3, 32, 16), (2, 1, 32, 32), "target shape"),
        ((3, 32, 32), (3, 32, 32), (1, 32, 32), "B x 3 x H x W"),
        ((2, 4, 32, 32), (2, 4, 32, 32), (2, 1, 32, 32), "B x 3 x H x W"),
        ((2, 3, 32, 32), (2, 3, 32, 32), (2, 2, 32, 32), "mask must be"),
        ((2, 3, 32, 32), (2, 3, 32, 32), (1, 1, 32, 32), "does not match"),
        ((2, 3, 32, 32), (2, 3, 32, 32), (2, 1, 16, 16), "does not match"),
    ],
)
def test_rejects_bad_shapes(
    loss_fn: InpaintingLoss, output_shape, target_shape, mask_shape, message
) -> None:
    with pytest.raises(ValueError, match=message):
        loss_fn(torch.rand(output_shape), torch.rand(target_shape), torch.ones(mask_shape))


def test_config_is_kept(loss_fn: InpaintingLoss) -> None:
    assert dataclasses.asdict(loss_fn.config) == dataclasses.asdict(RANDOM)
