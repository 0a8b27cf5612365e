"""Image and mask files in every mode the suite may meet, and every way they can be bad."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rfr.data.image_io import ImageReadError, read_image, read_mask, write_image

H, W = 24, 40


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_rgb(seed: int = 0, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    return rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def as_hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


def read_error(path: Path) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message, message
    return message


# ------------------------------------------------------------------------------ read_image


def test_rgb_png_round_trip_through_write_image(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    tensor = torch.rand(3, H, W, generator=generator)
    path = write_image(tensor, tmp_path / "sub" / "rgb.png")
    back = read_image(path)
    assert back.shape == (3, H, W)
    assert back.dtype == torch.float32
    assert float((back - tensor).abs().max()) <= 0.5 / 255 + 1e-6
    # A second round trip is exact: the file already holds 8-bit values.
    again = read_image(write_image(back, tmp_path / "again.png"))
    assert torch.equal(again, back)


def test_rgb_png_exact_values(tmp_path: Path) -> None:
    array = random_rgb(1)
    Image.fromarray(array).save(tmp_path / "rgb.png")
    back = read_image(tmp_path / "rgb.png")
    assert torch.equal(back, torch.from_numpy(array).permute(2, 0, 1).float() / 255)


def test_write_image_clamps_out_of_range(tmp_path: Path) -> None:
    tensor = torch.tensor([-0.5, 0.0, 0.5, 1.0, 1.7]).reshape(1, 1, 5).expand(3, 1, 5)
    back = read_image(write_image(tensor, tmp_path / "clamp.png"))
    assert back[0, 0].tolist() == pytest.approx([0.0, 0.0, 128 / 255, 1.0, 1.0])


def test_grayscale_jpeg_gives_three_equal_channels(tmp_path: Path) -> None:
    gradient = np.tile(np.linspace(0, 255, W), (H, 1)).round().astype(np.uint8)
    Image.fromarray(gradient, mode="L").save(tmp_path / "gray.jpg", quality=95)
    back = read_image(tmp_path / "gray.jpg")
    assert back.shape == (3, H, W)
    assert torch.equal(back[0], back[1]) and torch.equal(back[1], back[2])
    error = np.abs(back[0].numpy() * 255 - gradient.astype(np.float32))
    assert error.mean() < 2.0  # JPEG is lossy; a smooth gradient survives closely


def test_rgba_png_drops_alpha_and_keeps_rgb(tmp_path: Path) -> None:
    rgb = random_rgb(2)
    alpha = rng(3).integers(0, 256, (H, W), dtype=np.uint8)
    alpha[:4] = 0  # fully transparent rows keep their colour too (no compositing)
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(tmp_path / "rgba.png")
    back = read_image(tmp_path / "rgba.png")
    assert back.shape == (3, H, W)
    assert np.array_equal((as_hwc(back) * 255).round().astype(np.uint8), rgb)


def test_palette_png_becomes_rgb(tmp_path: Path) -> None:
    palette = rng(4).integers(0, 256, (16, 3), dtype=np.uint8)
    indices = rng(5).integers(0, 16, (H, W), dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(palette.flatten().tolist())
    image.save(tmp_path / "palette.png")
    assert Image.open(tmp_path / "palette.png").mode == "P"
    back = read_image(tmp_path / "palette.png")
    assert np.array_equal((as_hwc(back) * 255).round().astype(np.uint8), palette[indices])


def test_16_bit_grayscale_png_keeps_16_bit_precision(tmp_path: Path) -> None:
    values = rng(6).integers(0, 65536, (H, W), dtype=np.uint16)
    values[0, :4] = [0, 1000, 1001, 65535]
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    image.save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    back = read_image(tmp_path / "deep.png")
    assert back.shape == (3, H, W)
    assert torch.equal(back[0], back[2])
    expected = values.astype(np.float64) / 65535
    assert np.abs(back[0].numpy() - expected).max() < 1e-6
    assert abs(float(back[0, 0, 1]) - 1000 / 65535) < 1e-6
    # 1000 and 1001 differ, which an 8-bit conversion would lose.
    assert float(back[0, 0, 2] - back[0, 0, 1]) == pytest.approx(1 / 65535, abs=1e-7)


def test_dark_16_bit_png_is_not_read_as_8_bit(tmp_path: Path) -> None:
    values = np.full((H, W), 200, dtype=np.uint16)  # every value <= 255
    Image.fromarray(values).save(tmp_path / "dark.png")
    back = read_image(tmp_path / "dark.png")
    assert float(back.max()) == pytest.approx(200 / 65535, abs=1e-6)


def test_truncated_jpeg(tmp_path: Path) -> None:
    Image.fromarray(random_rgb(7, (64, 64))).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    message = read_error(path)
    assert "truncated" in message


def test_truncated_png(tmp_path: Path) -> None:
    Image.fromarray(random_rgb(8, (64, 64))).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in read_error(path)


def test_garbage_bytes(tmp_path: Path) -> None:
    path = tmp_path / "garbage.png"
    path.write_bytes(rng(9).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    assert "not a readable image" in read_error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in read_error(tmp_path / "nope.png")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.png"
    folder.mkdir()
    assert "not a file" in read_error(folder)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge grey image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_oversized_image_is_an_image_read_error(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(20000, 20000))
    read_error(path)


# ------------------------------------------------------------------------------- read_mask


def write_gray(path: Path, array: np.ndarray, **save: object) -> Path:
    Image.fromarray(array.astype(np.uint8), mode="L").save(path, **save)
    return path


def hole_block() -> np.ndarray:
    array = np.zeros((H, W), dtype=np.uint8)
    array[5:15, 10:30] = 255
    return array


def test_mask_white_is_hole_by_default(tmp_path: Path) -> None:
    file_array = hole_block()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a binary mask warns about nothing
        mask = read_mask(write_gray(tmp_path / "mask.png", file_array))
    assert mask.shape == (1, H, W)
    assert mask.dtype == torch.float32
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(mask[0], torch.from_numpy((file_array == 0).astype(np.float32)))
    assert float((mask == 0).sum()) == 10 * 20


def test_mask_hole_is_black_flips(tmp_path: Path) -> None:
    path = write_gray(tmp_path / "mask.png", hole_block())
    white_hole = read_mask(path)
    black_hole = read_mask(path, hole_is_white=False)
    assert torch.equal(black_hole, 1 - white_hole)
    assert float((black_hole == 0).sum()) == H * W - 10 * 20


def test_mask_from_rgb_file(tmp_path: Path) -> None:
    array = np.repeat(hole_block()[..., None], 3, axis=2)
    Image.fromarray(array).save(tmp_path / "rgb_mask.png")
    assert torch.equal(read_mask(tmp_path / "rgb_mask.png"),
                       read_mask(write_gray(tmp_path / "l_mask.png", hole_block())))


def test_non_binary_mask_is_thresholded_with_a_counting_warning(tmp_path: Path) -> None:
    array = hole_block()
    array[0, :7] = 128  # 128/255 > 0.5: counts as white (hole)
    array[1, :5] = 100  # 100/255 < 0.5: counts as black (known)
    path = write_gray(tmp_path / "gray_mask.png", array)
    with pytest.warns(UserWarning) as record:
        mask = read_mask(path)
    assert len(record) == 1
    text = str(record[0].message)
    assert str(path) in text
    assert f"12 of {H * W} pixels" in text
    assert mask.shape == (1, H, W) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask[0, 0, :7].tolist() == [0.0] * 7
    assert mask[0, 1, :5].tolist() == [1.0] * 5
    assert float((mask == 0).sum()) == 10 * 20 + 7


def test_jpeg_mask_is_thresholded_with_a_counting_warning(tmp_path: Path) -> None:
    array = hole_block()
    path = write_gray(tmp_path / "mask.jpg", array, quality=75)
    decoded = np.asarray(Image.open(path))
    expected_count = int(np.count_nonzero((decoded > 0) & (decoded < 255)))
    assert expected_count > 0  # JPEG rings around the block's edges
    with pytest.warns(UserWarning, match="not binary") as record:
        mask = read_mask(path)
    text = str(record[0].message)
    assert str(path) in text
    assert f"({expected_count} of {H * W} pixels" in text
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(mask[0], torch.from_numpy((decoded <= 127).astype(np.float32)))
    agreement = float((mask[0].numpy() == (array == 0)).mean())
    assert agreement > 0.98


def test_mask_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not found"):
        read_mask(tmp_path / "nope.png")
    bad = tmp_path / "bad_mask.png"
    bad.write_bytes(b"not an image at all" * 10)
    with pytest.raises(ImageReadError) as info:
        read_mask(bad)
    assert str(bad) in str(info.value)
