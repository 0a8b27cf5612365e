"""Knowledge Consistent Attention (KCA) and its naive, memoryless counterpart.

Every feature vector of the map is a 1x1 "patch" that scores every position by cosine
similarity (the patch is L2-normalised, the query is not), scores are summed over a
``propagate_size`` window, softmax-normalised over patches, and the output at each
position is the score-weighted sum of the normalised patches. KCA then blends the scores
with those of the previous recurrence, weighted per pixel by the previous mask and a
learnt ``ratio``, so that recurrences attend consistently.

Unlike the authors' layer, which stores the previous scores on the module and loops over
the batch in Python, the previous scores travel as an explicit ``AttentionState`` value
and the batch is one batched matrix product. The arithmetic is the same.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The authors add this to every patch before normalising it (it keeps an all-zero patch,
# e.g. a feature vector inside a hole, from dividing by zero).
_PATCH_EPS = 1e-7
# The authors' guard on |ratio| in the score blend.
_RATIO_EPS = 1e-7


class AttentionState(NamedTuple):
    """What one recurrence's attention hands to the next.

    ``scores[b, q, p]``: the (blended) attention of query position ``q`` on patch ``p``,
    ``B x N x N`` with ``N = H * W`` in row-major order; ``mask[b, q, 0]``: the mask the
    attention saw, ``B x N x 1``."""

    scores: Tensor
    mask: Tensor


class PatchAttention(nn.Module):
    """Attention over 1x1 patches; with ``accumulate=True`` it is KCA, else naive.

    ``forward(features, mask, previous) -> (output, state)``. ``previous`` is the state
    of the previous recurrence or None for the first; naive attention ignores it.
    """

    def __init__(self, accumulate: bool = True, propagate_size: int = 3) -> None:
        super().__init__()
        if propagate_size < 1 or propagate_size % 2 == 0:
            raise ValueError(f"propagate_size must be odd and >= 1, got {propagate_size}")
        self.accumulate = accumulate
        self.propagate_size = propagate_size
        if accumulate:
            # Only KCA has the blend weight; naive attention would leave it unused, which
            # DistributedDataParallel rejects.
            self.ratio = nn.Parameter(torch.ones(1))

    def forward(
        self, features: Tensor, mask: Tensor, previous: AttentionState | None = None
    ) -> tuple[Tensor, AttentionState]:
        batch, channels, height, width = features.shape
        if mask.shape[-2:] != features.shape[-2:]:
            mask = F.interpolate(mask, size=(height, width), mode="nearest")
        positions = height * width

        patches = features.reshape(batch, channels, positions) + _PATCH_EPS
        patches = patches / patches.pow(2).sum(dim=1, keepdim=True).sqrt()
        # The authors score every patch at every position, then sum the scores over a
        # propagate_size window. Scores are linear in the queried features, so summing
        # the features over the window first gives the same numbers from half the data
        # (C = 512 channels instead of N = H * W score maps).
        queries = features
        if self.propagate_size > 1:
            k = self.propagate_size
            queries = F.avg_pool2d(features, k, 1, padding=k // 2, count_include_pad=True,
                                   divisor_override=1)
        # scores[b, q, p] = <patch p, summed features around q>: one row per query
        # position, so the softmax over patches runs along contiguous memory.
        scores = torch.bmm(queries.reshape(batch, channels, positions).transpose(1, 2), patches)
        scores = F.softmax(scores, dim=2)
        flat_mask = mask.reshape(batch, positions, 1)
        if self.accumulate and previous is not None:
            weight = self.ratio.abs() + _RATIO_EPS
            scores = (previous.scores * previous.mask + scores * weight) / (previous.mask + weight)
        # output[b, c, q] = sum_p patches[b, c, p] * scores[b, q, p]
        output = torch.bmm(patches, scores.transpose(1, 2))
        output = output.view(batch, channels, height, width)
        return output, AttentionState(scores, flat_mask)


class AttentionModule(nn.Module):
    """Attention followed by the authors' 1x1 ``combiner`` over [attended, input]."""

    def __init__(self, channels: int, accumulate: bool = True) -> None:
        super().__init__()
        # Named `att` twice over (module.att.att.ratio) to match the released state dict.
        self.att = PatchAttention(accumulate=accumulate)
        self.combiner = nn.Conv2d(channels * 2, channels, kernel_size=1)

    def forward(
        self, features: Tensor, mask: Tensor, previous: AttentionState | None = None
    ) -> tuple[Tensor, AttentionState]:
        attended, state = self.att(features, mask, previous)
        return self.combiner(torch.cat([attended, features], dim=1)), state
