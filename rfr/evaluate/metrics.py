"""Image-quality metrics: PSNR, SSIM, L1 (whole image and hole only), LPIPS and FID.

Every per-image metric is computed on the composite ``output * (1 - mask) + image * mask``
(the known pixels are the ground truth's), clamped to [0, 1], against the ground truth.
Inpainting papers disagree on which SSIM and which L1 they report, and their numbers are
not comparable unless the settings are; so each setting is fixed here, named in the
docstring, and written out in ``docs/metrics.md``:

- ``psnr``: data range 1; the per-image MSE is clamped at ``PSNR_MSE_FLOOR`` = 1e-10, so
  identical images give ``PSNR_MAX_DB`` = 100 dB, never inf (an inf poisons every mean).
- ``ssim``: Wang et al. (2004) with a Gaussian window (11 taps, sigma 1.5), K1 0.01, K2
  0.03, data range 1, population (co)variances, per channel, averaged over the valid
  region (no padding) and the channels: the convention of
  ``skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=1.0,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``, so the two agree.
- ``l1``: mean |composite - target| over all pixels and channels.
- ``l1_hole``: the same mean over the hole pixels only; NaN (undefined, not 0) for an
  image without hole pixels, which the aggregation then leaves out and counts.
- ``lpips``: LPIPS v0.1 with the AlexNet trunk (the ``lpips`` package), inputs in [-1, 1].
- ``fid``: dataset-level (per bin), from torch-fidelity's TensorFlow-compatible
  InceptionV3 2048-d pool features of 8-bit images; see `FIDAccumulator`.

**Unavailable, never made up.** LPIPS and FID need published weights files (AlexNet,
InceptionV3) that cannot be downloaded here. `load_lpips` and `load_inception` look for
them (explicit path, else the torch hub cache) and return either a ready model or an
`Unavailable` that says which file is missing, where to put it and where it is published.
`image_metrics` and `FIDAccumulator` turn an `Unavailable` into results marked unavailable
with that reason. The models' constructors check that every weight comes from a file, so no
code path computes LPIPS or FID with random weights.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from rfr.model.api import composite
from rfr.model.state_dicts import state_dict_mismatches
from rfr.weights import (
    ALEXNET_IMAGENET,
    INCEPTION_FID,
    InvalidWeightsError,
    PublishedWeights,
    WeightsNotFoundError,
    load_state_dict_file,
)

# PSNR: 10 * log10(1 / max(MSE, floor)); with data range 1 the cap is 10 * log10(1e10).
PSNR_MSE_FLOOR = 1e-10
PSNR_MAX_DB = 100.0

# SSIM (Wang et al. 2004 constants; skimage's gaussian_weights=True window).
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # skimage's default: radius int(3.5 * 1.5 + 0.5) = 5, 11 taps
SSIM_WINDOW = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_DATA_RANGE = 1.0

# FID needs a covariance per set; with fewer than two images it does not exist.
FID_MIN_IMAGES = 2
FID_FEATURE = "2048"  # InceptionV3 pool3 features, as in the original FID code
FID_NOTE = (
    "dataset-level FID of the composites against their ground-truth images (same images), "
    "InceptionV3 pool3 (2048-d) features of 8-bit images; FID is biased upwards for small "
    "sets (hundreds of images) and is only comparable between runs with the same number "
    "of images"
)

PER_IMAGE_METRICS: tuple[str, ...] = ("psnr", "ssim", "l1", "l1_hole", "lpips")
DATASET_METRICS: tuple[str, ...] = ("fid",)
HIGHER_IS_BETTER: dict[str, bool] = {
    "psnr": True,
    "ssim": True,
    "l1": False,
    "l1_hole": False,
    "lpips": False,
    "fid": False,
}

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Unavailable:
    """A metric that cannot be computed on this machine, and why (actionable text).

    Returned by `load_lpips` / `load_inception` instead of a model, so that a caller
    cannot forget the case: it has to pass this on, and results made from it say
    "unavailable" with `reason` rather than carrying a number.
    """

    metric: str
    reason: str


@dataclass(frozen=True)
class MetricResult:
    """One per-image metric over a batch: B values, or none and the reason.

    values: shape (B,), float64 on the CPU (ready for CSV/JSON). NaN marks an image for
        which the metric is undefined (only `l1_hole` of an image without holes).
    unavailable_reason: set exactly when `values` is None (missing weights, ...).
    """

    name: str
    values: Tensor | None
    unavailable_reason: str | None = None

    def __post_init__(self) -> None:
        if (self.values is None) == (self.unavailable_reason is None):
            raise ValueError(
                f"MetricResult {self.name!r}: give values or an unavailable_reason, not both "
                f"and not neither"
            )

    @property
    def available(self) -> bool:
        return self.values is not None

    @classmethod
    def unavailable(cls, name: str, reason: str) -> MetricResult:
        return cls(name=name, values=None, unavailable_reason=reason)


@dataclass(frozen=True)
class DatasetMetricResult:
    """One dataset-level metric (FID) over one set of images: a value, or none and why.

    value is None exactly when `unavailable_reason` is set: `status` is "unavailable"
    when the metric could not be computed here (missing weights) and "undefined" when it
    does not exist for this set (fewer than `FID_MIN_IMAGES` images).
    """

    name: str
    value: float | None
    n_images: int
    unavailable_reason: str | None = None
    status: str = "ok"
    note: str = ""

    def __post_init__(self) -> None:
        if (self.value is None) == (self.unavailable_reason is None):
            raise ValueError(f"DatasetMetricResult {self.name!r}: value xor unavailable_reason")
        if self.status not in ("ok", "unavailable", "undefined"):
            raise ValueError(f"unknown status {self.status!r}")
        if (self.status == "ok") != (self.value is not None):
            raise ValueError(f"status {self.status!r} does not match value {self.value!r}")

    @property
    def available(self) -> bool:
        return self.value is not None


# --------------------------------------------------------------------------- pixel metrics


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.dim() != 4 or pred.shape != target.shape:
        raise ValueError(
            f"expected two B x C x H x W tensors of one shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if not (pred.is_floating_point() and target.is_floating_point()):
        raise TypeError(f"expected float images in [0, 1], got {pred.dtype} and {target.dtype}")


def _working_dtype(tensor: Tensor) -> torch.dtype:
    """float64 stays float64; everything else (fp32, fp16, bf16) is computed in fp32."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio per image in dB, data range 1.

    ``10 * log10(1 / max(MSE, 1e-10))`` with the MSE over all pixels and channels of one
    image, so identical images give the cap `PSNR_MAX_DB` (100 dB) instead of inf, and a
    table mean stays finite. pred, target: B x C x H x W in [0, 1]. Returns (B,).
    """
    _check_pair(pred, target)
    dtype = _working_dtype(pred)
    diff = pred.to(dtype) - target.to(dtype)
    mse = diff.square().flatten(1).mean(dim=1).clamp_min(PSNR_MSE_FLOOR)
    return -10.0 * torch.log10(mse)


def _gaussian_taps(dtype: torch.dtype, device: torch.device) -> Tensor:
    """scipy.ndimage's Gaussian kernel as skimage uses it: 11 taps, normalised to sum 1."""
    radius = SSIM_WINDOW // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Structural similarity per image (Wang et al. 2004), skimage's Gaussian convention.

    Settings: Gaussian window of 11 taps with sigma 1.5 (truncated at 3.5 sigma and
    normalised), K1 = 0.01, K2 = 0.03, data range 1, population (not sample) variances
    and covariance; the SSIM map is computed per channel, only where the window fits
    inside the image (the (H-10) x (W-10) valid region: no padding), and averaged over
    that region and the channels. This equals
    ``skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=1.0,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` (skimage filters with
    reflection but then crops the 5-pixel border, leaving the same valid region).

    Batched: the five local moments of all images and channels go through one separable
    depthwise convolution. Values are centred per image and channel first, which leaves
    (co)variances unchanged and keeps fp32 from cancelling in E[x^2] - E[x]^2.
    pred, target: B x C x H x W in [0, 1], H and W >= 11. Returns (B,).
    """
    _check_pair(pred, target)
    batch, channels, height, width = pred.shape
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got "
                         f"{height}x{width}")
    dtype = _working_dtype(pred)
    # Channels-last: oneDNN's depthwise convolution is several times faster in that layout.
    x = pred.to(dtype).permute(0, 2, 3, 1)
    y = target.to(dtype).permute(0, 2, 3, 1)
    shift = 0.5 * (x.mean(dim=(1, 2), keepdim=True) + y.mean(dim=(1, 2), keepdim=True))
    xc = x - shift
    yc = y - shift
    moments = torch.cat([xc, yc, xc * xc, yc * yc, xc * yc], dim=3).permute(0, 3, 1, 2)
    planes = 5 * channels
    taps = _gaussian_taps(dtype, pred.device)
    moments = F.conv2d(moments, taps.view(1, 1, -1, 1).expand(planes, 1, -1, 1), groups=planes)
    moments = F.conv2d(moments, taps.view(1, 1, 1, -1).expand(planes, 1, 1, -1), groups=planes)
    mx, my, mxx, myy, mxy = moments.unflatten(1, (5, channels)).unbind(1)
    shift = shift.permute(0, 3, 1, 2)
    var_x = mxx - mx * mx
    var_y = myy - my * my
    cov_xy = mxy - mx * my
    mx = mx + shift
    my = my + shift
    c1 = (SSIM_K1 * SSIM_DATA_RANGE) ** 2
    c2 = (SSIM_K2 * SSIM_DATA_RANGE) ** 2
    numerator = (2 * mx * my + c1) * (2 * cov_xy + c2)
    denominator = (mx * mx + my * my + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean(dim=(1, 2, 3))


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per image over all pixels and channels (the "L1" of papers that
    report it on the whole composite; since known pixels are exact there, it equals
    hole ratio x `l1_hole`). Returns (B,)."""
    _check_pair(pred, target)
    dtype = _working_dtype(pred)
    return (pred.to(dtype) - target.to(dtype)).abs().flatten(1).mean(dim=1)


def _check_mask(mask: Tensor, image: Tensor) -> None:
    if (
        mask.dim() != 4
        or mask.shape[0] != image.shape[0]
        or mask.shape[1] not in (1, image.shape[1])
        or mask.shape[2:] != image.shape[2:]
    ):
        raise ValueError(
            f"mask must be B x 1|C x H x W matching the images {tuple(image.shape)}, got "
            f"{tuple(mask.shape)} (1 = known, 0 = hole)"
        )


def l1_hole(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error per image over the hole pixels only (mask 0), all channels.

    ``sum(|pred - target| * hole) / sum(hole)`` with ``hole = 1 - mask`` broadcast to the
    channels, so it is independent of the hole's size, unlike `l1`. An image with no hole
    pixel gets NaN: the error is undefined there, and 0 would flatter the method; the
    aggregation leaves such images out of the mean and counts them. mask: B x 1|C x H x W,
    1 = known, 0 = hole. Returns (B,).
    """
    _check_pair(pred, target)
    _check_mask(mask, pred)
    dtype = _working_dtype(pred)
    hole = (1 - mask.to(dtype)).expand_as(pred)
    error = (pred.to(dtype) - target.to(dtype)).abs()
    total = (error * hole).flatten(1).sum(dim=1)
    count = hole.flatten(1).sum(dim=1)
    has_hole = count > 0
    return torch.where(has_hole, total / torch.where(has_hole, count, torch.ones_like(count)),
                       torch.full_like(total, math.nan))


# --------------------------------------------------------------------------- weights


def _missing_metric_weights(weights: PublishedWeights, path: Path, metric: str) -> str:
    """Why a weights-based metric is unavailable, and what to do about it."""
    return (
        f"{metric} unavailable: {weights.name} weights not found: expected the file "
        f"{weights.filename} at {path}. Nothing is downloaded automatically. Fix: download "
        f"{weights.url} on a machine with internet and copy it into {path.parent} (that "
        f"folder is torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it), or pass its "
        f"path (`{weights.config_key}: /path/to/{weights.filename}`). No {metric} number is "
        f"computed with other or random weights."
    )


def _resolve(weights: PublishedWeights, path: str | Path | None, metric: str) -> Path:
    """The explicit path, or the published file in the torch hub cache; raises
    WeightsNotFoundError with the actionable message when it is not there."""
    resolved = weights.expected_path if path is None else Path(path).expanduser()
    if not resolved.is_file():
        raise WeightsNotFoundError(_missing_metric_weights(weights, resolved, metric), resolved)
    return resolved


def _check_shapes(path: str | Path, state_dict: Mapping[str, Tensor],
                  expected: Mapping[str, torch.Size], network: str, weights: PublishedWeights,
                  optional: Sequence[str] = ()) -> None:
    present_optional = {key: expected[key] for key in optional if key in state_dict}
    required = {key: shape for key, shape in expected.items() if key not in optional}
    problems = state_dict_mismatches(state_dict, {**required, **present_optional})
    if problems:
        raise InvalidWeightsError(
            f"{path}: not {network} state dict: {'; '.join(problems)}. Use the published "
            f"{weights.filename} ({weights.url}).",
            Path(path),
        )


# --------------------------------------------------------------------------- LPIPS


def alexnet_feature_shapes() -> dict[str, torch.Size]:
    """Keys and shapes of torchvision AlexNet's convolutional trunk (``features.*``), built
    on the meta device: what LPIPS needs from ``alexnet-owt-7be5be79.pth``."""
    with torch.device("meta"):
        model = torchvision.models.alexnet(weights=None)
    return {k: v.shape for k, v in model.state_dict().items() if k.startswith("features.")}


def lpips_linear_weights_path() -> Path:
    """LPIPS v0.1's calibrated linear layers for AlexNet, shipped inside the lpips wheel."""
    import lpips

    return Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"


class LPIPSAlex(nn.Module):
    """LPIPS v0.1, AlexNet trunk (Zhang et al. 2018; the ``lpips`` package's network).

    Built with lpips' own constructor, ``lpips.LPIPS(pretrained=False, net="alex",
    pnet_rand=True)``, which downloads nothing. The linear layers are then loaded from the
    lpips wheel's ``alex.pth`` (its keys checked against lpips' own first), and the
    placeholder trunk is replaced, layer by layer as lpips slices it, by torchvision's
    AlexNet ``features`` loaded ``strict=True`` from a state dict
    (``alexnet-owt-7be5be79.pth``; classifier keys are ignored). The construction checks
    that every trunk parameter is a loaded one, so a network with a random part cannot be
    built. Call with two
    B x 3 x H x W images in [0, 1] (rescaled to [-1, 1] inside, lpips' ``normalize=True``);
    returns (B,). Move it with ``.to(device)`` like any module; inputs are cast to its dtype.
    """

    def __init__(self, alexnet_state_dict: Mapping[str, Tensor], source: str,
                 path: str | Path = "<state dict>") -> None:
        super().__init__()
        import lpips

        features = {k: v for k, v in alexnet_state_dict.items() if not k.startswith("classifier.")}
        _check_shapes(path, features, alexnet_feature_shapes(), "a torchvision alexnet",
                      ALEXNET_IMAGENET)
        # The trunk: torchvision's AlexNet `features`, every tensor loaded from the file.
        with torch.device("meta"):
            trunk = torchvision.models.alexnet(weights=None).features
        trunk.to_empty(device="cpu").load_state_dict(
            {k.removeprefix("features."): v for k, v in features.items()}, strict=True)
        # The linear layers: the lpips wheel's file, read here (no download). lpips is
        # built without them (pretrained=False) and pnet_rand=True keeps it from fetching
        # the ImageNet trunk.
        lin_path = lpips_linear_weights_path()
        lin = load_state_dict_file(lin_path)  # missing or damaged: the usual errors
        with warnings.catch_warnings():
            # lpips builds its placeholder trunk with torchvision's deprecated
            # `pretrained=False`; that trunk is replaced below.
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            net = lpips.LPIPS(pretrained=False, net="alex", version="0.1", pnet_rand=True,
                              verbose=False)
        # Check the file against lpips' own linear layers before loading it, so that a
        # file with missing, extra or mis-shaped keys cannot leave a layer at random.
        expected = {k: v.shape for k, v in net.state_dict().items()
                    if k.startswith("lin") and not k.startswith("lins.")}
        problems = state_dict_mismatches(lin, expected)
        if problems:
            raise InvalidWeightsError(
                f"{lin_path}: not the LPIPS v0.1 AlexNet linear layers "
                f"({'; '.join(problems)}); reinstall lpips.", lin_path)
        net.load_state_dict(lin, strict=False)  # strict=False: the file has no trunk
        # lpips.pretrained_networks.alexnet slices torchvision's `features` into slice1..5,
        # each child named by its index in `features`; put the loaded layers in their place.
        for slice_name, slice_module in net.net.named_children():
            if not slice_name.startswith("slice"):
                raise RuntimeError(f"unexpected LPIPS trunk module {slice_name!r} (lpips changed?)")
            for index, _ in list(slice_module.named_children()):
                slice_module.add_module(index, trunk[int(index)])
        if {id(p) for p in net.net.parameters()} != {id(p) for p in trunk.parameters()}:
            raise RuntimeError("the LPIPS trunk does not use every AlexNet feature layer (lpips "
                               "changed?)")
        self.net = net.eval().requires_grad_(False)
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path | None = None, *, check_hash: bool = True) -> LPIPSAlex:
        """Load from an explicit path or the torch hub cache; raises WeightsNotFoundError
        (message: which file, where, URL) or InvalidWeightsError. Never downloads.
        check_hash: verify a torch.hub "-<hex>" file name against its sha256."""
        resolved = _resolve(ALEXNET_IMAGENET, path, "lpips")
        state_dict = load_state_dict_file(resolved, check_hash=check_hash)
        return cls(state_dict, f"LPIPS v0.1 AlexNet, trunk from {resolved}", resolved)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(pred, target)
        dtype = self.net.scaling_layer.shift.dtype
        with torch.no_grad():
            return self.net(pred.to(dtype), target.to(dtype), normalize=True).flatten()


def load_lpips(path: str | Path | None = None, *, check_hash: bool = True
               ) -> LPIPSAlex | Unavailable:
    """LPIPS ready to run, or `Unavailable` with the reason (file missing, damaged or not
    AlexNet's). path: an AlexNet state dict; None looks in the torch hub cache."""
    try:
        return LPIPSAlex.from_file(path, check_hash=check_hash)
    except (WeightsNotFoundError, InvalidWeightsError) as exc:
        return Unavailable("lpips", _unavailable_text("lpips", exc))


def _unavailable_text(metric: str, exc: Exception) -> str:
    text = str(exc)
    return text if text.startswith(f"{metric} unavailable") else f"{metric} unavailable: {text}"


# --------------------------------------------------------------------------- FID


def inception_shapes() -> dict[str, torch.Size]:
    """Keys and shapes of the FID InceptionV3 (torchvision layout, 1008 classes, no aux
    head), built on the meta device; torch-fidelity's extractor uses the same keys."""
    with torch.device("meta"):
        model = torchvision.models.inception_v3(weights=None, aux_logits=False,
                                                num_classes=1008, init_weights=False)
    return {k: v.shape for k, v in model.state_dict().items()}


def to_uint8(images: Tensor) -> Tensor:
    """[0, 1] floats to 8-bit values (round half to even), as saving a PNG would."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8)


class InceptionFeatures(nn.Module):
    """InceptionV3 pool3 (2048-d) features for FID, torch-fidelity's TF-compatible network.

    Built only from a state dict whose keys and shapes are the FID Inception's (torch-
    fidelity's ``weights-inception-2015-12-05-6726825d.pth``, or pytorch-fid's
    ``pt_inception-2015-12-05-6726825d.pth``: same keys); torch-fidelity loads it
    ``strict``. Images are quantised to 8 bits (`to_uint8`) and resized to 299x299 inside
    (TF1-compatible bilinear). Call with B x 3 x H x W in [0, 1]; returns B x 2048 float32.
    """

    def __init__(self, state_dict: Mapping[str, Tensor], source: str,
                 path: str | Path = "<state dict>") -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        shapes = inception_shapes()
        optional = [key for key in shapes if key.endswith("num_batches_tracked")]
        _check_shapes(path, state_dict, shapes, "an FID InceptionV3", INCEPTION_FID, optional)
        # torch-fidelity unpickles its path with weights_only=False; hand it the checked
        # tensors re-serialised in memory rather than the file.
        buffer = io.BytesIO()
        torch.save(dict(state_dict), buffer)
        buffer.seek(0)
        self.extractor = FeatureExtractorInceptionV3(
            "inception-v3-compat", [FID_FEATURE], feature_extractor_weights_path=buffer
        )
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> InceptionFeatures:
        """Load from an explicit path or the torch hub cache; raises WeightsNotFoundError
        or InvalidWeightsError. The name's hash is not checked (see rfr.weights), the keys
        and shapes are. Never downloads."""
        resolved = _resolve(INCEPTION_FID, path, "fid")
        state_dict = load_state_dict_file(resolved, check_hash=False)
        return cls(state_dict, f"FID InceptionV3 (torch-fidelity) from {resolved}", resolved)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected B x 3 x H x W images, got {tuple(images.shape)}")
        with torch.no_grad():
            (features,) = self.extractor(to_uint8(images))
        return features


def load_inception(path: str | Path | None = None) -> InceptionFeatures | Unavailable:
    """The FID feature network, or `Unavailable` with the reason. path: a state dict of the
    FID InceptionV3; None looks in the torch hub cache."""
    try:
        return InceptionFeatures.from_file(path)
    except (WeightsNotFoundError, InvalidWeightsError) as exc:
        return Unavailable("fid", _unavailable_text("fid", exc))


def gaussian_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (N - 1 normalisation, as in the original FID) of N x D features,
    in float64. Needs N >= 2."""
    array = np.asarray(features.detach().cpu() if isinstance(features, Tensor) else features,
                       dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < FID_MIN_IMAGES:
        raise ValueError(f"need an N x D feature matrix with N >= {FID_MIN_IMAGES}, got shape "
                         f"{array.shape}")
    return array.mean(axis=0), np.cov(array, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray,
                     mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2))``.

    The trace term is computed without a general matrix square root: sigma1 sigma2 has the
    same eigenvalues as the symmetric PSD matrix ``s sigma2 s`` with s = sigma1^(1/2), so
    ``Tr((sigma1 sigma2)^(1/2)) = sum(sqrt(eigvalsh(s sigma2 s)))``. Two symmetric
    eigendecompositions are stable for the singular covariances of small sets (N < D),
    where scipy.linalg.sqrtm can return complex parts or fail. Eigenvalues below 0 (float
    rounding) count as 0, and so does a distance below 0.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"shapes do not match: mu {mu1.shape}, {mu2.shape}; sigma "
                         f"{sigma1.shape}, {sigma2.shape}")
    sigma1 = 0.5 * (sigma1 + sigma1.T)
    sigma2 = 0.5 * (sigma2 + sigma2.T)
    eigenvalues, eigenvectors = np.linalg.eigh(sigma1)
    root1 = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T
    product = root1 @ sigma2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (product + product.T)), 0, None)).sum()
    diff = mu1 - mu2
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root
    return float(max(distance, 0.0))


def fid_from_features(real: Tensor | np.ndarray, fake: Tensor | np.ndarray) -> float:
    """FID between two sets of features (N x D each, N >= 2)."""
    return frechet_distance(*gaussian_statistics(real), *gaussian_statistics(fake))


class FIDAccumulator:
    """Collects Inception features batch by batch and gives FID per bin and overall.

    FID is a property of a set of images, not of one image: each bin's composites are
    compared with the same bin's ground-truth images (the inpainting convention, paired
    sets), and "overall" uses every image. With an `Unavailable` network, `add` only counts
    images and every result is marked unavailable with its reason. A set of fewer than
    `FID_MIN_IMAGES` images gives status "undefined". FID is biased upwards for small sets
    (it falls as N grows), so values are comparable only between runs of equal size; the
    note in each result says so.
    """

    def __init__(self, network: InceptionFeatures | Unavailable) -> None:
        self.network = network
        self._real: dict[str, list[Tensor]] = {}
        self._fake: dict[str, list[Tensor]] = {}
        self._counts: dict[str, int] = {}

    def add(self, bins: Sequence[str], real: Tensor, fake: Tensor) -> None:
        """Add a batch: bin label per image, ground truth and composites (B x 3 x H x W)."""
        if len(bins) != real.shape[0] or real.shape != fake.shape:
            raise ValueError(f"{len(bins)} bin labels for images {tuple(real.shape)} and "
                             f"{tuple(fake.shape)}")
        for label in bins:
            self._counts[label] = self._counts.get(label, 0) + 1
        if isinstance(self.network, Unavailable):
            return
        real_features = self.network(real).to("cpu", torch.float64)
        fake_features = self.network(fake).to("cpu", torch.float64)
        for index, label in enumerate(bins):
            self._real.setdefault(label, []).append(real_features[index])
            self._fake.setdefault(label, []).append(fake_features[index])

    @property
    def bins(self) -> list[str]:
        return list(self._counts)

    def result(self, label: str | None = None) -> DatasetMetricResult:
        """FID of one bin, or of all images when label is None."""
        labels = self.bins if label is None else [label]
        n_images = sum(self._counts.get(name, 0) for name in labels)
        if isinstance(self.network, Unavailable):
            return DatasetMetricResult("fid", None, n_images, self.network.reason,
                                       "unavailable", FID_NOTE)
        if n_images < FID_MIN_IMAGES:
            where = "all images" if label is None else f"bin {label!r}"
            return DatasetMetricResult(
                "fid", None, n_images,
                f"fid undefined: {where} has {n_images} image(s); FID needs at least "
                f"{FID_MIN_IMAGES} per set (a covariance)", "undefined", FID_NOTE,
            )
        real = torch.stack([f for name in labels for f in self._real[name]])
        fake = torch.stack([f for name in labels for f in self._fake[name]])
        return DatasetMetricResult("fid", fid_from_features(real, fake), n_images,
                                   note=FID_NOTE)

    def results(self) -> dict[str, DatasetMetricResult]:
        """FID per bin, in the order bins were first seen."""
        return {label: self.result(label) for label in self.bins}


# --------------------------------------------------------------------------- one batch


def image_metrics(output: Tensor, image: Tensor, mask: Tensor, *,
                  lpips: LPIPSAlex | Unavailable | None = None) -> dict[str, MetricResult]:
    """All per-image metrics of one batch, on the composite of `output` with `image`.

    output: the model's raw output; image: ground truth; both B x 3 x H x W in [0, 1].
    mask: B x 1|3 x H x W, 1 = known, 0 = hole. The composite is clamped to [0, 1], as the
    saved image would be. lpips: a loaded `LPIPSAlex` (computed), an `Unavailable`
    (reported as unavailable with its reason) or None (not requested: left out).
    Returns {name: MetricResult} in `PER_IMAGE_METRICS` order; values on the CPU, float64.
    """
    _check_pair(output, image)
    _check_mask(mask, image)
    filled = composite(output, image, mask).clamp(0, 1)
    results = {
        "psnr": psnr(filled, image),
        "ssim": ssim(filled, image),
        "l1": l1(filled, image),
        "l1_hole": l1_hole(filled, image, mask),
    }
    out = {name: MetricResult(name, values.detach().to("cpu", torch.float64))
           for name, values in results.items()}
    if isinstance(lpips, Unavailable):
        out["lpips"] = MetricResult.unavailable("lpips", lpips.reason)
    elif lpips is not None:
        out["lpips"] = MetricResult("lpips", lpips(filled, image).detach().to("cpu",
                                                                             torch.float64))
    return out


__all__ = [
    "DATASET_METRICS",
    "FID_MIN_IMAGES",
    "FID_NOTE",
    "HIGHER_IS_BETTER",
    "PER_IMAGE_METRICS",
    "PSNR_MAX_DB",
    "PSNR_MSE_FLOOR",
    "SSIM_DATA_RANGE",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "DatasetMetricResult",
    "FIDAccumulator",
    "InceptionFeatures",
    "LPIPSAlex",
    "MetricResult",
    "Unavailable",
    "alexnet_feature_shapes",
    "fid_from_features",
    "frechet_distance",
    "gaussian_statistics",
    "image_metrics",
    "inception_shapes",
    "l1",
    "l1_hole",
    "load_inception",
    "load_lpips",
    "lpips_linear_weights_path",
    "psnr",
    "ssim",
    "to_uint8",
]
