"""What a training step draws: every random choice of step ``s`` a function of (seed, s).

- The data order: epoch ``e`` visits the dataset in ``epoch_order(seed, e, N)``; the k-th
  sample of the global batch of step ``s`` is global sample ``g = s * G + k`` (G the
  global batch), i.e. position ``g mod N`` of epoch ``g // N``; rank r takes ``k`` in
  ``[r*G/W, (r+1)*G/W)`` (``shard_indices``), so shards are disjoint, together form the
  global batch, and the samples of a step do not depend on the world size W.
- The crop/flip of that sample: ``rfr.data.sample_rng(data seed, epoch, index)``; its
  training mask: ``rfr.masks.generate_mask(size, seed, g, mask_kind)``
  (``TrainingSamples``).
- Torch's global RNG, reseeded before each step with ``step_seed(seed, s, rank)`` (for
  any stochastic layer a model may have).

So a run resumed at step ``s`` draws what an uninterrupted one draws from ``s`` on.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from rfr.data import ImageDataset
from rfr.data.transforms import preprocess, sample_rng
from rfr.masks import generate_mask, to_known_mask
from rfr.train.config import TrainConfig

# Leading word of the data-order stream (cf. rfr.data.transforms.DATA_STREAM).
ORDER_STREAM = 0x5246524F  # "RFRO"
STEP_STREAM = 0x52465253  # "RFRS"


@lru_cache(maxsize=8)
def epoch_order(seed: int, epoch: int, length: int) -> np.ndarray:
    """Dataset order of pass ``epoch``: a permutation fixed by (seed, epoch, length)."""
    return np.random.default_rng([ORDER_STREAM, seed, epoch]).permutation(length)


def shard_indices(step: int, rank_batch: int, rank: int, world_size: int) -> list[int]:
    """Global sample indices that ``rank`` trains on at ``step`` (0-based), with
    ``rank_batch`` images per rank: ``[s*G + r*B, s*G + (r+1)*B)`` for the global batch
    ``G = B * world_size``, so a step's global batch is the same for any split of G."""
    start = (step * world_size + rank) * rank_batch
    return list(range(start, start + rank_batch))


class TrainingSamples(Dataset):
    """Item g (a global sample index) = image + training mask, drawn from (seed, g) only."""

    def __init__(self, dataset: ImageDataset, seed: int, mask_kind: str) -> None:
        self.dataset = dataset
        self.seed = seed
        self.mask_kind = mask_kind

    def locate(self, g: int) -> tuple[int, int]:
        """(epoch, dataset index) of global sample g."""
        n = len(self.dataset)
        epoch, position = divmod(int(g), n)
        return epoch, int(epoch_order(self.seed, epoch, n)[position])

    def __len__(self) -> int:  # unbounded stream; the sampler decides what is drawn
        return 2**62

    def __getitem__(self, g: int) -> dict[str, Any]:
        epoch, index = self.locate(g)
        ds = self.dataset
        image = preprocess(ds.open(index), ds.size, ds.train, sample_rng(ds.seed, epoch, index))
        mask = to_known_mask(generate_mask(ds.size, self.seed, int(g), self.mask_kind))
        return {"image": image, "mask": mask, "index": index, "global_index": int(g)}


def step_loader(samples: TrainingSamples, config: TrainConfig, start: int, rank: int,
                world_size: int) -> Iterator[dict[str, Any]]:
    """This rank's batches of steps ``start .. config.total_steps - 1``, in order."""
    rank_batch = config.batch_size // world_size
    batches = [shard_indices(s, rank_batch, rank, world_size)
               for s in range(start, config.total_steps)]
    loader = DataLoader(samples, batch_sampler=batches, num_workers=config.num_workers)
    return iter(loader)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of torch's global RNG for ``step`` on ``rank``."""
    state = np.random.SeedSequence([STEP_STREAM, seed, step, rank]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


__all__ = [
    "ORDER_STREAM",
    "STEP_STREAM",
    "TrainingSamples",
    "epoch_order",
    "shard_indices",
    "step_loader",
    "step_seed",
]
