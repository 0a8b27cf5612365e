"""The NVIDIA irregular mask test set (Liu et al., ECCV 2018), read from a folder and
binned by each mask's measured hole ratio.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from rfr.errors import MaskBankError
from rfr.masks.bins import MaskEntry, bin_of, format_bin_summary, group_by_bin, load_mask_file
from rfr.masks.generate import known_hole_ratio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BinnedMasks:
    """Masks of a folder grouped by NVIDIA bin; ``outside`` keeps the ones in no bin so
    that they are reported, not silently dropped."""

    by_bin: tuple[tuple[MaskEntry, ...], ...]
    outside: tuple[MaskEntry, ...]
    non_binary: int = 0

    @property
    def entries(self) -> list[MaskEntry]:
        """All entries, binned ones first (in bin order), then the outside ones."""
        return [entry for group in self.by_bin for entry in group] + list(self.outside)

    def summary(self) -> list[str]:
        """One line per bin plus one for the masks outside all bins, if any."""
        return format_bin_summary(self.entries)


def load_nvidia_masks(folder: str | Path, *, hole_is_white: bool,
                      size: int | tuple[int, int] | None = None) -> BinnedMasks:
    """The PNG masks of ``folder`` (e.g. NVIDIA's irregular mask test set), each binned by
    its measured hole ratio after thresholding and, if ``size`` is given, nearest resizing.

    ``hole_is_white`` has no default on purpose: copies of the NVIDIA set differ in which
    colour marks the hole (see docs/masks.md). Files are taken in sorted name order, so
    the order inside each bin (and hence the pairing with images) is stable. Masks outside
    all bins are returned in ``outside`` and logged as a warning with a hint, because a
    wrong colour flag turns a ratio r into 1 - r and pushes most masks out of the bins.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MaskBankError(f"mask folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not paths:
        raise MaskBankError(f"no .png masks in {folder}")
    entries: list[MaskEntry] = []
    non_binary = 0
    for path in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            known = load_mask_file(path, hole_is_white, size)
        non_binary += bool(caught)
        ratio = known_hole_ratio(known)
        entries.append(MaskEntry(path, ratio, bin_of(ratio), hole_is_white))
    if non_binary:
        log.warning("%d of %d masks in %s were not binary; thresholded at 0.5",
                    non_binary, len(paths), folder)
    outside = tuple(entry for entry in entries if entry.bin_index is None)
    if outside:
        colour = "white" if hole_is_white else "black"
        log.warning(
            "%d of %d masks in %s have a hole ratio outside all bins (0.01, 0.6] and are not "
            "used, e.g. %s (%.4f); if most are outside, check the hole colour (read as %s)",
            len(outside), len(paths), folder, outside[0].path.name, outside[0].hole_ratio,
            colour)
    return BinnedMasks(group_by_bin(entries), outside, non_binary)


# --- pairing ------------------------------------------------------------------------------
