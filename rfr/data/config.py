"""Which dataset, which split, at what size: one dataclass, validated on construction.

Build one from parsed YAML with ``rfr.config.from_dict(DatasetConfig, mapping)`` (an
unknown key is an error) and turn it into a dataset with ``rfr.data.build_dataset``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rfr.config import ConfigError, check_int, check_literal
from rfr.data.base import OnError

TransformKind = Literal["auto", "train", "test"]


@dataclass(frozen=True)
class DatasetConfig:
    """Fields:
        name: a key of ``rfr.data.DATASET_BUILDERS`` ("celeba", "paris", "places2",
            "folder", "demo-scenes", "demo-faces").
        root: the dataset's folder. None means the published datasets' default
            ``data/raw/<name>``; the folder dataset needs one; the demo sets take none
            (they ship inside scikit-image).
        split: "train", "val" or "test", as the dataset defines them (docs/datasets.md).
        size: target side S of the square 3 x S x S tensors (authors: 256; 64 for CPU).
        transform: "auto" (the train transform for split "train", the test transform
            otherwise), or "train"/"test" to force one, e.g. to score the training images.
        on_error: "raise" on an unreadable image (default), or "skip" it, count it and
            report it at the end of the pass.
        file_list: folder dataset only: a text file of relative paths, one per line,
            that selects and orders the images.
        seed: seed of the train transform's random crops and flips.
        limit: keep only the first ``limit`` items of the split (quick CPU runs).
    """

    name: str = "demo-scenes"
    root: str | None = None
    split: str = "train"
    size: int = 256
    transform: TransformKind = "auto"
    on_error: OnError = "raise"
    file_list: str | None = None
    seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        check_literal(self, "transform")
        check_literal(self, "on_error")
        check_int(self, "size", 1)
        check_int(self, "seed", 0, 2**32 - 1)
        check_int(self, "limit", 1, optional=True)
        if self.file_list is not None and self.name != "folder":
            raise ConfigError(
                f"file_list applies to the folder dataset only; {self.name!r} has its own "
                f"split definition (docs/datasets.md); use limit for a smaller split"
            )

    @property
    def train_transform(self) -> bool:
        """Whether items get the random training transform (else the centre crop)."""
        if self.transform == "auto":
            return self.split == "train"
        return self.transform == "train"


__all__ = ["DatasetConfig", "TransformKind"]
