"""The test split crossed with a mask bank's hole-ratio bins, as batches.

For every NVIDIA bin of the bank, image ``i`` of the split is paired with mask ``i`` of
the bin (``rfr.masks.pair_images_with_masks``: cyclic when the bin has fewer masks), so
every model sees exactly the same (image, hole) pairs. Kept apart from the model and
the metrics so that a checkpoint and a predictions folder are fed the same pairs by
construction, not by two copies of the loop.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from rfr.config import ConfigError
from rfr.data import DatasetConfig, ImageDataset, build_dataset, iter_batches, make_loader
from rfr.evaluate.config import EvalConfig
from rfr.evaluate.layout import image_id
from rfr.masks import (
    NVIDIA_BINS,
    MaskEntry,
    format_bin,
    group_by_bin,
    load_entry_mask,
    pair_images_with_masks,
    read_mask_bank,
)

log = logging.getLogger("rfr.evaluate.api")


@dataclass(frozen=True)
class EvalBatch:
    """Images of the split with their masks of one bin (1 = known, 0 = hole)."""

    bin_index: int
    images: Tensor
    masks: Tensor
    indices: list[int]
    names: list[str]
    entries: list[MaskEntry]

    @property
    def label(self) -> str:
        return format_bin(self.bin_index)

    @property
    def ids(self) -> list[str]:
        return [image_id(self.bin_index, name) for name in self.names]

    @property
    def masked(self) -> Tensor:
        """What a model is given: the image with its holes zeroed."""
        return self.images * self.masks


@dataclass(frozen=True)
class Prediction:
    """A batch with its model output and the composite every metric and file uses (the
    output in the holes, the ground truth elsewhere, clamped to [0, 1])."""

    batch: EvalBatch
    output: Tensor
    filled: Tensor


class EvalData:
    """The dataset and the mask bank of one evaluation, and what each bin used."""

    def __init__(self, config: EvalConfig) -> None:
        dataset_config = config.dataset
        if config.limit is not None:
            limit = min(config.limit, dataset_config.limit or config.limit)
            dataset_config = dataclasses.replace(dataset_config, limit=limit)
        self.dataset_config: DatasetConfig = dataset_config
        self.dataset: ImageDataset = build_dataset(dataset_config)
        self.size: int = dataset_config.size
        if len(self.dataset) == 0:
            raise ConfigError(f"{self.dataset!r} has no images to evaluate")
        self.masks_path = config.masks
        self.entries = read_mask_bank(config.masks)
        self.groups = group_by_bin(self.entries)
        self.batch_size = config.batch_size
        self.num_workers = config.num_workers
        self.bin_info: dict[str, dict[str, Any]] = {}  # filled as bins are reached
        self._mask_cache: dict[Path, Tensor] = {}
        self._warned_resize = False

    def __len__(self) -> int:
        """Number of (image, mask) pairs over all bins with masks."""
        return sum(len(self.dataset) for group in self.groups if group)

    def batches(self, progress: bool = True) -> Iterator[EvalBatch]:
        """Every bin's batches in bin order; a bin without masks is skipped (warned)."""
        bar = tqdm(total=len(self), desc="evaluate", unit="img", disable=not progress)
        for bin_index, group in enumerate(self.groups):
            if not group:
                log.warning("mask bank %s has no masks in bin %s; bin skipped",
                            self.masks_path, format_bin(bin_index))
                continue
            for batch in self._bin_batches(bin_index, group):
                yield batch
                bar.update(len(batch.indices))
        bar.close()

    def _bin_batches(self, bin_index: int, group: list[MaskEntry]) -> Iterator[EvalBatch]:
        pairs = pair_images_with_masks(len(self.dataset), group)
        self.bin_info[format_bin(bin_index)] = {
            "bin_index": bin_index, "bounds": list(NVIDIA_BINS[bin_index]),
            "n_masks": len({entry.path for _, entry in pairs}),
            "mean_hole_ratio": sum(entry.hole_ratio for _, entry in pairs) / len(pairs),
        }
        self._mask_cache.clear()
        loader = make_loader(self.dataset, self.batch_size, num_workers=self.num_workers)
        for batch in iter_batches(loader, self.dataset):
            indices = batch["index"].tolist()
            if not indices:
                continue
            entries = [pairs[i][1] for i in indices]
            yield EvalBatch(bin_index, batch["image"],
                            torch.stack([self._mask(entry) for entry in entries]), indices,
                            [self.dataset.names[i] for i in indices], entries)

    def _mask(self, entry: MaskEntry) -> Tensor:
        """A bank mask at the evaluation size (resized once per file, warned once)."""
        if entry.path not in self._mask_cache:
            known = load_entry_mask(entry)
            if tuple(known.shape[1:]) != (self.size, self.size):
                if not self._warned_resize:
                    log.warning("mask bank %s is %dx%d; masks are resized (nearest) to %dx%d, "
                                "which changes hole ratios slightly", self.masks_path,
                                known.shape[2], known.shape[1], self.size, self.size)
                    self._warned_resize = True
                known = load_entry_mask(entry, self.size)
            self._mask_cache[entry.path] = known
        return self._mask_cache[entry.path]


__all__ = ["EvalBatch", "EvalData", "Prediction"]
