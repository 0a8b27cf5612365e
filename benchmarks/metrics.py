"""Throughput of the pixel metrics (PSNR, SSIM, L1, hole L1) on the CPU, in images/s.

Real photographs from scikit-image's wheel (astronaut, chelsea, coffee, rocket,
immunohistochemistry), square-cropped and resized to 256x256, fill a batch of 16; seeded
box holes are filled with a blurred copy, as an inpainting method's output would be. One
timed call = composite + `rfr.evaluate.metrics.image_metrics` without LPIPS (the four pixel
metrics of a batch, as evaluation runs them). The figure is the median over the repeats
after one warm-up call. Target: at least 50 images/s on 2 cores.

    python benchmarks/metrics.py [--batch 16] [--size 256] [--repeats 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from rfr.data.embedded import square_photo
from rfr.evaluate.metrics import image_metrics
from rfr.masks import box_mask, mask_rng, to_known_mask

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
TARGET_IMAGES_PER_S = 50.0


def photo_batch(batch: int, size: int) -> torch.Tensor:
    """`batch` real photos (cycling through PHOTOS, flipped on later rounds) at size x size."""
    photos = [square_photo(name, size) for name in PHOTOS]
    images = [photos[i % len(photos)] for i in range(batch)]
    images = [img.flip(-1) if (i // len(photos)) % 2 else img for i, img in enumerate(images)]
    return torch.stack(images)


def box_masks(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """Seeded rectangular holes (1 = known), from the suite's mask generator."""
    return torch.stack([to_known_mask(box_mask(size, mask_rng(seed, i))) for i in range(batch)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    images = photo_batch(args.batch, args.size)
    masks = box_masks(args.batch, args.size)
    output = F.avg_pool2d(images, 9, 1, 4, count_include_pad=False)  # a plausible fill

    image_metrics(output, images, masks)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        results = image_metrics(output, images, masks)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    rate = args.batch / median
    hole = float((masks < 1).float().mean())
    print(f"metrics: psnr + ssim + l1 + l1_hole, {args.batch} x 3 x {args.size} x {args.size}, "
          f"fp32, {torch.get_num_threads()} threads, hole ratio {hole:.2f}")
    print(f"median {median * 1000:.1f} ms/batch over {args.repeats} calls "
          f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")
    means = ", ".join(f"{name} {float(r.values.mean()):.4f}" for name, r in results.items())
    print(f"batch means: {means}")
    verdict = "meets" if rate >= TARGET_IMAGES_PER_S else "BELOW"
    print(f"{rate:.0f} images/s ({verdict} the target of {TARGET_IMAGES_PER_S:.0f} images/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
