"""The NVIDIA irregular mask test set as a mask source: the published layout checked on
load (names and count, count per bin, binary, size, each mask's ratio in its bin), the
bank written from it read by every evaluation like the seeded bank, and the mask source
as profile configuration (``rfr masks --params``, validation, ``-S``).

The folders are built here in the published layout with masks whose hole ratios are known
exactly (a run of ``k`` hole pixels of ``side * side``): a small layout (4 per bin) for
most checks, and the full 12,000 files at 8 x 8 for the count.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from rfr import cli
from rfr.errors import ConfigError, MaskBankError
from rfr.masks import (
    MANIFEST_NAME,
    NVIDIA_BINS,
    NVIDIA_TEST_LAYOUT,
    SOURCE_NAME,
    BankSource,
    NvidiaLayout,
    NvidiaSource,
    encode_mask_png,
    group_by_bin,
    load_nvidia_test_set,
    mask_source,
    pair_images_with_masks,
    read_mask_bank,
    select_indices,
    write_mask_bank,
    write_masks,
    write_nvidia_bank,
)
from rfr.masks.source import source_hints

SMALL = NvidiaLayout(4)  # 24 files: per bin 2 with border, 2 without


def hole_count(side: int, bin_index: int, slot: int, per_bin: int) -> int:
    """Hole pixels of mask ``slot`` of a bin: spread inside the bin, clear of its edges."""
    low, high = NVIDIA_BINS[bin_index]
    fraction = 0.2 + 0.6 * slot / max(1, per_bin - 1)
    return round((low + (high - low) * fraction) * side * side)


def hole_map(side: int, count: int, shift: int = 0) -> np.ndarray:
    flat = np.zeros(side * side, dtype=bool)
    flat[:count] = True
    return np.roll(flat, shift).reshape(side, side)


def mask_png(hole: np.ndarray, hole_is_white: bool) -> bytes:
    return encode_mask_png(hole if hole_is_white else ~hole)


def nvidia_folder(path, layout: NvidiaLayout = SMALL, side: int = 32,
                  hole_is_white: bool = False):
    """A test-set folder in ``layout``: file i is in bin i // per_bin (black holes, as the
    copies people downloaded)."""
    path.mkdir(parents=True, exist_ok=True)
    blobs: dict[tuple[int, int], bytes] = {}
    for index in range(layout.total):
        bin_index, slot = divmod(index, layout.per_bin)
        slot %= 4  # four distinct masks per bin are enough for the big layout
        key = (bin_index, slot)
        if key not in blobs:
            count = hole_count(side, bin_index, slot, min(layout.per_bin, 4))
            blobs[key] = mask_png(hole_map(side, count, 3 * slot), hole_is_white)
        (path / layout.file_name(index)).write_bytes(blobs[key])
    return path


@pytest.fixture
def small(tmp_path):
    return nvidia_folder(tmp_path / "nvidia")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The full published layout, 12,000 files, at 8 x 8."""
    return nvidia_folder(tmp_path_factory.mktemp("published") / "testing_mask_dataset",
                         NVIDIA_TEST_LAYOUT, side=8)


# --- the layout ---------------------------------------------------------------------------

def test_the_published_layout_loads_with_2000_per_bin(published):
    test_set = load_nvidia_test_set(published, hole_is_white=False, size=8)
    assert len(test_set.masks) == 12_000
    assert test_set.counts() == [2000] * 6
    assert test_set.size == (8, 8)
    first, last = test_set.masks[0], test_set.masks[-1]
    assert (first.path.name, first.bin_index, first.with_border) == ("00000.png", 0, True)
    assert (last.path.name, last.bin_index, last.with_border) == ("11999.png", 5, False)
    assert sum(m.with_border for m in test_set.by_bin[2]) == 1000
    assert test_set.masks[1000].with_border is False and test_set.masks[999].with_border


def test_a_subset_takes_the_first_of_each_half(published):
    test_set = load_nvidia_test_set(published, hole_is_white=False, size=8, per_bin=2)
    assert [m.index for m in test_set.by_bin[1]] == [2000, 2001, 3000, 3001]
    assert test_set.counts() == [4] * 6
    without = load_nvidia_test_set(published, hole_is_white=False, size=8, per_bin=1,
                                   border="without")
    assert [m.index for m in without.masks] == [1000, 3000, 5000, 7000, 9000, 11000]
    assert select_indices(SMALL, None, "with") == [0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21]
    with pytest.raises(MaskBankError, match=r"per_bin must be in \[1, 1000\]"):
        select_indices(NVIDIA_TEST_LAYOUT, 1001, "both")


def test_measured_ratios_are_the_files_ratios(small):
    test_set = load_nvidia_test_set(small, hole_is_white=False, size=32, layout=SMALL)
    expected = hole_count(32, 3, 1, 4) / 1024
    assert test_set.by_bin[3][1].hole_ratio == pytest.approx(expected, abs=1e-12)
    for bin_index, group in enumerate(test_set.by_bin):
        low, high = NVIDIA_BINS[bin_index]
        assert all(low < m.hole_ratio <= high for m in group)


def test_a_missing_file_is_named(tmp_path):
    folder = nvidia_folder(tmp_path / "n")
    (folder / "00013.png").unlink()
    with pytest.raises(MaskBankError, match=r"found 23 \.png files, the published layout has "
                       r"24.*missing 1, e.g. .*00013\.png"):
        load_nvidia_test_set(folder, hole_is_white=False, size=32, layout=SMALL)


def test_the_published_count_is_checked_without_the_layout_argument(small):
    with pytest.raises(MaskBankError, match=r"found 24 \.png files, the published layout "
                       r"has 12000 \(00000\.png \.\. 11999\.png, 2000 per bin\)"):
        load_nvidia_test_set(small, hole_is_white=False, size=32)


def test_an_extra_file_is_named(small):
    (small / "00024.png").write_bytes((small / "00000.png").read_bytes())
    with pytest.raises(MaskBankError, match=r"unexpected 1, e.g. .*00024\.png"):
        load_nvidia_test_set(small, hole_is_white=False, size=32, layout=SMALL)


def test_a_mask_in_the_wrong_bin_is_named(small):
    # file 9 is in bin 2 (0.2, 0.3]; give it a hole ratio of bin 4
    (small / "00009.png").write_bytes(mask_png(hole_map(32, 460), False))
    with pytest.raises(MaskBankError, match=r"00009\.png: hole ratio 0\.4492 is outside its "
                       r"published bin \(0\.2, 0\.3\]"):
        load_nvidia_test_set(small, hole_is_white=False, size=32, layout=SMALL)


def test_the_wrong_hole_colour_fails_with_a_hint(small):
    with pytest.raises(MaskBankError, match=r"00000\.png: hole ratio 0\.9.* with holes read "
                       r"as black it would fit"):
        load_nvidia_test_set(small, hole_is_white=True, size=32, layout=SMALL)


def test_the_tolerance_lets_a_mask_just_over_its_edge_pass(small):
    # bin 0 is (0.01, 0.1]; 104 of 1024 pixels is 0.1016
    (small / "00002.png").write_bytes(mask_png(hole_map(32, 104), False))
    test_set = load_nvidia_test_set(small, hole_is_white=False, size=32, layout=SMALL)
    assert test_set.masks[2].hole_ratio == pytest.approx(104 / 1024)
    with pytest.raises(MaskBankError, match=r"00002\.png.*tolerance 0\)"):
        load_nvidia_test_set(small, hole_is_white=False, size=32, layout=SMALL,
                             ratio_tolerance=0)


def test_a_non_binary_mask_is_named_unless_a_threshold_is_given(small):
    hole = hole_map(32, hole_count(32, 1, 0, 4))
    grey = np.where(hole, 0, 255).astype(np.uint8)
    grey[-1, -4:] = 200  # anti-aliased edge, lighter than the cut: not hole
    Image.fromarray(grey).save(small / "00004.png")
    with pytest.raises(MaskBankError, match=r"00004\.png: not binary \(4 of 1024 pixels"):
        load_nvidia_test_set(small, hole_is_white=False, size=32, layout=SMALL)
    test_set = load_nvidia_test_set(small, hole_is_white=False, size=32, layout=SMALL,
                                    threshold=0.5)
    assert test_set.masks[4].hole_ratio == pytest.approx(hole.sum() / 1024)


def test_a_mask_of_another_size_is_named(small):
    (small / "00017.png").write_bytes(mask_png(hole_map(40, 600), False))
    with pytest.raises(MaskBankError, match=r"00017\.png: size 40x40, expected 32x32"):
        load_nvidia_test_set(small, hole_is_white=False, size=32, layout=SMALL)
    with pytest.raises(MaskBankError, match=r"00000\.png: size 32x32, expected 512x512"):
        load_nvidia_test_set(small, hole_is_white=False, layout=SMALL)
    with pytest.raises(MaskBankError, match=r"00017\.png: size 40x40, expected 32x32"):
        load_nvidia_test_set(small, hole_is_white=False, size=None, layout=SMALL)


@pytest.mark.parametrize("content", [b"", b"not a png at all", None])
def test_a_corrupt_file_is_named(small, content):
    path = small / "00021.png"
    path.write_bytes(path.read_bytes()[:40] if content is None else content)
    with pytest.raises(MaskBankError, match=r"00021\.png: not a readable PNG mask"):
        load_nvidia_test_set(small, hole_is_white=False, size=32, layout=SMALL)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(MaskBankError, match="NVIDIA test-mask folder not found: .*nowhere"):
        load_nvidia_test_set(tmp_path / "nowhere", hole_is_white=False)


# --- the bank written from it -------------------------------------------------------------

def test_the_bank_is_read_like_the_seeded_bank_and_pairs_with_images(small, tmp_path):
    out = tmp_path / "bank"
    written = write_nvidia_bank(small, out, hole_is_white=False, file_size=32, layout=SMALL)
    entries = read_mask_bank(out)
    assert [e.path.name for e in entries] == [f"nvidia_{i:05d}.png" for i in range(24)]
    assert [e.hole_ratio for e in entries] == pytest.approx([e.hole_ratio for e in written])
    groups = group_by_bin(entries)
    assert [len(g) for g in groups] == [4] * 6
    pairs = pair_images_with_masks(6, groups[2])
    assert [entry.path.name for _, entry in pairs] == [
        "nvidia_00008.png", "nvidia_00009.png", "nvidia_00010.png", "nvidia_00011.png",
        "nvidia_00008.png", "nvidia_00009.png"]
    # white = hole in the bank, whatever the files used
    bank = np.asarray(Image.open(out / "nvidia_00008.png"))
    assert set(np.unique(bank)) == {0, 255}
    assert np.count_nonzero(bank == 255) == hole_count(32, 2, 0, 4)
    source = json.loads((out / SOURCE_NAME).read_text())
    assert source["source"] == "nvidia" and source["hole"] == "black"
    assert source["counts"]["(0.2, 0.3]"] == 4 and source["moved"] == []


def test_a_resized_bank_moves_masks_that_cross_an_edge(small, tmp_path):
    # 2 x 2 blocks, so halving the side keeps every ratio exactly
    for index in range(SMALL.total):
        bin_index, slot = divmod(index, SMALL.per_bin)
        hole = np.kron(hole_map(16, hole_count(16, bin_index, slot, 4)), np.ones((2, 2)))
        (small / SMALL.file_name(index)).write_bytes(mask_png(hole.astype(bool), False))
    # file 2 (bin 0): 26 / 256 = 0.1016, in bin 0 by the tolerance, in bin 1 as measured
    hole = np.kron(hole_map(16, 26), np.ones((2, 2))).astype(bool)
    (small / "00002.png").write_bytes(mask_png(hole, False))
    out = tmp_path / "bank"
    written = write_nvidia_bank(small, out, hole_is_white=False, file_size=32, size=16,
                                layout=SMALL, per_bin=1, border="both")
    entries = read_mask_bank(out)
    assert [e.path.name for e in entries] == [e.path.name for e in written]
    assert [len(g) for g in group_by_bin(entries)] == [1, 3, 2, 2, 2, 2]
    assert [e.path.name for e in group_by_bin(entries)[1]] == [
        "nvidia_00002.png", "nvidia_00004.png", "nvidia_00006.png"]
    assert np.asarray(Image.open(entries[0].path)).shape == (16, 16)
    assert entries[0].hole_ratio == hole_count(16, 0, 0, 4) / 256
    source = json.loads((out / SOURCE_NAME).read_text())
    assert source["moved"] == [{"file": "00002.png", "published_bin": "(0.01, 0.1]",
                                "hole_ratio": pytest.approx(26 / 256, abs=1e-6),
                                "bank_bin": "(0.1, 0.2]"}]
    assert source["dropped"] == [] and source["size"] == 16


def test_a_mask_that_leaves_every_bin_is_dropped_and_recorded(small, tmp_path):
    # file 0 (bin 0): 12 hole pixels in one row of 32 x 32 (0.0117); halving the side
    # keeps every other row, and this one is not kept
    (small / "00000.png").write_bytes(mask_png(hole_map(32, 12), False))
    out = tmp_path / "bank"
    write_nvidia_bank(small, out, hole_is_white=False, file_size=32, size=16, layout=SMALL,
                      per_bin=1, border="with")
    source = json.loads((out / SOURCE_NAME).read_text())
    assert [d["file"] for d in source["dropped"]] == ["00000.png"]
    assert "nvidia_00000.png" not in {e.path.name for e in read_mask_bank(out)}


def test_the_seeded_bank_bytes_are_unchanged(tmp_path):
    direct, via_source = tmp_path / "direct", tmp_path / "source"
    write_mask_bank(direct, 2, size=32, seed=3)
    # an earlier NVIDIA bank in the folder must not leave files behind
    (via_source / "nvidia_00000.png").parent.mkdir()
    (via_source / "nvidia_00000.png").write_bytes(b"x")
    (via_source / SOURCE_NAME).write_text("{}")
    write_masks(mask_source({"per_bin": 2, "size": 32, "seed": 3}), via_source)
    names = sorted(p.name for p in direct.iterdir())
    assert sorted(p.name for p in via_source.iterdir()) == names
    assert MANIFEST_NAME in names and len(names) == 13
    for name in names:
        assert (via_source / name).read_bytes() == (direct / name).read_bytes(), name


def test_the_bank_source_has_write_mask_banks_arguments():
    assert source_hints("bank") == {"per_bin": int, "size": int, "seed": int}
    assert list(BankSource.__dataclass_fields__) == list(source_hints("bank"))


# --- the source as configuration ----------------------------------------------------------

def test_a_masks_section_without_source_is_the_seeded_bank():
    assert mask_source({"per_bin": 16, "size": 64, "seed": 0}) == BankSource(16, 64, 0)
    assert mask_source({"source": "bank", "per_bin": 1, "size": 16, "seed": 2}) == \
        BankSource(1, 16, 2)
    source = mask_source({"source": "nvidia", "folder": "m", "hole": "black", "size": 256,
                          "per_bin": 10})
    assert source == NvidiaSource("m", "black", size=256, per_bin=10)
    assert source.hole_is_white is False and source.file_size == 512


@pytest.mark.parametrize("settings,message", [
    ({"per_bin": 16, "size": 64}, "masks must have exactly the keys ['per_bin', 'size', "
                                  "'seed'] (for the seeded bank; or set source: nvidia)"),
    ({"source": "nvidia", "per_bin": 16, "size": 64, "seed": 0},
     "masks: source: nvidia needs ['folder', 'hole']"),
    ({"source": "nvidia", "folder": "m", "hole": "grey"},
     "masks.hole: expected one of ['white', 'black'], got 'grey'"),
    ({"source": "nvidia", "folder": "m", "hole": "black", "seed": 0},
     "masks: unknown key(s) ['seed'] for NvidiaSource"),
    ({"source": "nvidia", "folder": "m", "hole": "black", "border": "inner"},
     "masks.border: expected one of ['both', 'with', 'without']"),
    ({"source": "nvidia", "folder": "m", "hole": "black", "size": 8},
     "masks: size must be at least 16 or null, got 8"),
    ({"source": "nvidia", "folder": "m", "hole": "black", "ratio_tolerance": -0.1},
     "masks: ratio_tolerance must be >= 0"),
    ({"source": "nvdia", "per_bin": 16, "size": 64, "seed": 0},
     "masks.source: expected one of ['bank', 'nvidia'], got 'nvdia'"),
])
def test_a_bad_masks_section_names_the_key(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        mask_source(settings)


def demo_profile(tmp_path: Path, masks: dict) -> Path:
    from rfr.pipeline import PROFILES_DIR

    params = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
    params["masks"] = masks
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_the_profile_accepts_both_sources_and_names_the_file(tmp_path, small):
    from rfr import pipeline

    nvidia = {"source": "nvidia", "folder": str(small), "hole": "black", "size": 32}
    pipeline.load_params(demo_profile(tmp_path, nvidia), check_roots=False)
    bad = demo_profile(tmp_path, {**nvidia, "hole": "gray"})
    with pytest.raises(ConfigError, match=re.escape(f"{bad}: masks.hole: expected one of")):
        pipeline.load_params(bad, check_roots=False)


def test_overrides_reach_the_nvidia_keys(tmp_path, small):
    from rfr import pipeline

    path = demo_profile(tmp_path, {"source": "nvidia", "folder": str(small),
                                   "hole": "black"})
    params = pipeline.load_params(path, check_roots=False, overrides=[
        "masks.per_bin=1", "masks.hole=white", "masks.size=null", "masks.border=with"])
    assert mask_source(params["masks"]) == NvidiaSource(str(small), "white", size=None,
                                                        per_bin=1, border="with")
    with pytest.raises(ConfigError, match=r"unknown key 'hol' for masks"):
        pipeline.load_params(path, check_roots=False, overrides=["masks.hol=black"])
    with pytest.raises(ConfigError, match=r"-S masks.border=inner: expected one of"):
        pipeline.load_params(path, check_roots=False, overrides=["masks.border=inner"])


def test_rfr_masks_params_writes_the_seeded_bank(tmp_path, capsys):
    path = demo_profile(tmp_path, {"per_bin": 2, "size": 32, "seed": 1})
    out = tmp_path / "bank"
    assert cli.main(["masks", "--params", str(path), "--out", str(out)]) == 0
    direct = tmp_path / "direct"
    write_mask_bank(direct, 2, size=32, seed=1)
    assert (out / MANIFEST_NAME).read_bytes() == (direct / MANIFEST_NAME).read_bytes()
    assert not (out / SOURCE_NAME).exists()
    assert "seeded bank (32x32, seed 1" in capsys.readouterr().out


def test_rfr_masks_params_writes_the_nvidia_bank(tmp_path, published, capsys):
    path = demo_profile(tmp_path, {"source": "nvidia", "folder": str(published),
                                   "hole": "black", "file_size": 8, "per_bin": 1,
                                   "border": "with"})
    out = tmp_path / "bank"
    assert cli.main(["masks", "--params", str(path), "--out", str(out)]) == 0
    entries = read_mask_bank(out)
    assert [e.path.name for e in entries] == [f"nvidia_{i:05d}.png"
                                             for i in range(0, 12_000, 2000)]
    assert "wrote 6 masks, NVIDIA test set from" in capsys.readouterr().out


def test_rfr_masks_errors_are_one_line(tmp_path, small, capsys):
    path = demo_profile(tmp_path, {"source": "nvidia", "folder": str(small),
                                   "hole": "black", "file_size": 32})
    assert cli.main(["masks", "--params", str(path), "--out", str(tmp_path / "b")]) != 0
    assert "found 24 .png files, the published layout has 12000" in capsys.readouterr().err
    assert cli.main(["masks", "--params", str(path), "--out", str(tmp_path / "b"),
                     "--seed", "1"]) != 0
    assert "drop --seed" in capsys.readouterr().err
    assert cli.main(["masks", "--nvidia", str(small), "--out", str(tmp_path / "b")]) != 0
    assert "--nvidia needs --hole" in capsys.readouterr().err


def test_rfr_masks_flags_still_write_the_seeded_bank(tmp_path):
    out, direct = tmp_path / "bank", tmp_path / "direct"
    assert cli.main(["masks", "--out", str(out), "--per-bin", "1", "--size", "16"]) == 0
    write_mask_bank(direct, 1, size=16, seed=0)
    assert (out / MANIFEST_NAME).read_bytes() == (direct / MANIFEST_NAME).read_bytes()


def test_rfr_masks_nvidia_flags_reach_the_checks(tmp_path, published, capsys):
    """--nvidia expects the published 512 x 512 files: the 8 x 8 copy is named."""
    code = cli.main(["masks", "--nvidia", str(published), "--hole", "black", "--per-bin", "1",
                     "--out", str(tmp_path / "b")])
    assert code != 0
    assert re.search(r"00000\.png: size 8x8, expected 512x512", capsys.readouterr().err)
    assert not (tmp_path / "b").exists()


def test_write_masks_writes_an_nvidia_source(small, tmp_path):
    source = NvidiaSource(str(small), "black", size=16, file_size=32, per_bin=2,
                          border="without")
    entries = write_masks(source, tmp_path / "bank", layout=SMALL)
    assert [e.path.name for e in entries] == [f"nvidia_{i:05d}.png"
                                             for i in (2, 3, 6, 7, 10, 11, 14, 15, 18, 19,
                                                       22, 23)]
    read = read_mask_bank(tmp_path / "bank")
    assert [(e.path.name, e.bin_index) for e in read] == [(e.path.name, e.bin_index)
                                                          for e in entries]
    assert [e.hole_ratio for e in read] == pytest.approx([e.hole_ratio for e in entries],
                                                         abs=1e-6)
