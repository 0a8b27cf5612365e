"""Masks: the seeded generator, the NVIDIA bins, the bank (`rfr masks`), the NVIDIA folder
loader and the image-mask pairing.

Most banks here are 64 x 64 (a bank of 6 x 3 masks takes well under a second); one check
runs at the default 256 x 256.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import rfr.masks as masks
from rfr.cli import main
from rfr.data.image_io import read_mask
from rfr.masks import (
    MANIFEST_COLUMNS,
    NVIDIA_BINS,
    MaskBankError,
    MaskEntry,
    bank_file_name,
    bank_mask,
    bin_of,
    encode_mask_png,
    generate_mask,
    load_nvidia_masks,
    mask_rng,
    pair_images_with_masks,
    read_mask_bank,
    stroke_mask,
    write_mask_bank,
)


def run_masks(out: Path, per_bin: int = 3, size: int = 64, seed: int = 7) -> int:
    return main(["masks", "--out", str(out), "--per-bin", str(per_bin), "--size", str(size),
                 "--seed", str(seed)])


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        return list(reader)


def measured_ratio(path: Path) -> float:
    return float((read_mask(path, hole_is_white=True) < 0.5).float().mean())


def digest(hole: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(hole).tobytes()).hexdigest()[:16]


# --- the bank through the CLI ------------------------------------------------------------


def test_cli_masks_twice_gives_byte_identical_files(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_masks(first) == 0
    out = capsys.readouterr().out.splitlines()
    assert run_masks(second) == 0
    a, b = files_of(first), files_of(second)
    assert sorted(a) == sorted(["manifest.csv"] + [bank_file_name(i, j) for i in range(6)
                                                   for j in range(3)])
    assert a == b  # every PNG and the manifest, byte for byte
    # One summary line per bin with count and min/mean/max, then where it went.
    assert len(out) == len(NVIDIA_BINS) + 1
    assert out[0].startswith("bin (0.01, 0.1]: 3 masks, hole ratio min ")
    assert "mean" in out[0] and "max" in out[0]
    assert str(first / "manifest.csv") in out[-1]


def test_different_seed_gives_different_masks(tmp_path: Path) -> None:
    assert run_masks(tmp_path / "a", seed=7) == 0
    assert run_masks(tmp_path / "b", seed=8) == 0
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[name] != b[name] for name in a if name.endswith(".png"))


def test_bank_at_256_lies_in_its_bins_and_matches_the_manifest(tmp_path: Path) -> None:
    assert run_masks(tmp_path, per_bin=2, size=256, seed=0) == 0
    rows = read_manifest(tmp_path)
    assert [row["file"] for row in rows] == [bank_file_name(b, j) for b in range(6)
                                             for j in range(2)]
    for row in rows:
        path = tmp_path / row["file"]
        bin_index = int(row["file"][3])
        low, high = NVIDIA_BINS[bin_index]
        assert (float(row["bin_low"]), float(row["bin_high"])) == (low, high)
        with Image.open(path) as image:
            assert image.mode == "L" and image.size == (256, 256)
            assert set(np.unique(np.asarray(image)).tolist()) <= {0, 255}
        ratio = measured_ratio(path)
        assert low < ratio <= high, row
        assert abs(ratio - float(row["hole_ratio"])) <= 1e-6, row
        assert len(row["hole_ratio"].split(".")[1]) == 6


def test_read_mask_bank_validates_against_the_manifest(tmp_path: Path) -> None:
    written = write_mask_bank(tmp_path, per_bin=2, size=64, seed=3)
    entries = read_mask_bank(tmp_path)
    assert [(e.path, e.bin_index) for e in entries] == [(e.path, e.bin_index) for e in written]
    assert all(abs(e.hole_ratio - w.hole_ratio) < 1e-12 for e, w in zip(entries, written,
                                                                          strict=True))
    assert [len(group) for group in masks.group_by_bin(entries)] == [2] * 6

    # A changed file: the ratio no longer matches, and the error names the file.
    victim = tmp_path / bank_file_name(2, 1)
    original = victim.read_bytes()
    hole = np.asarray(Image.open(victim)) > 127
    hole[:, :8] = ~hole[:, :8]
    victim.write_bytes(encode_mask_png(hole))
    with pytest.raises(MaskBankError, match=r"bin2_00001\.png: measured hole ratio"):
        read_mask_bank(tmp_path)
    victim.write_bytes(original)

    # A missing file.
    (tmp_path / bank_file_name(4, 0)).unlink()
    with pytest.raises(MaskBankError, match=r"missing: .*bin4_00000\.png"):
        read_mask_bank(tmp_path)

    # A manifest with other columns.
    (tmp_path / "manifest.csv").write_text("file,ratio\n")
    with pytest.raises(MaskBankError, match="expected the header file,hole_ratio,bin_low"):
        read_mask_bank(tmp_path)
    (tmp_path / "manifest.csv").unlink()
    with pytest.raises(MaskBankError, match="has no manifest.csv .write one with `rfr masks"):
        read_mask_bank(tmp_path)
    with pytest.raises(MaskBankError, match="mask bank not found: .*nowhere is not a dir"):
        read_mask_bank(tmp_path / "nowhere")


def test_rewriting_a_smaller_bank_removes_stale_masks_only(tmp_path: Path) -> None:
    write_mask_bank(tmp_path, per_bin=3, size=32, seed=1)
    (tmp_path / "notes.txt").write_text("mine")
    write_mask_bank(tmp_path, per_bin=1, size=32, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["manifest.csv", "notes.txt", *(bank_file_name(b, 0) for b in range(6))])
    assert len(read_mask_bank(tmp_path)) == 6


def test_cli_rejects_bad_arguments(tmp_path: Path, capsys) -> None:
    for bad in (["--per-bin", "0"], ["--size", "8"], ["--seed", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["masks", "--out", str(tmp_path), *bad])
        assert exit_info.value.code == 2
        assert "rfr masks: error: argument" in capsys.readouterr().err
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("")
    assert run_masks(not_a_dir) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: mask bank output path is not a directory: {not_a_dir}"]


def test_bank_search_reports_exhaustion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masks.bank, "MAX_BANK_ATTEMPTS", 0)
    with pytest.raises(MaskBankError, match=r"no mask with a hole ratio in \(0.3, 0.4\] after 0"):
        bank_mask(64, 0, 3, 0)


# --- per-index seeding --------------------------------------------------------------------


def test_mask_k_is_the_same_alone_in_a_bank_and_in_any_order(tmp_path: Path) -> None:
    size, seed = 64, 11
    forward = [generate_mask(size, seed, k) for k in range(10)]
    backward = dict(zip(range(5, 10), [generate_mask(size, seed, k) for k in range(5, 10)],
                        strict=True))
    backward.update({k: generate_mask(size, seed, k) for k in range(5)})
    assert all(np.array_equal(forward[k], backward[k]) for k in range(10))
    assert not np.array_equal(forward[0], forward[1])
    # "strokes" is the authors'-style generator on the mask's own stream (as rfr.demo uses).
    assert np.array_equal(forward[3], stroke_mask(size, mask_rng(seed, 3)))

    # Bank masks: slot j of bin b alone equals the file in a bank, in any generation order.
    write_mask_bank(tmp_path, per_bin=4, size=size, seed=seed)
    for bin_index in (5, 0, 3):
        for slot in (3, 1, 0, 2):
            alone = encode_mask_png(bank_mask(size, seed, bin_index, slot))
            assert alone == (tmp_path / bank_file_name(bin_index, slot)).read_bytes()


def test_generator_output_is_pinned() -> None:
    """Guards 'mask k is the same on every machine': a change of NumPy's Generator stream
    or of the drawing code shows up here, not as silently different benchmark holes."""
    assert digest(generate_mask(64, 0, 0)) == "b23b8ad12770b7bc"
    assert digest(generate_mask(64, 0, 1, "boxes")) == "42e59129a15f1bab"
    assert digest(generate_mask(64, 0, 2, "mixed")) == "c81e48e2453c975d"
    assert digest(bank_mask(64, 0, 3, 1)) == "c65a35d1a900b48b"


def test_mask_kinds() -> None:
    strokes = generate_mask(64, 5, 2, "strokes")
    boxes = generate_mask(64, 5, 2, "boxes")
    mixed = generate_mask(64, 5, 2, "mixed")
    assert strokes.dtype == bool and strokes.shape == (64, 64)
    assert (mixed | strokes).sum() == mixed.sum()  # mixed = the same strokes plus boxes
    assert boxes.any() and not np.array_equal(boxes, strokes)
    with pytest.raises(ValueError, match="unknown mask kind 'blobs'"):
        generate_mask(64, 0, 0, "blobs")
    with pytest.raises(ValueError, match="seed must be in"):
        generate_mask(64, -1, 0)


# --- bins ---------------------------------------------------------------------------------


def test_bins_and_their_edges() -> None:
    assert NVIDIA_BINS == ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5),
                           (0.5, 0.6))
    assert bin_of(0.1) == 0
    assert bin_of(0.01) is None
    assert bin_of(0.010001) == 0
    assert bin_of(0.100001) == 1
    assert bin_of(0.6) == 5
    assert bin_of(0.61) is None
    assert bin_of(0.0) is None and bin_of(1.0) is None


# --- the NVIDIA folder loader -------------------------------------------------------------

# 20 x 20 = 400 pixels: hole pixel counts and their exact ratios and bins.
FAKE_NVIDIA = {
    "00000.png": (20, 0),  # 0.05
    "00001.png": (40, 0),  # 0.10, the edge: first bin
    "00002.png": (60, 1),  # 0.15
    "00003.png": (100, 2),  # 0.25
    "00004.png": (140, 3),  # 0.35
    "00005.png": (180, 4),  # 0.45
    "00006.png": (240, 5),  # 0.60, the edge: last bin
    "00007.png": (320, None),  # 0.80: outside all bins
    "00008.png": (44, 1),  # 0.11
}


def fake_hole(count: int, side: int = 20) -> np.ndarray:
    hole = np.zeros(side * side, dtype=bool)
    hole[np.random.default_rng(count).permutation(side * side)[:count]] = True
    return hole.reshape(side, side)


def draw_fake_nvidia(folder: Path, hole_is_white: bool, scale: int = 1) -> Path:
    folder.mkdir()
    for name, (count, _) in FAKE_NVIDIA.items():
        hole = np.kron(fake_hole(count), np.ones((scale, scale), dtype=bool))
        white = hole if hole_is_white else ~hole
        Image.fromarray(np.where(white, 255, 0).astype(np.uint8)).save(folder / name)
    (folder / "readme.txt").write_text("not a mask")
    return folder


@pytest.mark.parametrize("hole_is_white", [True, False])
def test_nvidia_loader_bins_by_measured_ratio_and_reports_outside(
        tmp_path: Path, hole_is_white: bool, caplog: pytest.LogCaptureFixture) -> None:
    folder = draw_fake_nvidia(tmp_path / "masks", hole_is_white)
    with caplog.at_level(logging.WARNING, logger="rfr.masks"):
        binned = load_nvidia_masks(folder, hole_is_white=hole_is_white)
    expected: list[list[str]] = [[] for _ in NVIDIA_BINS]
    for name, (_, bin_index) in FAKE_NVIDIA.items():
        if bin_index is not None:
            expected[bin_index].append(name)
    assert [[e.path.name for e in group] for group in binned.by_bin] == expected
    assert [e.path.name for e in binned.outside] == ["00007.png"]
    assert binned.outside[0].hole_ratio == pytest.approx(0.8)
    assert binned.by_bin[0][1].hole_ratio == pytest.approx(0.1)
    assert all(e.hole_is_white is hole_is_white for e in binned.entries)
    assert "1 of 9 masks" in caplog.text and "00007.png" in caplog.text
    assert binned.summary()[-1].startswith("outside all bins: 1 masks")
    # The wrong flag reads ratio r as 1 - r: most masks fall outside, and that is visible.
    flipped = load_nvidia_masks(folder, hole_is_white=not hole_is_white)
    assert len(flipped.outside) == 6


def test_nvidia_loader_resizes_with_nearest_after_thresholding(tmp_path: Path) -> None:
    folder = draw_fake_nvidia(tmp_path / "masks", hole_is_white=True, scale=2)  # 40 x 40
    binned = load_nvidia_masks(folder, hole_is_white=True, size=20)
    ratios = {e.path.name: e.hole_ratio for e in binned.entries}
    assert ratios == {name: pytest.approx(count / 400) for name, (count, _) in
                      FAKE_NVIDIA.items()}
    assert masks.load_entry_mask(binned.by_bin[2][0], size=20).shape == (1, 20, 20)
    with pytest.raises(MaskBankError, match="no .png masks"):
        load_nvidia_masks(tmp_path, hole_is_white=True)


# --- pairing ------------------------------------------------------------------------------


def test_pairing_is_deterministic_and_cycles() -> None:
    bin_entries = [MaskEntry(Path(f"m{k}.png"), 0.05, 0) for k in range(5)]
    pairs = pair_images_with_masks(12, bin_entries)
    assert pairs == pair_images_with_masks(12, bin_entries)
    assert [i for i, _ in pairs] == list(range(12))
    assert [e.path.name for _, e in pairs] == [f"m{k % 5}.png" for k in range(12)]
    assert [e.path.name for _, e in pair_images_with_masks(3, bin_entries)] == [
        "m0.png", "m1.png", "m2.png"]
    assert pair_images_with_masks(0, []) == []
    with pytest.raises(MaskBankError, match="empty bin"):
        pair_images_with_masks(1, [])
