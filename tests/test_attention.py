"""Knowledge Consistent Attention: batched form vs a per-sample convolutional form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rfr.model.attention import AttentionModule, PatchAttention


def per_sample_attention(features, mask, previous_scores, previous_mask, ratio):
    """One sample at a time, the way the authors compute it: 1x1 patches as convolution
    kernels, scores propagated over 3x3 (avg-pool times 9), softmax over patches, scores
    blended with the previous recurrence's, transposed convolution back."""
    outputs, all_scores = [], []
    _, channels, height, width = features.shape
    mask = F.interpolate(mask, size=(height, width))
    for i in range(features.shape[0]):
        fmap = features[i : i + 1]
        kernels = fmap.reshape(channels, height * width).t().reshape(-1, channels, 1, 1) + 1e-7
        kernels = kernels / kernels.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
        scores = F.conv2d(fmap, kernels)
        scores = F.avg_pool2d(scores, 3, 1, padding=1) * 9
        scores = F.softmax(scores, dim=1)
        if previous_scores is not None:
            w = ratio.abs() + 1e-7
            scores = (previous_scores[i : i + 1] * previous_mask[i : i + 1] + scores * w) / (
                previous_mask[i : i + 1] + w
            )
        all_scores.append(scores)
        outputs.append(F.conv_transpose2d(scores, kernels))
    return torch.cat(outputs), torch.cat(all_scores), mask


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(3, 16, 6, 5, generator=g)
    features[1, :, :2] = 0.0  # zero patches, as inside a hole
    mask = (torch.rand(3, 1, 12, 10, generator=g) > 0.4).float()
    next_mask = (torch.rand(3, 1, 12, 10, generator=g) > 0.2).float()
    next_features = torch.randn(3, 16, 6, 5, generator=g)
    return features, mask, next_features, next_mask


@pytest.mark.slow
def test_batched_kca_matches_per_sample_computation_over_two_recurrences(inputs):
    features, mask, next_features, next_mask = inputs
    att = PatchAttention(accumulate=True)
    with torch.no_grad():
        att.ratio.fill_(0.7)
    out1, state = att(features, mask, None)
    ref1, ref_scores, ref_mask = per_sample_attention(features, mask, None, None, att.ratio)
    torch.testing.assert_close(out1, ref1, rtol=1e-5, atol=1e-5)
    out2, _ = att(next_features, next_mask, state)
    # The authors keep scores as B x N x H x W and the mask as B x 1 x H x W.
    ref2, _, _ = per_sample_attention(next_features, next_mask, ref_scores, ref_mask, att.ratio)
    torch.testing.assert_close(out2, ref2, rtol=1e-5, atol=1e-5)
    assert (out2 - out1).abs().max() > 1e-3  # the second recurrence did something else


def test_state_scores_are_a_distribution_over_patches(inputs):
    features, mask, _, _ = inputs
    _, state = PatchAttention()(features, mask, None)
    positions = features.shape[2] * features.shape[3]
    assert state.scores.shape == (3, positions, positions)
    torch.testing.assert_close(state.scores.sum(dim=1), torch.ones(3, positions))
    assert state.mask.shape == (3, 1, positions)


def test_naive_attention_ignores_the_previous_recurrence(inputs):
    features, mask, next_features, next_mask = inputs
    naive = PatchAttention(accumulate=False)
    _, state = naive(features, mask, None)
    with_previous, _ = naive(next_features, next_mask, state)
    without_previous, _ = naive(next_features, next_mask, None)
    assert torch.equal(with_previous, without_previous)
    assert not list(naive.parameters())  # no unused blend weight (DDP rejects those)


def test_kca_blend_follows_the_previous_mask(inputs):
    """Where the previous mask is 0 the current scores stand alone; where it is 1 the
    blend is (previous + ratio * current) / (1 + ratio)."""
    features, _, next_features, _ = inputs
    att = PatchAttention()
    zero = torch.zeros(3, 1, 6, 5)
    ones = torch.ones(3, 1, 6, 5)
    _, first = att(features, zero, None)
    out_after_hole, _ = att(next_features, ones, first)
    out_fresh, fresh = att(next_features, ones, None)
    torch.testing.assert_close(out_after_hole, out_fresh)
    _, first_known = att(features, ones, None)
    _, blended = att(next_features, ones, first_known)
    expected = (first_known.scores + fresh.scores * 1.0) / 2.0
    torch.testing.assert_close(blended.scores, expected)


def test_attention_module_keeps_the_released_parameter_names():
    names = [name for name, _ in AttentionModule(32).named_parameters()]
    assert names == ["att.ratio", "combiner.weight", "combiner.bias"]


@pytest.mark.native_bf16
def test_bf16_autocast_runs_and_stays_close(inputs):
    features, mask, _, _ = inputs
    att = PatchAttention()
    out32, _ = att(features, mask, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out16, _ = att(features, mask, None)
    assert (out16.float() - out32).abs().max() < 0.05
