"""A self-contained run of the suite's core on data that ships with it.

Until the DVC pipeline exists this is the README's main job. It (1) fills RFR-Net with the
reference weight recipe and saves it in the *authors'* checkpoint format, (2) checks the
forward pass against the authors' golden output when ``shared/reference`` is available,
and (3) loads that checkpoint back and inpaints a real photograph with a seeded mask. The
weights are seeded random numbers, not trained ones: the inpainted picture shows that the
pipeline runs end to end, not what RFR-Net can do.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rfr.data.embedded import square_photo
from rfr.data.image_io import with_white_holes, write_image
from rfr.inpaint import inpaint
from rfr.masks import hole_ratio, mask_rng, stroke_mask, to_known_mask
from rfr.model.api import RFRNet
from rfr.model.checkpoint import load_checkpoint, save_authors_checkpoint
from rfr.model.reference import layout_of, recipe_state_dict

log = logging.getLogger(__name__)

GOLDEN_FILE = "rfrnet_golden_seed0.npz"
FAITHFULNESS_TOLERANCE = 1e-4


@dataclass
class DemoResult:
    checkpoint: Path
    golden_max_abs_diff: float | None
    hole_ratio: float
    outputs: dict[str, Path]


def golden_max_abs_diff(model: torch.nn.Module, reference_dir: Path) -> float:
    """Max |ours - authors'| on the stored golden case (seed-0 recipe weights)."""
    stored = np.load(reference_dir / GOLDEN_FILE)
    image, mask, expected = (torch.from_numpy(stored[k]) for k in ("image", "mask", "output"))
    with torch.inference_mode():
        output = model.eval()(image * mask, mask)
    return float((output - expected).abs().max())


def run_demo(out_dir: Path, reference_dir: Path | None, seed: int = 0,
             size: int = 256) -> DemoResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    model = RFRNet()
    model.load_state_dict(recipe_state_dict(layout_of(model.state_dict()), seed))
    checkpoint = save_authors_checkpoint(out_dir / f"rfrnet_recipe_seed{seed}.pth",
                                         model.state_dict())
    log.info("wrote %s (authors' format, recipe weights, seed %d)", checkpoint, seed)
    loaded = load_checkpoint(checkpoint)

    diff = None
    if reference_dir is not None and (reference_dir / GOLDEN_FILE).exists() and seed == 0:
        diff = golden_max_abs_diff(loaded, reference_dir)

    image = square_photo("astronaut", size)
    hole = stroke_mask(size, mask_rng(seed, 0), max_parts=3)
    mask = to_known_mask(hole)
    result = inpaint(loaded, image, mask)
    outputs = {
        "image": write_image(image, out_dir / "image.png"),
        "masked": write_image(with_white_holes(image, mask), out_dir / "masked.png"),
        "inpainted": write_image(result, out_dir / "inpainted.png"),
    }
    summary = DemoResult(checkpoint, diff, hole_ratio(hole), outputs)
    (out_dir / "summary.json").write_text(json.dumps({
        "checkpoint": str(checkpoint),
        "weights": f"reference recipe, seed {seed} (random, not trained)",
        "golden_max_abs_diff": diff,
        "faithfulness_tolerance": FAITHFULNESS_TOLERANCE,
        "hole_ratio": summary.hole_ratio,
        "outputs": {k: str(v) for k, v in outputs.items()},
    }, indent=2) + "\n")
    return summary
