"""Image metrics on real photographs, cross-checked against scikit-image, hand values and
the libraries the weights-based metrics come from.

The photos are scikit-image's own (in its wheel). LPIPS and FID cannot get their published
weights here, so an empty TORCH_HOME plays the machine without them; their computing code
is exercised with stand-in files (seeded random networks saved as state dicts), which is
what an explicit path to the published file goes through too.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
import torchvision
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from rfr.data.embedded import square_photo
from rfr.evaluate.metrics import (
    FID_MIN_IMAGES,
    PSNR_MAX_DB,
    SSIM_WINDOW,
    FIDAccumulator,
    InceptionFeatures,
    LPIPSAlex,
    MetricResult,
    Unavailable,
    fid_from_features,
    frechet_distance,
    gaussian_statistics,
    image_metrics,
    inception_shapes,
    l1,
    l1_hole,
    load_inception,
    load_lpips,
    lpips_linear_weights_path,
    psnr,
    ssim,
    to_uint8,
)
from rfr.masks import box_mask, mask_rng, to_known_mask
from rfr.model.api import composite
from rfr.weights import (
    ALEXNET_IMAGENET,
    INCEPTION_FID,
    KNOWN_WEIGHTS,
    load_state_dict_file,
)

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
SIZE = 256
SKIMAGE_TOLERANCE = 1e-3
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def load_photos(size: int = SIZE) -> torch.Tensor:
    return torch.stack([square_photo(name, size) for name in PHOTOS])


def box_holes(batch: int, size: int, seed: int) -> torch.Tensor:
    """Seeded rectangular holes, 1 = known."""
    return torch.stack([to_known_mask(box_mask(size, mask_rng(seed, i), max_boxes=2,
                                               min_side=0.4, max_side=0.6))
                        for i in range(batch)])


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return load_photos()


@pytest.fixture(scope="module")
def predictions(photos: torch.Tensor) -> dict[str, torch.Tensor]:
    """Seeded degraded versions of the photos: noisy, blurred, and inpainted-like (box
    holes filled with the mirrored photo: plausible texture, wrong content)."""
    generator = torch.Generator().manual_seed(0)
    noisy = (photos + 0.05 * torch.randn(photos.shape, generator=generator)).clamp(0, 1)
    blurred = F.avg_pool2d(photos, 7, 1, 3, count_include_pad=False)
    mask = box_holes(photos.shape[0], SIZE, seed=1)
    fill = photos.flip(-1)
    return {"noisy": noisy, "blurred": blurred, "inpainted": composite(fill, photos, mask)}


def skimage_ssim(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    return np.array([
        structural_similarity(p.permute(1, 2, 0).double().numpy(),
                              t.permute(1, 2, 0).double().numpy(), channel_axis=-1,
                              data_range=1.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for p, t in zip(pred, target, strict=True)
    ])


def skimage_psnr(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    return np.array([peak_signal_noise_ratio(t.double().numpy(), p.double().numpy(),
                                             data_range=1.0)
                     for p, t in zip(pred, target, strict=True)])


# --------------------------------------------------------------------------- PSNR / SSIM


@pytest.mark.parametrize("kind", ["noisy", "blurred", "inpainted"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.slow
def test_psnr_and_ssim_agree_with_skimage_on_photos(
    photos: torch.Tensor, predictions: dict[str, torch.Tensor], kind: str, dtype: torch.dtype
) -> None:
    pred = predictions[kind]
    want_ssim = skimage_ssim(pred, photos)
    want_psnr = skimage_psnr(pred, photos)
    got_ssim = ssim(pred.to(dtype), photos.to(dtype)).double().numpy()
    got_psnr = psnr(pred.to(dtype), photos.to(dtype)).double().numpy()
    assert got_ssim.shape == got_psnr.shape == (len(PHOTOS),)
    np.testing.assert_allclose(got_ssim, want_ssim, rtol=0, atol=SKIMAGE_TOLERANCE)
    np.testing.assert_allclose(got_psnr, want_psnr, rtol=0, atol=SKIMAGE_TOLERANCE)
    # In float64 the two implementations are the same arithmetic.
    if dtype == torch.float64:
        np.testing.assert_allclose(got_ssim, want_ssim, rtol=0, atol=1e-10)
    # The degradations are real ones: not trivially perfect scores.
    assert (got_ssim < 0.99).all() and (got_psnr < 60).all()


def test_ssim_on_non_square_and_odd_sizes_matches_skimage(photos: torch.Tensor) -> None:
    target = photos[:2, :, :37, :101]
    pred = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3))
            ).clamp(0, 1)
    np.testing.assert_allclose(ssim(pred, target).double().numpy(), skimage_ssim(pred, target),
                               rtol=0, atol=SKIMAGE_TOLERANCE)


def test_psnr_of_identical_images_is_the_documented_cap(photos: torch.Tensor) -> None:
    values = psnr(photos, photos)
    assert torch.isfinite(values).all()
    assert torch.allclose(values, torch.full_like(values, PSNR_MAX_DB))
    assert PSNR_MAX_DB == 100.0


def test_constant_error_of_a_tenth_is_20_db() -> None:
    target = torch.linspace(0, 0.9, 3 * 8 * 8, dtype=torch.float64).reshape(1, 3, 8, 8)
    assert psnr(target + 0.1, target).item() == pytest.approx(20.0, abs=1e-9)
    assert psnr((target + 0.1).float(), target.float()).item() == pytest.approx(20.0, abs=1e-4)


def test_ssim_of_identical_images_is_one_and_symmetric(
    photos: torch.Tensor, predictions: dict[str, torch.Tensor]
) -> None:
    assert torch.allclose(ssim(photos, photos), torch.ones(len(PHOTOS)), atol=1e-6)
    pred = predictions["noisy"]
    assert torch.allclose(ssim(pred, photos), ssim(photos, pred), atol=1e-6)


def test_ssim_rejects_images_smaller_than_its_window() -> None:
    tiny = torch.rand(1, 3, SSIM_WINDOW - 1, 32)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(tiny, tiny)


# --------------------------------------------------------------------------- L1


def test_l1_and_hole_l1_on_a_hand_made_case() -> None:
    target = torch.zeros(1, 3, 2, 2)
    pred = torch.zeros(1, 3, 2, 2)
    pred[0, :, 0, 0] = torch.tensor([0.3, 0.6, 0.9])  # a hole pixel: mean error 0.6
    pred[0, :, 1, 1] = 0.2                             # a second hole pixel: error 0.2
    pred[0, 0, 0, 1] = 0.4                             # known pixel: counts only in l1
    mask = torch.ones(1, 1, 2, 2)
    mask[0, 0, 0, 0] = mask[0, 0, 1, 1] = 0
    # l1: (0.3 + 0.6 + 0.9 + 3 * 0.2 + 0.4) / 12 pixels x channels
    assert l1(pred, target).item() == pytest.approx(2.8 / 12)
    # l1_hole: (0.3 + 0.6 + 0.9 + 3 * 0.2) / (2 pixels x 3 channels)
    assert l1_hole(pred, target, mask).item() == pytest.approx(2.4 / 6)
    # a 3-channel mask means the same
    assert l1_hole(pred, target, mask.expand(1, 3, 2, 2)).item() == pytest.approx(2.4 / 6)


def test_hole_l1_of_an_image_without_holes_is_nan_not_zero() -> None:
    target = torch.zeros(2, 3, 4, 4)
    pred = torch.full((2, 3, 4, 4), 0.5)
    mask = torch.ones(2, 1, 4, 4)
    mask[1, :, :2] = 0
    values = l1_hole(pred, target, mask)
    assert math.isnan(values[0].item())
    assert values[1].item() == pytest.approx(0.5)


def test_whole_image_l1_of_a_composite_is_hole_ratio_times_hole_l1(
    photos: torch.Tensor, predictions: dict[str, torch.Tensor]
) -> None:
    mask = box_holes(len(PHOTOS), SIZE, seed=1)
    filled = composite(predictions["blurred"], photos, mask)
    ratio = (1 - mask).flatten(1).mean(1)
    assert torch.allclose(l1(filled, photos), ratio * l1_hole(filled, photos, mask), rtol=1e-4)


def test_a_batch_of_b_gives_b_values_equal_to_one_at_a_time(
    photos: torch.Tensor, predictions: dict[str, torch.Tensor]
) -> None:
    pred = predictions["inpainted"]
    mask = box_holes(len(PHOTOS), SIZE, seed=1)
    batched = {"psnr": psnr(pred, photos), "ssim": ssim(pred, photos), "l1": l1(pred, photos),
               "l1_hole": l1_hole(pred, photos, mask)}
    for name, values in batched.items():
        assert values.shape == (len(PHOTOS),), name
    for i in (0, 3):
        one = slice(i, i + 1)
        assert torch.allclose(psnr(pred[one], photos[one]), batched["psnr"][one])
        assert torch.allclose(ssim(pred[one], photos[one]), batched["ssim"][one], atol=1e-6)
        assert torch.allclose(l1_hole(pred[one], photos[one], mask[one]), batched["l1_hole"][one])


def test_half_precision_inputs_are_computed_in_float32(photos: torch.Tensor) -> None:
    pred = photos.flip(-1)
    for name, fn in (("psnr", psnr), ("ssim", ssim), ("l1", l1)):
        got = fn(pred.bfloat16(), photos.bfloat16())
        assert got.dtype == torch.float32, name
        assert torch.allclose(got, fn(pred.bfloat16().float(), photos.bfloat16().float())), name


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="mask"):
        l1_hole(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.ones(1, 2, 8, 8))


def test_image_metrics_score_the_composite_not_the_raw_output(
    photos: torch.Tensor, predictions: dict[str, torch.Tensor]
) -> None:
    mask = box_holes(len(PHOTOS), SIZE, seed=1)
    output = predictions["blurred"].clone()
    garbage = output + 5.0 * (mask > 0)  # wild values where pixels are known
    results = image_metrics(garbage, photos, mask)
    assert list(results) == ["psnr", "ssim", "l1", "l1_hole"]
    filled = composite(output, photos, mask)
    assert torch.allclose(results["psnr"].values, psnr(filled, photos).double())
    assert torch.allclose(results["ssim"].values, ssim(filled, photos).double())
    for result in results.values():
        assert result.available and result.values.dtype == torch.float64
        assert result.values.device.type == "cpu"


def test_metric_result_is_values_xor_reason() -> None:
    with pytest.raises(ValueError):
        MetricResult("psnr", None)
    with pytest.raises(ValueError):
        MetricResult("psnr", torch.zeros(1), "why")
    result = MetricResult.unavailable("lpips", "no file")
    assert not result.available and result.values is None


# --------------------------------------------------------------------------- weights: absent


@pytest.fixture
def empty_hub(empty_hub: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared empty hub, with torch-fidelity's own downloader made to fail too."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("rfr.evaluate.metrics must never download")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", no_download)
    return empty_hub


def test_published_metric_weights_are_the_libraries_files() -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    assert ALEXNET_IMAGENET.url == torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    assert ALEXNET_IMAGENET.filename == ALEXNET_FILE
    assert INCEPTION_FID.url == tf_inception.URL_INCEPTION_V3
    assert INCEPTION_FID.filename == INCEPTION_FILE
    assert KNOWN_WEIGHTS["alexnet-imagenet"] is ALEXNET_IMAGENET
    assert KNOWN_WEIGHTS["inception-fid"] is INCEPTION_FID
    assert lpips_linear_weights_path().is_file()  # LPIPS' linear layers ship in the wheel


@pytest.mark.parametrize(
    ("loader", "metric", "filename", "url"),
    [(load_lpips, "lpips", ALEXNET_FILE, ALEXNET_IMAGENET.url),
     (load_inception, "fid", INCEPTION_FILE, INCEPTION_FID.url)],
)
def test_missing_weights_make_the_metric_unavailable_with_the_fix(
    empty_hub: Path, loader, metric: str, filename: str, url: str
) -> None:
    result = loader()
    assert isinstance(result, Unavailable) and result.metric == metric
    for needed in (f"{metric} unavailable", filename, str(empty_hub), url, "random"):
        assert needed in result.reason


def test_unavailable_lpips_is_reported_per_image_without_a_number(
    empty_hub: Path, photos: torch.Tensor, predictions: dict[str, torch.Tensor]
) -> None:
    mask = box_holes(len(PHOTOS), SIZE, seed=1)
    results = image_metrics(predictions["blurred"], photos, mask, lpips=load_lpips())
    assert not results["lpips"].available and results["lpips"].values is None
    assert ALEXNET_FILE in results["lpips"].unavailable_reason
    assert results["psnr"].available


def test_unavailable_fid_counts_images_and_gives_no_value(
    empty_hub: Path, photos: torch.Tensor
) -> None:
    accumulator = FIDAccumulator(load_inception())
    accumulator.add(["low", "low", "high", "high", "high"], photos, photos.flip(-1))
    for result in [*accumulator.results().values(), accumulator.result()]:
        assert result.value is None and result.status == "unavailable"
        assert INCEPTION_FILE in result.unavailable_reason
    assert accumulator.result("high").n_images == 3 and accumulator.result().n_images == 5


def test_missing_explicit_path_is_unavailable_and_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "alexnet.pth"
    result = load_lpips(missing)
    assert isinstance(result, Unavailable) and str(missing) in result.reason


# --------------------------------------------------------------------------- weights: stand-ins


@pytest.fixture(scope="module")
def alexnet_trunk_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random AlexNet trunk saved as a state dict: a stand-in for the published
    file (features only; the published file's classifier keys are ignored anyway)."""
    torch.manual_seed(0)
    state = {k: v for k, v in torchvision.models.alexnet().state_dict().items()
             if k.startswith("features.")}
    path = tmp_path_factory.mktemp("alexnet") / "alexnet_trunk.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random FID InceptionV3 saved the way torch-fidelity's file is (no
    num_batches_tracked entries)."""
    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008,
                                            init_weights=False)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("inception") / "inception_fid.pth"
    torch.save(state, path)
    return path


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
@pytest.mark.slow
def test_lpips_from_a_file_equals_the_lpips_package_with_the_same_weights(
    alexnet_trunk_file: Path, photos: torch.Tensor, predictions: dict[str, torch.Tensor]
) -> None:
    import lpips

    model = load_lpips(alexnet_trunk_file)
    assert isinstance(model, LPIPSAlex) and str(alexnet_trunk_file) in model.source
    small_target = F.interpolate(photos, size=64, mode="area")
    small_pred = F.interpolate(predictions["noisy"], size=64, mode="area")
    got = model(small_pred, small_target)
    assert got.shape == (len(PHOTOS),)
    assert torch.equal(model(small_target, small_target), torch.zeros(len(PHOTOS)))
    assert (got > 0).all()

    reference = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    trunk = load_state_dict_file(alexnet_trunk_file)
    for slice_module in (reference.net.slice1, reference.net.slice2, reference.net.slice3,
                         reference.net.slice4, reference.net.slice5):
        for index, layer in slice_module.named_children():
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.data.copy_(trunk[f"features.{index}.weight"])
                layer.bias.data.copy_(trunk[f"features.{index}.bias"])
    with torch.no_grad():
        want = reference(small_pred, small_target, normalize=True).flatten()
    assert torch.allclose(got, want, atol=1e-6)

    mask = box_holes(len(PHOTOS), 64, seed=2)
    results = image_metrics(small_pred, small_target, mask, lpips=model)
    assert list(results) == ["psnr", "ssim", "l1", "l1_hole", "lpips"]
    filled = composite(small_pred, small_target, mask)
    assert torch.allclose(results["lpips"].values, model(filled, small_target).double())


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
@pytest.mark.slow
def test_lpips_construction_equals_filling_lpips_state_dict_from_the_same_files(
    alexnet_trunk_file: Path, photos: torch.Tensor, predictions: dict[str, torch.Tensor]
) -> None:
    """LPIPSAlex is built through lpips' constructor (linear layers from its model_path)
    with torchvision's AlexNet layers put into lpips' slices. It used to fill lpips' state
    dict key by key from the two files instead; that construction, rebuilt here as the
    reference, gives the same parameters and bit-identical LPIPS values."""
    import lpips

    model = load_lpips(alexnet_trunk_file)
    assert isinstance(model, LPIPSAlex)
    trunk = load_state_dict_file(alexnet_trunk_file)
    lin = load_state_dict_file(lpips_linear_weights_path())
    reference = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True,
                            verbose=False)
    state = {}
    for key, value in reference.state_dict().items():
        if key.startswith("net."):  # net.slice<k>.<index in features>.<weight|bias>
            _, _, index, kind = key.split(".")
            state[key] = trunk[f"features.{index}.{kind}"]
        elif key.startswith("lins."):  # lins.<k>.* are the modules lin<k>.*, listed twice
            _, number, rest = key.split(".", 2)
            state[key] = lin[f"lin{number}.{rest}"]
        elif key.startswith("lin"):
            state[key] = lin[key]
        else:
            assert key.startswith("scaling_layer.")  # lpips' input constants, not weights
            state[key] = value
    reference.load_state_dict(state, strict=True)
    reference.eval()

    built = model.net.state_dict()
    assert list(built) == list(state)
    assert all(torch.equal(built[key], state[key]) for key in state)
    assert not model.net.training and not any(p.requires_grad for p in model.net.parameters())
    small_target = F.interpolate(photos, size=64, mode="area")
    for pred, target in ((F.interpolate(predictions["noisy"], size=64, mode="area"),
                          small_target),
                         (predictions["blurred"][:, :, :96, :128], photos[:, :, :96, :128])):
        with torch.no_grad():
            want = reference(pred, target, normalize=True).flatten()
        assert torch.equal(model(pred, target), want)


def test_lpips_without_its_linear_layers_file_is_unavailable(
    alexnet_trunk_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rfr.evaluate.metrics

    missing = tmp_path / "lpips" / "alex.pth"
    monkeypatch.setattr(rfr.evaluate.metrics, "lpips_linear_weights_path", lambda: missing)
    result = load_lpips(alexnet_trunk_file)
    assert isinstance(result, Unavailable) and str(missing) in result.reason


def test_hub_file_with_the_published_name_is_hash_checked(
    empty_hub: Path, alexnet_trunk_file: Path
) -> None:
    empty_hub.mkdir(parents=True)
    (empty_hub / ALEXNET_FILE).symlink_to(alexnet_trunk_file)
    refused = load_lpips()  # a stand-in is not the published file: its sha256 differs
    assert isinstance(refused, Unavailable) and "checksum mismatch" in refused.reason
    assert isinstance(load_lpips(check_hash=False), LPIPSAlex)


def test_a_wrong_network_file_is_unavailable_with_the_problem(
    alexnet_trunk_file: Path, inception_file: Path
) -> None:
    wrong_for_fid = load_inception(alexnet_trunk_file)
    assert isinstance(wrong_for_fid, Unavailable)
    assert "not an FID InceptionV3 state dict" in wrong_for_fid.reason
    wrong_for_lpips = load_lpips(inception_file)
    assert isinstance(wrong_for_lpips, Unavailable)
    assert "not a torchvision alexnet state dict" in wrong_for_lpips.reason


@pytest.mark.slow
def test_fid_network_from_a_file_gives_features_and_fid_per_bin(
    inception_file: Path, photos: torch.Tensor, predictions: dict[str, torch.Tensor]
) -> None:
    network = load_inception(inception_file)
    assert isinstance(network, InceptionFeatures)
    small = F.interpolate(photos, size=64, mode="area")
    noisy = F.interpolate(predictions["noisy"], size=64, mode="area")
    features = network(small)
    assert features.shape == (len(PHOTOS), 2048) and torch.isfinite(features).all()

    accumulator = FIDAccumulator(network)
    bins = ["a", "a", "b", "b", "c"]
    accumulator.add(bins, small, small)
    assert accumulator.result("a").value == pytest.approx(0.0, abs=1e-6)
    assert accumulator.result("c").status == "undefined"  # one image: no covariance
    assert str(FID_MIN_IMAGES) in accumulator.result("c").unavailable_reason

    different = FIDAccumulator(network)
    different.add(bins, small, noisy)
    overall = different.result()
    assert overall.status == "ok" and overall.n_images == 5 and overall.value > 0
    assert "biased" in overall.note
    assert set(different.results()) == {"a", "b", "c"}


def test_to_uint8_rounds_like_saving_a_png() -> None:
    values = torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 0.999, 1.2, -0.1])
    assert to_uint8(values).tolist() == [0, 0, 2, 255, 255, 0]


@pytest.mark.slow
def test_inception_key_layout_is_torch_fidelitys(inception_file: Path) -> None:
    network = InceptionFeatures.from_file(inception_file)
    assert set(network.extractor.state_dict()) == set(inception_shapes())


# --------------------------------------------------------------------------- Fréchet distance


def sqrtm_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """The textbook formula with scipy's general matrix square root (the pytorch-fid way)."""
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root))


def test_frechet_distance_of_identical_gaussians_is_zero() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    sigma = a @ a.T + np.eye(6)
    mu = rng.normal(size=6)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_a_mean_shift_is_the_squared_distance() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 5))
    sigma = a @ a.T
    mu1 = rng.normal(size=5)
    shift = np.array([3.0, -4.0, 0.0, 0.0, 12.0])  # |shift|^2 = 169
    assert frechet_distance(mu1, sigma, mu1 + shift, sigma) == pytest.approx(169.0, abs=1e-8)


def test_frechet_distance_of_diagonal_gaussians_by_hand() -> None:
    # (sqrt(4) - sqrt(1))^2 + (sqrt(9) - sqrt(16))^2 + (sqrt(2.25) - sqrt(0.25))^2 = 3,
    # plus |(1, 0, -1) - (0, 2, -1)|^2 = 5.
    sigma1 = np.diag([4.0, 9.0, 2.25])
    sigma2 = np.diag([1.0, 16.0, 0.25])
    got = frechet_distance(np.array([1.0, 0.0, -1.0]), sigma1, np.array([0.0, 2.0, -1.0]), sigma2)
    assert got == pytest.approx(8.0, abs=1e-12)


def test_frechet_distance_matches_sqrtm_and_is_symmetric() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 8, 8))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(8), b @ b.T + 0.1 * np.eye(8)
    mu1, mu2 = rng.normal(size=(2, 8))
    got = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert got == pytest.approx(sqrtm_frechet(mu1, sigma1, mu2, sigma2), rel=1e-8)
    assert got == pytest.approx(frechet_distance(mu2, sigma2, mu1, sigma1), rel=1e-8)


def fidelity_statistics(features: np.ndarray) -> dict[str, np.ndarray]:
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return fid_features_to_statistics(torch.from_numpy(features))


def fidelity_frechet(real: np.ndarray, fake: np.ndarray) -> float:
    """torch-fidelity's own FID from features (its statistics and its distance)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    stats = [fidelity_statistics(x) for x in (real, fake)]
    return fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID]


def fid_feature_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    mix1, mix2 = rng.normal(size=(2, 64, 64))
    factors = rng.normal(size=(8, 64))
    return {
        "gaussian": (rng.normal(size=(2048, 64)), rng.normal(0.1, 1.2, size=(2048, 64))),
        "correlated": (rng.normal(size=(2048, 64)) @ mix1,
                       rng.normal(size=(2048, 64)) @ mix2 + 0.3),
        # 8 factors plus 1% noise: condition numbers near 1e6
        "near-singular": (rng.normal(size=(2048, 8)) @ factors + 0.01 * rng.normal(size=(2048, 64)),
                          rng.normal(size=(2048, 8)) @ factors + 0.2
                          + 0.01 * rng.normal(size=(2048, 64))),
        "singular (N < D)": (rng.normal(size=(40, 64)), rng.normal(0.5, 1.0, size=(50, 64))),
    }


@pytest.mark.parametrize("case", list(fid_feature_sets()))
def test_fid_equals_torch_fidelitys(case: str) -> None:
    """Our eigh-based distance against torch-fidelity's (eigenvalues of sigma1 sigma2) on
    the same features: the same statistics, the same FID to 1e-6 relative."""
    real, fake = fid_feature_sets()[case]
    for features in (real, fake):
        mu, sigma = gaussian_statistics(features)
        theirs = fidelity_statistics(features)
        assert np.array_equal(mu, theirs["mu"]) and np.array_equal(sigma, theirs["sigma"])
    got = fid_from_features(real, fake)
    assert got == pytest.approx(fidelity_frechet(real, fake), rel=1e-6)
    if real.shape[0] < real.shape[1]:
        # exact for N < D: the nonzero eigenvalues of sigma1 sigma2 are the squared singular
        # values of A B^T / sqrt((n - 1)(m - 1)), A and B the centred features
        a, b = real - real.mean(axis=0), fake - fake.mean(axis=0)
        root_trace = np.linalg.svd(a @ b.T, compute_uv=False).sum() / math.sqrt(
            (len(a) - 1) * (len(b) - 1))
        mu1, sigma1 = gaussian_statistics(real)
        mu2, sigma2 = gaussian_statistics(fake)
        exact = (np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * root_trace)
        assert got == pytest.approx(exact, rel=1e-7)


def test_fid_of_small_sets_with_singular_covariances_is_finite() -> None:
    rng = np.random.default_rng(3)
    real = rng.normal(size=(10, 64))  # N < D: rank-deficient covariances, as with FID
    fake = rng.normal(loc=0.5, size=(12, 64))
    got = fid_from_features(real, fake)
    want = sqrtm_frechet(*gaussian_statistics(real), *gaussian_statistics(fake))
    assert math.isfinite(got) and got > 0
    assert got == pytest.approx(want, rel=1e-4)
    assert fid_from_features(real, real) == pytest.approx(0.0, abs=1e-6)


def test_gaussian_statistics_need_two_samples() -> None:
    mu, sigma = gaussian_statistics(np.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_allclose(mu, [2.0, 4.0])
    np.testing.assert_allclose(sigma, [[2.0, 4.0], [4.0, 8.0]])  # N - 1 normalisation
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_statistics(np.ones((1, 4)))
