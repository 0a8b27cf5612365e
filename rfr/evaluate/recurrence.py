"""How RFR-Net's hole shrinks across its recurrences.

The RFR module's area identification is the partial convolutions' mask update: a
feature position becomes known once any position in its window was known. That update
depends on the hole and the architecture (kernel sizes, IterNum) only, never on the
weights. Two places record it:

- ``rfr evaluate`` on an RFR-Net model: per bin of the test masks, at the evaluation
  size, for the trained model (``recurrence.json``, ``recurrence.png`` in its output);
- ``rfr recurrence`` (a pipeline stage): the released architecture at a given size
  (256 = the paper's) on a seeded mask bank, so that the figure shows the mechanism even
  when the pipeline trains at a size where the first convolutions already close the holes
  (at 64x64 they do).

``hole_ratio[k]`` = mean fraction of hole positions of the RFR module's mask before the
recurrences (k = 0) and after recurrence k.

``rfr recurrence`` also records the *reach* of every registered model (``rfr.evaluate.reach``) on
the same masks and on centred squares: the share of each hole that no output pixel can
fill. At 256x256 RFR-Net leaves 1.6 % of a centred 192 px square unreached (its six
recurrences fill about 80 px in from the hole's edge); the baselines reach every pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn
from tqdm import tqdm

from rfr.config import RFRNetConfig
from rfr.data import DatasetConfig, build_dataset
from rfr.data.image_io import with_white_holes, write_image
from rfr.evaluate.aggregate import write_bins_json
from rfr.evaluate.reach import SQUARE_FRACTIONS, centred_square_mask, reach_summary
from rfr.masks import NVIDIA_BINS, bank_mask, format_bin, to_known_mask
from rfr.model.api import MODEL_BUILDERS, RFRNet, build_model, composite
from rfr.precision import precision_context

RECURRENCE_JSON = "recurrence.json"
RECURRENCE_PNG = "recurrence.png"
GRID_PADDING = 2  # as rfr.evaluate.api's grids
REACH_DEFINITION = (
    "share of a mask's hole pixels whose output depends on no known pixel, for the "
    "architecture with structural weights (rfr.evaluate.reach): these pixels get a constant, "
    "whatever the photo and whatever the training; mean and max over the group's masks")


def trace_known_fractions(model: RFRNet, masked: Tensor, mask: Tensor, precision: str,
                          device: torch.device) -> tuple[Tensor, Tensor]:
    """Output, and the RFR module's masks before the recurrences and after each as
    B x (N+1) x 1 x h x w known (1) / hole (0) maps."""
    with precision_context(precision, device.type):
        trace = model.trace(masked.to(device), mask.to(device))
    masks = torch.stack([(m[:, :1] > 0).float().cpu() for m in trace.masks], dim=1)
    return trace.output.float().cpu(), masks


class RecurrenceRecord:
    """Hole fraction of the RFR module's mask per recurrence, per bin; and, for the first
    image of each bin, the masks themselves for a figure."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.bin_index: dict[str, int] = {}
        self.tiles: list[list[Tensor]] = []

    def add(self, label: str, bin_index: int, indices: Sequence[int], known: Tensor,
            masks: Tensor, output: Tensor, images: Tensor, examples: int) -> None:
        hole = 1.0 - known.mean(dim=(2, 3, 4))  # B x (N+1)
        self.sums[label] = self.sums.get(label, 0) + hole.double().sum(dim=0)
        self.counts[label] = self.counts.get(label, 0) + hole.shape[0]
        self.bin_index[label] = bin_index
        if examples and indices and indices[0] == 0:
            size = images.shape[-2:]
            row = [with_white_holes(images[0], masks[0])]
            for level in known[0]:
                up = torch.nn.functional.interpolate(level[None], size=size, mode="nearest")[0]
                row.append((1.0 - up).expand(3, -1, -1))  # hole white, known black
            row.append(composite(output[:1], images[:1], masks[:1])[0].clamp(0, 1))
            self.tiles.append(row)

    def summary(self, iter_num: int) -> dict[str, Any]:
        bins = {label: {"bin_index": self.bin_index[label],
                        "hole_ratio": (self.sums[label] / self.counts[label]).tolist(),
                        "n_images": self.counts[label]} for label in self.sums}
        total = sum(self.counts.values())
        overall = sum(self.sums.values()) / total if total else None
        return {
            "status": "ok", "iter_num": iter_num,
            "definition": "hole_ratio[k]: mean fraction of hole pixels in the RFR module's "
                          "mask before the recurrences (k = 0) and after recurrence k",
            "bins": bins,
            "overall": {"hole_ratio": overall.tolist() if overall is not None else None,
                        "n_images": total},
            "figure_columns": ["masked input"] + [f"mask after {k}" for k in
                                                  range(iter_num + 1)] + ["composite"],
        }


def write_recurrence(record: RecurrenceRecord | None, model: nn.Module | None,
                      out_dir: Path) -> None:
    """recurrence.json always (``not applicable`` for models without recurrences), so the
    pipeline can declare it as an output of every evaluation."""
    json_path = out_dir / RECURRENCE_JSON
    png_path = out_dir / RECURRENCE_PNG
    if record is None or not record.counts:
        what = "a predictions folder" if model is None else type(model).__name__
        write_bins_json({"status": "not applicable",
                         "reason": f"{what} has no recurrent feature reasoning"}, json_path)
        png_path.unlink(missing_ok=True)
        return
    assert isinstance(model, RFRNet)
    write_bins_json(record.summary(model.config.iter_num), json_path)
    if record.tiles:
        tiles = [tile for row in record.tiles for tile in row]
        grid = torchvision.utils.make_grid(torch.stack(tiles), nrow=len(record.tiles[0]),
                                           padding=GRID_PADDING, pad_value=1.0)
        write_image(grid, png_path)


def architecture_reach(rfr_model: RFRNet, size: int, per_bin: int, seed: int,
                       progress: bool = True) -> dict[str, Any]:
    """The share of each hole that no output pixel can reach (``rfr.evaluate.reach``), for the
    released architecture and every other registered model, on the same bank masks per
    bin and on centred squares: whether a method loses a large hole by construction."""
    bank = [(format_bin(b), to_known_mask(bank_mask(size, seed, b, slot))[None])
            for b in range(len(NVIDIA_BINS)) for slot in range(per_bin)]
    squares = [(f"centred square {fraction:.1%} of the side", centred_square_mask(size, fraction))
               for fraction in SQUARE_FRACTIONS]
    labels = [label for label, _ in bank + squares]
    masks = torch.cat([mask for _, mask in bank + squares])
    models = {"rfr": rfr_model}
    for name in MODEL_BUILDERS:
        if name != "rfr":
            torch.manual_seed(seed)
            models[name] = build_model(name, {"width": rfr_model.config.width})
    return {
        "definition": REACH_DEFINITION, "size": size, "groups": list(dict.fromkeys(labels)),
        "models": reach_summary(models, masks, labels, progress=progress),
    }


def architecture_propagation(out_dir: str | Path, *, size: int = 256, per_bin: int = 8,
                             seed: int = 0, kernel_size: int = 7, iter_num: int = 6,
                             image_dataset: str = "demo-scenes",
                             progress: bool = True) -> dict[str, Any]:
    """Record the hole shrinking of the RFR-Net architecture (kernel ``kernel_size``,
    ``iter_num`` recurrences) at ``size`` on ``per_bin`` seeded bank masks per NVIDIA bin.
    The network is seeded and untrained, which is exact here: the masks do not depend on
    the weights. The figure's photo (first test image of ``image_dataset``) only gives
    the masks a context."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = RFRNet(RFRNetConfig(width=8, kernel_size=kernel_size, iter_num=iter_num)).eval()
    image = build_dataset(DatasetConfig(name=image_dataset, split="test", size=size,
                                        limit=1))[0]["image"]
    record = RecurrenceRecord()
    device = torch.device("cpu")
    bar = tqdm(total=per_bin * len(NVIDIA_BINS), desc="recurrence", unit="mask",
               disable=not progress)
    for bin_index in range(len(NVIDIA_BINS)):
        for slot in range(per_bin):
            known = to_known_mask(bank_mask(size, seed, bin_index, slot))[None]
            masked = image[None] * known
            with torch.inference_mode():
                output, levels = trace_known_fractions(model, masked, known, "fp32", device)
            record.add(format_bin(bin_index), bin_index, [slot], levels, known, output,
                       image[None], examples=1)
            bar.update(1)
    bar.close()
    summary = record.summary(iter_num)
    summary.update({
        "size": size, "kernel_size": kernel_size, "masks_per_bin": per_bin, "seed": seed,
        "weights": "seeded, untrained: the mask update does not depend on the weights",
        "figure_columns": ["masked input"] + [f"mask after {k}" for k in range(iter_num + 1)],
        "reach": architecture_reach(model, size, per_bin, seed, progress),
    })
    write_bins_json(summary, out_dir / RECURRENCE_JSON)
    tiles = [tile for row in record.tiles for tile in row[:-1]]
    grid = torchvision.utils.make_grid(torch.stack(tiles), nrow=len(record.tiles[0]) - 1,
                                       padding=GRID_PADDING, pad_value=1.0)
    write_image(grid, out_dir / RECURRENCE_PNG)
    return summary
