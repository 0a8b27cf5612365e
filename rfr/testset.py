"""Export the exact (image, mask) pairs of an evaluation, so another method can be scored
on them with ``rfr evaluate --predictions``.

Why a separate, top-level module: the evaluate stages' import closure (their DVC code
deps) must not grow for a verb they never run. The pairs are not re-derived here: the
images and masks come from ``rfr.evaluate.batches.EvalData``, the object that feeds the
evaluator, so the exported pairs are the evaluated pairs by construction.

Layout of an exported folder ``DIR`` (``<pair>`` is ``bin<b>/<image name without its
image extension>``, e.g. ``bin2/000123``; the predictions scheme of ``rfr.evaluate.api``):

- ``images/<pair>.png``: the S x S RGB image exactly as the evaluator scores it (the test
  transform's centre crop resized to S), as 8-bit PNG (so within half an 8-bit step).
- ``masks/<pair>.png``: its mask, exactly (bitwise) as the evaluator uses it, 8-bit
  grayscale: holes white (255), known pixels black (0).
- ``manifest.csv``: one row per pair, in evaluation order (``MANIFEST_COLUMNS``).
- ``testset.json``: what was exported (dataset, split, size, mask bank and the SHA-256 of
  its manifest, hole colour, the pairs' SHA-256) and how to write and score predictions.
- ``README.txt``: the same instructions in prose.

An outside method writes ``<predictions>/<pair>.png`` (S x S, 8-bit RGB PNG) for every
row; ``rfr evaluate --predictions <predictions>`` with the flags in ``testset.json``
(``score_command``) scores it on exactly these pairs.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor

from rfr.atomic import atomic_open, write_text_atomic
from rfr.config import ConfigError, to_dict
from rfr.data import DatasetConfig
from rfr.evaluate.batches import EvalData
from rfr.evaluate.config import EvalConfig
from rfr.evaluate.layout import image_id, prediction_relpath
from rfr.masks import format_bin
from rfr.weights import file_sha256

TESTSET_FORMAT = "rfr-bench test set v1"
MANIFEST_CSV = "manifest.csv"
HEADER_JSON = "testset.json"
README_TXT = "README.txt"
IMAGES_DIR = "images"
MASKS_DIR = "masks"
MANIFEST_COLUMNS = ("pair", "eval_id", "bin", "bin_index", "image_index", "image_name",
                    "source_image", "mask", "hole_ratio", "image_file", "mask_file",
                    "prediction_file")
HOLE_COLOUR = "white"  # 255 = hole, 0 = known, as the seeded bank's PNGs


@dataclass(frozen=True)
class ExportResult:
    """Where the test set went and how many pairs it holds."""

    out_dir: Path
    manifest_csv: Path
    header_json: Path
    n_pairs: int


def pair_name(bin_index: int, image_name: str) -> str:
    """``bin<b>/<name without image extension>``: the pair id, and (plus ``.png``) the
    file name of its image, its mask and its prediction."""
    return str(prediction_relpath(bin_index, image_name).with_suffix(""))


def png_bytes(array: np.ndarray) -> bytes:
    """An 8-bit array (H x W or H x W x 3) as PNG bytes (written atomically later)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def image_png(image: Tensor) -> bytes:
    """A 3 x S x S image in [0, 1] as 8-bit RGB PNG (round to nearest, as write_image)."""
    array = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0)
    return png_bytes(array.cpu().numpy())


def mask_png(known: Tensor) -> bytes:
    """A 1 x S x S mask (1 = known, 0 = hole) as 8-bit grayscale, holes white."""
    holes = (known[0] < 0.5).cpu().numpy()
    return png_bytes(np.where(holes, 255, 0).astype(np.uint8))


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse a non-empty folder unless ``force``: old files of another export would
    otherwise mix with the new pairs."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"export-testset: {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ConfigError(f"export-testset: {out_dir} is not empty; choose an empty or new "
                          f"folder, or pass --force to overwrite the test set in it")
    if force:  # only the files an export writes: stale pairs must not survive
        (out_dir / HEADER_JSON).unlink(missing_ok=True)
        for folder in (IMAGES_DIR, MASKS_DIR):
            if (out_dir / folder).is_dir():
                shutil.rmtree(out_dir / folder)


def score_command(config: EvalConfig, predictions: str = "PREDICTIONS",
                  out: str = "OUT") -> list[str]:
    """The ``rfr evaluate`` argv that scores a predictions folder on the exported pairs."""
    dataset = config.dataset
    argv = ["rfr", "evaluate", "--predictions", predictions, "--dataset", dataset.name]
    if dataset.root is not None:
        argv += ["--root", str(dataset.root)]
    argv += ["--split", dataset.split, "--size", str(dataset.size), "--masks",
             str(config.masks)]
    if config.limit is not None:
        argv += ["--limit", str(config.limit)]
    return [*argv, "--out", out]


def export_testset(dataset: DatasetConfig, masks: str | Path, out_dir: str | Path, *,
                   limit: int | None = None, batch_size: int = 8, num_workers: int = 0,
                   force: bool = False) -> ExportResult:
    """Write the pairs ``rfr evaluate`` scores for (``dataset``, ``masks``, ``limit``) to
    ``out_dir`` (layout in the module doc). Every file is written atomically; the manifest
    and the header last, so a folder with a header is complete."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force)
    config = EvalConfig(predictions=str(out_dir / "predictions"), dataset=dataset,
                        masks=str(masks), out_dir=str(out_dir), batch_size=batch_size,
                        limit=limit, num_workers=num_workers)
    data = EvalData(config)
    rows: list[dict[str, Any]] = []
    for batch in data.batches(progress=False):
        for k, (index, name, entry) in enumerate(zip(batch.indices, batch.names,
                                                     batch.entries, strict=True)):
            pair = pair_name(batch.bin_index, name)
            image_file = PurePosixPath(IMAGES_DIR) / f"{pair}.png"
            mask_file = PurePosixPath(MASKS_DIR) / f"{pair}.png"
            with atomic_open(out_dir / image_file, "wb") as handle:
                handle.write(image_png(batch.images[k]))
            with atomic_open(out_dir / mask_file, "wb") as handle:
                handle.write(mask_png(batch.masks[k]))
            rows.append({
                "pair": pair, "eval_id": image_id(batch.bin_index, name),
                "bin": format_bin(batch.bin_index), "bin_index": batch.bin_index,
                "image_index": index, "image_name": name,
                "source_image": data.dataset.describe(index), "mask": entry.path.name,
                "hole_ratio": repr(float(entry.hole_ratio)), "image_file": str(image_file),
                "mask_file": str(mask_file), "prediction_file": f"{pair}.png"})
    if not rows:
        raise ConfigError(f"export-testset: no images of {data.dataset!r} were paired with "
                          f"masks of {masks}")
    manifest = out_dir / MANIFEST_CSV
    with atomic_open(manifest, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    header = build_header(config, data, rows, file_sha256(manifest))
    write_text_atomic(out_dir / README_TXT, readme_text(header))
    header_path = write_text_atomic(out_dir / HEADER_JSON, json.dumps(header, indent=2) + "\n")
    return ExportResult(out_dir, manifest, header_path, len(rows))


def build_header(config: EvalConfig, data: EvalData, rows: list[dict[str, Any]],
                 manifest_sha256: str) -> dict[str, Any]:
    """testset.json: what was exported, from which bank, and how to be scored on it."""
    size = data.size
    bank_manifest = Path(config.masks) / "manifest.csv"
    per_bin: dict[str, int] = {}
    for row in rows:
        per_bin[row["bin"]] = per_bin.get(row["bin"], 0) + 1
    return {
        "format": TESTSET_FORMAT,
        "dataset": to_dict(data.dataset_config),
        "split": data.dataset_config.split,
        "size": size,
        "limit": config.limit,
        "n_images_per_bin": len(data.dataset),
        "n_pairs": len(rows),
        "pairs_per_bin": per_bin,
        "masks": {"bank": str(config.masks), "manifest_sha256": file_sha256(bank_manifest),
                  "n_masks": len(data.entries),
                  "pairing": "image i with mask i mod M of each bin"},
        "manifest": {"file": MANIFEST_CSV, "sha256": manifest_sha256,
                     "columns": list(MANIFEST_COLUMNS)},
        "images": {"folder": IMAGES_DIR, "format": f"8-bit RGB PNG, {size}x{size}",
                   "note": "the evaluator's input image, rounded to 8 bits"},
        "mask_files": {"folder": MASKS_DIR, "format": f"8-bit grayscale PNG, {size}x{size}",
                       "hole_colour": HOLE_COLOUR,
                       "values": {"hole": 255, "known": 0}},
        "predictions": {
            "file": "<predictions>/<pair>.png for every manifest row (prediction_file)",
            "format": f"RGB PNG, {size}x{size}",
            "used": "hole pixels only; known pixels are taken from the ground truth",
            "errors": "a missing, extra, unreadable or mis-sized file stops the scoring"},
        "score_command": shlex.join(score_command(config)),
    }


def readme_text(header: dict[str, Any]) -> str:
    size = header["size"]
    return (
        f"{header['format']}: {header['n_pairs']} (image, mask) pairs of "
        f"{header['dataset']['name']} ({header['split']} split) at {size}x{size}, "
        f"masks from {header['masks']['bank']}.\n\n"
        f"images/<pair>.png  the image as the evaluator scores it (8-bit RGB)\n"
        f"masks/<pair>.png   its mask: holes white (255), known pixels black (0)\n"
        f"manifest.csv       one row per pair: {', '.join(header['manifest']['columns'])}\n\n"
        f"Write your method's output for each pair to <predictions>/<pair>.png "
        f"({size}x{size} RGB PNG; only the hole pixels are scored), then run\n\n"
        f"  {header['score_command']}\n\n"
        f"(PREDICTIONS: your folder, OUT: a new results folder). See docs/export.md.\n"
    )


def read_manifest(out_dir: str | Path) -> list[dict[str, str]]:
    """The rows of an exported test set's manifest.csv, in evaluation order."""
    path = Path(out_dir) / MANIFEST_CSV
    if not path.is_file():
        raise ConfigError(f"{path}: no test set manifest (write one with rfr export-testset)")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


__all__ = [
    "HEADER_JSON",
    "HOLE_COLOUR",
    "MANIFEST_COLUMNS",
    "MANIFEST_CSV",
    "TESTSET_FORMAT",
    "ExportResult",
    "export_testset",
    "pair_name",
    "read_manifest",
    "score_command",
]
