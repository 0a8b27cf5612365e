"""Masks: seeded free-form masks (``generate``), the NVIDIA hole-ratio bins and the pairing
of masks with test images (``bins``), mask banks on disk (``bank``), and the NVIDIA
irregular mask test set (``nvidia``).

Every model must be scored on exactly the same holes, and results are reported per
hole-ratio bin: masks are generated once from a seed, stored as PNG files with a
manifest of their measured hole ratios, and paired with test images by a fixed rule.
The names are re-exported here, so ``from rfr.masks import write_mask_bank`` is the
import for users; patch a module attribute in its own module (``rfr.masks.bank``).
"""

from rfr.errors import MaskBankError
from rfr.masks.bank import (
    BANK_FILE_PATTERN,
    BANK_STREAM,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    MAX_BANK_ATTEMPTS,
    MAX_SEGMENTS_PER_ATTEMPT,
    MIN_BANK_SIZE,
    RATIO_DECIMALS,
    RATIO_TOLERANCE,
    bank_file_name,
    bank_mask,
    bank_rng,
    encode_mask_png,
    read_mask_bank,
    write_mask_bank,
)
from rfr.masks.bins import (
    NVIDIA_BINS,
    MaskEntry,
    bin_of,
    format_bin,
    format_bin_summary,
    group_by_bin,
    load_entry_mask,
    load_mask_file,
    pair_images_with_masks,
)
from rfr.masks.generate import (
    MASK_KINDS,
    MAX_SEED,
    box_mask,
    check_seed,
    draw_capsule,
    generate_mask,
    hole_ratio,
    known_hole_ratio,
    mask_rng,
    stroke_mask,
    stroke_segments,
    to_known_mask,
)
from rfr.masks.nvidia import (
    BinnedMasks,
    load_nvidia_masks,
)

__all__ = [
    "BANK_FILE_PATTERN",
    "BANK_STREAM",
    "BinnedMasks",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "MASK_KINDS",
    "MAX_BANK_ATTEMPTS",
    "MAX_SEED",
    "MAX_SEGMENTS_PER_ATTEMPT",
    "MIN_BANK_SIZE",
    "MaskBankError",
    "MaskEntry",
    "NVIDIA_BINS",
    "RATIO_DECIMALS",
    "RATIO_TOLERANCE",
    "bank_file_name",
    "bank_mask",
    "bank_rng",
    "bin_of",
    "box_mask",
    "check_seed",
    "draw_capsule",
    "encode_mask_png",
    "format_bin",
    "format_bin_summary",
    "generate_mask",
    "group_by_bin",
    "hole_ratio",
    "known_hole_ratio",
    "load_entry_mask",
    "load_mask_file",
    "load_nvidia_masks",
    "mask_rng",
    "pair_images_with_masks",
    "read_mask_bank",
    "stroke_mask",
    "stroke_segments",
    "to_known_mask",
    "write_mask_bank",
]
