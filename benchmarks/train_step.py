"""Training speed of RFR-Net: seconds per step, steps/s and peak memory, fp32 and bf16.

One step = the training loop's own forward and loss (``rfr.train.loop.forward_losses``),
backward and its Adam update (``rfr.train.loop.make_optimizer``), on demo-scenes images with
the training masks. Each run is a fresh process so that its peak memory is its own (CPU:
peak RSS of the process; CUDA: torch's peak allocated memory). VGG16 is random (speed
only).

    python benchmarks/train_step.py                      # 64 x 64, batch 6, width 64, CPU
    python benchmarks/train_step.py --size 256 --steps 2 # the paper's size (slow on CPU)
    python benchmarks/train_step.py --device cuda
    python benchmarks/train_step.py --authors-repo ../RFR-Inpainting  # theirs, same inputs
    python benchmarks/train_step.py --all-variants       # steps/s of every ablation variant
    python benchmarks/train_step.py --plain-layers       # without the small-map GEMM swap

Ours is timed with the RFR module's small-map GEMM layers swapped in
(``rfr.model.small_map_conv.use_small_map_gemm``, the demo profile's ``small_map_gemm``), as
the README's figures were; ``--plain-layers`` times the plain network.

With ``--authors-repo`` (a checkout of jingyuanli001/RFR-Inpainting) the authors' own
training step (their ``RFRNetModel.forward`` + ``update_parameters``: the same loss terms
and Adam) runs on the same batches in fp32, in the same environment, and speed-ups are
against it. Their VGG16 is built with random weights too (their code asks torchvision to
download ImageNet weights). Their code is imported from that checkout at run time;
nothing of it ships here.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Figures quoted in the project's issue for the authors' code (batch 6, fp32), measured on
# another machine of this kind; not comparable with a run here (use --authors-repo).
AUTHORS_QUOTED = {64: {"s_per_step": 2.92, "peak_gb": None},
                  256: {"s_per_step": 38.4, "peak_gb": 8.4}}


def authors_step(repo: str, device: Any) -> Callable[[Any, Any], Any]:
    """The authors' training step as a callable(image, mask), built from their checkout."""
    import torch
    import torchvision

    sys.path.insert(0, repo)
    vgg16 = torchvision.models.vgg16
    # Their VGG16FeatureExtractor asks for pretrained=True (a download); speed needs none.
    torchvision.models.vgg16 = lambda *a, **k: vgg16(weights=None)
    try:
        from model import RFRNetModel  # type: ignore[import-not-found]

        runner = RFRNetModel()
        runner.initialize_model(None, train=True)  # prints "No trained model, from start"
    finally:
        torchvision.models.vgg16 = vgg16
        sys.path.pop(0)
    runner.device = device
    runner.G.to(device)
    runner.lossNet.to(device)
    runner.G.RFRModule.att.att.prop_kernels = torch.ones(1)  # skip their .cuda() branch
    runner.G.train()

    def step(image, mask):
        mask3 = mask.expand(-1, 3, -1, -1).contiguous()
        runner.forward(image * mask3, mask3, image)
        runner.update_parameters()
        # Their loop keeps only a running L1 sum (valid + hole) as its loss readout.
        return torch.as_tensor(runner.l1_loss_val).detach()

    return step


def measure(args: argparse.Namespace, precision: str) -> dict[str, float]:
    import torch

    from rfr.config import LossConfig
    from rfr.data import DatasetConfig, build_dataset
    from rfr.model.small_map_conv import use_small_map_gemm
    from rfr.model.variants import build_variant
    from rfr.train.loop import (
        TrainConfig,
        TrainingSamples,
        forward_losses,
        make_optimizer,
        shard_indices,
    )
    from rfr.train.losses import InpaintingLoss

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_variant(args.variant, args.width).to(device).train()
    if not args.plain_layers:
        use_small_map_gemm(model)
    loss_fn = InpaintingLoss(LossConfig(vgg_weights="random")).to(device)
    optimizer = make_optimizer(model, TrainConfig(lr=2e-4), "train")
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

    if args.authors_repo:
        run_authors = authors_step(args.authors_repo, device)

    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step, (image, mask) in enumerate(batches):
        sync()
        start = time.perf_counter()
        if args.authors_repo:
            loss = run_authors(image, mask)
        else:
            terms = forward_losses(model, loss_fn, image, mask, precision)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            loss = terms["total"].detach()
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
            "peak_kind": peak_kind, "loss": float(loss),
            "threads": torch.get_num_threads()}


def run_one(args: argparse.Namespace, variant: str, precision: str,
            repo: str | None) -> dict[str, Any] | str:
    """One measurement in a fresh process: its figures, or the error's last line."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", "--variant", variant,
               "--precision", precision, "--size", str(args.size), "--batch",
               str(args.batch), "--width", str(args.width), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--device", args.device,
               "--threads", str(args.threads)]
    if args.plain_layers:
        command.append("--plain-layers")
    if repo:
        command += ["--authors-repo", repo]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_all_variants(args: argparse.Namespace) -> None:
    from rfr.model.variants import load_variants

    header = "".join(f" | {p} s/step | {p} steps/s | {p} peak GB" for p in args.precision)
    print(f"| variant{header} |")
    print("|---" * (1 + 3 * len(args.precision)) + "|")
    for name in load_variants():
        cells = []
        for precision in args.precision:
            r = run_one(args, name, precision, None)
            cells += (["failed: " + r, "", ""] if isinstance(r, str) else
                      [f"{r['s_per_step']:.3f}", f"{r['steps_per_s']:.3f}", f"{r['peak_gb']:.2f}"])
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed first steps (allocator and oneDNN caches warm up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"],
                        choices=["fp32", "bf16"])
    parser.add_argument("--variant", default="rfr", help="an ablations/variants.yaml name")
    parser.add_argument("--all-variants", action="store_true",
                        help="time every variant (ours only) and print one table")
    parser.add_argument("--authors-repo", default=None,
                        help="checkout of jingyuanli001/RFR-Inpainting: time theirs too")
    parser.add_argument("--plain-layers", action="store_true",
                        help="time ours without the small-map GEMM layers")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(measure(args, args.precision[0])))
        return
    subject = "every variant's" if args.all_variants else f"{args.variant}"
    print(f"{subject} training step: width {args.width}, {args.size}x{args.size}, batch "
          f"{args.batch}, device {args.device}, Adam, random VGG16, median of {args.steps} "
          f"steps after {args.warmup} warm-up, "
          f"{'plain layers' if args.plain_layers else 'small-map GEMM layers swapped in'}")
    if args.all_variants:
        print_all_variants(args)
        return
    runs = [(f"ours {precision}", precision, None) for precision in args.precision]
    if args.authors_repo:
        runs.append(("authors fp32", "fp32", args.authors_repo))
    results = {}
    for label, precision, repo in runs:
        result = run_one(args, args.variant, precision, repo)
        if isinstance(result, str):
            print(f"  {label}: failed: {result}")
        else:
            results[label] = result
    base = results.get("authors fp32")
    for label, r in results.items():
        speedup = f", {base['s_per_step'] / r['s_per_step']:.2f}x vs authors fp32" if base else ""
        print(f"  {label:<13} {r['s_per_step']:.3f} s/step  {r['steps_per_s']:.3f} steps/s  "
              f"peak {r['peak_gb']:.2f} GB ({r['peak_kind']}), {r['threads']} threads, "
              f"loss {r['loss']:.4g}{speedup}")
    ref = AUTHORS_QUOTED.get(args.size)
    if ref is not None and args.batch == 6 and args.width == 64:
        peak = f", peak {ref['peak_gb']} GB" if ref["peak_gb"] else ""
        print(f"  quoted for the authors' code on another machine of this kind (batch 6, fp32): "
              f"{ref['s_per_step']} s/step{peak}; compare only with --authors-repo runs")


if __name__ == "__main__":
    main()
