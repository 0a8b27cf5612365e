"""How far two `dvc repro` of the same profile on different CPUs are apart, in the same terms
as the seed-to-seed spread.

Bitwise equality of trained results holds only on one kind of CPU: another vector ISA
(AVX2 against AVX-512) rounds convolutions and reductions differently, and 125 training
steps amplify it. This script prints, for every run present in both results folders, the
pooled metric of each (mean over all scored image-hole pairs), the difference B - A, and
beside it the difference between the two seeds of the same (dataset, variant) on A; then
whether each ablation comparison reaches the same verdict (Holm-adjusted p < 0.05 and the
sign of the difference) on both.

    python benchmarks/cross_machine.py --a results --b /tmp/avx2/results \\
        --label-a "AVX-512" --label-b "AVX2 (emulated)"
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

METRICS = ("psnr", "ssim", "l1")
ALPHA = 0.05


def pooled(results: Path) -> dict[str, dict[str, float]]:
    """{run: {metric: mean over all pairs}} from every metrics/<run>/summary.json."""
    found = {}
    for path in sorted((results / "metrics").glob("*/summary.json")):
        overall = json.loads(path.read_text())["overall"]["metrics"]
        found[path.parent.name] = {m: float(overall[m]["mean"]) for m in METRICS
                                   if overall.get(m, {}).get("status") == "ok"}
    return found


def seed_pairs(runs: dict[str, dict[str, float]]) -> list[tuple[str, str]]:
    """(seed-0 run, seed-1 run) for every dataset-variant with both seeds."""
    return [(name, name[:-1] + "1") for name in sorted(runs)
            if name.endswith("-0") and name[:-1] + "1" in runs]


def verdicts(results: Path) -> dict[tuple[str, str, str], tuple[int, bool]]:
    """{(table, variant, metric): (sign of the difference, Holm p < ALPHA)} of the
    pooled rows of every ablation table's CSV."""
    found = {}
    for path in sorted((results / "tables").glob("ablation_*.csv")):
        with path.open() as handle:
            for row in csv.DictReader(handle):
                if row.get("bin", "all") not in ("all", "") or not row.get("p_holm"):
                    continue
                delta = float(row["delta_vs_full"]) if row.get("delta_vs_full") else 0.0
                found[(path.stem, row["variant"], row["metric"])] = (
                    (delta > 0) - (delta < 0), float(row["p_holm"]) < ALPHA)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="results folder of machine A")
    parser.add_argument("--b", type=Path, required=True, help="results folder of machine B")
    parser.add_argument("--label-a", default="A")
    parser.add_argument("--label-b", default="B")
    args = parser.parse_args()
    a, b = pooled(args.a), pooled(args.b)
    common = sorted(set(a) & set(b))
    if not common:
        raise SystemExit(f"no run is in both {args.a}/metrics and {args.b}/metrics")
    print(f"| run | PSNR {args.label_a} | PSNR {args.label_b} | B - A (dB) | "
          f"SSIM B - A | L1 B - A (%) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in common:
        print(f"| {name} | {a[name]['psnr']:.2f} | {b[name]['psnr']:.2f} | "
              f"{b[name]['psnr'] - a[name]['psnr']:+.2f} | "
              f"{b[name]['ssim'] - a[name]['ssim']:+.4f} | "
              f"{100 * (b[name]['l1'] - a[name]['l1']):+.3f} |")
    print()
    for metric, scale, unit in (("psnr", 1.0, "dB"), ("ssim", 1.0, ""), ("l1", 100.0, "%")):
        machine = [abs(b[n][metric] - a[n][metric]) * scale for n in common]
        seeds = [abs(a[s1][metric] - a[s0][metric]) * scale for s0, s1 in seed_pairs(a)]
        print(f"{metric}: |{args.label_b} - {args.label_a}| over {len(machine)} runs: mean "
              f"{statistics.mean(machine):.3f} {unit}, median {statistics.median(machine):.3f},"
              f" max {max(machine):.3f}; |seed 1 - seed 0| on {args.label_a} over "
              f"{len(seeds)} pairs: mean {statistics.mean(seeds):.3f}, median "
              f"{statistics.median(seeds):.3f}, max {max(seeds):.3f}"
              if seeds else f"{metric}: no seed pairs")
    va, vb = verdicts(args.a), verdicts(args.b)
    shared = sorted(set(va) & set(vb))
    same = [key for key in shared if va[key] == vb[key]]
    print(f"\nablation verdicts (sign of the difference, Holm p < {ALPHA}): "
          f"{len(same)} of {len(shared)} the same")
    for key in shared:
        if va[key] != vb[key]:
            print(f"  differs: {key}: {args.label_a} {va[key]}, {args.label_b} {vb[key]}")


if __name__ == "__main__":
    main()
