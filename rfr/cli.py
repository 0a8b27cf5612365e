"""The ``rfr`` command line: one verb per step, each a thin wrapper over a library call.

Errors the user can fix (missing or corrupt files, wrong sizes, missing weights) are
printed as one clear line and exit with status 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from rfr.checkpoint import CheckpointError
from rfr.config import ConfigError
from rfr.image_io import ImageReadError, ImageWriteError
from rfr.masks import MaskBankError
from rfr.weights import InvalidWeightsError, WeightsNotFoundError

log = logging.getLogger("rfr")

USER_ERRORS = (
    CheckpointError,
    ConfigError,
    ImageReadError,
    ImageWriteError,
    InvalidWeightsError,
    MaskBankError,
    WeightsNotFoundError,
)

# Where the project keeps the authors' reference data, relative to the repository root.
DEFAULT_REFERENCE_DIR = Path("../shared/reference")


def cmd_inpaint(args: argparse.Namespace) -> int:
    from rfr.checkpoint import load_checkpoint
    from rfr.image_io import check_writable_image_path, read_image, read_mask, write_image
    from rfr.inpaint import inpaint

    check_writable_image_path(args.out)
    model = load_checkpoint(args.checkpoint)
    image = read_image(args.image)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mask = read_mask(args.mask, hole_is_white=args.hole == "white")
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if image.shape[-2:] != mask.shape[-2:]:
        raise ImageReadError(
            f"size mismatch: image {args.image} is {image.shape[2]}x{image.shape[1]} but mask "
            f"{args.mask} is {mask.shape[2]}x{mask.shape[1]} (width x height); they must match"
        )
    if not (mask < 1).any():
        print(f"warning: {args.mask} has no hole pixels: the output equals the input",
              file=sys.stderr)
    result = inpaint(model, image, mask, precision=args.precision, max_side=args.max_side)
    out = write_image(result, args.out)
    hole = float((mask < 1).float().mean())
    print(f"wrote {out} ({image.shape[2]}x{image.shape[1]}, hole ratio {hole:.3f}, "
          f"{args.precision})")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from rfr.weights import format_weights_status

    print(format_weights_status())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rfr.demo import FAITHFULNESS_TOLERANCE, run_demo

    reference = args.reference if args.reference.exists() else None
    result = run_demo(args.out, reference, seed=args.seed, size=args.size)
    print(f"checkpoint (authors' format, recipe weights): {result.checkpoint}")
    if result.golden_max_abs_diff is None:
        print(f"faithfulness: skipped (no golden data at {args.reference})")
    else:
        verdict = "PASS" if result.golden_max_abs_diff < FAITHFULNESS_TOLERANCE else "FAIL"
        print(f"faithfulness vs the authors' golden output: max |diff| = "
              f"{result.golden_max_abs_diff:.3g} (tolerance {FAITHFULNESS_TOLERANCE:g}) {verdict}")
    print(f"inpainted demo photo (hole ratio {result.hole_ratio:.3f}; random recipe weights, "
          f"so the picture is not a quality result): {result.outputs['inpainted']}")
    if result.golden_max_abs_diff is not None and verdict == "FAIL":
        return 1
    return 0


def cmd_masks(args: argparse.Namespace) -> int:
    from rfr.masks import MANIFEST_NAME, format_bin_summary, write_mask_bank

    entries = write_mask_bank(args.out, args.per_bin, size=args.size, seed=args.seed)
    for line in format_bin_summary(entries):
        print(line)
    print(f"wrote {len(entries)} masks ({args.size}x{args.size}, seed {args.seed}, white = "
          f"hole) and {args.out / MANIFEST_NAME}")
    return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_32bit(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, {2**32 - 1}], got {value}")
    return value


def min_side_16(text: str) -> int:
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(
            f"must be at least 16 (the network's size step), got {value}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rfr", description="rfr-bench: reproduce and ablate RFR-Net image inpainting."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("inpaint", help="inpaint one image of any size with a checkpoint")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="this suite's checkpoint or the authors' (e.g. their CelebA .pth)")
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--mask", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="output image (PNG recommended)")
    p.add_argument("--hole", choices=("white", "black"), default="white",
                   help="which colour marks the hole in the mask file (default: white, "
                        "like the authors' mask files)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--max-side", type=min_side_16, default=1024,
                   help="longest side the network runs at; larger images are downscaled for "
                        "the network and only the holes take the upsampled result")
    p.set_defaults(func=cmd_inpaint)

    p = verbs.add_parser("weights", help="where pretrained weights are expected, and if present")
    p.set_defaults(func=cmd_weights)

    p = verbs.add_parser(
        "demo", help="recipe-weight RFR-Net: authors'-format checkpoint, golden check, inpaint"
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE_DIR,
                   help="folder with the authors' golden output (default: ../shared/reference)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    p.set_defaults(func=cmd_demo)

    p = verbs.add_parser(
        "masks", help="write a seeded mask bank: N masks per NVIDIA hole-ratio bin + manifest"
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs and manifest.csv")
    p.add_argument("--per-bin", type=positive_int, default=10,
                   help="masks per hole-ratio bin (default: 10)")
    p.add_argument("--size", type=min_side_16, default=256, help="mask side in pixels")
    p.add_argument("--seed", type=seed_32bit, default=0)
    p.set_defaults(func=cmd_masks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
