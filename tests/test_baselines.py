"""PConv U-Net and the one-shot encoder-decoder: architecture, forward contract, size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from baselines import EncDecConfig, EncoderDecoder, PConvConfig, PConvUNet
from rfr.config import ConfigError, RFRNetConfig
from rfr.model.api import MODEL_BUILDERS, RFRNet, build_model, count_parameters
from rfr.model.partial_conv import PartialConv2d

pytestmark = pytest.mark.usefixtures("single_thread")


def _inputs(batch: int, height: int, width: int, mask_channels: int = 1, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=gen)
    mask = (torch.rand(batch, 1, height, width, generator=gen) > 0.4).float()
    mask = mask.expand(-1, mask_channels, -1, -1).contiguous()
    return image * mask, mask


def test_pconv_paper_architecture_at_width_64() -> None:
    model = PConvUNet()
    enc = [layer.conv for layer in model.encoder]
    assert len(enc) == 7 and len(model.decoder) == 7
    assert [c.kernel_size[0] for c in enc] == [7, 5, 5, 3, 3, 3, 3]
    assert [c.stride[0] for c in enc] == [2] * 7
    assert [c.out_channels for c in enc] == [64, 128, 256, 512, 512, 512, 512]
    dec = [layer.conv for layer in model.decoder]
    assert all(isinstance(c, PartialConv2d) and c.kernel_size == (3, 3) for c in dec)
    # upsampled features + skip features (the last skip is the 3-channel input image)
    assert [c.in_channels for c in dec] == [1024, 1024, 1024, 768, 384, 192, 67]
    assert [c.out_channels for c in dec] == [512, 512, 512, 256, 128, 64, 3]
    assert count_parameters(model) == 25_779_860


def test_pconv_width_scales_channels() -> None:
    model = PConvUNet(PConvConfig(width=16))
    assert [layer.conv.out_channels for layer in model.encoder] == [16, 32, 64, 128, 128, 128, 128]
    assert [layer.conv.out_channels for layer in model.decoder] == [128, 128, 128, 64, 32, 16, 3]


def test_pconv_batchnorm_activation_and_bias_placement() -> None:
    model = PConvUNet(PConvConfig(width=8))
    enc_bn = [layer.bn is not None for layer in model.encoder]
    dec_bn = [layer.bn is not None for layer in model.decoder]
    assert enc_bn == [False] + [True] * 6
    assert dec_bn == [True] * 6 + [False]
    assert all(isinstance(layer.act, nn.ReLU) for layer in model.encoder)
    assert all(isinstance(layer.act, nn.LeakyReLU) and layer.act.negative_slope == 0.2
               for layer in model.decoder[:-1])
    last = model.decoder[-1]
    assert last.act is None and last.conv.bias is not None and last.conv.out_channels == 3
    # a bias only where no BatchNorm follows
    for layer in [*model.encoder, *model.decoder]:
        assert (layer.conv.bias is None) == (layer.bn is not None)


def test_pconv_finetune_freezes_encoder_batchnorm_only() -> None:
    model = PConvUNet(PConvConfig(width=8)).train(True, freeze_batchnorm=True)
    assert all(not m.training for m in model.encoder.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(m.training for m in model.decoder.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("name", ["pconv", "encdec"])
@pytest.mark.parametrize(("height", "width", "mask_channels"),
                         [(64, 64, 1), (50, 70, 3), (37, 16, 1)])
def test_forward_contract_shapes(name: str, height: int, width: int, mask_channels: int) -> None:
    model = build_model(name, {"width": 8})
    image, mask = _inputs(2, height, width, mask_channels)
    out = model(image, mask)
    assert out.shape == (2, 3, height, width)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["pconv", "encdec"])
def test_backward_reaches_every_parameter(name: str) -> None:
    model = build_model(name, {"width": 8})
    image, mask = _inputs(2, 64, 64)
    model(image, mask).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


@pytest.mark.parametrize("name", ["pconv", "encdec"])
def test_bad_inputs_and_config_are_clear_errors(name: str) -> None:
    model = build_model(name, {"width": 8})
    with pytest.raises(ValueError, match="mask must be"):
        model(torch.rand(1, 3, 32, 32), torch.ones(1, 2, 32, 32))
    with pytest.raises(ConfigError, match="unknown key"):
        build_model(name, {"widht": 8})


@pytest.mark.parametrize("width", [64, 32, 16, 8])
def test_encdec_matches_rfr_size_within_5_percent(width: int) -> None:
    rfr = count_parameters(RFRNet(RFRNetConfig(width=width)))
    encdec = count_parameters(EncoderDecoder(EncDecConfig(width=width)))
    assert abs(encdec - rfr) / rfr < 0.05, (width, rfr, encdec)


def test_encdec_is_one_shot_with_partial_conv_encoder() -> None:
    model = EncoderDecoder(EncDecConfig(width=8))
    assert all(isinstance(layer.conv, PartialConv2d) for layer in model.encoder)
    assert [layer.conv.kernel_size[0] for layer in model.encoder] == [7, 5, 5, 3]
    assert len(model.bottleneck) == 11
    # no module is shared: every parameter tensor belongs to one layer
    ids = [id(p) for p in model.parameters()]
    assert len(ids) == len(set(ids))


def test_builders_are_registered() -> None:
    assert {"rfr", "pconv", "encdec"} <= set(MODEL_BUILDERS)
    assert isinstance(build_model("pconv"), PConvUNet)
    assert isinstance(build_model("encdec", {"width": 16, "blocks": 2}), EncoderDecoder)
