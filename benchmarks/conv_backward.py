"""Forward + backward time of every RFR-module convolution: oneDNN against the GEMM paths.

``rfr.model.small_map_conv.use_small_map_gemm`` (the training setting ``small_map_gemm``)
swaps some of the RFR module's layers for versions that run plain GEMMs on small maps,
by a fixed rule (the layers it names; map size and dtype). This script prints, per layer
shape of RFR-Net at the given image size and width, what oneDNN (``nn.Conv2d`` /
``nn.ConvTranspose2d``, the plain network's layers) and the swapped layer take, in fp32
and under bf16 autocast, and whether the GEMM path was taken, so the rule can be
re-checked on another machine (a layer the swap leaves alone shows the same class twice).

    python benchmarks/conv_backward.py                 # 64 x 64 images, width 64, batch 6
    python benchmarks/conv_backward.py --size 256      # the paper's size: no GEMM path
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn


def median_ms(fn: Callable[[], None], repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def rfr_module_inputs(size: int, width: int, batch: int) -> dict[str, tuple[nn.Module, Tensor]]:
    """Each RFR-module convolution of a fresh RFRNet, swapped for the GEMM versions where
    the swap does so, with the input it sees (one pass)."""
    from rfr.model.api import build_model
    from rfr.model.small_map_conv import use_small_map_gemm

    model = build_model("rfr", {"width": width}).eval()
    use_small_map_gemm(model)
    seen: dict[str, tuple[nn.Module, Tensor]] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
            seen.setdefault(name, (module, torch.randn_like(args[0])))
        return hook

    hooks = [module.register_forward_hook(record(name))
             for name, module in model.RFRModule.named_modules()
             if isinstance(module, nn.Conv2d | nn.ConvTranspose2d)]
    with torch.no_grad():
        image = torch.rand(batch, 3, size, size)
        mask = torch.ones(batch, 1, size, size)
        model(image, mask)
    for hook in hooks:
        hook.remove()
    return seen


def as_plain(module: nn.Module) -> nn.Module:
    """The same layer as torch's own class (oneDNN on CPU), same weights."""
    if isinstance(module, nn.ConvTranspose2d):
        plain: nn.Module = nn.ConvTranspose2d(
            module.in_channels, module.out_channels, module.kernel_size, module.stride,
            module.padding, module.output_padding, module.groups, module.bias is not None,
            module.dilation)
    else:
        plain = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size,
                          module.stride, module.padding, module.dilation, module.groups,
                          module.bias is not None)
    plain.load_state_dict(module.state_dict())
    return plain


def step(module: nn.Module, x: Tensor, bf16: bool) -> Callable[[], None]:
    x = x.detach().requires_grad_()

    def run() -> None:
        module.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = module(x)
        out.float().sum().backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    print(f"RFR-module layers at {args.size}x{args.size}, width {args.width}, batch "
          f"{args.batch}, {torch.get_num_threads()} threads: forward + backward, median ms")
    print("| layer | input | fp32 oneDNN | fp32 suite | bf16 oneDNN | bf16 suite | GEMM path |")
    print("|---|---|---|---|---|---|---|")
    for name, (module, x) in rfr_module_inputs(args.size, args.width, args.batch).items():
        ours = copy.deepcopy(module).train()
        plain = as_plain(module).train()
        cells = []
        for bf16 in (False, True):
            cells.append(median_ms(step(plain, x, bf16), args.repeats))
            cells.append(median_ms(step(ours, x, bf16), args.repeats))
        gemm = []
        for bf16, label in ((False, "fp32"), (True, "bf16")):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                takes = getattr(ours, "takes_gemm_path", lambda _: False)(x)
            if takes:
                gemm.append(label)
        print(f"| {name} | {tuple(x.shape)} | " + " | ".join(f"{c:.2f}" for c in cells)
              + f" | {', '.join(gemm) or 'no'} |", flush=True)


if __name__ == "__main__":
    main()
