"""An independent, deliberately literal re-statement of the authors' RFR-Net forward pass
and of one step of their training loop.

This module exists only for the faithfulness tests. It is a *functional* implementation:
it reads weights straight from a plain state dict with the authors' key names
(``RFRNet().state_dict()`` of jingyuanli001/RFR-Inpainting, ``modules/RFRNet.py``) and
spells out every step of the authors' eval-mode arithmetic in the plainest way, without
sharing any code with ``rfr/`` (it must stay independent of the implementation it checks).
Speed is not a goal: partial convolutions count known inputs with a full
``C_out x C_in x k x k`` convolution of ones, and the attention runs sample by sample.

Conventions (those of the authors): pixel values in [0, 1]; mask 1 = known, 0 = hole,
given with 3 channels; input is ``image * mask``; the output is the raw network output,
not composited with the known pixels. Only the released width (64) is supported; the
partial-convolution kernel sizes are read from the weight shapes.

Training (``authors_train_step``): ``model.py``'s ``RFRNetModel.forward``, ``get_g_loss``
and ``update_G`` with the loss network of ``modules/RFRNet.py`` (VGG16FeatureExtractor),
BatchNorm in train mode (batch statistics, running ones updated) or, for finetuning, in
eval mode, and a plain ``torch.optim.Adam``. The forward is the same function as the eval
one, differentiable in the state dict's tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

ITER_NUM = 6  # recurrences of the RFR module in the authors' RFRNet.forward
WIDTH = 64  # the released model's feature width
BN_EPS = 1e-5  # nn.BatchNorm2d default
BN_MOMENTUM = 0.1  # nn.BatchNorm2d default
HEAD_SLOPE = 0.01  # F.leaky_relu default, used in RFRNet.forward
DECODER_SLOPE = 0.2  # nn.LeakyReLU(0.2) in the RFR module's decoders
PCONV_EPS = 1e-8  # PartialConv2d: slide_winsize / (update_mask + 1e-8)
RATIO_EPS = 1e-7  # attention: abs(ratio) + 1e-7
KERNEL_EPS = 1e-7  # attention: conv_kernels + 0.0000001 before normalising
MERGE_EPS = 1e-7  # adaptive merge: / (mean mask + 1e-7)
PROPAGATE = 3  # attention propagation window (avg_pool2d 3, stride 1, padding 1, times 9)


def _partial_conv(sd: Mapping[str, Tensor], name: str, x: Tensor, mask: Tensor,
                  stride: int, padding: int) -> tuple[Tensor, Tensor]:
    """NVIDIA PartialConv2d, multi_channel=True, bias=False, as the authors use it."""
    weight = sd[f"{name}.weight"]
    c_out, c_in, k_h, k_w = weight.shape
    assert mask.shape[1] == c_in, f"{name}: mask has {mask.shape[1]} channels, expected {c_in}"
    ones = torch.ones(c_out, c_in, k_h, k_w, dtype=x.dtype)
    slide_winsize = c_in * k_h * k_w
    with torch.no_grad():
        update_mask = F.conv2d(mask, ones, bias=None, stride=stride, padding=padding)
        mask_ratio = slide_winsize / (update_mask + PCONV_EPS)
        update_mask = torch.clamp(update_mask, 0, 1)
        mask_ratio = mask_ratio * update_mask
    raw = F.conv2d(x * mask, weight, bias=None, stride=stride, padding=padding)
    return raw * mask_ratio, update_mask


def _batch_norm(sd: Mapping[str, Tensor], name: str, x: Tensor, training: bool = False) -> Tensor:
    """nn.BatchNorm2d. Eval mode (``training=False``; also the authors' finetune mode, in
    which ``RFRNet.train(finetune=True)`` puts every BatchNorm2d in eval): normalise with
    the running statistics. Training mode: normalise with the batch statistics and update
    the running ones in place (momentum 0.1, unbiased variance), counting the call in
    ``num_batches_tracked``, as ``nn.BatchNorm2d.forward`` does on every call; the authors
    call ``bn2`` and the RFR module's layers once per recurrence, so six times a forward."""
    if training:
        sd[f"{name}.num_batches_tracked"].add_(1)
    return F.batch_norm(
        x,
        sd[f"{name}.running_mean"],
        sd[f"{name}.running_var"],
        weight=sd[f"{name}.weight"],
        bias=sd[f"{name}.bias"],
        training=training,
        momentum=BN_MOMENTUM,
        eps=BN_EPS,
    )


def _bottleneck(sd: Mapping[str, Tensor], name: str, x: Tensor, bn_training: bool) -> Tensor:
    """torchvision-style Bottleneck(32, 8): 1x1, 3x3, 1x1 with BN, residual, ReLU."""
    residual = x
    out = F.conv2d(x, sd[f"{name}.conv1.weight"])
    out = F.relu(_batch_norm(sd, f"{name}.bn1", out, bn_training))
    out = F.conv2d(out, sd[f"{name}.conv2.weight"], stride=1, padding=1)
    out = F.relu(_batch_norm(sd, f"{name}.bn2", out, bn_training))
    out = F.conv2d(out, sd[f"{name}.conv3.weight"])
    out = _batch_norm(sd, f"{name}.bn3", out, bn_training)
    out = out + residual
    return F.relu(out)


class _AttentionState:
    """The attention's memory across the recurrences of one forward pass.

    The authors keep ``att_scores_prev`` and ``masks_prev`` on the module and set both to
    None at the start of every ``RFRNet.forward``; here they live in this local object.
    """

    def __init__(self) -> None:
        self.scores_prev: Tensor | None = None
        self.masks_prev: Tensor | None = None


def _knowledge_consistent_attention(sd: Mapping[str, Tensor], foreground: Tensor,
                                    masks: Tensor, state: _AttentionState) -> Tensor:
    """KnowledgeConsistentAttention(patch_size=1, propagate_size=3, stride=1)."""
    bz, nc, h, w = foreground.shape
    if masks.shape[3] != w:
        masks = F.interpolate(masks, size=(h, w))  # default mode: nearest
    ratio = sd["RFRModule.att.att.ratio"]
    blend = torch.abs(ratio) + RATIO_EPS
    background = foreground.clone()
    # one 1x1 kernel per background position: (bz, h*w, nc, 1, 1)
    kernels_all = background.reshape(bz, nc, h * w, 1, 1).permute(0, 2, 1, 3, 4)
    outputs = []
    scores_all = []
    for i in range(bz):
        feature_map = foreground[i:i + 1]
        kernels = kernels_all[i] + KERNEL_EPS
        norm = torch.sum(kernels ** 2, dim=[1, 2, 3], keepdim=True) ** 0.5
        kernels = kernels / norm
        similarity = F.conv2d(feature_map, kernels, padding=0)  # (1, h*w, h, w)
        similarity = F.avg_pool2d(similarity, PROPAGATE, 1, padding=1) * 9
        scores = F.softmax(similarity, dim=1)
        if state.scores_prev is not None:
            assert state.masks_prev is not None
            prev = state.scores_prev[i:i + 1]
            m_prev = state.masks_prev[i:i + 1]
            scores = (prev * m_prev + scores * blend) / (m_prev + blend)
        scores_all.append(scores)
        outputs.append(F.conv_transpose2d(scores, kernels, stride=1, padding=0))
    state.scores_prev = torch.cat(scores_all, dim=0).reshape(bz, h * w, h, w)
    state.masks_prev = masks.reshape(bz, 1, h, w)
    return torch.cat(outputs, dim=0)


def _attention_module(sd: Mapping[str, Tensor], foreground: Tensor, mask: Tensor,
                      state: _AttentionState) -> Tensor:
    """AttentionModule(512): attention, concat with its input, 1x1 combiner (with bias)."""
    attended = _knowledge_consistent_attention(sd, foreground, mask, state)
    both = torch.cat([attended, foreground], dim=1)
    return F.conv2d(both, sd["RFRModule.att.combiner.weight"], sd["RFRModule.att.combiner.bias"])


def _rfr_module(sd: Mapping[str, Tensor], x: Tensor, mask: Tensor,
                state: _AttentionState, bn_training: bool) -> Tensor:
    """RFRModule(layer_size=6, in_channel=64): encoder, decoders with skips, attention."""
    p = "RFRModule"
    h = {0: x}
    for i in (1, 2, 3):  # stride-2 3x3 convs
        y = F.conv2d(h[i - 1], sd[f"{p}.enc_{i}.0.weight"], stride=2, padding=1)
        h[i] = F.relu(_batch_norm(sd, f"{p}.enc_{i}.1", y, bn_training))
    for i in (4, 5, 6):  # dilated 3x3 convs
        y = F.conv2d(h[i - 1], sd[f"{p}.enc_{i}.0.weight"], stride=1, padding=2, dilation=2)
        h[i] = F.relu(_batch_norm(sd, f"{p}.enc_{i}.1", y, bn_training))
    out = h[6]
    for i in (5, 4, 3, 2, 1):
        out = torch.cat([out, h[i]], dim=1)
        weight = sd[f"{p}.dec_{i}.0.weight"]
        if i >= 4:
            out = F.conv2d(out, weight, stride=1, padding=2, dilation=2)
        else:
            out = F.conv_transpose2d(out, weight, stride=2, padding=1)
        out = F.leaky_relu(_batch_norm(sd, f"{p}.dec_{i}.1", out, bn_training), DECODER_SLOPE)
        if i == 3:
            out = _attention_module(sd, out, mask, state)
    return out


def _check_inputs(sd: Mapping[str, Tensor], image: Tensor, mask3: Tensor) -> None:
    if sd["Pconv1.weight"].shape[0] != WIDTH:
        raise ValueError("the reference supports the released width (64) only")
    if image.dim() != 4 or mask3.shape != image.shape or mask3.shape[1] != 3:
        raise ValueError("expected B x 3 x H x W image and B x 3 x H x W mask")
    if image.shape[2] % 16 or image.shape[3] % 16:
        raise ValueError("H and W must be multiples of 16")


def _rfrnet_forward(sd: Mapping[str, Tensor], image: Tensor, mask: Tensor,
                    bn_training: bool) -> Tensor:
    """``RFRNet.forward(in_image, mask)[0]`` (``modules/RFRNet.py``). Differentiable in
    the tensors of ``sd``; with ``bn_training`` BatchNorm uses batch statistics and
    updates the running ones held in ``sd`` in place."""
    k1 = sd["Pconv1.weight"].shape[-1]
    k2 = sd["Pconv2.weight"].shape[-1]
    k21 = sd["Pconv21.weight"].shape[-1]
    k22 = sd["Pconv22.weight"].shape[-1]

    x1, m1 = _partial_conv(sd, "Pconv1", image, mask, stride=2, padding=k1 // 2)
    x1 = F.relu(_batch_norm(sd, "bn1", x1, bn_training))
    x1, m1 = _partial_conv(sd, "Pconv2", x1, m1, stride=1, padding=k2 // 2)
    x1 = F.relu(_batch_norm(sd, "bn20", x1, bn_training))

    x2, m2 = x1, m1
    n, c, h, w = x2.shape
    feature_group = [x2.reshape(n, c, 1, h, w)]
    mask_group = [m2.reshape(n, c, 1, h, w)]
    state = _AttentionState()  # reset at the start of every forward
    for _ in range(ITER_NUM):
        x2, m2 = _partial_conv(sd, "Pconv21", x2, m2, stride=1, padding=k21 // 2)
        x2, m2 = _partial_conv(sd, "Pconv22", x2, m2, stride=1, padding=k22 // 2)
        x2 = F.leaky_relu(_batch_norm(sd, "bn2", x2, bn_training), HEAD_SLOPE)
        x2 = _rfr_module(sd, x2, m2[:, 0:1, :, :], state, bn_training)
        x2 = x2 * m2
        feature_group.append(x2.reshape(n, c, 1, h, w))
        mask_group.append(m2.reshape(n, c, 1, h, w))

    # adaptive merge over the ITER_NUM + 1 stacked features
    x3 = torch.cat(feature_group, dim=2)
    m3 = torch.cat(mask_group, dim=2)
    amp_vec = m3.mean(dim=2)
    x3 = (x3 * m3).mean(dim=2) / (amp_vec + MERGE_EPS)
    x3 = x3.reshape(n, c, h, w)
    m3 = m3[:, :, -1, :, :]

    x4 = F.conv_transpose2d(x3, sd["Tconv.weight"], stride=2, padding=1)
    x4 = F.leaky_relu(_batch_norm(sd, "bn3", x4, bn_training), HEAD_SLOPE)
    m4 = F.interpolate(m3, scale_factor=2)  # default mode: nearest
    x5 = torch.cat([image, x4], dim=1)
    m5 = torch.cat([mask, m4], dim=1)
    kt = sd["tail1.weight"].shape[-1]
    x5, _ = _partial_conv(sd, "tail1", x5, m5, stride=1, padding=kt // 2)
    x5 = F.leaky_relu(x5, HEAD_SLOPE)
    x6 = _bottleneck(sd, "tail2", x5, bn_training)
    x6 = torch.cat([x5, x6], dim=1)
    return F.conv2d(x6, sd["out.weight"], stride=1, padding=1)


@torch.no_grad()
def authors_forward(state_dict: Mapping[str, Tensor], masked_image: Tensor,
                    mask3: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """The authors' ``RFRNet.eval()(masked_image, mask3)[0]``, step by step.

    ``masked_image``: B x 3 x H x W, already multiplied by the mask; ``mask3``: B x 3 x H x W
    with 1 = known; H and W multiples of 16. ``dtype``: the authors ran float32; float64
    gives the same function with far smaller rounding, to tell rounding from real
    differences on badly conditioned inputs.
    """
    sd = {k: v.detach().to(dtype) if v.is_floating_point() else v
          for k, v in state_dict.items()}
    _check_inputs(sd, masked_image, mask3)
    return _rfrnet_forward(sd, masked_image.to(dtype), mask3.to(dtype), bn_training=False)


# --------------------------------------------------------------------------- training step
# model.py: RFRNetModel.forward, get_g_loss and update_G, with the loss network of
# modules/RFRNet.py (VGG16FeatureExtractor).

# torchvision vgg16().features[:5], [5:10], [10:17] (VGG16FeatureExtractor.enc_1..3): in
# each block 3x3 convolutions (padding 1) at these indices of ``features``, each followed
# by an in-place ReLU, then MaxPool2d(kernel_size=2, stride=2) as the block's last layer.
VGG_BLOCKS = ((0, 2), (5, 7), (10, 12, 14))
VGG_KEYS = tuple(f"features.{i}.{kind}" for block in VGG_BLOCKS for i in block
                 for kind in ("weight", "bias"))
LOSS_WEIGHTS = {"tv": 0.1, "style": 120.0, "perceptual": 0.05, "valid": 1.0, "hole": 6.0}
LR = 2e-4  # model.py: optim.Adam(self.G.parameters(), lr = 2e-4)
FINETUNE_LR = 5e-5  # model.py, train(finetune=True): optim.Adam(..., lr = 5e-5)
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


class TrainStep(NamedTuple):
    """What one training step of the authors' code computes."""

    terms: dict[str, float]  # get_g_loss's terms (unweighted) and "total"
    grads: dict[str, Tensor]  # the gradient of "total" for every parameter
    state_dict: dict[str, Tensor]  # parameters and BatchNorm buffers after the Adam step


def _vgg16_feature_extractor(vgg: Mapping[str, Tensor], image: Tensor) -> list[Tensor]:
    """VGG16FeatureExtractor.forward: [enc_1(x), enc_2(enc_1(x)), enc_3(...)], on the
    images as given ([0, 1], no mean/std normalisation). ``vgg`` has torchvision's keys
    (``features.N.weight`` / ``.bias``); the authors freeze them (requires_grad False),
    the images still get gradients."""
    results = [image]
    for block in VGG_BLOCKS:
        x = results[-1]
        for i in block:
            x = F.relu(F.conv2d(x, vgg[f"features.{i}.weight"], vgg[f"features.{i}.bias"],
                                stride=1, padding=1))
        results.append(F.max_pool2d(x, kernel_size=2, stride=2))
    return results[1:]


def _l1_loss(f1: Tensor, f2: Tensor, mask: Tensor) -> Tensor:
    return torch.mean(torch.abs(f1 - f2) * mask)


def _style_loss(a_feats: list[Tensor], b_feats: list[Tensor]) -> Tensor:
    assert len(a_feats) == len(b_feats)
    loss_value = 0.0
    for a_feat, b_feat in zip(a_feats, b_feats, strict=True):
        _, c, w, h = a_feat.size()
        a_feat = a_feat.view(a_feat.size(0), a_feat.size(1), a_feat.size(2) * a_feat.size(3))
        b_feat = b_feat.view(b_feat.size(0), b_feat.size(1), b_feat.size(2) * b_feat.size(3))
        a_style = torch.matmul(a_feat, a_feat.transpose(2, 1))
        b_style = torch.matmul(b_feat, b_feat.transpose(2, 1))
        loss_value += torch.mean(torch.abs(a_style - b_style) / (c * w * h))
    return loss_value


def _tv_loss(x: Tensor) -> Tensor:
    h_x = x.size(2)
    w_x = x.size(3)
    h_tv = torch.mean(torch.abs(x[:, :, 1:, :] - x[:, :, :h_x - 1, :]))
    w_tv = torch.mean(torch.abs(x[:, :, :, 1:] - x[:, :, :, :w_x - 1]))
    return h_tv + w_tv


def _perceptual_loss(a_feats: list[Tensor], b_feats: list[Tensor]) -> Tensor:
    assert len(a_feats) == len(b_feats)
    loss_value = 0.0
    for a_feat, b_feat in zip(a_feats, b_feats, strict=True):
        loss_value += torch.mean(torch.abs(a_feat - b_feat))
    return loss_value


def authors_loss(vgg: Mapping[str, Tensor], real_b: Tensor, fake_b: Tensor,
                 mask: Tensor) -> dict[str, Tensor]:
    """``get_g_loss``: the terms (unweighted) and ``total`` = tv*0.1 + style*120 +
    perceptual*0.05 + valid*1 + hole*6, in the authors' order. ``real_b``: ground truth;
    ``fake_b``: raw network output; ``mask``: B x 3 x H x W, 1 = known."""
    comp_b = fake_b * (1 - mask) + real_b * mask  # RFRNetModel.forward
    real_b_feats = _vgg16_feature_extractor(vgg, real_b)
    fake_b_feats = _vgg16_feature_extractor(vgg, fake_b)
    comp_b_feats = _vgg16_feature_extractor(vgg, comp_b)
    terms = {
        "tv": _tv_loss(comp_b * (1 - mask)),
        "style": _style_loss(real_b_feats, fake_b_feats) + _style_loss(real_b_feats,
                                                                       comp_b_feats),
        "perceptual": _perceptual_loss(real_b_feats, fake_b_feats)
        + _perceptual_loss(real_b_feats, comp_b_feats),
        "valid": _l1_loss(real_b, fake_b, mask),
        "hole": _l1_loss(real_b, fake_b, (1 - mask)),
    }
    terms["total"] = (terms["tv"] * LOSS_WEIGHTS["tv"]
                      + terms["style"] * LOSS_WEIGHTS["style"]
                      + terms["perceptual"] * LOSS_WEIGHTS["perceptual"]
                      + terms["valid"] * LOSS_WEIGHTS["valid"]
                      + terms["hole"] * LOSS_WEIGHTS["hole"])
    return terms


def authors_train_step(state_dict: Mapping[str, Tensor], vgg_state_dict: Mapping[str, Tensor],
                       gt_images: Tensor, masks: Tensor, *, finetune: bool = False,
                       dtype: torch.dtype = torch.float64) -> TrainStep:
    """One iteration of the authors' ``RFRNetModel.train`` loop, from a fresh optimiser:
    ``G.train(finetune=finetune)``, ``masked_images = gt_images * masks``, the forward,
    ``get_g_loss`` and ``update_G`` (zero_grad, backward, Adam step).

    ``state_dict``: the generator's (authors' keys); ``vgg_state_dict``: torchvision
    vgg16 keys (only ``VGG_KEYS`` are read); ``gt_images``, ``masks``: B x 3 x H x W, mask
    1 = known and 3-channel as the authors' training loader gives it. Phase 1: Adam(lr
    2e-4) over every parameter, BatchNorm on batch statistics, running stats updated.
    ``finetune``: every BatchNorm2d in eval mode (running stats used, kept), Adam(lr 5e-5)
    over ``filter(lambda p: p.requires_grad, ...)``, i.e. still every parameter, BN affine
    weights included. Adam: torch's default implementation, betas (0.9, 0.999), eps 1e-8.

    Returns the loss terms, the gradients the step used and the state dict after it
    (parameters and running statistics, in ``dtype``). The inputs are not modified.
    """
    sd: dict[str, Tensor] = {}
    params: list[Tensor] = []
    for key, value in state_dict.items():
        if not value.is_floating_point():
            sd[key] = value.detach().clone()
        elif key.endswith(BUFFER_SUFFIXES):
            sd[key] = value.detach().to(dtype).clone()
        else:
            sd[key] = value.detach().to(dtype).clone().requires_grad_(True)
            params.append(sd[key])
    vgg = {key: vgg_state_dict[key].detach().to(dtype) for key in VGG_KEYS}
    _check_inputs(sd, gt_images, masks)
    gt_images = gt_images.to(dtype)
    masks = masks.to(dtype)
    lr = FINETUNE_LR if finetune else LR
    optimizer = torch.optim.Adam(params, lr=lr)

    masked_images = gt_images * masks
    fake_b = _rfrnet_forward(sd, masked_images, masks, bn_training=not finetune)
    terms = authors_loss(vgg, gt_images, fake_b, masks)
    optimizer.zero_grad()
    terms["total"].backward()
    optimizer.step()
    grads = {key: sd[key].grad.detach().clone() for key in sd if sd[key].requires_grad}
    return TrainStep({name: float(value.detach()) for name, value in terms.items()}, grads,
                     {key: value.detach().clone() for key, value in sd.items()})
