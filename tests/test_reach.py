"""Reach: which hole pixels a model can fill at all (rfr/evaluate/reach.py), and the baselines' fix.

The fair-baseline acceptance: at 256x256 and 512x512, on centred squares up to 75 % of
the side and on every mask of a seeded bank in all six bins, PConv and the encoder-
decoder leave no hole pixel unreached where RFR-Net reaches it. (Before the fix the
encoder-decoder passed its mask unchanged through its bottleneck and left 3.5 / 15 / 26
/ 35 % of centred 96 / 128 / 160 / 192 px squares at exactly 0.)
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor, nn

from rfr.config import RFRNetConfig
from rfr.evaluate.reach import (
    SQUARE_FRACTIONS,
    centred_square_mask,
    square_masks,
    unreached_pixels,
    unreached_share,
)
from rfr.masks import NVIDIA_BINS, bank_mask, to_known_mask
from rfr.model.api import RFRNet, build_model
from rfr.model.partial_conv import PartialConv2d

BANK_PER_BIN = {256: 8, 512: 2}
BASELINES = ("pconv", "encdec")


class OneLayer(nn.Module):
    """A single partial convolution under the forward contract (3 output channels)."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.conv = PartialConv2d(3, 3, kernel, 1, kernel // 2, bias=False)

    def forward(self, masked: Tensor, mask: Tensor) -> Tensor:
        return self.conv(masked, mask)[0]


def bank(size: int, per_bin: int) -> Tensor:
    return torch.cat([to_known_mask(bank_mask(size, 0, b, slot))[None]
                      for b in range(len(NVIDIA_BINS)) for slot in range(per_bin)])


def test_the_measurement_finds_exactly_what_a_partial_convolution_zeroes(single_thread):
    """For one layer the answer is known: the positions whose window held no known pixel."""
    layer = OneLayer(7)
    masks = square_masks(64)
    unreached = unreached_pixels(layer, masks)
    _, updated = layer.conv.double()(torch.zeros(4, 3, 64, 64, dtype=torch.float64),
                                     masks.double())
    expected = (updated[:, 0] == 0) & (masks[:, 0] < 0.5)
    assert torch.equal(unreached, expected)
    # a 24 px square hole minus 3 px per side in reach: an 18 px square stays out of reach
    assert unreached_share(unreached, masks)[0] == pytest.approx(18 * 18 / (24 * 24))


@pytest.mark.parametrize("name,config", [
    ("rfr", {"width": 8, "iter_num": 1}),  # about 25 px of reach: a 96 px hole stays open
    ("pconv", {"width": 8, "layers": 2}),  # two levels: the centre of a large hole stays open
    ("encdec", {"width": 8, "blocks": 0}),
])
@pytest.mark.slow
def test_float32_finds_the_same_pixels_as_float64(name, config, single_thread):
    torch.manual_seed(0)
    model = build_model(name, config)
    masks = torch.cat([square_masks(128), bank(128, 1)])
    in_float64 = unreached_pixels(model, masks)
    in_float32 = unreached_pixels(model, masks, dtype=torch.float32)
    assert in_float64.any(), "the case must have unreached pixels to compare"
    assert torch.equal(in_float32, in_float64)


@pytest.mark.slow
def test_rfr_leaves_the_centre_of_a_192px_square_out_of_reach(single_thread):
    """The authors' architecture, as released: six recurrences of two 7x7 partial
    convolutions at half resolution fill about 80 px in from the hole's edge, so the
    centre of a 192 px square at 256x256 gets a constant (1.56 % of the hole). This is
    a finding about RFR-Net (docs/faithfulness.md), not a bug to fix."""
    torch.manual_seed(0)
    model = RFRNet(RFRNetConfig(width=8))
    masks = torch.cat([centred_square_mask(256, 0.625), centred_square_mask(256, 0.75)])
    shares = unreached_share(unreached_pixels(model, masks), masks)
    assert shares[0] == 0
    assert shares[1] == pytest.approx(0.0156, abs=0.002)


@pytest.mark.slow
@pytest.mark.parametrize("size", [256, 512])
@pytest.mark.parametrize("name", BASELINES)
def test_baselines_reach_every_hole_pixel_rfr_net_reaches(name, size, single_thread):
    torch.manual_seed(0)
    baseline = build_model(name, {"width": 8})
    masks = torch.cat([square_masks(size, SQUARE_FRACTIONS), bank(size, BANK_PER_BIN[size])])
    left = unreached_pixels(baseline, masks, dtype=torch.float32)
    if not left.any():
        return  # nothing unreached at all: RFR-Net cannot reach more
    # Only masks where the baseline leaves pixels need RFR-Net's reach (slow at 512).
    worst = sorted({int(i) for i in left.nonzero()[:, 0]})
    torch.manual_seed(0)
    rfr_left = unreached_pixels(RFRNet(RFRNetConfig(width=8)), masks[worst],
                                dtype=torch.float32)
    only_baseline = left[worst] & ~rfr_left
    shares = unreached_share(only_baseline, masks[worst])
    assert not only_baseline.any(), (
        f"{name} at {size}x{size} leaves hole pixels that RFR-Net reaches: "
        f"{', '.join(f'mask {i}: {s:.2%}' for i, s in zip(worst, shares, strict=True))}")


@pytest.mark.slow
def test_the_recurrence_stage_records_reach_and_the_report_shows_it(tmp_path, single_thread):
    from rfr.evaluate.recurrence import architecture_propagation
    from rfr.report.reach import reach_table

    summary = architecture_propagation(tmp_path, size=64, per_bin=1, seed=0, progress=False)
    record = json.loads((tmp_path / "recurrence.json").read_text())["reach"]
    assert record == json.loads(json.dumps(summary["reach"]))
    assert set(record["models"]) == {"rfr", "pconv", "encdec"}
    assert len(record["groups"]) == len(NVIDIA_BINS) + len(SQUARE_FRACTIONS)
    for entries in record["models"].values():
        assert all(entry["n_masks"] == 1 and 0 <= entry["mean"] <= entry["max"] <= 1
                   for entry in entries.values())
    table = reach_table(record, tmp_path / "recurrence.json")
    assert table.header[:2] == ["Masks", "n"] and len(table.rows) == len(record["groups"])
    assert len(table.csv_rows) == 3 * len(record["groups"])
