"""Where VGG16 weights come from: found, missing, damaged, wrong or mislabelled files.

Nothing here touches the network; an empty TORCH_HOME in tmp_path plays the machine
without the ImageNet file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision

from rfr.config import LossConfig
from rfr.train.losses import InpaintingLoss, VGG16Features
from rfr.weights import (
    KNOWN_WEIGHTS,
    VGG16_IMAGENET,
    ChecksumMismatchError,
    InvalidWeightsError,
    WeightsNotFoundError,
    describe_weights_status,
    format_weights_status,
    load_state_dict_file,
    resolve_vgg16_state_dict,
    sha256_prefix_in_name,
)

VGG_FILE = "vgg16-397923af.pth"


@pytest.fixture(scope="module")
def vgg_model() -> torchvision.models.VGG:
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()


@pytest.fixture(scope="module")
def vgg_file(vgg_model: torchvision.models.VGG, tmp_path_factory) -> Iterator[Path]:
    """A real torchvision vgg16 state dict (random weights), saved without a hash suffix."""
    path = tmp_path_factory.mktemp("weights") / "my_vgg16.pth"
    torch.save(vgg_model.state_dict(), path)
    yield path
    path.unlink()  # 530 MB: do not leave it in pytest's kept temporary folders


def test_published_vgg16_file_is_torchvisions() -> None:
    assert VGG16_IMAGENET.url == torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    assert VGG16_IMAGENET.filename == VGG_FILE
    assert VGG16_IMAGENET.sha256_prefix == "397923af"
    assert KNOWN_WEIGHTS["vgg16-imagenet"] is VGG16_IMAGENET


def test_missing_imagenet_file_says_what_to_do(empty_hub: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_vgg16_state_dict("imagenet")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.path == empty_hub / VGG_FILE
    for needed in (VGG_FILE, str(empty_hub), VGG16_IMAGENET.url, "vgg_weights: /path/to/"):
        assert needed in message
    assert "vgg_weights: random" in message and "tests/smoke runs only" in message


def test_missing_explicit_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vgg.pth"
    with pytest.raises(WeightsNotFoundError, match="nowhere") as info:
        resolve_vgg16_state_dict(missing)
    assert "vgg_weights: random" in str(info.value)


def test_random_spec_is_labelled() -> None:
    state_dict, description = resolve_vgg16_state_dict("random")
    assert state_dict is None
    assert description == "random VGG16 weights: losses are NOT comparable to ImageNet-VGG numbers"
    assert resolve_vgg16_state_dict("random").is_random


@pytest.mark.slow
def test_valid_file_loads_and_gives_the_models_features(
    vgg_model: torchvision.models.VGG, vgg_file: Path
) -> None:
    resolved = resolve_vgg16_state_dict(vgg_file)
    assert not resolved.is_random
    assert str(vgg_file) in resolved.description
    features = VGG16Features(resolved.state_dict, source=resolved.description)
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = features(images)
        want = [vgg_model.features[:stop](images) for stop in (5, 10, 17)]
    for level, (g, w) in enumerate(zip(got, want, strict=True)):
        assert torch.equal(g, w), f"level {level}"


@pytest.mark.slow
def test_loss_built_from_a_path_is_labelled_with_it(vgg_file: Path) -> None:
    loss_fn = InpaintingLoss(LossConfig(vgg_weights=str(vgg_file)))
    assert not loss_fn.uses_random_vgg
    assert str(vgg_file) in loss_fn.vgg_source


@pytest.mark.slow
def test_imagenet_file_in_hub_is_found(empty_hub: Path, vgg_file: Path) -> None:
    empty_hub.mkdir(parents=True)
    (empty_hub / VGG_FILE).symlink_to(vgg_file)
    # Our stand-in is not the published file, so only an unchecked load may accept it.
    resolved = resolve_vgg16_state_dict("imagenet", check_hash=False)
    assert "ImageNet" in resolved.description and not resolved.is_random
    with pytest.raises(ChecksumMismatchError):
        resolve_vgg16_state_dict("imagenet")


def test_hash_named_file_with_wrong_content_is_rejected(empty_hub: Path) -> None:
    empty_hub.mkdir(parents=True)
    (empty_hub / VGG_FILE).write_bytes(b"an interrupted download")
    with pytest.raises(ChecksumMismatchError, match="checksum mismatch") as info:
        resolve_vgg16_state_dict("imagenet")
    assert VGG_FILE in str(info.value) and "397923af" in str(info.value)


def test_hash_named_file_with_matching_content_loads(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch.pth"
    torch.save({"w": torch.arange(4.0)}, scratch)
    prefix = hashlib.sha256(scratch.read_bytes()).hexdigest()[:8]
    named = scratch.rename(tmp_path / f"tiny-{prefix}.pth")
    assert sha256_prefix_in_name(named) == prefix
    assert torch.equal(load_state_dict_file(named)["w"], torch.arange(4.0))


@pytest.mark.parametrize(
    ("name", "prefix"),
    [(VGG_FILE, "397923af"), ("my_vgg16.pth", None), ("my-vgg16.pth", None), ("a-.pth", None)],
)
def test_sha256_prefix_in_name(name: str, prefix: str | None) -> None:
    assert sha256_prefix_in_name(name) == prefix


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty"])
def test_damaged_file_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}_vgg16.pth"
    if kind == "truncated":
        torch.save({"w": torch.ones(1000)}, path)
        path.write_bytes(path.read_bytes()[:500])
    elif kind == "garbage":
        path.write_bytes(b"hello, not a checkpoint")
    else:
        path.write_bytes(b"")
    with pytest.raises(InvalidWeightsError, match="damaged or truncated") as info:
        resolve_vgg16_state_dict(path)
    assert str(path) in str(info.value)


def test_other_networks_state_dict_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "resnet_like.pth"
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), path)
    with pytest.raises(InvalidWeightsError, match="not a torchvision vgg16 state dict") as info:
        resolve_vgg16_state_dict(path)
    message = str(info.value)
    assert str(path) in message and "missing keys" in message and "unexpected keys" in message


def test_wrong_shapes_are_named(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(3, 3)}, path)
    with pytest.raises(InvalidWeightsError, match=r"w: file \(3, 3\), expected \(2, 2\)"):
        load_state_dict_file(path, {"w": torch.Size([2, 2])})


@pytest.mark.parametrize(
    "content", [[1, 2, 3], torch.nn.Linear(2, 2)], ids=["not-a-mapping", "pickled-module"]
)
def test_non_state_dict_is_rejected(tmp_path: Path, content: object) -> None:
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(InvalidWeightsError, match="state dict") as info:
        resolve_vgg16_state_dict(path)
    assert str(path) in str(info.value)


def vgg_status():
    return next(s for s in describe_weights_status() if s.weights is VGG16_IMAGENET)


def test_status_reports_missing_then_present(empty_hub: Path) -> None:
    status = vgg_status()
    assert status.path == empty_hub / VGG_FILE and not status.present
    text = format_weights_status()
    assert "MISSING" in text and VGG16_IMAGENET.url in text and str(status.path) in text

    empty_hub.mkdir(parents=True)
    (empty_hub / VGG_FILE).write_bytes(b"placeholder")
    status = vgg_status()
    assert status.present
    assert "present" in format_weights_status()
