"""The architecture-level record of RFR-Net's hole shrinking (rfr recurrence)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from rfr.config import RFRNetConfig
from rfr.evaluate.recurrence import architecture_propagation, trace_known_fractions
from rfr.masks import NVIDIA_BINS, bank_mask, to_known_mask
from rfr.model.api import RFRNet


def test_the_mask_update_does_not_depend_on_the_weights():
    """What makes an untrained network a valid instrument for the figure."""
    known = to_known_mask(bank_mask(128, 0, 5, 0))[None]
    image = torch.rand(1, 3, 128, 128)
    levels = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = RFRNet(RFRNetConfig(width=8, iter_num=3)).eval()
        with torch.inference_mode():
            levels.append(trace_known_fractions(model, image * known, known, "fp32",
                                                torch.device("cpu"))[1])
    assert torch.equal(levels[0], levels[1])
    assert levels[0].shape == (1, 4, 1, 64, 64)


@pytest.mark.slow
def test_architecture_record_shrinks_and_grows_with_the_hole(tmp_path, single_thread):
    summary = architecture_propagation(tmp_path, size=128, per_bin=2, seed=0, iter_num=3,
                                       progress=False)
    record = json.loads((tmp_path / "recurrence.json").read_text())
    assert record == json.loads(json.dumps(summary))
    assert record["size"] == 128 and record["iter_num"] == 3 and record["kernel_size"] == 7
    curves = [entry["hole_ratio"] for entry in record["bins"].values()]
    assert len(curves) == len(NVIDIA_BINS) and all(len(c) == 4 for c in curves)
    for curve in curves:
        assert all(a >= b for a, b in zip(curve, curve[1:], strict=False))
    assert curves[-1][0] > curves[0][0], "larger holes leave more to the recurrences"
    assert record["overall"]["hole_ratio"][0] == pytest.approx(
        sum(c[0] for c in curves) / len(curves))
    width, height = Image.open(tmp_path / "recurrence.png").size
    step = 128 + 2
    assert (width, height) == ((1 + 4) * step + 2, len(NVIDIA_BINS) * step + 2)
