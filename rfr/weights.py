"""Where pretrained weights come from, and a clear error when they are not there.

The project's machines have no internet, so nothing here downloads: weights are looked up
where torchvision itself would have cached them (``torch.hub.get_dir()/checkpoints``) or
taken from an explicit path. A missing file is an error that names the file, the folder
to put it in and the URL it is published at, because a loss or metric silently computed
with other weights would produce numbers that look comparable to the paper's and are not.

A published file is described by `PublishedWeights`; `KNOWN_WEIGHTS` lists them:
VGG16 for the training losses, AlexNet for LPIPS and InceptionV3 for FID (rfr.evaluate.metrics).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torchvision

from rfr.errors import ChecksumMismatchError, InvalidWeightsError, WeightsNotFoundError
from rfr.model.state_dicts import state_dict_mismatches, torch_load_detail

RANDOM_VGG_DESCRIPTION = "random VGG16 weights: losses are NOT comparable to ImageNet-VGG numbers"

# torch.hub names published files "<name>-<first hex digits of the sha256>.<ext>".
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class PublishedWeights:
    """A weights file published at a fixed URL, named the torch.hub way.

    Fields:
        name: short key used in status listings (e.g. "vgg16-imagenet").
        url: where it is published; its last path part is the file name on disk.
        used_for: what in this project needs it (shown by `rfr weights`).
        config_key: the config field that can point at a local copy instead.
    """

    name: str
    url: str
    used_for: str
    config_key: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str | None:
        return sha256_prefix_in_name(self.filename)

    @property
    def expected_path(self) -> Path:
        """Where torchvision would have cached it; resolved at call time so that a
        changed TORCH_HOME or `torch.hub.set_dir` is honoured."""
        return hub_checkpoint_dir() / self.filename


VGG16_IMAGENET = PublishedWeights(
    name="vgg16-imagenet",
    url=torchvision.models.VGG16_Weights.IMAGENET1K_V1.url,
    used_for="VGG16 features of the perceptual and style training losses (rfr.train.losses)",
    config_key="vgg_weights",
)

ALEXNET_IMAGENET = PublishedWeights(
    name="alexnet-imagenet",
    url=torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url,
    used_for="AlexNet trunk of the LPIPS metric (rfr.evaluate.metrics; LPIPS's own linear layers "
    "ship inside the lpips package)",
    config_key="lpips_alexnet_weights",
)

# torch-fidelity's port of the TensorFlow FID Inception (2015-12-05), the file its
# FeatureExtractorInceptionV3 downloads (torch_fidelity.feature_extractor_inceptionv3.
# URL_INCEPTION_V3; a test keeps the two equal). Its "-6726825d" suffix is copied from
# pytorch-fid's pt_inception file name and is not known to be this file's sha256 prefix,
# so rfr.evaluate.metrics checks its keys and shapes instead of the name's hash.
INCEPTION_FID = PublishedWeights(
    name="inception-fid",
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth",
    used_for="InceptionV3 (TensorFlow FID graph, 2015-12-05) of the FID metric "
    "(rfr.evaluate.metrics, via torch-fidelity)",
    config_key="fid_inception_weights",
)

KNOWN_WEIGHTS: dict[str, PublishedWeights] = {
    VGG16_IMAGENET.name: VGG16_IMAGENET,
    ALEXNET_IMAGENET.name: ALEXNET_IMAGENET,
    INCEPTION_FID.name: INCEPTION_FID,
}


class ResolvedWeights(NamedTuple):
    """A state dict (None means: initialise randomly) and a description for reports."""

    state_dict: dict[str, torch.Tensor] | None
    description: str

    @property
    def is_random(self) -> bool:
        return self.state_dict is None


@dataclass(frozen=True)
class WeightsStatus:
    """Whether one known weights file is present where it is looked for."""

    weights: PublishedWeights
    path: Path
    present: bool


def hub_checkpoint_dir() -> Path:
    """The folder torchvision caches downloads in (follows TORCH_HOME / torch.hub.set_dir)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_prefix_in_name(path: str | Path) -> str | None:
    """The hex digest prefix in a torch.hub-style file name ("vgg16-397923af.pth"), or None."""
    match = _HASH_IN_NAME.search(Path(path).name)
    return match.group(1) if match else None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks so a 500 MB file never sits in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_hash_in_name(path: str | Path) -> None:
    """Check the file against the sha256 prefix its name carries; no-op for other names.

    Raises ChecksumMismatchError, since a truncated or substituted download would otherwise
    load (or fail) with an error that hides the real cause.
    """
    path = Path(path)
    prefix = sha256_prefix_in_name(path)
    if prefix is None:
        return
    actual = file_sha256(path)
    if not actual.startswith(prefix):
        raise ChecksumMismatchError(
            f"{path}: sha256 checksum mismatch: the file name promises a sha256 starting with "
            f"{prefix!r} but the file's sha256 is {actual[: len(prefix)]!r}... ({actual}). "
            f"The file is incomplete or not the published one; download it again "
            f"(or rename a deliberately different file so its name has no '-<hex>' suffix).",
            path,
        )


def vgg16_state_dict_shapes() -> dict[str, torch.Size]:
    """Keys and shapes of torchvision's vgg16 state dict, built on the meta device (no
    memory, no random init) so that a file can be checked against the real architecture."""
    with torch.device("meta"):
        model = torchvision.models.vgg16(weights=None)
    return {key: value.shape for key, value in model.state_dict().items()}


def load_state_dict_file(
    path: str | Path,
    expected_shapes: Mapping[str, torch.Size] | None = None,
    *,
    check_hash: bool = True,
) -> dict[str, torch.Tensor]:
    """Load a state dict safely (weights_only, on CPU) and check it against the expected
    keys and shapes, so a wrong file fails here with its name instead of deep in a model.

    check_hash: verify a torch.hub-style "-<hex>" file name against the file's sha256.
    Raises WeightsNotFoundError, InvalidWeightsError (incl. ChecksumMismatchError).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}", path)
    if check_hash:
        verify_hash_in_name(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for damaged files; re-raised.
        raise InvalidWeightsError(
            f"{path}: cannot be read as a PyTorch weights file "
            f"({type(exc).__name__}: {torch_load_detail(exc)}). The file is damaged or truncated, "
            f"or it is not a state dict saved with torch.save(model.state_dict(), path).",
            path,
        ) from exc
    if not isinstance(loaded, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise InvalidWeightsError(
            f"{path}: expected a state dict (a mapping of names to tensors), got "
            f"{type(loaded).__name__}; save it with torch.save(model.state_dict(), path).",
            path,
        )
    state_dict = dict(loaded)
    if expected_shapes is not None:
        _check_shapes(path, state_dict, expected_shapes)
    return state_dict


def resolve_vgg16_state_dict(spec: str | Path, *, check_hash: bool = True) -> ResolvedWeights:
    """Turn a `LossConfig.vgg_weights` value into VGG16 weights and a label for reports.

    spec: "imagenet" (torchvision's IMAGENET1K_V1 file in the torch hub cache), "random"
    (no weights: the caller initialises randomly, and the label says the numbers are not
    comparable) or a path to a torchvision vgg16 state dict. Never downloads.
    check_hash: verify a hub-style "-<hex>" name against the file's sha256 (~1 s for VGG16).
    """
    if isinstance(spec, str) and spec.strip().lower() == "random":
        return ResolvedWeights(None, RANDOM_VGG_DESCRIPTION)
    if isinstance(spec, str) and spec.strip().lower() == "imagenet":
        path = VGG16_IMAGENET.expected_path
        if not path.is_file():
            raise WeightsNotFoundError(missing_weights_message(VGG16_IMAGENET, path), path)
        label = f"ImageNet VGG16 (torchvision IMAGENET1K_V1, {path})"
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"VGG16 weights file not found: {path} (from vgg_weights: {str(spec)!r}). "
                f"Give the path of a torchvision vgg16 state dict such as "
                f"{VGG16_IMAGENET.filename} (published at {VGG16_IMAGENET.url}), or use "
                f"vgg_weights: imagenet to read it from {hub_checkpoint_dir()}, or "
                f"vgg_weights: random for tests/smoke runs only.",
                path,
            )
        label = f"VGG16 weights from {path}"
    state_dict = load_state_dict_file(path, vgg16_state_dict_shapes(), check_hash=check_hash)
    return ResolvedWeights(state_dict, label)


def missing_weights_message(weights: PublishedWeights, path: Path | None = None) -> str:
    """The actionable text for a missing published file: what, where, from where, or what
    else to configure."""
    path = path or weights.expected_path
    return (
        f"{weights.name} weights not found: expected the file {weights.filename} in "
        f"{path.parent} (full path {path}); needed for {weights.used_for}. Nothing is "
        f"downloaded automatically. Fix: download {weights.url} on a machine with internet "
        f"and copy it into {path.parent} (that folder is torch.hub.get_dir()/checkpoints; "
        f"set TORCH_HOME to move it), or set `{weights.config_key}: /path/to/"
        f"{weights.filename}` in the config, or `{weights.config_key}: random` for tests/"
        f"smoke runs only (results are then labelled as not comparable)."
    )


def describe_weights_status() -> list[WeightsStatus]:
    """Presence of every known weights file at its expected place (no hashing: cheap
    enough for `rfr weights` to run anywhere)."""
    return [
        WeightsStatus(weights=w, path=w.expected_path, present=w.expected_path.is_file())
        for w in KNOWN_WEIGHTS.values()
    ]


def format_weights_status(statuses: list[WeightsStatus] | None = None) -> str:
    """Human-readable lines for `rfr weights`: one per file, with the URL when missing."""
    statuses = describe_weights_status() if statuses is None else statuses
    lines = []
    for status in statuses:
        w = status.weights
        if status.present:
            lines.append(f"{w.name}: present at {status.path}")
        else:
            lines.append(
                f"{w.name}: MISSING, expected at {status.path}\n"
                f"    download {w.url} and copy it there, or set {w.config_key} to its path"
            )
        lines.append(f"    used for: {w.used_for}")
    return "\n".join(lines)


def _check_shapes(
    path: Path, state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size]
) -> None:
    problems = state_dict_mismatches(state_dict, expected)
    if problems:
        raise InvalidWeightsError(
            f"{path}: not a torchvision vgg16 state dict: {'; '.join(problems)}. Use "
            f"torchvision's {VGG16_IMAGENET.filename} or a file saved with "
            f"torch.save(torchvision.models.vgg16().state_dict(), path).",
            path,
        )


__all__ = [
    "ALEXNET_IMAGENET",
    "INCEPTION_FID",
    "KNOWN_WEIGHTS",
    "RANDOM_VGG_DESCRIPTION",
    "VGG16_IMAGENET",
    "ChecksumMismatchError",
    "InvalidWeightsError",
    "PublishedWeights",
    "ResolvedWeights",
    "WeightsNotFoundError",
    "WeightsStatus",
    "describe_weights_status",
    "file_sha256",
    "format_weights_status",
    "hub_checkpoint_dir",
    "load_state_dict_file",
    "missing_weights_message",
    "resolve_vgg16_state_dict",
    "sha256_prefix_in_name",
    "verify_hash_in_name",
    "vgg16_state_dict_shapes",
]
