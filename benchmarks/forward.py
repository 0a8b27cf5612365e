"""Eval-forward speed and peak memory of RFR-Net on the CPU, optionally beside the authors'.

Prints ms/image and peak memory of the default RFRNet (released architecture, reference
recipe weights, seed 0) at 256x256 for each batch size and precision, and of KCA alone.
With ``--authors-repo`` pointing at a checkout of jingyuanli001/RFR-Inpainting, the same
weights and input run through the authors' own code too, and the report adds the speed-up
and the output difference (fp32: max |ours - authors'|; bf16: PSNR of the composite
against the fp32 composite). The authors' code is imported from that checkout at run
time; nothing of it ships with the suite.

    python benchmarks/forward.py --authors-repo /path/to/RFR-Inpainting
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from rfr.demo import demo_photo
from rfr.inpaint import precision_context
from rfr.masks import mask_rng, stroke_mask, to_known_mask
from rfr.models import RFRNet, composite
from rfr.nn.attention import PatchAttention
from rfr.reference import layout_of, recipe_state_dict


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


def measure(fn: Callable[[], object], repeats: int) -> tuple[list[float], float | None]:
    """Seconds per call over ``repeats`` calls after one warm-up, and the peak memory
    above the pre-call resident size in MiB (None where it cannot be read)."""
    fn()
    before = rss_kib("VmRSS")
    can_peak = reset_peak_rss()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    peak = rss_kib("VmHWM") if can_peak else None
    peak_mib = (peak - before) / 1024 if peak is not None and before is not None else None
    return times, peak_mib


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
    image = demo_photo(size)[None]
    mask = to_known_mask(stroke_mask(size, mask_rng(0, 0), max_parts=3))[None]
    return image, mask, "demo photo + seeded strokes"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-20))


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 6])
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"),
                        default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--authors-repo", type=Path, default=None,
                        help="checkout of jingyuanli001/RFR-Inpainting to compare against")
    parser.add_argument("--input", choices=("golden", "demo"), default="golden",
                        help="golden: the authors' stored case from --reference (256x256, "
                             "7%% hole); demo: a real photo with a seeded 45%% stroke mask")
    parser.add_argument("--reference", type=Path, default=Path("../shared/reference"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = RFRNet().eval()
    state_dict = recipe_state_dict(layout_of(model.state_dict()), seed=0)
    model.load_state_dict(state_dict)
    authors = load_authors_model(args.authors_repo, state_dict) if args.authors_repo else None

    image, mask, source = benchmark_input(args.input, args.size, args.reference)
    print(f"RFR-Net eval forward, {args.size}x{args.size}, recipe weights (seed 0), "
          f"input: {source}, hole ratio {1 - mask.mean().item():.3f}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
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
                x = (image * mask).repeat(batch, 1, 1, 1)
                m = mask.repeat(batch, 1, 1, 1)
                m3 = m.repeat(1, 3, 1, 1)
                runs = {"ours": lambda x=x, m=m: model(x, m)}
                if authors is not None:
                    runs["authors"] = lambda x=x, m3=m3: authors(x, m3)[0]
                results = {}
                for name, fn in runs.items():
                    with precision_context(precision):
                        out = fn().float()
                        times, peak = measure(fn, args.repeats)
                    results[name] = (statistics.median(times) / batch, peak, out)
                if "authors" in results and precision == "fp32":
                    authors_fp32[batch] = results["authors"][0]
                for name, (seconds, peak, out) in results.items():
                    comp = composite(out[:1], image, mask)
                    if precision == "fp32":
                        fp32_composite[name] = comp
                    check = ""
                    if name == "ours" and "authors" in results and precision == "fp32":
                        diff = (out - results["authors"][2]).abs().max().item()
                        check = f"max |ours - authors| = {diff:.2e}"
                    elif precision != "fp32" and name in fp32_composite:
                        db = psnr(comp, fp32_composite[name])
                        check = f"composite PSNR vs its fp32 = {db:.1f} dB"
                    base = authors_fp32.get(batch)
                    speedup = f"{base / seconds:.2f}x" if base is not None else ""
                    print(f"{name:<8} {precision:<9} {batch:>5} {seconds * 1000:>10.1f} "
                          f"{fmt(peak, '.0f'):>9} {speedup:>9}  {check}")

        # KCA alone, as in a middle recurrence: 512 channels at 1/8 of the image size.
        side = args.size // 8
        g = torch.Generator().manual_seed(0)
        for batch in args.batch:
            features = torch.randn(batch, 512, side, side, generator=g)
            att_mask = (torch.rand(batch, 1, side, side, generator=g) > 0.2).float()
            kca = PatchAttention()
            _, state = kca(features, att_mask, None)
            times, peak = measure(partial(kca, features, att_mask, state), args.repeats)
            line = (f"KCA alone (512x{side}x{side}), batch {batch}: "
                    f"{statistics.median(times) / batch * 1000:.1f} ms/image, "
                    f"peak {fmt(peak, '.0f')} MiB")
            if authors is not None:
                theirs = authors.RFRModule.att.att
                theirs.att_scores_prev = None
                theirs.masks_prev = None
                theirs(features, att_mask)
                t_times, _ = measure(partial(theirs, features, att_mask), args.repeats)
                theirs_ms = statistics.median(t_times) / batch * 1000
                line += (f"; authors' {theirs_ms:.1f} ms/image "
                         f"({theirs_ms / (statistics.median(times) / batch * 1000):.2f}x)")
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
