"""Reading and writing images and masks at the edge of the suite, where bad files are.

Everything inside the suite is a float32 tensor with pixels in [0, 1] and masks with
1 = known, 0 = hole. Files on disk are converted once, here: any PIL-readable mode
(grayscale, RGBA, palette, 16-bit) becomes RGB, and a mask file's convention (which colour
is the hole) is an explicit argument. Every failure names the file and the problem.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from rfr.errors import ImageReadError, ImageWriteError


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image, so truncation is found here and not later."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"image not found: {path}")
    if not path.is_file():
        raise ImageReadError(f"not a file: {path}")
    try:
        image = Image.open(path)
        image.load()
        # Phones store rotation as an EXIF tag: honour it, so that an image and a mask
        # drawn on the picture as displayed line up.
        image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{path}: not a readable image (unknown or corrupt format)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: image too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: corrupt or truncated image: {exc}") from exc
    return image


def pil_to_array(image: Image.Image) -> np.ndarray:
    """H x W x 3 float32 in [0, 1] from any mode, keeping 16-bit precision."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        data = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if image.mode.startswith("I;16") or data.max() > 255 else 255.0
        gray = np.clip(data / scale, 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2)
    # Alpha is dropped (not composited): inpainting works on the colour channels.
    rgb = image.convert("RGB")
    return np.asarray(rgb, dtype=np.float32) / 255.0


def read_image(path: str | Path) -> Tensor:
    """An image file as a 3 x H x W float32 tensor in [0, 1]."""
    array = pil_to_array(open_image(path))
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def read_mask(path: str | Path, hole_is_white: bool = True, threshold: float = 0.5) -> Tensor:
    """A mask file as a 1 x H x W float32 tensor, 1 = known pixel and 0 = hole.

    Mask sets disagree on which colour is the hole, hence the explicit flag (the authors'
    and NVIDIA's test masks: see the dataset docs). Non-binary pixels (anti-aliased or
    JPEG-compressed masks) are thresholded with a warning that says how many there were.
    """
    path = Path(path)
    array = pil_to_array(open_image(path)).mean(axis=2)
    non_binary = np.count_nonzero((array > 0.0) & (array < 1.0))
    if non_binary:
        message = (
            f"{path}: mask is not binary ({non_binary} of {array.size} pixels are neither "
            f"black nor white); thresholded at {threshold}"
        )
        warnings.warn(message, stacklevel=2)
    white = array > threshold
    known = ~white if hole_is_white else white
    return torch.from_numpy(known.astype(np.float32))[None]


def with_white_holes(image: Tensor, mask: Tensor) -> Tensor:
    """The masked input as people are shown it: known pixels kept, holes white."""
    return image * mask + (1 - mask)


def check_writable_image_path(path: str | Path) -> Path:
    """Fail before any work is done if ``path`` cannot take an image: a folder, or a
    suffix that no image format claims."""
    path = Path(path)
    if path.is_dir():
        raise ImageWriteError(f"output path is a directory, not a file: {path}")
    known = Image.registered_extensions()
    if path.suffix.lower() not in known:
        raise ImageWriteError(
            f"{path}: unknown image file extension {path.suffix!r}; use .png (lossless) "
            f"or another format Pillow writes, e.g. .jpg, .bmp, .tif"
        )
    return path


def write_image(tensor: Tensor, path: str | Path) -> Path:
    """Save a 3 x H x W tensor in [0, 1] as an 8-bit image (format from the suffix)."""
    path = check_writable_image_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = tensor.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0)
    Image.fromarray(array.cpu().numpy()).save(path)
    return path
