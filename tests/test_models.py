"""RFR-Net's configuration space, forward contract and training behaviour (CPU, small)."""

from __future__ import annotations

import pytest
import torch

from rfr.config import ConfigError, RFRNetConfig
from rfr.model.api import MODEL_BUILDERS, RFRNet, build_model, count_parameters


def seeded_batch(batch=2, size=64, seed=0, channels=1):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g)
    mask = (torch.rand(batch, 1, size // 8, size // 8, generator=g) > 0.3).float()
    mask = torch.nn.functional.interpolate(mask, size=(size, size)).expand(-1, channels, -1, -1)
    return image, mask


FIELD_VALUES = [
    {"iter_num": 1},
    {"iter_num": 2},
    {"iter_num": 8},
    {"attention": "naive"},
    {"attention": "none"},
    {"merge": "concat"},
    {"merge": "concat", "iter_num": 3},
    {"width": 8},
    {"width": 24},
    {"kernel_size": 5},
    {"attention": "none", "merge": "concat", "kernel_size": 5, "iter_num": 2},
]


def delta_id(delta: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in delta.items())


@pytest.mark.parametrize("delta", FIELD_VALUES, ids=delta_id)
@pytest.mark.slow
def test_every_config_field_trains_forward_and_backward_at_64(delta):
    torch.manual_seed(0)
    config = RFRNetConfig(**{"width": 16, **delta})
    model = RFRNet(config).train()
    image, mask = seeded_batch()
    output = model(image * mask, mask)
    assert output.shape == image.shape
    assert torch.isfinite(output).all()
    loss = ((output - image).abs() * (1 - mask)).mean() + (output - image).abs().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient (DDP would fail): {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    grad_norm = sum(p.grad.abs().sum() for p in model.parameters())
    assert grad_norm > 0


def test_default_is_the_released_architecture():
    model = RFRNet()
    assert model.config == RFRNetConfig(iter_num=6, attention="kca", merge="adaptive",
                                        width=64, kernel_size=7)
    assert count_parameters(model) == 31_224_065


def test_knobs_change_the_architecture_as_documented():
    base = count_parameters(RFRNet(RFRNetConfig(width=16)))
    no_att = count_parameters(RFRNet(RFRNetConfig(width=16, attention="none")))
    naive = count_parameters(RFRNet(RFRNetConfig(width=16, attention="naive")))
    # The attention owns the combiner (2*8w*8w + 8w) and KCA's single blend weight.
    deep = 16 * 8
    assert base - no_att == 2 * deep * deep + deep + 1
    assert base - naive == 1
    concat3 = count_parameters(RFRNet(RFRNetConfig(width=16, merge="concat", iter_num=3)))
    assert concat3 - base == 16 * 16 * 4
    # IterNum does not change the adaptive model's parameters (weights are shared).
    assert count_parameters(RFRNet(RFRNetConfig(width=16, iter_num=2))) == base
    k5 = count_parameters(RFRNet(RFRNetConfig(width=16, kernel_size=5)))
    assert base - k5 == 3 * 16 * 16 * (49 - 25)


@pytest.mark.slow
def test_iter_num_changes_the_output_and_the_trace_length():
    torch.manual_seed(0)
    model = RFRNet(RFRNetConfig(width=16)).eval()
    image, _ = seeded_batch(batch=1)
    mask = torch.ones(1, 1, 64, 64)
    mask[..., 8:56, 8:56] = 0  # a hole too large to close before the recurrences
    trace = model.trace(image * mask, mask)
    assert len(trace.features) == len(trace.masks) == 7
    # Each recurrence can only grow the known area.
    known = [m.mean().item() for m in trace.masks]
    assert known == sorted(known) and known[-1] > known[0]
    model.config = RFRNetConfig(width=16, iter_num=2)
    with torch.no_grad():
        assert (model(image * mask, mask) - trace.output).abs().max() > 1e-4


@pytest.mark.parametrize("height,width", [(50, 70), (64, 33), (17, 16), (8, 8), (3, 40)])
def test_sizes_not_multiple_of_16_are_padded_and_cropped(height, width):
    torch.manual_seed(0)
    model = RFRNet(RFRNetConfig(width=8)).eval()
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, height, width, generator=g)
    mask = (torch.rand(1, 1, height, width, generator=g) > 0.3).float()
    with torch.no_grad():
        output = model(image * mask, mask)
    assert output.shape == (1, 3, height, width)
    assert torch.isfinite(output).all()


@pytest.mark.slow
def test_cropping_keeps_the_top_left_region_consistent():
    """Padding goes bottom/right: a 48x48 input that is already valid gives the same
    output whether or not it arrives as the top-left of a padded call."""
    torch.manual_seed(0)
    model = RFRNet(RFRNetConfig(width=8)).eval()
    image, mask = seeded_batch(batch=1, size=48)
    with torch.no_grad():
        direct = model(image * mask, mask)
        traced = model.trace(image * mask, mask, keep_intermediates=False).output
    assert torch.equal(direct, traced)


@pytest.mark.slow
def test_one_and_three_channel_masks_agree():
    torch.manual_seed(0)
    model = RFRNet(RFRNetConfig(width=16)).eval()
    image, mask = seeded_batch()
    with torch.no_grad():
        out1 = model(image * mask, mask)
        out3 = model(image * mask, mask.expand(-1, 3, -1, -1))
    assert (out1 - out3).abs().max() < 1e-6


@pytest.mark.slow
def test_eval_forward_is_stateless_and_deterministic():
    torch.manual_seed(0)
    model = RFRNet(RFRNetConfig(width=16)).eval()
    image, mask = seeded_batch()
    other_image, other_mask = seeded_batch(seed=5)
    with torch.no_grad():
        first = model(image * mask, mask)
        model(other_image * other_mask, other_mask)
        second = model(image * mask, mask)
    assert torch.equal(first, second)


@pytest.mark.slow
def test_batch_samples_do_not_interact():
    torch.manual_seed(0)
    model = RFRNet(RFRNetConfig(width=16)).eval()
    image, mask = seeded_batch(batch=3)
    with torch.no_grad():
        batched = model(image * mask, mask)
        single = torch.cat([model(image[i:i + 1] * mask[i:i + 1], mask[i:i + 1])
                            for i in range(3)])
    assert (batched - single).abs().max() < 1e-5


@pytest.mark.slow
def test_finetune_mode_freezes_batchnorm_statistics():
    torch.manual_seed(0)
    model = RFRNet(RFRNetConfig(width=8))
    model.train(freeze_batchnorm=True)
    before = model.bn1.running_mean.clone()
    image, mask = seeded_batch()
    model(image * mask, mask)
    assert torch.equal(model.bn1.running_mean, before)
    assert model.training and not model.bn1.training
    model.train()
    model(image * mask, mask)
    assert not torch.equal(model.bn1.running_mean, before)


@pytest.mark.parametrize(
    "image_shape,mask_shape,message",
    [
        ((2, 4, 32, 32), (2, 1, 32, 32), "masked_image must be B x 3 x H x W"),
        ((2, 3, 32, 32), (2, 2, 32, 32), "mask must be B x 1 x H x W or B x 3 x H x W"),
        ((2, 3, 32, 32), (1, 1, 32, 32), "does not match"),
        ((2, 3, 32, 32), (2, 1, 32, 16), "does not match"),
        ((3, 32, 32), (1, 32, 32), "masked_image must be B x 3 x H x W"),
    ],
)
def test_forward_contract_violations_are_clear(image_shape, mask_shape, message):
    model = RFRNet(RFRNetConfig(width=8))
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(image_shape), torch.ones(mask_shape))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"attention": "kcaa"}, r"attention must be one of \['kca', 'naive', 'none'\]"),
        ({"merge": "sum"}, "merge must be one of"),
        ({"iter_num": 0}, "iter_num must be an integer >= 1"),
        ({"width": 12}, "width must be a positive multiple of 8"),
        ({"kernel_size": 3}, "kernel_size must be 7"),
    ],
)
def test_invalid_configs_name_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RFRNetConfig(**kwargs)


def test_registry_builds_by_name_from_plain_config():
    assert "rfr" in MODEL_BUILDERS
    model = build_model("rfr", {"width": 8, "iter_num": 2})
    assert isinstance(model, RFRNet) and model.config.iter_num == 2
    with pytest.raises(ValueError, match="unknown model 'rfrr'"):
        build_model("rfrr")
    with pytest.raises(ConfigError, match="unknown key"):
        build_model("rfr", {"widht": 8})


@pytest.mark.native_bf16
@pytest.mark.slow
def test_bf16_autocast_forward_and_backward():
    torch.manual_seed(0)
    model = RFRNet(RFRNetConfig(width=16)).train()
    image, mask = seeded_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(image * mask, mask)
    output.float().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.slow
def test_float64_forward_runs():
    torch.manual_seed(0)
    model = RFRNet(RFRNetConfig(width=8)).double().eval()
    image, mask = seeded_batch()
    with torch.no_grad():
        output = model(image.double() * mask.double(), mask.double())
    assert output.dtype == torch.float64
