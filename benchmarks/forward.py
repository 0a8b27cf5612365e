"""Eval-forward speed and peak memory of RFR-Net on the CPU, optionally beside the authors'.

Prints ms/image and peak memory of the default RFRNet (released architecture, reference
recipe weights, seed 0) at 256x256 for each batch size and precision, and of KCA alone.
With ``--authors-repo`` pointing at a checkout of jingyuanli001/RFR-Inpainting, the same
weights and input run through the authors' own code too, and the report adds the speed-up
and the output difference (fp32: max |ours - authors'|; bf16: PSNR of the composite
against the same code's fp32 composite). The authors' code is imported from that checkout
at run time; nothing of it ships with the suite.

Timing: one warm-up call each, then the models take turns call by call, so a change of
machine load or clock affects both alike; the figure is the median. Peak memory: each
(model, precision, batch) runs once in a fresh process, and the figure is the rise of the
resident set's high-water mark over the process's size just before the call.

    python benchmarks/forward.py --authors-repo /path/to/RFR-Inpainting
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from rfr.data.embedded import square_photo
from rfr.evaluate.metrics import psnr
from rfr.inpaint import precision_context
from rfr.masks import mask_rng, stroke_mask, to_known_mask
from rfr.model.api import RFRNet, composite
from rfr.model.attention import PatchAttention
from rfr.model.reference import layout_of, recipe_state_dict

Forward = Callable[[], torch.Tensor]


def rss_kib(field: str) -> int | None:
    """VmRSS / VmHWM of this process in KiB (Linux); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark so VmHWM measures from now (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def time_in_turns(runs: dict[str, Forward], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each run, after one warm-up each, the runs taking turns."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def load_authors_model(repo: Path, state_dict: dict) -> torch.nn.Module:
    """The authors' RFRNet from their checkout, with the same weights, ready for the CPU."""
    sys.path.insert(0, str(repo))
    try:
        from modules.RFRNet import RFRNet as AuthorsRFRNet  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    model = AuthorsRFRNet()
    model.load_state_dict(state_dict)
    model.eval()  # their train() override returns None, so no chaining
    # Their KCA builds a kernel with .cuda() the first time; the kernel is never used, so
    # a placeholder skips that branch on a machine without CUDA.
    model.RFRModule.att.att.prop_kernels = torch.ones(1)
    return model


def benchmark_input(kind: str, size: int, reference: Path
                    ) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Image (1x3xHxW) and mask (1x1xHxW) to time on, and where they come from."""
    golden = reference / "rfrnet_golden_seed0.npz"
    if kind == "golden" and size == 256 and golden.exists():
        stored = np.load(golden)
        mask = torch.from_numpy(stored["mask"])[:, :1]
        return torch.from_numpy(stored["image"]), mask, f"golden case ({golden})"
    if kind == "golden":
        print(f"note: no golden case for {size}x{size} at {golden}; using the demo input")
    image = square_photo("astronaut", size)[None]
    mask = to_known_mask(stroke_mask(size, mask_rng(0, 0), max_parts=3))[None]
    return image, mask, "demo photo + seeded strokes"


def build_models(args: argparse.Namespace) -> dict[str, torch.nn.Module]:
    model = RFRNet().eval()
    state_dict = recipe_state_dict(layout_of(model.state_dict()), seed=0)
    model.load_state_dict(state_dict)
    models = {"ours": model}
    if args.authors_repo is not None:
        models["authors"] = load_authors_model(args.authors_repo, state_dict)
    return models


def forward_fn(name: str, model: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor,
               batch: int) -> Forward:
    """A call of ``model`` on ``batch`` copies of the input, in each code's own mask form."""
    x = (image * mask).repeat(batch, 1, 1, 1)
    m = mask.repeat(batch, 1, 1, 1)
    if name == "authors":
        m3 = m.repeat(1, 3, 1, 1)
        return lambda: model(x, m3)[0]
    return lambda: model(x, m)


def peak_memory_mib(args: argparse.Namespace, name: str, precision: str,
                    batch: int) -> float | None:
    """Peak memory of one forward, measured in a fresh process (see the module docstring)."""
    command = [sys.executable, __file__, "--peak-of", name, precision, str(batch),
               "--size", str(args.size), "--input", args.input,
               "--reference", str(args.reference)]
    if args.authors_repo is not None:
        command += ["--authors-repo", str(args.authors_repo)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]
    except (IndexError, KeyError, ValueError):
        return None


def report_peak_of(args: argparse.Namespace) -> int:
    """Child-process mode: one forward, print the peak as JSON."""
    name, precision, batch = args.peak_of[0], args.peak_of[1], int(args.peak_of[2])
    model = build_models(args)[name]
    image, mask, _ = benchmark_input(args.input, args.size, args.reference)
    fn = forward_fn(name, model, image, mask, batch)
    before = rss_kib("VmRSS")
    peak = None
    if before is not None and reset_peak_rss():
        with torch.inference_mode(), precision_context(precision):
            fn()
        hwm = rss_kib("VmHWM")
        peak = None if hwm is None else (hwm - before) / 1024
    print(json.dumps({"peak_mib": peak}))
    return 0


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def benchmark_models(args: argparse.Namespace) -> None:
    models = build_models(args)
    image, mask, source = benchmark_input(args.input, args.size, args.reference)
    print(f"RFR-Net eval forward, {args.size}x{args.size}, recipe weights (seed 0), "
          f"input: {source}, hole ratio {1 - mask.mean().item():.3f}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} calls taken in turns")
    header = (f"{'model':<8} {'precision':<9} {'batch':>5} {'ms/image':>10} {'peak MiB':>9}"
              f" {'speed-up':>9}  output check")
    print(header)
    print("-" * len(header))
    # Speed-ups are against the authors' code in fp32 at the same batch size.
    authors_fp32: dict[int, float] = {}
    fp32_composite: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for precision in args.precision:
            for batch in args.batch:
                runs = {name: forward_fn(name, model, image, mask, batch)
                        for name, model in models.items()}
                with precision_context(precision):
                    outputs = {name: fn().float() for name, fn in runs.items()}
                    times = time_in_turns(runs, args.repeats)
                seconds = {name: statistics.median(t) / batch for name, t in times.items()}
                if "authors" in seconds and precision == "fp32":
                    authors_fp32[batch] = seconds["authors"]
                for name in runs:
                    comp = composite(outputs[name][:1], image, mask)
                    if precision == "fp32":
                        fp32_composite[name] = comp
                    check = ""
                    if name == "ours" and "authors" in outputs and precision == "fp32":
                        diff = (outputs["ours"] - outputs["authors"]).abs().max().item()
                        check = f"max |ours - authors| = {diff:.2e}"
                    elif precision != "fp32" and name in fp32_composite:
                        db = psnr(comp, fp32_composite[name]).item()
                        check = f"composite PSNR vs its fp32 = {db:.1f} dB"
                    base = authors_fp32.get(batch)
                    speedup = f"{base / seconds[name]:.2f}x" if base is not None else ""
                    peak = peak_memory_mib(args, name, precision, batch) if args.memory else None
                    print(f"{name:<8} {precision:<9} {batch:>5} {seconds[name] * 1000:>10.1f} "
                          f"{fmt(peak, '.0f'):>9} {speedup:>9}  {check}", flush=True)
    benchmark_kca(args, models.get("authors"))


def benchmark_kca(args: argparse.Namespace, authors: torch.nn.Module | None) -> None:
    """KCA alone, as in a middle recurrence: 512 channels at 1/8 of the image size."""
    side = args.size // 8
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for batch in args.batch:
            features = torch.randn(batch, 512, side, side, generator=generator)
            att_mask = (torch.rand(batch, 1, side, side, generator=generator) > 0.2).float()
            kca = PatchAttention()
            _, state = kca(features, att_mask, None)
            runs = {"ours": partial(kca, features, att_mask, state)}
            if authors is not None:
                theirs = authors.RFRModule.att.att
                theirs.att_scores_prev, theirs.masks_prev = None, None
                theirs(features, att_mask)  # leaves previous scores on the module, as in use
                runs["authors"] = partial(theirs, features, att_mask)
            times = time_in_turns(runs, args.repeats)
            ms = {name: statistics.median(t) / batch * 1000 for name, t in times.items()}
            line = f"KCA alone (512x{side}x{side}), batch {batch}: ours {ms['ours']:.1f} ms/image"
            if "authors" in ms:
                line += (f", authors' {ms['authors']:.1f} ms/image "
                         f"({ms['authors'] / ms['ours']:.2f}x)")
            print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 6])
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"),
                        default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--authors-repo", type=Path, default=None,
                        help="checkout of jingyuanli001/RFR-Inpainting to compare against")
    parser.add_argument("--input", choices=("golden", "demo"), default="golden",
                        help="golden: the authors' stored case from --reference (256x256, "
                             "7%% hole); demo: a real photo with a seeded 45%% stroke mask")
    parser.add_argument("--reference", type=Path, default=Path("../shared/reference"))
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the peak-memory processes (faster)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--peak-of", nargs=3, metavar=("MODEL", "PRECISION", "BATCH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak_of:
        return report_peak_of(args)
    benchmark_models(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
