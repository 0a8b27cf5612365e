"""`rfr report` end to end, on a results folder built with the suite's real writers.

Every run's per_image.csv and summary.json come from `rfr.evaluate.aggregate` (MetricTable,
summarize, write_per_image_csv, write_bins_json) filled with per-image values chosen here,
so the expected means, differences and p-values are known; examples.png is a real
torchvision grid of solid-colour tiles whose colours say which tile they are.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from scipy import stats as scipy_stats

from rfr.data.image_io import write_image
from rfr.evaluate.aggregate import (
    ImageRecord,
    MetricTable,
    bootstrap_ci,
    summarize,
    write_bins_json,
    write_per_image_csv,
)
from rfr.evaluate.api import GRID_PADDING
from rfr.evaluate.layout import TILE_NAMES, tile_relpath
from rfr.evaluate.metrics import DatasetMetricResult
from rfr.masks import NVIDIA_BINS, format_bin
from rfr.report import ReportError, ReportResult, write_report
from rfr.report.grid import read_example_tiles
from rfr.report.inputs import RunKey, load_run
from rfr.report.stats import stream_seed
from rfr.report.tables import RANDOM_VGG_WARNING

DATASETS = ("scenes", "faces")
METHODS = ("rfr", "pconv", "encdec")
ABLATIONS = ("rfr_no_kca", "rfr_naive_attention", "rfr_concat_merge", "rfr_iter1", "rfr_iter2")
SEEDS = (0, 1)
BINS = (1, 3, 5)
PER_BIN = 6
SIZE = 8
GRID_EXAMPLES = 2
LPIPS_REASON = "lpips unavailable: alexnet weights not found (test)"
FID_REASON = "fid unavailable: inception weights not found (test)"
RANDOM_VGG_RUN = RunKey("faces", "encdec", 1)
OFFSETS = {"rfr": 0.0, "pconv": -1.5, "encdec": -3.0, "rfr_no_kca": -1.0,
           "rfr_naive_attention": 0.0, "rfr_concat_merge": -0.2, "rfr_iter1": -2.0,
           "rfr_iter2": -0.5}
COLOURS = {name: index for index, name in enumerate((*METHODS, *ABLATIONS))}

IDS = [f"bin{b}/img{i}" for b in BINS for i in range(PER_BIN)]
ID_BINS = {f"bin{b}/img{i}": format_bin(b) for b in BINS for i in range(PER_BIN)}
NO_HOLE_ID = "bin1/img0"  # l1_hole undefined (NaN) here


def psnr_values(variant: str, seed: int) -> np.ndarray:
    """Base per image + method offset + seed offset (+ symmetric noise for naive attention,
    so its paired test finds nothing)."""
    base = np.asarray([32.0 - 2.0 * BINS.index(int(i[3])) + 0.1 * int(i.split("img")[1])
                       for i in IDS])
    values = base + OFFSETS[variant] + 0.4 * seed
    if variant == "rfr_naive_attention":
        noise = np.asarray([0.3 * (-1) ** j * (1 + (j % 3) / 3) for j in range(len(IDS))])
        values = values + noise
    return values


def metric_values(variant: str, seed: int) -> dict[str, np.ndarray]:
    psnr = psnr_values(variant, seed)
    l1 = 0.05 - 0.001 * (psnr - 30)
    l1_hole = 3 * l1
    l1_hole[IDS.index(NO_HOLE_ID)] = math.nan
    return {"psnr": psnr, "ssim": 0.8 + 0.01 * (psnr - 30), "l1": l1, "l1_hole": l1_hole}


def fid_value(dataset: str, variant: str, seed: int, bin_index: int | None) -> float | None:
    if dataset == "faces":
        return None
    return 10.0 - OFFSETS[variant] + seed + (0 if bin_index is None else bin_index)


def tile_colour(variant: str, bin_index: int, example: int, col: int) -> tuple[int, int, int]:
    """Masked input and ground truth depend only on the image; composites on the method."""
    if col == 1:
        return (20 * COLOURS[variant], 40 * bin_index, 200)
    return (40 * bin_index, 100 * example, 60 if col == 0 else 250)


def write_examples(path: Path, variant: str) -> None:
    """examples.png and, as rfr.evaluate.api writes them, the tile files (the first
    GRID_EXAMPLES ids of each bin are img0, img1...)."""
    tiles = []
    for b in BINS:
        for example in range(GRID_EXAMPLES):
            for col in range(3):
                colour = torch.tensor(tile_colour(variant, b, example, col)) / 255.0
                tiles.append(colour.view(3, 1, 1).expand(3, SIZE, SIZE))
                write_image(tiles[-1], path.parent / tile_relpath(b, f"img{example}",
                                                                  TILE_NAMES[col]))
    grid = torchvision.utils.make_grid(torch.stack(tiles), nrow=3, padding=GRID_PADDING,
                                       pad_value=1.0)
    write_image(grid, path)


def write_run(root: Path, key: RunKey) -> None:
    metrics_dir = root / "metrics" / key.name
    train_dir = root / "train" / key.name
    values = metric_values(key.variant, key.seed)
    table = MetricTable()
    for index, image_id in enumerate(IDS):
        row: dict[str, float | None] = {m: float(v[index]) for m, v in values.items()}
        row["lpips"] = None
        table.add(ImageRecord(image_id, ID_BINS[image_id], row), {"lpips": LPIPS_REASON})

    def fid(bin_index: int | None, n: int) -> DatasetMetricResult:
        value = fid_value(key.dataset, key.variant, key.seed, bin_index)
        if value is None:
            return DatasetMetricResult("fid", None, n, FID_REASON, "unavailable")
        return DatasetMetricResult("fid", value, n)

    summary = summarize(table, dataset_metrics={"fid": {format_bin(b): fid(b, PER_BIN)
                                                        for b in BINS}},
                        overall_dataset_metrics={"fid": fid(None, len(IDS))},
                        resamples=20, seed=0)
    for b in BINS:
        low, high = NVIDIA_BINS[b]
        summary["bins"][format_bin(b)].update({"bin_index": b, "bounds": [low, high],
                                               "n_masks": 4,
                                               "mean_hole_ratio": low + 0.03 * (b + 1)})
    rfr_family = key.variant.startswith("rfr")
    summary["evaluation"] = {
        "source": {"kind": "checkpoint", "parameters": 1000 + 10 * COLOURS[key.variant],
                   "gmacs": ({"value": 0.5 + COLOURS[key.variant]} if key.variant != "encdec"
                             else {"status": "unavailable", "reason": "counter failed (test)"})},
        "dataset": {"name": key.dataset, "size": SIZE},
        "grid_examples": GRID_EXAMPLES, "n_images_per_bin": PER_BIN}
    summary["latency"] = {"ms_per_image": 10.0 + key.seed, "device": "cpu"}
    summary["run"] = {"name": key.name, "dataset": key.dataset, "variant": key.variant,
                      "seed": key.seed}
    write_bins_json(summary, metrics_dir / "summary.json")
    write_per_image_csv(table, metrics_dir / "per_image.csv")
    write_examples(metrics_dir / "examples.png", key.variant)
    if rfr_family:
        steps = 6 if "iter" not in key.variant else int(key.variant[-1])
        recurrence = {"status": "ok", "iter_num": steps,
                      "bins": {format_bin(b): {"bin_index": b, "n_images": PER_BIN,
                                               "hole_ratio": [0.1 * (b + 1) * (1 - k / steps)
                                                              for k in range(steps + 1)]}
                               for b in BINS},
                      "overall": {"hole_ratio": [0.3 * (1 - k / steps)
                                                 for k in range(steps + 1)]}}
        write_image(torch.rand(3, SIZE * 3, SIZE * 9, generator=torch.Generator().manual_seed(1)),
                    metrics_dir / "recurrence.png")
    else:
        recurrence = {"status": "not applicable", "reason": "not an RFR-family model"}
    (metrics_dir / "recurrence.json").write_text(json.dumps(recurrence))
    train_dir.mkdir(parents=True)
    (train_dir / "summary.json").write_text(json.dumps({
        "step": 40, "train": {"total": 1.0, "valid": 0.1, "hole": 0.2, "perceptual": 0.3,
                              "style": 0.3, "tv": 0.1},
        "seconds": 100.0 + 10 * key.seed, "steps_per_second": 0.4 + 0.1 * key.seed,
        "parameters": 1000 + 10 * COLOURS[key.variant], "vgg_weights": "test",
        "vgg_random": key == RANDOM_VGG_RUN, "model": key.variant, "dataset": key.dataset}))
    curves = train_dir / "plots" / "metrics" / "train"
    curves.mkdir(parents=True)
    lines = ["timestamp\tstep\ttotal"] + [f"{1000 + s}\t{s}\t{2.0 / (s + 1) + key.seed}"
                                          for s in range(0, 40, 5)]
    (curves / "total.tsv").write_text("\n".join(lines) + "\n")


PUBLISHED = """\
entries:
  - method: rfr
    dataset: scenes
    bin: "(0.1, 0.2]"
    metric: psnr
    value: 31.5
    citation: "Test et al., 2020, Table 9"
"""


def make_params(root: Path, seeds: tuple[int, ...] = SEEDS,
                ablation_seeds: tuple[int, ...] | None = None) -> dict[str, Any]:
    return {
        "compare": {"datasets": list(DATASETS), "variants": list(METHODS), "seeds": list(seeds)},
        "ablation": {"dataset": "scenes", "variants": list(ABLATIONS),
                     "seeds": list(ablation_seeds if ablation_seeds is not None else seeds)},
        "report": {"published": str(root / "published.yaml"), "resamples": 200, "seed": 0,
                   "qualitative_bins": [1, 3, 4]},
    }


def build_results(root: Path) -> Path:
    results = root / "results"
    keys = [RunKey(d, v, s) for d in DATASETS for v in METHODS for s in SEEDS]
    keys += [RunKey("scenes", v, s) for v in ABLATIONS for s in SEEDS]
    for key in keys:
        write_run(results, key)
    (root / "published.yaml").write_text(PUBLISHED)
    return results


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    return root, build_results(root)


@pytest.fixture(scope="module")
def report(built: tuple[Path, Path]) -> ReportResult:
    root, results = built
    return write_report(make_params(root), results)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def pooled(variant: str, metric: str, seeds: tuple[int, ...] = SEEDS,
           bin_label: str | None = None) -> float:
    values = np.stack([metric_values(variant, s)[metric] for s in seeds])
    if bin_label is not None:
        values = values[:, [ID_BINS[i] == bin_label for i in IDS]]
    return float(np.nanmean(values))


def seed_mean(variant: str, metric: str) -> np.ndarray:
    return np.nanmean(np.stack([metric_values(variant, s)[metric] for s in SEEDS]), axis=0)


# --- files --------------------------------------------------------------------------------


@pytest.mark.slow
def test_tables_and_figures_are_written(report: ReportResult, built: tuple[Path, Path]) -> None:
    _, results = built
    names = {p.name for p in report.tables}
    for stem in ("methods_scenes", "methods_faces", "ablation_attention", "ablation_merge",
                 "ablation_iternum", "cost"):
        assert {f"{stem}.md", f"{stem}.tex", f"{stem}.csv"} <= names
    figures = {p.name for p in report.figures}
    for stem in ("metric_vs_hole_scenes", "metric_vs_hole_faces", "metric_vs_iternum",
                 "qualitative_scenes", "qualitative_faces", "recurrence", "training_curves"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= figures
    assert all(p.parent == results / "tables" for p in report.tables)
    assert all(p.parent == results / "figures" for p in report.figures)
    assert all(p.stat().st_size > 0 for p in (*report.tables, *report.figures))
    # qualitative_bins [1, 3, 4]: bin 4 has no examples, which is said, not hidden
    assert any("bin(s) [4]" in w for w in report.warnings)


# --- methods table ------------------------------------------------------------------------


@pytest.mark.slow
def test_methods_csv_means_equal_the_values_put_in(report: ReportResult,
                                                    built: tuple[Path, Path]) -> None:
    path = built[1] / "tables" / "methods_scenes.csv"
    assert path.read_text().splitlines()[0] == ("dataset,bin,metric,method,mean,ci_low,ci_high,"
                                                "n_seeds,n_images,published,citation,note")
    rows = read_csv(path)
    assert {r["bin"] for r in rows} == {*(format_bin(b) for b in BINS), "all"}
    for method in METHODS:
        for metric in ("psnr", "ssim", "l1"):
            for level in (*(format_bin(b) for b in BINS), "all"):
                (row,) = [r for r in rows if (r["method"], r["metric"], r["bin"])
                          == (method, metric, level)]
                expected = pooled(method, metric, bin_label=None if level == "all" else level)
                assert float(row["mean"]) == pytest.approx(expected, rel=1e-12)
                assert float(row["ci_low"]) <= float(row["mean"]) <= float(row["ci_high"])
                assert row["n_seeds"] == "2"
                assert row["n_images"] == str(len(IDS) if level == "all" else PER_BIN)


@pytest.mark.slow
def test_undefined_images_are_left_out_of_means(report: ReportResult,
                                                built: tuple[Path, Path]) -> None:
    rows = read_csv(built[1] / "tables" / "methods_scenes.csv")
    (row,) = [r for r in rows if (r["method"], r["metric"], r["bin"]) == ("rfr", "l1_hole",
                                                                           "(0.1, 0.2]")]
    values = np.stack([metric_values("rfr", s)["l1_hole"][:PER_BIN] for s in SEEDS])
    assert np.isnan(values).sum() == 2
    assert float(row["mean"]) == pytest.approx(float(np.nanmean(values)), rel=1e-12)
    assert row["n_images"] == str(PER_BIN - 1)


@pytest.mark.slow
def test_unavailable_metric_shows_as_unavailable_with_its_reason(
        report: ReportResult, built: tuple[Path, Path]) -> None:
    tables = built[1] / "tables"
    rows = read_csv(tables / "methods_scenes.csv")
    lpips = [r for r in rows if r["metric"] == "lpips"]
    assert len(lpips) == len(METHODS) * (len(BINS) + 1)
    assert all(r["mean"] == "unavailable" and LPIPS_REASON in r["note"] for r in lpips)
    markdown = (tables / "methods_scenes.md").read_text()
    assert "| LPIPS |" in markdown and "unavailable [" in markdown
    assert LPIPS_REASON in markdown
    faces = read_csv(tables / "methods_faces.csv")
    fid = [r for r in faces if r["metric"] == "fid"]
    assert fid and all(r["mean"] == "unavailable" and FID_REASON in r["note"] for r in fid)
    assert FID_REASON.replace("_", r"\_") in (tables / "methods_faces.tex").read_text()


@pytest.mark.slow
def test_dataset_level_fid_is_the_mean_over_seeds(report: ReportResult,
                                                  built: tuple[Path, Path]) -> None:
    rows = read_csv(built[1] / "tables" / "methods_scenes.csv")
    (row,) = [r for r in rows if (r["method"], r["metric"], r["bin"]) == ("pconv", "fid",
                                                                           "(0.3, 0.4]")]
    expected = np.mean([fid_value("scenes", "pconv", s, 3) for s in SEEDS])
    assert float(row["mean"]) == pytest.approx(expected)
    assert "CI over seeds only" in row["note"]


@pytest.mark.slow
def test_best_method_per_row_is_marked(report: ReportResult, built: tuple[Path, Path]) -> None:
    tables = built[1] / "tables"
    rows = read_csv(tables / "methods_scenes.csv")
    for metric, best in (("psnr", "rfr"), ("ssim", "rfr"), ("l1", "rfr"), ("fid", "rfr")):
        marked = {r["method"] for r in rows if r["metric"] == metric and r["bin"] == "all"
                  and r["note"].startswith("best")}
        assert marked == {best}
    markdown = (tables / "methods_scenes.md").read_text()
    line = next(x for x in markdown.splitlines() if x.startswith("| PSNR (dB) | all |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2].startswith("**") and not cells[4].startswith("**")
    assert r"\textbf{" in (tables / "methods_scenes.tex").read_text()


@pytest.mark.slow
def test_published_value_appears_only_where_given(report: ReportResult,
                                                  built: tuple[Path, Path]) -> None:
    tables = built[1] / "tables"
    rows = read_csv(tables / "methods_scenes.csv") + read_csv(tables / "methods_faces.csv")
    cited = [r for r in rows if r["published"]]
    assert [(r["dataset"], r["method"], r["bin"], r["metric"]) for r in cited] == [
        ("scenes", "rfr", "(0.1, 0.2]", "psnr")]
    assert float(cited[0]["published"]) == 31.5
    assert cited[0]["citation"] == "Test et al., 2020, Table 9"
    assert all(r["citation"] == "" for r in rows if not r["published"])
    markdown = (tables / "methods_scenes.md").read_text()
    assert "31.50 [" in markdown and "Test et al., 2020, Table 9" in markdown
    assert "31.50" not in (tables / "methods_faces.md").read_text()


@pytest.mark.slow
def test_random_vgg_runs_are_labelled(report: ReportResult, built: tuple[Path, Path]) -> None:
    tables = built[1] / "tables"
    faces = (tables / "methods_faces.md").read_text()
    assert f"> **Warning:** {RANDOM_VGG_WARNING}" in faces
    assert RANDOM_VGG_RUN.name in faces
    assert RANDOM_VGG_WARNING not in (tables / "methods_scenes.md").read_text()
    assert RANDOM_VGG_WARNING in (tables / "cost.md").read_text()
    assert r"\textbf{Warning: losses computed with random VGG16" in (
        tables / "methods_faces.tex").read_text()
    rows = read_csv(tables / "methods_faces.csv")
    assert all(RANDOM_VGG_WARNING in r["note"] for r in rows if r["method"] == "encdec")
    assert not any(RANDOM_VGG_WARNING in r["note"] for r in rows if r["method"] == "rfr")
    assert RANDOM_VGG_WARNING in report.warnings[0]


@pytest.mark.slow
def test_markdown_is_a_github_table(report: ReportResult, built: tuple[Path, Path]) -> None:
    lines = (built[1] / "tables" / "methods_scenes.md").read_text().splitlines()
    table = [x for x in lines if x.startswith("|")]
    widths = {x.count("|") - x.count(r"\|") for x in table}
    assert len(widths) == 1  # every row has the header's number of cells
    assert set(table[1].replace("|", "")) <= {":", "-"}
    tex = (built[1] / "tables" / "ablation_iternum.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert "rfr\\_no\\_kca" in (built[1] / "tables" / "ablation_attention.tex").read_text()


# --- ablations ----------------------------------------------------------------------------


@pytest.mark.slow
def test_studies_come_from_the_variant_deltas(report: ReportResult,
                                              built: tuple[Path, Path]) -> None:
    tables = built[1] / "tables"
    expected = {
        "attention": [("rfr", "kca"), ("rfr_no_kca", "none"), ("rfr_naive_attention", "naive")],
        "merge": [("rfr", "adaptive"), ("rfr_concat_merge", "concat")],
        "iternum": [("rfr_iter1", "1"), ("rfr_iter2", "2"), ("rfr", "6")],
    }
    for study, members in expected.items():
        path = tables / f"ablation_{study}.csv"
        assert path.read_text().splitlines()[0] == (
            "study,dataset,variant,setting,bin,metric,mean,ci_low,ci_high,delta_vs_full,"
            "p_wilcoxon,p_holm,n_pairs,n_seeds,note")
        rows = [r for r in read_csv(path) if r["bin"] == "all" and r["metric"] == "psnr"]
        assert [(r["variant"], r["setting"]) for r in rows] == members
        assert {r["study"] for r in rows} == {study} and {r["dataset"] for r in rows} == {
            "scenes"}
        assert {r["bin"] for r in read_csv(path)} == {"all", *(format_bin(b) for b in BINS)}


@pytest.mark.slow
def test_paired_wilcoxon_matches_scipy_and_detects_a_shift(report: ReportResult,
                                                          built: tuple[Path, Path]) -> None:
    rows = read_csv(built[1] / "tables" / "ablation_attention.csv")

    def row(variant: str, metric: str = "psnr", level: str = "all") -> dict[str, str]:
        (found,) = [r for r in rows if (r["variant"], r["metric"], r["bin"])
                    == (variant, metric, level)]
        return found

    shifted, noisy, full = row("rfr_no_kca"), row("rfr_naive_attention"), row("rfr")
    assert float(shifted["delta_vs_full"]) == pytest.approx(-1.0)
    assert float(shifted["mean"]) == pytest.approx(pooled("rfr_no_kca", "psnr"))
    for variant, found in (("rfr_no_kca", shifted), ("rfr_naive_attention", noisy)):
        differences = seed_mean(variant, "psnr") - seed_mean("rfr", "psnr")
        assert float(found["p_wilcoxon"]) == pytest.approx(
            scipy_stats.wilcoxon(differences).pvalue, rel=1e-12)
        assert found["n_pairs"] == str(len(IDS))
    assert float(shifted["p_wilcoxon"]) < 1e-3
    assert float(noisy["p_wilcoxon"]) > 0.2
    assert full["p_wilcoxon"] == full["delta_vs_full"] == "" and "reference" in full["note"]
    # hole L1 is undefined for one image: that pair is dropped
    assert row("rfr_no_kca", "l1_hole")["n_pairs"] == str(len(IDS) - 1)
    # per-bin rows pair the bin's images only
    assert row("rfr_no_kca", "psnr", "(0.3, 0.4]")["n_pairs"] == str(PER_BIN)


@pytest.mark.slow
def test_holm_adjustment_within_the_study(report: ReportResult, built: tuple[Path, Path]) -> None:
    rows = [r for r in read_csv(built[1] / "tables" / "ablation_iternum.csv")
            if r["bin"] == "all" and r["p_wilcoxon"]]
    p = np.asarray([float(r["p_wilcoxon"]) for r in rows])
    assert len(p) == 2 * 4  # two variants x psnr, ssim, l1, l1_hole (no lpips, fid values)
    order = np.argsort(p, kind="stable")
    expected = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        expected[index] = running
    assert [float(r["p_holm"]) for r in rows] == pytest.approx(list(expected))
    assert all(float(r["p_holm"]) >= float(r["p_wilcoxon"]) for r in rows)
    fid = [r for r in read_csv(built[1] / "tables" / "ablation_iternum.csv")
           if r["metric"] == "fid" and r["variant"] == "rfr_iter1" and r["bin"] == "all"]
    assert fid[0]["p_wilcoxon"] == "" and "no paired test" in fid[0]["note"]


@pytest.mark.slow
def test_one_seed_reduces_to_the_image_bootstrap(built: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    root, results = built
    copy = tmp_path / "results"
    shutil.copytree(results / "metrics", copy / "metrics")
    shutil.copytree(results / "train", copy / "train")
    one = write_report(make_params(root, seeds=(0,)), copy)
    rows = read_csv(copy / "tables" / "methods_scenes.csv")
    (row,) = [r for r in rows if (r["method"], r["metric"], r["bin"]) == ("rfr", "psnr", "all")]
    assert row["n_seeds"] == "1"
    assert float(row["mean"]) == pytest.approx(pooled("rfr", "psnr", seeds=(0,)))
    two = read_csv(results / "tables" / "methods_scenes.csv")
    (row2,) = [r for r in two if (r["method"], r["metric"], r["bin"]) == ("rfr", "psnr", "all")]
    # the seed offset (0.4 dB) widens the interval when seeds are resampled too
    width1 = float(row["ci_high"]) - float(row["ci_low"])
    width2 = float(row2["ci_high"]) - float(row2["ci_low"])
    assert width2 > width1
    # with one seed the interval is rfr.evaluate.aggregate's image bootstrap of the same values,
    # drawn from the cell's own stream (dataset, method, seeds, bin, metric)
    expected = bootstrap_ci(metric_values("rfr", 0)["psnr"], resamples=200,
                            seed=stream_seed(0, "scenes", "rfr", "0", "all", "psnr"))
    assert (float(row["ci_low"]), float(row["ci_high"])) == expected
    assert one.tables


# --- cost ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_cost_table(report: ReportResult, built: tuple[Path, Path]) -> None:
    path = built[1] / "tables" / "cost.csv"
    assert path.read_text().splitlines()[0] == ("dataset,variant,parameters,gmacs,latency_ms,"
                                                "train_seconds,steps_per_second,n_seeds")
    rows = {(r["dataset"], r["variant"]): r for r in read_csv(path)}
    assert len(rows) == len(DATASETS) * len(METHODS) + len(ABLATIONS)
    pconv = rows[("scenes", "pconv")]
    assert int(pconv["parameters"]) == 1010
    assert float(pconv["gmacs"]) == 1.5
    assert float(pconv["latency_ms"]) == pytest.approx(10.5)
    assert float(pconv["train_seconds"]) == pytest.approx(105.0)
    assert float(pconv["steps_per_second"]) == pytest.approx(0.45)
    assert pconv["n_seeds"] == "2"
    assert rows[("faces", "encdec")]["gmacs"] == "unavailable"
    assert "counter failed (test)" in (built[1] / "tables" / "cost.md").read_text()
    assert rows[("scenes", "rfr_iter2")]["n_seeds"] == "2"


# --- figures ------------------------------------------------------------------------------


def test_qualitative_tiles_are_read_by_image_id(built: tuple[Path, Path]) -> None:
    run = load_run(built[1], RunKey("faces", "pconv", 0))
    tiles = read_example_tiles(run, [*BINS, 4], examples=GRID_EXAMPLES)
    assert tiles.bins == set(BINS)  # bin 4 was not scored: no tiles, no error
    for b in BINS:
        for example in range(GRID_EXAMPLES):
            for col in range(3):
                tile = tiles.tile(b, col, example)
                assert tile.shape == (SIZE, SIZE, 3)
                expected = np.asarray(tile_colour("pconv", b, example, col), dtype=np.uint8)
                assert (tile == expected).all(), (b, example, col)


def _copy_run(run, root: Path) -> Path:
    metrics_dir = root / "metrics" / run.key.name
    shutil.copytree(run.metrics_dir, metrics_dir)
    shutil.copytree(run.train_dir, root / "train" / run.key.name)
    return metrics_dir


def test_qualitative_stale_tile_is_refused(built: tuple[Path, Path], tmp_path: Path) -> None:
    run = load_run(built[1], RunKey("faces", "rfr", 0))
    stale = _copy_run(run, tmp_path) / tile_relpath(BINS[0], "img0", "output")
    write_image(torch.ones(3, 20, 20), stale)
    with pytest.raises(ReportError, match=r"output\.png is 20x20 .*dvc repro"):
        read_example_tiles(load_run(tmp_path, run.key), BINS)


def test_qualitative_figure_missing_tile_is_a_report_error(built: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    root, results = built
    copy = tmp_path / "results"
    shutil.copytree(results / "metrics", copy / "metrics")
    shutil.copytree(results / "train", copy / "train")
    missing = copy / "metrics" / "scenes-pconv-0" / tile_relpath(3, "img0", "output")
    missing.unlink()
    with pytest.raises(ReportError, match="missing.*dvc repro") as info:
        write_report(make_params(root), copy)
    assert str(missing) in str(info.value)
    assert not (copy / "figures").exists()  # nothing written on failure


@pytest.mark.slow
def test_figures_and_tables_are_byte_identical_across_runs(
        report: ReportResult, built: tuple[Path, Path]) -> None:
    root, results = built
    first = {p.name: p.read_bytes() for p in (*report.tables, *report.figures)}
    again = write_report(make_params(root), results)
    second = {p.name: p.read_bytes() for p in (*again.tables, *again.figures)}
    assert first.keys() == second.keys()
    assert [n for n in first if first[n] != second[n]] == []
    assert first["recurrence.pdf"].startswith(b"%PDF")
    assert b"CreationDate" not in first["recurrence.pdf"]
    assert first["qualitative_scenes.png"].startswith(b"\x89PNG")


# --- errors and params --------------------------------------------------------------------


def test_missing_run_is_a_report_error_naming_the_file(built: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    root, results = built
    copy = tmp_path / "results"
    shutil.copytree(results / "metrics", copy / "metrics")
    shutil.copytree(results / "train", copy / "train")
    missing = copy / "metrics" / "scenes-rfr_iter2-1" / "per_image.csv"
    missing.unlink()
    with pytest.raises(ReportError, match="dvc repro") as info:
        write_report(make_params(root), copy)
    assert str(missing) in str(info.value)
    assert not (copy / "tables").exists()  # nothing written on failure


@pytest.mark.parametrize(("entry", "match"), [
    ("{method: rfr, dataset: scenes, bin: '(0.1, 0.2]', metric: psnr, value: 30.0}",
     "missing.*citation"),
    ("{method: rfr, dataset: scenes, bin: '(0.1, 0.2]', metric: psnr, value: 30.0, "
     "citation: ' '}", "non-empty citation"),
    ("{method: rfr, dataset: scenes, bin: '(0.1, 0.2]', metric: mse, value: 30.0, "
     "citation: x}", "unknown metric 'mse'"),
    ("{method: rfr, dataset: scenes, bin: '10-20%', metric: psnr, value: 30.0, "
     "citation: x}", "malformed bin '10-20%'"),
    ("{method: rfr, dataset: scenes, bin: '(0.1, 0.2]', metric: l1, value: 2.5, "
     "citation: x}", r"outside \[0, 1\]"),
])
def test_bad_published_entry_is_a_report_error(built: tuple[Path, Path], tmp_path: Path,
                                               entry: str, match: str) -> None:
    root, results = built
    path = tmp_path / "published.yaml"
    good = ("{method: pconv, dataset: scenes, bin: all, metric: ssim, value: 0.5, "
            "citation: 'Paper, Table 1'}")
    path.write_text(f"entries:\n  - {good}\n  - {entry}\n")
    params = make_params(root)
    params["report"]["published"] = str(path)
    with pytest.raises(ReportError, match=match) as info:
        write_report(params, results)
    assert str(path) in str(info.value) and "entry 1" in str(info.value)


def test_missing_published_file_is_a_report_error(built: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    root, results = built
    params = make_params(root)
    params["report"]["published"] = str(tmp_path / "none.yaml")
    with pytest.raises(ReportError, match=r"none\.yaml.*entries: \[\]"):
        write_report(params, results)


class OnlyReportKeys(Mapping[str, Any]):
    """params that fail loudly when the report reads a key it must not."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = {**data, "train": "forbidden", "evaluate": "forbidden"}
        self.read: list[str] = []

    def __getitem__(self, key: str) -> Any:
        if key not in ("compare", "ablation", "report", "released"):
            raise AssertionError(f"the report read params[{key!r}]")
        self.read.append(key)
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the report iterated over params")

    def __len__(self) -> int:
        raise AssertionError("the report took len(params)")


@pytest.mark.slow
def test_report_reads_only_compare_ablation_report_and_released(
        built: tuple[Path, Path], tmp_path: Path) -> None:
    root, results = built
    copy = tmp_path / "results"
    shutil.copytree(results / "metrics", copy / "metrics")
    shutil.copytree(results / "train", copy / "train")
    params = OnlyReportKeys(make_params(root))
    written = write_report(params, copy)
    assert written.tables and written.figures
    # released: which datasets have a released-checkpoint run (none here)
    assert set(params.read) == {"compare", "ablation", "report", "released"}
    # nothing else in the results folder is written (plots: dvc.yaml's top-level plots)
    assert sorted(p.name for p in copy.iterdir()) == ["figures", "metrics", "plots", "tables",
                                                       "train"]
    assert sorted(p.name for p in written.plots) == ["bins.csv", "train_loss.csv"]


@pytest.mark.parametrize(("change", "match"), [
    ({"ablation": {"dataset": "paris", "variants": ["rfr_iter1"], "seeds": [0]}},
     "ablation.dataset 'paris' must be one of compare.datasets"),
    ({"ablation": {"dataset": "scenes", "variants": ["rfr_iter1"], "seeds": [0, 7]}},
     r"seed\(s\) \[7\]"),
    ({"ablation": {"dataset": "scenes", "variants": ["rfr_nope"], "seeds": [0]}},
     "'rfr_nope' is not in ablations/variants.yaml"),
    ({"report": {"qualitative_bins": [9]}}, "qualitative_bins"),
])
def test_inconsistent_params_are_report_errors(built: tuple[Path, Path],
                                               change: dict[str, Any], match: str) -> None:
    root, results = built
    params = {**make_params(root), **change}
    with pytest.raises(ReportError, match=match):
        write_report(params, results)
