"""The dataset class every adapter returns, and how unreadable images are handled.

An item is a dict ``{"image": 3 x S x S float32 in [0, 1], "index": int}``; the index
pairs it with its mask (the evaluation mask bank is indexed the same way) and with its
name (``dataset.names[index]``) for per-image results.

Unreadable images (corrupt, truncated, vanished). With ``on_error="raise"`` (default) the
read error propagates, naming the file and the item. With ``on_error="skip"`` the item
comes back as a ``Skipped`` record instead of a sample, never as another image in its
place, and ``dataset.collate`` drops it from the batch and carries it along in
``batch["skipped"]``. Why this design rather than an up-front validation pass: checking
every file means decoding all of it (truncation shows only on a full decode), which
takes minutes for CelebA and hours for Places2's 1.8 million images, and a file can still
go bad later. Why records in the batch rather than a list kept by the dataset: DataLoader
workers hold copies of the dataset, so whatever they note is lost; the batch is the one
thing that travels back to the main process. ``iter_batches`` (or ``record_skipped``)
copies the records into the main-process ``dataset.skipped`` and ``report_skipped`` logs
the final count and names at the end of a pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, get_worker_info

from rfr.data.image_io import ImageReadError, open_image
from rfr.data.transforms import preprocess, sample_rng
from rfr.errors import DatasetFormatError, DatasetNotFoundError

log = logging.getLogger("rfr.data")

OnError = Literal["raise", "skip"]

# Seed word of the DataLoader shuffling stream (see make_loader).
SHUFFLE_STREAM = 0x53485546  # "SHUF"
# How many skipped names the end-of-pass report lists before it only counts.
REPORT_NAMES = 20


@dataclass(frozen=True)
class Skipped:
    """An item left out under ``on_error="skip"``: which one, and why."""

    index: int
    name: str
    reason: str


class Sample(TypedDict):
    image: Tensor
    index: int


class Batch(TypedDict):
    image: Tensor  # B x 3 x S x S (B may be 0 when every item of the batch was skipped)
    index: Tensor  # B, int64
    skipped: list[Skipped]


class ImageDataset(Dataset):
    """A fixed, ordered list of named source images, each preprocessed by the train or
    the test transform (``rfr.data.transforms``) with its own seeded random stream.

    Subclasses say how to open source ``index`` (``open``) and how to name it in messages
    (``describe``). The epoch is plain state set with ``set_epoch`` before each pass;
    DataLoader workers copy it when a pass starts, so use non-persistent workers (as
    ``make_loader`` does).
    """

    def __init__(self, title: str, split: str, names: Sequence[str], size: int, train: bool,
                 seed: int = 0, on_error: OnError = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.title = title
        self.split = split
        self.names = list(names)
        self.size = size
        self.train = train
        self.seed = seed
        self.on_error: OnError = on_error
        self.epoch = 0
        self.skipped: list[Skipped] = []

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        transform = "train" if self.train else "test"
        return (f"{type(self).__name__}({self.title} {self.split}: {len(self)} images, "
                f"size {self.size}, {transform} transform, seed {self.seed})")

    def set_epoch(self, epoch: int) -> None:
        """Select the random crops of another pass (train transform only)."""
        if not 0 <= int(epoch) < 2**32:  # one 32-bit word of the seed, as seed and index
            raise ValueError(f"epoch must be in [0, 2**32), got {epoch}")
        self.epoch = int(epoch)

    def open(self, index: int) -> Image.Image:
        """The decoded source image ``index``; raises ImageReadError when unusable."""
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """How messages name source ``index`` (a path for files)."""
        return self.names[index]

    def _check_index(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.title} {self.split}: index {index} out of range "
                             f"(0..{len(self) - 1})")
        return index

    def load(self, index: int) -> Tensor:
        """Item ``index`` as a 3 x S x S tensor; read errors always raise here."""
        index = self._check_index(index)
        try:
            image = self.open(index)
        except ImageReadError as exc:
            raise ImageReadError(f"{self.title} {self.split} item {index}: {exc}") from exc
        return preprocess(image, self.size, self.train, sample_rng(self.seed, self.epoch, index))

    def __getitem__(self, index: int) -> Sample | Skipped:
        index = self._check_index(index)
        try:
            return {"image": self.load(index), "index": index}
        except ImageReadError as exc:
            if self.on_error == "raise":
                raise
            record = Skipped(index=index, name=self.names[index], reason=str(exc.__cause__ or exc))
            # In a worker the record rides back in the batch and the main process logs it.
            if get_worker_info() is None:
                self.record_skipped([record])
            return record

    def collate(self, items: Sequence[Sample | Skipped]) -> Batch:
        """DataLoader collate_fn: stack the samples, carry the skipped records along."""
        samples = [item for item in items if not isinstance(item, Skipped)]
        skipped = [item for item in items if isinstance(item, Skipped)]
        if samples:
            image = torch.stack([sample["image"] for sample in samples])
        else:
            image = torch.empty(0, 3, self.size, self.size)
        index = torch.tensor([sample["index"] for sample in samples], dtype=torch.long)
        return {"image": image, "index": index, "skipped": skipped}

    def record_skipped(self, records: Iterable[Skipped]) -> None:
        """Add skipped items to ``self.skipped`` (once per index) and log each new one."""
        seen = {record.index for record in self.skipped}
        for record in records:
            if record.index in seen:
                continue
            seen.add(record.index)
            self.skipped.append(record)
            log.warning("%s %s: skipped item %d (%s): %s", self.title, self.split,
                        record.index, record.name, record.reason)

    def report_skipped(self) -> str:
        """The end-of-pass summary: how many items were skipped, which and why. Logged as
        a warning when any were, and returned."""
        if not self.skipped:
            message = f"{self.title} {self.split}: no images skipped (of {len(self)})"
            log.debug(message)  # once per pass: info would repeat per bin
            return message
        lines = [f"  {record.name}: {record.reason}" for record in self.skipped[:REPORT_NAMES]]
        more = len(self.skipped) - REPORT_NAMES
        if more > 0:
            lines.append(f"  ... and {more} more")
        message = (f"{self.title} {self.split}: skipped {len(self.skipped)} of {len(self)} "
                   f"images (unreadable; on_error='skip'):\n" + "\n".join(lines))
        log.warning(message)
        return message


class ImageFileDataset(ImageDataset):
    """Source images are files under ``root``, named by their relative paths."""

    def __init__(self, title: str, split: str, root: Path, relpaths: Sequence[str],
                 size: int, train: bool, seed: int = 0,
                 on_error: OnError = "raise") -> None:
        super().__init__(title, split, relpaths, size, train, seed, on_error)
        self.root = Path(root)

    def path(self, index: int) -> Path:
        return self.root / self.names[index]

    def open(self, index: int) -> Image.Image:
        return open_image(self.path(index))

    def describe(self, index: int) -> str:
        return str(self.path(index))


def shuffle_seed(seed: int, epoch: int) -> int:
    """The seed of the sampling order of pass ``epoch``: fixed by (seed, epoch) alone."""
    state = np.random.SeedSequence([SHUFFLE_STREAM, seed, epoch]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def make_loader(dataset: ImageDataset, batch_size: int, *, shuffle: bool = False,
                epoch: int = 0, num_workers: int = 0, drop_last: bool = False) -> DataLoader:
    """A DataLoader for one pass (``epoch``) that is the same on every machine: the
    dataset's epoch is set, the order comes from a generator seeded by (seed, epoch), the
    collate function carries skipped items, and workers are not persistent (each pass
    copies the current epoch into them)."""
    dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(shuffle_seed(dataset.seed, epoch))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers, collate_fn=dataset.collate,
                      drop_last=drop_last, persistent_workers=False)


def iter_batches(loader: DataLoader, dataset: ImageDataset | None = None) -> Iterator[Batch]:
    """Iterate ``loader``, recording skipped items in the main-process dataset, and log
    the skip report once the pass is complete."""
    dataset = dataset if dataset is not None else loader.dataset
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"iter_batches needs an ImageDataset, got {type(dataset).__name__}; "
                        f"pass dataset= when the loader wraps one")
    for batch in loader:
        dataset.record_skipped(batch["skipped"])
        yield batch
    dataset.report_skipped()


__all__ = [
    "Batch",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "ImageDataset",
    "ImageFileDataset",
    "OnError",
    "Sample",
    "Skipped",
    "iter_batches",
    "make_loader",
    "shuffle_seed",
]
