"""Training speed of RFR-Net: seconds per step, steps/s and peak memory, fp32 and bf16.

One step = the training loop's own forward and loss (``rfr.train.forward_losses``),
backward and an Adam update, on demo-scenes images with the training masks. Each
precision runs in a fresh process so that its peak memory is its own (CPU: peak RSS of
the process; CUDA: torch's peak allocated memory). VGG16 is random (speed only).

    python benchmarks/train_step.py                      # 64 x 64, batch 6, width 64, CPU
    python benchmarks/train_step.py --size 256 --steps 2 # the paper's size (slow on CPU)
    python benchmarks/train_step.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

# The authors' code on this machine kind, batch 6 (fp32).
AUTHORS = {64: {"s_per_step": 2.92, "peak_gb": None}, 256: {"s_per_step": 38.4, "peak_gb": 8.4}}


def measure(args: argparse.Namespace, precision: str) -> dict[str, float]:
    import torch

    from rfr.config import LossConfig
    from rfr.data import DatasetConfig, build_dataset
    from rfr.losses import InpaintingLoss
    from rfr.models import build_model
    from rfr.train import TrainingSamples, forward_losses, shard_indices

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model("rfr", {"width": args.width}).to(device).train()
    loss_fn = InpaintingLoss(LossConfig(vgg_weights="random")).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    samples = TrainingSamples(build_dataset(DatasetConfig(name="demo-scenes", size=args.size)),
                              seed=0, mask_kind="mixed")
    batches = []
    for step in range(args.warmup + args.steps):
        items = [samples[g] for g in shard_indices(step, args.batch, 0, 1)]
        batches.append((torch.stack([i["image"] for i in items]).to(device),
                        torch.stack([i["mask"] for i in items]).to(device)))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step, (image, mask) in enumerate(batches):
        sync()
        start = time.perf_counter()
        terms = forward_losses(model, loss_fn, image, mask, precision)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        sync()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak_gb = torch.cuda.max_memory_allocated(device) / 1e9
        peak_kind = "CUDA peak allocated"
    else:
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux
        peak_kind = "process peak RSS"
    per_step = sorted(times)[len(times) // 2]
    return {"s_per_step": per_step, "steps_per_s": 1 / per_step, "peak_gb": peak_gb,
            "peak_kind": peak_kind, "loss": float(terms["total"].detach()),
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"],
                        choices=["fp32", "bf16"])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(measure(args, args.precision[0])))
        return
    print(f"RFR-Net training step: width {args.width}, {args.size}x{args.size}, batch "
          f"{args.batch}, device {args.device}, Adam, random VGG16, median of {args.steps} "
          f"steps after {args.warmup} warm-up")
    for precision in args.precision:
        command = [sys.executable, str(Path(__file__).resolve()), "--one",
                   "--precision", precision, "--size", str(args.size), "--batch",
                   str(args.batch), "--width", str(args.width), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--device", args.device,
                   "--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"  {precision}: failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {precision}: {r['s_per_step']:.3f} s/step  {r['steps_per_s']:.3f} steps/s  "
              f"peak {r['peak_gb']:.2f} GB ({r['peak_kind']}), {r['threads']} threads, "
              f"loss {r['loss']:.4g}")
    ref = AUTHORS.get(args.size)
    if ref is not None and args.batch == 6 and args.width == 64:
        peak = f", peak {ref['peak_gb']} GB" if ref["peak_gb"] else ""
        print(f"  authors' code (same machine kind, batch 6, fp32): {ref['s_per_step']} s/step"
              f"  {1 / ref['s_per_step']:.3f} steps/s{peak}")
    else:
        print("  authors' reference figures exist for width 64, batch 6 at 64x64 "
              "(2.92 s/step) and 256x256 (38.4 s/step, 8.4 GB peak)")


if __name__ == "__main__":
    main()
