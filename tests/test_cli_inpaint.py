"""`rfr inpaint` and `rfr weights`, run in-process through rfr.cli.main.

The image is 70 x 50 (not a multiple of 16) so padding and cropping are exercised; the
model is a width-8 RFR-Net so every run takes a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rfr.cli import main
from rfr.config import RFRNetConfig
from rfr.data.image_io import read_image, read_mask
from rfr.inpaint import inpaint
from rfr.model.api import RFRNet
from rfr.model.checkpoint import load_checkpoint, save_authors_checkpoint, save_checkpoint
from rfr.model.reference import layout_of, recipe_state_dict

WIDTH, HEIGHT = 70, 50

pytestmark = pytest.mark.usefixtures("single_thread")


@dataclass
class Case:
    checkpoint: Path
    image: Path
    mask: Path
    pixels: np.ndarray  # HEIGHT x WIDTH x 3 uint8, the image file's content
    hole: np.ndarray  # HEIGHT x WIDTH bool, True in the hole
    tmp: Path

    def argv(self, out: Path, *extra: str, **paths: Path) -> list[str]:
        files = {"checkpoint": self.checkpoint, "image": self.image, "mask": self.mask}
        files.update(paths)
        argv = ["inpaint"]
        for name, path in files.items():
            argv += [f"--{name}", str(path)]
        return argv + ["--out", str(out), *extra]


def hole_mask(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    hole = np.zeros((height, width), dtype=bool)
    hole[12:30, 20:47] = True  # a block
    hole[35:40, 5:60] = True  # and a stroke
    return hole


def save_mask_file(path: Path, hole: np.ndarray, hole_is_white: bool = True) -> Path:
    white = hole if hole_is_white else ~hole
    Image.fromarray(np.where(white, 255, 0).astype(np.uint8)).save(path)
    return path


def save_image(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def load_pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def to_bytes(tensor: torch.Tensor) -> np.ndarray:
    """What write_image stores for a 3 x H x W tensor in [0, 1]."""
    return tensor.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def expected_pixels(case: Case, checkpoint: Path | None = None, **kwargs: object
                    ) -> np.ndarray:
    model = load_checkpoint(checkpoint or case.checkpoint)
    return to_bytes(inpaint(model, read_image(case.image), read_mask(case.mask), **kwargs))


def max_level_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture
def case(tmp_path: Path) -> Case:
    torch.manual_seed(0)
    config = RFRNetConfig(width=8)
    model = RFRNet(config)
    checkpoint = save_checkpoint(tmp_path / "rfr_w8.pth", model, "rfr", config)
    pixels = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    hole = hole_mask()
    return Case(
        checkpoint=checkpoint,
        image=save_image(tmp_path / "image.png", pixels),
        mask=save_mask_file(tmp_path / "mask.png", hole),
        pixels=pixels,
        hole=hole,
        tmp=tmp_path,
    )


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_inpainted(case: Case, out: Path) -> np.ndarray:
    """The output has the input's size and every known pixel is the input's pixel."""
    with Image.open(out) as image:
        assert image.size == (WIDTH, HEIGHT)
    pixels = load_pixels(out)
    known = ~case.hole
    assert np.array_equal(pixels[known], case.pixels[known])
    return pixels


# ------------------------------------------------------------------------------ inpaint


def test_inpaint_writes_composite(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    out = case.tmp / "out" / "result.png"
    code, stdout, stderr = run(case.argv(out), capsys)
    assert code == 0, stderr
    assert stderr == ""
    pixels = assert_inpainted(case, out)
    expected = expected_pixels(case)
    assert max_level_diff(pixels, expected) <= 1
    # The holes were filled by the model, not copied from the input.
    assert np.abs(pixels[case.hole].astype(int) - case.pixels[case.hole]).mean() > 20
    ratio = case.hole.mean()
    assert f"wrote {out} ({WIDTH}x{HEIGHT}, hole ratio {ratio:.3f}, fp32)" in stdout


def test_hole_black_with_inverted_mask_file(case: Case,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    inverted = save_mask_file(case.tmp / "mask_black.png", case.hole, hole_is_white=False)
    out_white, out_black = case.tmp / "white.png", case.tmp / "black.png"
    assert run(case.argv(out_white), capsys)[0] == 0
    assert run(case.argv(out_black, "--hole", "black", mask=inverted), capsys)[0] == 0
    assert np.array_equal(load_pixels(out_white), load_pixels(out_black))
    # The same inverted file read as white-is-hole fills the other region instead.
    out_wrong = case.tmp / "wrong.png"
    assert run(case.argv(out_wrong, mask=inverted), capsys)[0] == 0
    assert not np.array_equal(load_pixels(out_wrong), load_pixels(out_white))
    assert np.array_equal(load_pixels(out_wrong)[case.hole], case.pixels[case.hole])


@pytest.mark.parametrize("max_side", [1024, 32])
def test_hole_content_of_the_input_does_not_leak(
    case: Case, capsys: pytest.CaptureFixture[str], max_side: int
) -> None:
    other = case.pixels.copy()
    other[case.hole] = 255 - other[case.hole]
    other_image = save_image(case.tmp / "other.png", other)
    out_a, out_b = case.tmp / "a.png", case.tmp / "b.png"
    side = ["--max-side", str(max_side)]
    assert run(case.argv(out_a, *side), capsys)[0] == 0
    assert run(case.argv(out_b, *side, image=other_image), capsys)[0] == 0
    assert np.array_equal(load_pixels(out_a)[case.hole], load_pixels(out_b)[case.hole])


def recipe_checkpoint(path: Path, width: int = 8, seed: int = 0) -> Path:
    model = RFRNet(RFRNetConfig(width=width))
    model.load_state_dict(recipe_state_dict(layout_of(model.state_dict()), seed))
    return save_authors_checkpoint(path, model.state_dict())


@pytest.mark.native_bf16
@pytest.mark.parametrize("weights", ["seeded-init", "recipe"])
def test_bf16_close_to_fp32_in_holes_only(
    case: Case, capsys: pytest.CaptureFixture[str], weights: str
) -> None:
    checkpoint = case.checkpoint
    if weights == "recipe":  # BatchNorm statistics far from defaults: a varied output
        checkpoint = recipe_checkpoint(case.tmp / "recipe_w8.pth")
    out32, out16 = case.tmp / "fp32.png", case.tmp / "bf16.png"
    assert run(case.argv(out32, checkpoint=checkpoint), capsys)[0] == 0
    code, stdout, stderr = run(case.argv(out16, "--precision", "bf16", checkpoint=checkpoint),
                               capsys)
    assert code == 0, stderr
    assert stdout.rstrip().endswith("bf16)")
    fp32, bf16 = assert_inpainted(case, out32), assert_inpainted(case, out16)
    hole_psnr = psnr(bf16[case.hole], fp32[case.hole])
    print(f"{weights}: bf16 vs fp32 PSNR in holes {hole_psnr:.1f} dB, "
          f"whole image {psnr(bf16, fp32):.1f} dB, "
          f"{int((bf16 != fp32).any(axis=2).sum())} pixels differ")
    assert hole_psnr > 30
    assert max_level_diff(bf16, expected_pixels(case, checkpoint, precision="bf16")) <= 1
    if weights == "recipe":
        assert (bf16 != fp32).any()  # the flag reached the model


def test_max_side_smaller_than_image(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    out = case.tmp / "small_net.png"
    code, _, stderr = run(case.argv(out, "--max-side", "32"), capsys)
    assert code == 0, stderr
    pixels = assert_inpainted(case, out)
    assert max_level_diff(pixels, expected_pixels(case, max_side=32)) <= 1


@pytest.mark.slow
def test_authors_checkpoint_with_recipe_weights(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = recipe_checkpoint(tmp_path / "authors_w64.pth", width=64, seed=0)
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hole = np.zeros((64, 64), dtype=bool)
    hole[16:40, 20:50] = True
    case = Case(checkpoint, save_image(tmp_path / "img64.png", pixels),
                save_mask_file(tmp_path / "mask64.png", hole), pixels, hole, tmp_path)
    out = tmp_path / "out64.png"
    code, stdout, stderr = run(case.argv(out), capsys)
    assert code == 0, stderr
    result = load_pixels(out)
    assert result.shape == (64, 64, 3)
    assert np.array_equal(result[~hole], pixels[~hole])
    assert max_level_diff(result, expected_pixels(case)) <= 1
    assert "64x64" in stdout


# ------------------------------------------------------------------------ user errors


def assert_user_error(argv: list[str], capsys: pytest.CaptureFixture[str],
                      *needles: str) -> str:
    code, stdout, stderr = run(argv, capsys)
    assert code == 2
    assert stdout == ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    error_lines = [line for line in lines if line.startswith("error:")]
    assert len(error_lines) == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]
    return error_lines[0]


def test_unreadable_image(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    bad = case.tmp / "garbage.png"
    bad.write_bytes(np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    out = case.tmp / "never.png"
    assert_user_error(case.argv(out, image=bad), capsys, str(bad), "not a readable image")
    assert not out.exists()


def test_missing_mask(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    missing = case.tmp / "no_such_mask.png"
    assert_user_error(case.argv(case.tmp / "o.png", mask=missing), capsys, str(missing),
                      "not found")


def test_size_mismatch(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    small = save_mask_file(case.tmp / "mask_60x40.png", hole_mask(40, 60))
    line = assert_user_error(case.argv(case.tmp / "o.png", mask=small), capsys,
                             str(case.image), str(small), f"{WIDTH}x{HEIGHT}", "60x40")
    assert "size mismatch" in line


def test_truncated_checkpoint(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    data = case.checkpoint.read_bytes()
    cut = case.tmp / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    assert_user_error(case.argv(case.tmp / "o.png", checkpoint=cut), capsys, str(cut),
                      "cannot be read as a PyTorch checkpoint")


@pytest.mark.parametrize("target", ["result.xyz", "a_directory"])
def test_unwritable_output_is_a_user_error(case: Case, capsys: pytest.CaptureFixture[str],
                                           target: str) -> None:
    out = case.tmp / target
    if target == "a_directory":
        out.mkdir()
    assert_user_error(case.argv(out), capsys, str(out))


# ------------------------------------------------------------------------------ warnings


def test_non_binary_mask_warns_and_succeeds(case: Case,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    file_array = np.where(case.hole, 255, 0).astype(np.uint8)
    file_array[0, :9] = 128
    soft = case.tmp / "soft_mask.png"
    Image.fromarray(file_array).save(soft)
    out = case.tmp / "soft_out.png"
    code, _, stderr = run(case.argv(out, mask=soft), capsys)
    assert code == 0
    warning_lines = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warning_lines) == 1, stderr
    assert str(soft) in warning_lines[0]
    assert f"9 of {WIDTH * HEIGHT} pixels" in warning_lines[0]
    pixels = load_pixels(out)
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    known = file_array == 0
    assert np.array_equal(pixels[known], case.pixels[known])


def test_mask_without_hole_warns_and_copies_input(case: Case,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    empty = save_mask_file(case.tmp / "no_hole.png", np.zeros((HEIGHT, WIDTH), dtype=bool))
    out = case.tmp / "copy.png"
    code, stdout, stderr = run(case.argv(out, mask=empty), capsys)
    assert code == 0
    warning_lines = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warning_lines) == 1, stderr
    assert str(empty) in warning_lines[0]
    assert "no hole pixels" in warning_lines[0]
    assert np.array_equal(load_pixels(out), case.pixels)
    assert "hole ratio 0.000" in stdout


# ------------------------------------------------------------------------------- weights


@pytest.mark.slow
def test_weights_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    code, stdout, stderr = run(["weights"], capsys)
    assert code == 0, stderr
    expected = home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    lines = stdout.splitlines()
    vgg = [line for line in lines if line.startswith("vgg16-imagenet:")]
    assert vgg == [f"vgg16-imagenet: MISSING, expected at {expected}"]
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in stdout
    assert not home.exists()  # looking does not create folders or download


def test_weights_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    expected = home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"placeholder")
    code, stdout, _ = run(["weights"], capsys)
    assert code == 0
    assert f"vgg16-imagenet: present at {expected}" in stdout.splitlines()
