"""The ``rfr`` command line: one verb per step, each a thin wrapper over a library call.

Errors the user can fix (missing or corrupt files, wrong sizes, missing weights) are
printed as one clear line and exit with status 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

# Only the torch-free error classes at module level: `rfr --help` and the argument errors
# must not wait for torch. Each verb imports its library inside its cmd_* function.
from rfr import errors
from rfr.errors import ConfigError, ImageReadError

log = logging.getLogger("rfr")

USER_ERRORS = (
    errors.CheckpointError,
    errors.ConfigError,
    errors.DatasetFormatError,
    errors.DatasetNotFoundError,
    errors.ImageReadError,
    errors.ImageWriteError,
    errors.InvalidWeightsError,
    errors.MaskBankError,
    errors.WeightsNotFoundError,
)

# Where the project keeps the authors' reference data, relative to the repository root.
DEFAULT_REFERENCE_DIR = Path("../shared/reference")


def cmd_inpaint(args: argparse.Namespace) -> int:
    from rfr.data.image_io import check_writable_image_path, read_image, read_mask, write_image
    from rfr.inpaint import inpaint
    from rfr.model.checkpoint import load_checkpoint
    from rfr.precision import check_precision

    check_writable_image_path(args.out)
    check_precision(args.precision, "cpu")  # before the checkpoint is read
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
    from rfr.masks import MANIFEST_NAME, format_bin_summary
    from rfr.masks.source import BankSource, describe_source, write_masks

    source = masks_source_of(args)
    if source is None:
        source = BankSource(args.per_bin or 10, args.size or 256,
                            0 if args.seed is None else args.seed)
    entries = write_masks(source, args.out)
    for line in format_bin_summary(entries):
        print(line)
    print(f"wrote {len(entries)} masks, {describe_source(source)}, and "
          f"{args.out / MANIFEST_NAME}")
    return 0


def masks_source_of(args: argparse.Namespace):  # -> rfr.masks.source.MaskSource | None
    """The source ``rfr masks`` writes: the profile's ``masks:`` section (--params), the
    NVIDIA folder (--nvidia), or None for the seeded bank of the flags. Flags that the
    chosen mode does not read are an error, not silently ignored."""
    from rfr.config import load_yaml
    from rfr.masks.source import NvidiaSource, mask_source

    if args.params is not None:
        given = [flag for flag in ("nvidia", "hole", "per_bin", "size", "seed", "border")
                 if getattr(args, flag) is not None]
        if given:
            raise ConfigError(f"with --params the profile's masks: section says everything; "
                              f"drop --{', --'.join(f.replace('_', '-') for f in given)}")
        params = load_yaml(args.params)
        if not isinstance(params.get("masks"), dict):
            raise ConfigError(f"{args.params}: no masks: section (give a profile written by "
                              f"`rfr profile NAME`, e.g. params.yaml)")
        try:
            return mask_source(params["masks"])
        except ConfigError as exc:
            raise ConfigError(f"{args.params}: {exc}") from None
    if args.nvidia is not None:
        if args.hole is None:
            raise ConfigError("--nvidia needs --hole white|black (the colour of the holes in "
                              "the files; copies of the set differ)")
        if args.seed is not None:
            raise ConfigError("--seed is for the seeded bank, not --nvidia")
        return NvidiaSource(str(args.nvidia), args.hole, size=args.size,
                            per_bin=args.per_bin, border=args.border or "both")
    if args.hole is not None or args.border is not None:
        raise ConfigError("--hole and --border go with --nvidia FOLDER")
    return None


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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rfr.config import from_dict, load_yaml
    from rfr.evaluate.api import EvalConfig
    from rfr.overrides import apply_overrides, with_overrides_named

    if args.released is not None:
        return _released_evaluation(args)
    if args.params is not None:
        return run_evaluation(_pipeline_eval_config(args), args.no_progress)
    data = load_yaml(args.config) if args.config is not None else {}
    data = apply_overrides(data, args.set, EvalConfig)
    flags = {"checkpoint": args.checkpoint, "predictions": args.predictions,
             "masks": args.masks, "out_dir": args.out, "batch_size": args.batch_size,
             "limit": args.limit, "precision": args.precision, "seed": args.seed,
             "grid_examples": args.grid_examples, "device": args.device,
             "save_predictions": args.save_predictions or None}
    data.update({key: str(value) if isinstance(value, Path) else value
                 for key, value in flags.items() if value is not None})
    if args.checkpoint is not None:
        data.pop("predictions", None)
    if args.predictions is not None:
        data.pop("checkpoint", None)
    dataset = dict(data.get("dataset") or {})
    dataset.setdefault("split", "test")
    for key, value in (("name", args.dataset), ("root", args.root), ("split", args.split),
                       ("size", args.size)):
        if value is not None:
            dataset[key] = str(value) if isinstance(value, Path) else value
    data["dataset"] = dataset
    if "name" not in dataset:
        raise ConfigError("evaluate needs --dataset NAME (or 'dataset: {name: ...}' in the "
                          "--config file)")
    for key in ("masks", "out_dir"):
        if key not in data:
            raise ConfigError(f"evaluate needs --{key.replace('_dir', '')} (or '{key}' in "
                              f"the --config file)")
    try:
        config = from_dict(EvalConfig, data, str(args.config or "evaluate"))
    except ConfigError as exc:
        raise with_overrides_named(exc, args.set) from None
    return run_evaluation(config, args.no_progress)


def _pipeline_eval_config(args: argparse.Namespace):  # -> rfr.evaluate.api.EvalConfig
    from rfr.pipeline import eval_config

    for flag in ("checkpoint", "masks", "out"):
        if getattr(args, flag) is None:
            raise ConfigError(f"with --params, give --{flag}")
    params, dataset, variant, seed = pipeline_run(args)
    return eval_config(params, dataset, variant, seed, args.checkpoint, args.masks, args.out)


def _released_evaluation(args: argparse.Namespace) -> int:
    """``--params P --released DATASET``: the authors' checkpoint ``released.DATASET`` of
    the profile (strictly their format), scored as run DATASET-released-0; ``--record``
    writes the run's training summary (which file, its SHA-256, not trained here)."""
    from rfr.evaluate.released import write_released_record
    from rfr.pipeline import load_params, released_eval_config

    for flag in ("params", "masks", "out"):
        if getattr(args, flag) is None:
            raise ConfigError(f"with --released, give --{flag}")
    params = load_params(args.params, overrides=args.set)
    config = released_eval_config(params, args.released, args.masks, args.out)
    code = run_evaluation(config, args.no_progress)
    if args.record is not None:
        print(f"wrote {write_released_record(args.record, config.checkpoint, config.run)}")
    return code


def cmd_export_testset(args: argparse.Namespace) -> int:
    """The exact pairs `rfr evaluate` scores with the same flags, for an outside method."""
    from rfr.data import DatasetConfig
    from rfr.testset import export_testset

    dataset = DatasetConfig(name=args.dataset, root=None if args.root is None else str(args.root),
                            split=args.split or "test", size=args.size or 256)
    result = export_testset(dataset, args.masks, args.out, limit=args.limit,
                            batch_size=args.batch_size or 8, force=args.force)
    print(f"wrote {result.n_pairs} pairs to {result.out_dir} ({result.manifest_csv.name}, "
          f"{result.header_json.name}); score predictions with the score_command in "
          f"{result.header_json}")
    return 0


def run_evaluation(config, no_progress: bool) -> int:  # config: rfr.evaluate.api.EvalConfig
    from rfr.evaluate.api import evaluate

    result = evaluate(config, progress=not no_progress)
    for label, entry in result.summary["bins"].items():
        metrics = entry["metrics"]
        print(f"{label:>12}: n={entry['n_images']} "
              + " ".join(f"{name}={metrics[name]['mean']:.4f}"
                         for name in ("psnr", "ssim", "l1", "l1_hole") if "mean" in metrics[name]))
    print(f"wrote {result.per_image_csv}, {result.summary_json}, {result.metrics_json}, "
          f"{result.bins_csv}"
          + (f", {result.grid}" if result.grid else ""))
    return 0


def pipeline_run(args: argparse.Namespace) -> tuple[dict, str, str, int]:
    """(params, dataset, variant, seed) of a pipeline-mode verb (--params ... --run ...);
    the params with the verb's ``-S`` profile keys applied, if it has them."""
    from rfr.pipeline import load_params

    flags = {"dataset": "--dataset", "variant": "--variant", "run_seed": "--run-seed"}
    missing = [flag for key, flag in flags.items() if getattr(args, key) is None]
    if missing:
        raise ConfigError(f"with --params, give the run: {' '.join(missing)}")
    params = load_params(args.params, overrides=getattr(args, "set", ()))
    return params, args.dataset, args.variant, args.run_seed


def rerun_under_torchrun(args: argparse.Namespace, gpus: int) -> int:
    """Run this very `rfr train` command again as ``gpus`` processes under torchrun (one
    machine), and return torchrun's exit status. So a DVC stage command stays ``rfr
    train ...`` and the tracked ``train.gpus`` decides how many ranks it uses. The
    command is rebuilt from ``args`` (every flag of the train verb), since ``main`` may
    have been given another argv than ``sys.argv``."""
    import shlex
    import subprocess

    flags = (("--config", "config"), ("--out", "out"), ("--curves", "curves"),
             ("--params", "params"), ("--dataset", "dataset"), ("--variant", "variant"),
             ("--run-seed", "run_seed"))
    argv = ["-v"] if getattr(args, "verbose", False) else []
    argv.append("train")
    for flag, key in flags:
        value = getattr(args, key, None)
        if value is not None:
            argv += [flag, str(value)]
    for setting in getattr(args, "set", ()):
        argv += ["-S", setting]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={gpus}", "-m", "rfr.cli", *argv]
    log.info("gpus %d: running %s", gpus, shlex.join(command))
    return subprocess.run(command, check=False).returncode


def cmd_train(args: argparse.Namespace) -> int:
    from rfr.errors import TrainingError
    from rfr.train.loop import load_train_config, train

    if args.params is not None:
        from rfr.pipeline import reset_stale_run, train_config

        if args.out is None:
            raise ConfigError("with --params, give --out (the run's folder)")
        params, dataset, variant, seed = pipeline_run(args)
        config = train_config(params, dataset, variant, seed, args.out, args.curves)
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:
            # Under torchrun the ranks could not agree on it before their process group
            # exists; there a stale folder makes train() resume or refuse, never mix.
            reset_stale_run(config)
    elif args.config is not None:
        config = load_train_config(args.config, args.set,
                                   out_dir=str(args.out) if args.out else None,
                                   curves_dir=str(args.curves) if args.curves else None)
    else:
        raise ConfigError("train needs --config FILE, or --params params.yaml with a run")
    if config.gpus > 1 and "WORLD_SIZE" not in os.environ:
        return rerun_under_torchrun(args, config.gpus)
    try:
        result = train(config)
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.checkpoint is not None:
        print(f"trained {result.step} steps in {result.seconds:.1f} s; final checkpoint "
              f"{result.checkpoint}; logs and curves in {result.out_dir}")
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from rfr.launch import launch
    from rfr.launch.command import config_from_args

    return launch(config_from_args(args))


def cmd_variants(args: argparse.Namespace) -> int:
    from rfr.model.variants import format_variants_table, summarize_variants

    rows = summarize_variants(size=args.size, width=args.width, path=args.file)
    print(format_variants_table(rows, args.size, args.width))
    return 0


def add_pipeline_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path,
                   help="pipeline mode: build the config from this profile (params.yaml) "
                        "for the run --dataset/--variant/--run-seed")
    p.add_argument("--dataset", help="pipeline mode: a key of the profile's datasets")
    p.add_argument("--variant", help="pipeline mode: the run's variant")
    p.add_argument("--run-seed", dest="run_seed", type=seed_32bit,
                   help="pipeline mode: the run's training seed")


def add_set_flag(p: argparse.ArgumentParser, config_key: str) -> None:
    p.add_argument("-S", "--set", dest="set", action="append", default=[],
                   metavar="KEY=VALUE",
                   help=f"change one setting (dotted key, YAML value; repeatable): with "
                        f"--config {config_key}; with --params a profile key "
                        f"(-S train.lr=1.0e-4), not tracked by DVC")


def cmd_prepare(args: argparse.Namespace) -> int:
    from rfr.pipeline import load_params, prepare_dataset

    manifest = prepare_dataset(load_params(args.params), args.dataset, args.out,
                               progress=not args.no_progress)
    splits = manifest["splits"]
    print(f"{args.dataset}: {splits['train']} train, {splits['test']} test images; "
          f"wrote {args.out}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from rfr.pipeline import parse_checkpoints, parse_roots, profile_names, use_profile

    if args.name is None:
        print("profiles: " + ", ".join(profile_names()))
        return 0
    dest = use_profile(args.name, parse_roots(args.root), args.params, args.set,
                       parse_checkpoints(args.checkpoint))
    print(f"wrote {dest} from profiles/{args.name}.yaml; now run: dvc repro")
    return 0


def cmd_rehearsal_data(args: argparse.Namespace) -> int:
    from rfr.data.rehearsal import write_rehearsal_layouts

    roots = write_rehearsal_layouts(args.out)
    flags = " ".join(f"--root {name}={root}" for name, root in roots.items())
    print(f"wrote {', '.join(str(root) for root in roots.values())}; now run: "
          f"rfr profile rehearsal {flags}")
    return 0


def cmd_recurrence(args: argparse.Namespace) -> int:
    from rfr.config import RFRNetConfig
    from rfr.evaluate.recurrence import architecture_propagation
    from rfr.pipeline import load_params, recurrence_settings

    settings = recurrence_settings(load_params(args.params))
    full = RFRNetConfig()
    summary = architecture_propagation(args.out, **settings, kernel_size=full.kernel_size,
                                       iter_num=full.iter_num, progress=not args.no_progress)
    overall = ", ".join(f"{r:.3f}" for r in summary["overall"]["hole_ratio"])
    print(f"hole ratio of the RFR module's mask at {settings['size']}x{settings['size']}, "
          f"before and after each recurrence (all bins): {overall}; wrote {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rfr.errors import ReportError
    from rfr.pipeline import load_params, report_params
    from rfr.report import write_report

    try:
        result = write_report(report_params(load_params(args.params)), args.results)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(result.tables)} tables to {result.tables_dir} and "
          f"{len(result.figures)} figures to {result.figures_dir}")
    return 0


def min_side_16(text: str) -> int:
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(
            f"must be at least 16 (the network's size step), got {value}"
        )
    return value


def package_version() -> str:
    """The installed rfr-bench's version, or "unknown" when it is run from a bare tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rfr-bench")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rfr", description="rfr-bench: reproduce and ablate RFR-Net image inpainting."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
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
        "masks", help="write the test-mask bank: seeded masks per NVIDIA hole-ratio bin, or "
                      "the NVIDIA test set from a folder; PNGs + manifest.csv"
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs and manifest.csv")
    p.add_argument("--params", type=Path,
                   help="write the source named by this profile's masks: section (dvc.yaml)")
    p.add_argument("--nvidia", type=Path, metavar="FOLDER",
                   help="the NVIDIA irregular mask test set (published layout) instead of "
                        "seeded masks")
    p.add_argument("--hole", choices=("white", "black"),
                   help="with --nvidia: the colour of the holes in the files")
    p.add_argument("--border", choices=("both", "with", "without"),
                   help="with --nvidia: which half of each bin (default: both)")
    p.add_argument("--per-bin", type=positive_int,
                   help="masks per hole-ratio bin (default: 10); with --nvidia the first N "
                        "of each border half (default: all)")
    p.add_argument("--size", type=min_side_16,
                   help="mask side in pixels (default: 256); with --nvidia the bank's side "
                        "(default: the files' 512)")
    p.add_argument("--seed", type=seed_32bit, help="seed of the seeded bank (default: 0)")
    p.set_defaults(func=cmd_masks)
    p = verbs.add_parser(
        "evaluate", help="score a checkpoint or a predictions folder per hole-ratio bin"
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="this suite's or the authors' checkpoint")
    source.add_argument("--predictions", type=Path,
                        help="folder of another method's outputs: bin<b>/<image name>.png")
    source.add_argument("--released", metavar="DATASET",
                        help="pipeline mode (--params): the profile's released.DATASET, the "
                             "authors' checkpoint (their format only, loaded strictly), as "
                             "run DATASET-released-0")
    p.add_argument("--config", type=Path,
                   help="YAML mapping onto rfr.evaluate.api.EvalConfig; flags override its keys")
    p.add_argument("--dataset", help="dataset name, e.g. celeba, demo-scenes (with --params: "
                   "a key of the profile's datasets)")
    p.add_argument("--root", type=Path, help="dataset folder")
    p.add_argument("--split", help="dataset split (default: test)")
    p.add_argument("--masks", type=Path, help="mask bank folder (rfr masks --out)")
    p.add_argument("--out", type=Path, help="output folder")
    p.add_argument("--size", type=min_side_16, help="image side S (default: 256)")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--limit", type=positive_int, help="images per bin (default: all)")
    p.add_argument("--precision", choices=("fp32", "bf16"))
    p.add_argument("--seed", type=seed_32bit, help="bootstrap seed")
    p.add_argument("--grid-examples", type=int, help="images per bin in examples.png")
    p.add_argument("--device", help="where the model runs (default: cpu)")
    p.add_argument("--save-predictions", action="store_true",
                   help="also write the composites to OUT/predictions (predictions scheme)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--params", type=Path,
                   help="pipeline mode: build the config from this profile (params.yaml) "
                        "for the run --dataset/--variant/--seed")
    p.add_argument("--variant", help="pipeline mode: the run's variant")
    p.add_argument("--run-seed", dest="run_seed", type=seed_32bit,
                   help="pipeline mode: the run's training seed")
    p.add_argument("--record", type=Path,
                   help="with --released: write the run's record (checkpoint, SHA-256, not "
                        "trained here) to this summary.json")
    add_set_flag(p, "an EvalConfig key (-S limit=8 -S dataset.size=32)")
    p.set_defaults(func=cmd_evaluate)
    p = verbs.add_parser(
        "export-testset", help="write the exact image/mask pairs of an evaluation, with a "
                               "manifest, for another method's predictions"
    )
    p.add_argument("--dataset", required=True, help="dataset name, e.g. celeba, paris")
    p.add_argument("--root", type=Path, help="dataset folder")
    p.add_argument("--split", help="dataset split (default: test)")
    p.add_argument("--masks", type=Path, required=True, help="mask bank folder (rfr masks --out)")
    p.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    p.add_argument("--size", type=min_side_16, help="image side S (default: 256)")
    p.add_argument("--limit", type=positive_int, help="images per bin (default: all)")
    p.add_argument("--batch-size", type=positive_int, help="images read at a time")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty --out (replaces an earlier export there)")
    p.set_defaults(func=cmd_export_testset)

    p = verbs.add_parser(
        "train", help="train a model (two phases, checkpoints, resume, curves; torchrun-ready)"
    )
    p.add_argument("--config", type=Path,
                   help="YAML mapping onto rfr.train.loop.TrainConfig")
    p.add_argument("--out", type=Path,
                   help="output folder (overrides out_dir; resumes from OUT/last.pth)")
    p.add_argument("--curves", type=Path,
                   help="folder for the dvclive curves and summary (default: OUT/dvclive)")
    add_pipeline_run_flags(p)
    add_set_flag(p, "a TrainConfig key (-S steps=10 -S loss.hole=6.0)")
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser(
        "prepare", help="pipeline: open a profile's dataset and write its manifest"
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--dataset", required=True, help="a key of the profile's datasets")
    p.add_argument("--out", type=Path, required=True, help="manifest JSON to write")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)

    p = verbs.add_parser(
        "profile", help="switch the pipeline's profile: write params.yaml from profiles/NAME"
    )
    p.add_argument("name", nargs="?",
                   help="demo, smoke, paper, rehearsal or released (none: list them)")
    p.add_argument("--root", action="append", default=[], metavar="DATASET=FOLDER",
                   help="a dataset's folder (paper and rehearsal profiles: celeba, paris, "
                        "places2)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="DATASET=FILE",
                   help="an authors' released checkpoint to evaluate (released profile: "
                        "celeba, paris); a missing file fails at once")
    p.add_argument("--params", type=Path, default=Path("params.yaml"),
                   help="file to write (default: params.yaml)")
    p.add_argument("-S", "--set", dest="set", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="change a setting of the profile in the written params.yaml (dotted "
                        "key, YAML value; repeatable): -S train.lr=1.0e-4 -S model.width=32")
    p.set_defaults(func=cmd_profile)

    p = verbs.add_parser(
        "rehearsal-data", help="write CelebA, Paris StreetView and Places2 in their "
                               "published layouts from scikit-image's photos (the rehearsal "
                               "profile's data)"
    )
    p.add_argument("--out", type=Path, required=True,
                   help="folder for celeba/, paris/ and places2/")
    p.set_defaults(func=cmd_rehearsal_data)

    p = verbs.add_parser(
        "recurrence", help="pipeline: how the released architecture's hole shrinks per "
                           "recurrence, on seeded masks"
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--out", type=Path, required=True, help="folder for recurrence.json/.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_recurrence)

    p = verbs.add_parser(
        "report", help="pipeline: tables and figures from the evaluated runs"
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--results", type=Path, required=True,
                   help="results folder (metrics/ and train/ in, tables/ and figures/ out)")
    p.set_defaults(func=cmd_report)

    p = verbs.add_parser(
        "launch", help="run the pipeline's out-of-date trainings and evaluations in parallel "
                       "(local GPUs/CPU workers or a SLURM array), then dvc repro the rest"
    )
    p.add_argument("--config", type=Path,
                   help="YAML mapping onto rfr.launch.LaunchConfig (flags override its keys)")
    p.add_argument("--backend", choices=("local", "slurm"))
    p.add_argument("--gpus", help="local: GPU ids, comma-separated (one worker per train.gpus "
                                  "of them)")
    p.add_argument("--workers", type=positive_int, help="local, no GPUs: CPU worker processes")
    p.add_argument("--threads-per-worker", type=positive_int,
                   help="CPU threads per local worker (default: cores / workers)")
    p.add_argument("--params", help="profile to plan (default params.yaml; another one only "
                                    "with --all --dry-run)")
    p.add_argument("--logs", help="folder for the stage logs and launch.json")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="print the stages, the workers' lanes and the waves; run nothing")
    p.add_argument("--all", dest="all_runs", action="store_true",
                   help="with --dry-run: plan every run of the profile, without asking DVC")
    p.add_argument("--step-seconds", type=float,
                   help="with --dry-run: seconds per training step, for a wall-clock estimate")
    slurm = p.add_argument_group("slurm backend (submitit)")
    slurm.add_argument("--partition")
    slurm.add_argument("--account")
    slurm.add_argument("--qos")
    slurm.add_argument("--constraint")
    slurm.add_argument("--time", type=positive_int, help="minutes per array task (a longer run "
                                                         "is requeued and resumes)")
    slurm.add_argument("--array-parallelism", type=positive_int,
                       help="array tasks running at once")
    slurm.add_argument("--cpus-per-task", type=positive_int)
    slurm.add_argument("--mem-gb", type=positive_int)
    slurm.add_argument("--max-requeues", type=int)
    slurm.add_argument("--setup", action="append",
                       help="a shell line run before each task (repeatable)")
    slurm.add_argument("--cluster", choices=("slurm", "local", "debug"),
                       help="submitit executor: slurm, or local/debug to try the jobs here")
    slurm.add_argument("--submitit-folder", help="sbatch scripts and task logs (default: the "
                                                 "launch's log folder)")
    slurm.add_argument("--no-wait", action="store_true",
                       help="submit and return; the final dvc repro runs as a dependent job")
    p.set_defaults(func=cmd_launch)

    p = verbs.add_parser(
        "variants", help="list the ablation variants with parameters and GMACs"
    )
    p.add_argument("--size", type=min_side_16, default=64,
                   help="square input side for the GMACs count (default: 64)")
    p.add_argument("--width", type=positive_int, default=64,
                   help="shared base width applied to every variant (default: 64)")
    p.add_argument("--file", type=Path, default=None,
                   help="variants YAML (default: the repository's ablations/variants.yaml)")
    p.set_defaults(func=cmd_variants)
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
