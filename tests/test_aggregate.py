"""Per-image CSV, per-bin JSON and bootstrap intervals, on metrics computed for real.

Rows come from `rfr.evaluate.metrics.image_metrics` on scikit-image's photos (or hand-made rows
where the exact text of a file is checked); nothing is mocked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rfr.data.embedded import square_photo
from rfr.evaluate.aggregate import (
    FORMAT,
    UNAVAILABLE_CELL,
    ImageRecord,
    MetricTable,
    aggregate,
    bootstrap_ci,
    read_per_image_csv,
    summarize,
    table_from_records,
    write_bins_json,
    write_per_image_csv,
)
from rfr.evaluate.metrics import (
    DatasetMetricResult,
    FIDAccumulator,
    MetricResult,
    Unavailable,
    image_metrics,
)

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
REASON = "lpips unavailable: alexnet-imagenet weights not found: expected alexnet-owt-7be5be79.pth"


def photos(size: int = 96) -> torch.Tensor:
    return torch.stack([square_photo(name, size) for name in PHOTOS])


def batch_part(result: MetricResult, part: slice) -> MetricResult:
    if result.values is None:
        return result
    return MetricResult(result.name, result.values[part])


@pytest.fixture(scope="module")
def evaluated() -> MetricTable:
    """Ten real images in two bins: the photos and their mirror images, a blurred fill in
    seeded holes (the last image has none), LPIPS unavailable as on this machine."""
    images = torch.cat([photos(), photos().flip(-1)])
    size = images.shape[-1]
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(len(images), 1, size, size)
    for index in range(len(images) - 1):
        side = 16 if index % 2 else 40
        top, left = torch.randint(0, size - side, (2,), generator=generator).tolist()
        mask[index, :, top:top + side, left:left + side] = 0
    output = F.avg_pool2d(images, 9, 1, 4, count_include_pad=False)
    results = image_metrics(output, images, mask, lpips=Unavailable("lpips", REASON))
    table = MetricTable()
    ids = [f"img{i:02d}" for i in range(len(images))]
    bins = ["small" if i % 2 else "large" for i in range(len(images))]
    for part in (slice(0, 6), slice(6, None)):  # two batches, as evaluation adds them
        table.add_batch(ids[part], bins[part], {name: batch_part(r, part)
                                                for name, r in results.items()})
    return table


def test_per_image_csv_has_one_row_per_image_with_every_metric(
    evaluated: MetricTable, tmp_path: Path
) -> None:
    path = write_per_image_csv(evaluated, tmp_path / "out" / "per_image.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "id,bin,psnr,ssim,l1,l1_hole,lpips"
    assert len(lines) == 11
    first = lines[1].split(",")
    assert first[:2] == ["img00", "large"]
    assert 10 < float(first[2]) < 60 and 0 < float(first[3]) < 1
    assert all(line.endswith("," + UNAVAILABLE_CELL) for line in lines[1:])
    assert lines[-1].split(",")[5] == ""  # no hole: hole L1 undefined, empty cell


def test_csv_text_for_a_hand_made_table(tmp_path: Path) -> None:
    table = table_from_records(
        [ImageRecord("a", "0.1-0.2", {"psnr": 30.5, "l1_hole": 0.25, "lpips": None}),
         ImageRecord("b", "0.1-0.2", {"psnr": 100.0, "l1_hole": math.nan, "lpips": None})],
        reasons={"lpips": REASON},
    )
    path = write_per_image_csv(table, tmp_path / "t.csv")
    assert path.read_text() == (
        "id,bin,psnr,l1_hole,lpips\n"
        "a,0.1-0.2,30.5,0.25,unavailable\n"
        "b,0.1-0.2,100.0,,unavailable\n"
    )
    back = read_per_image_csv(path)
    assert back.metric_names == ["psnr", "l1_hole", "lpips"]
    assert back.rows[0].values == {"psnr": 30.5, "l1_hole": 0.25, "lpips": None}
    assert math.isnan(back.rows[1].values["l1_hole"])
    assert "lpips" in back.unavailable


def test_csv_round_trip_keeps_every_value_exactly(evaluated: MetricTable, tmp_path: Path) -> None:
    back = read_per_image_csv(write_per_image_csv(evaluated, tmp_path / "p.csv"))
    for original, read in zip(evaluated.rows, back.rows, strict=True):
        assert (read.image_id, read.bin) == (original.image_id, original.bin)
        for name, value in original.values.items():
            other = read.values[name]
            assert (value is None and other is None) or value == other or (
                math.isnan(value) and math.isnan(other))


def test_bins_json_has_means_intervals_and_statuses(
    evaluated: MetricTable, tmp_path: Path
) -> None:
    summary = aggregate(evaluated, tmp_path / "per_image.csv", tmp_path / "bins.json", seed=7)
    on_disk = json.loads((tmp_path / "bins.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["format"] == FORMAT
    assert on_disk["bootstrap"] == {"method": "percentile", "statistic": "mean",
                                    "resamples": 2000, "confidence": 0.95, "seed": 7}
    assert list(on_disk["bins"]) == ["large", "small"]
    assert on_disk["metrics"]["psnr"] == {"kind": "per-image", "higher_is_better": True}
    assert on_disk["metrics"]["l1_hole"]["higher_is_better"] is False

    large = on_disk["bins"]["large"]
    assert large["n_images"] == 5
    rows = [row for row in evaluated.rows if row.bin == "large"]
    psnr = large["metrics"]["psnr"]
    assert psnr["status"] == "ok" and psnr["n"] == 5
    assert psnr["mean"] == pytest.approx(np.mean([r.values["psnr"] for r in rows]))
    low, high = psnr["ci95"]
    assert low <= psnr["mean"] <= high

    # img09 (bin "small") has no hole: left out of the hole L1 mean, and counted.
    small_hole = on_disk["bins"]["small"]["metrics"]["l1_hole"]
    assert small_hole["n"] == 4 and small_hole["n_undefined"] == 1
    assert "n_undefined" not in large["metrics"]["l1_hole"]

    for entry in (large, on_disk["bins"]["small"], on_disk["overall"]):
        assert entry["metrics"]["lpips"] == {"status": "unavailable", "reason": REASON}
    assert on_disk["overall"]["n_images"] == 10
    assert on_disk["overall"]["metrics"]["l1_hole"]["n_undefined"] == 1


def test_dataset_level_fid_enters_each_bin_and_overall(
    evaluated: MetricTable, tmp_path: Path
) -> None:
    fid_reason = "fid unavailable: inception-fid weights not found"
    accumulator = FIDAccumulator(Unavailable("fid", fid_reason))
    images = photos(32)
    accumulator.add(["large", "small", "large", "small", "large"], images, images)
    summary = summarize(evaluated, dataset_metrics={"fid": accumulator.results()},
                        overall_dataset_metrics={"fid": accumulator.result()})
    assert summary["metrics"]["fid"] == {"kind": "dataset", "higher_is_better": False}
    fid = summary["bins"]["large"]["metrics"]["fid"]
    assert fid["status"] == "unavailable" and fid["reason"] == fid_reason
    assert fid["n_images"] == 3 and "value" not in fid
    assert summary["overall"]["metrics"]["fid"]["n_images"] == 5

    computed = {"large": DatasetMetricResult("fid", 41.5, 5, note="biased for small sets"),
                "small": DatasetMetricResult("fid", None, 1, "fid undefined: 1 image",
                                             "undefined")}
    summary = summarize(evaluated, dataset_metrics={"fid": computed})
    assert summary["bins"]["large"]["metrics"]["fid"] == {
        "status": "ok", "n_images": 5, "value": 41.5, "note": "biased for small sets"}
    assert summary["bins"]["small"]["metrics"]["fid"]["status"] == "undefined"
    write_bins_json(summary, tmp_path / "with_fid.json")  # no NaN anywhere

    with pytest.raises(ValueError, match="bins without rows"):
        summarize(evaluated, dataset_metrics={"fid": {"nowhere": computed["large"]}})


def test_partly_unavailable_metric_is_unavailable_not_a_partial_mean() -> None:
    table = table_from_records(
        [ImageRecord("a", "b1", {"lpips": 0.2}), ImageRecord("b", "b1", {"lpips": None}),
         ImageRecord("c", "b2", {"lpips": 0.3}), ImageRecord("d", "b2", {"lpips": 0.5})],
        reasons={"lpips": REASON},
    )
    summary = summarize(table)
    assert summary["bins"]["b1"]["metrics"]["lpips"]["status"] == "unavailable"
    assert summary["bins"]["b2"]["metrics"]["lpips"]["mean"] == pytest.approx(0.4)
    assert summary["overall"]["metrics"]["lpips"]["status"] == "unavailable"


def test_one_image_bin_has_a_mean_but_no_interval_and_all_undefined_is_a_status() -> None:
    table = table_from_records([ImageRecord("a", "x", {"psnr": 31.0, "l1_hole": math.nan})])
    metrics = summarize(table)["bins"]["x"]["metrics"]
    assert metrics["psnr"] == {"status": "ok", "mean": 31.0, "n": 1, "ci95": None}
    assert metrics["l1_hole"]["status"] == "undefined" and metrics["l1_hole"]["n_undefined"] == 1


def test_rows_must_agree_on_metrics_and_unavailable_needs_a_reason() -> None:
    table = MetricTable()
    table.add(ImageRecord("a", "x", {"psnr": 30.0, "ssim": 0.9}))
    with pytest.raises(ValueError, match="same metrics"):
        table.add(ImageRecord("b", "x", {"psnr": 30.0}))
    with pytest.raises(ValueError, match="duplicate"):
        table.add(ImageRecord("a", "x", {"psnr": 30.0, "ssim": 0.9}))
    with pytest.raises(ValueError, match="no reason"):
        MetricTable().add(ImageRecord("c", "x", {"lpips": None}))
    with pytest.raises(TypeError):
        MetricTable().add(ImageRecord("c", "x", {"psnr": "30"}))


def test_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        write_bins_json({"mean": math.nan}, Path("/nonexistent-never-written.json"))


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    values = np.random.default_rng(0).normal(30, 3, size=50)
    assert bootstrap_ci(values, seed=5) == bootstrap_ci(values, seed=5)
    assert bootstrap_ci(values, seed=5) != bootstrap_ci(values, seed=6)


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(1)
    few = rng.normal(30, 3, size=20)
    many = rng.normal(30, 3, size=2000)
    for values in (few, many):
        low, high = bootstrap_ci(values)
        assert low < values.mean() < high
    few_width = np.subtract(*bootstrap_ci(few)[::-1])
    many_width = np.subtract(*bootstrap_ci(many)[::-1])
    assert many_width < few_width / 5  # width ~ 1/sqrt(n): 10x narrower expected
    # close to the normal-theory interval mean +- 1.96 s / sqrt(n) for this many samples
    normal_width = 2 * 1.96 * many.std(ddof=1) / math.sqrt(many.size)
    assert many_width == pytest.approx(normal_width, rel=0.1)


def test_bootstrap_of_constant_values_is_a_point_and_needs_two_values() -> None:
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([1.0, math.nan])


def test_a_bins_interval_does_not_depend_on_other_bins() -> None:
    rng = np.random.default_rng(2)
    rows = [ImageRecord(f"a{i}", "a", {"psnr": float(v)}) for i, v in
            enumerate(rng.normal(30, 2, 30))]
    more = [ImageRecord(f"b{i}", "b", {"psnr": float(v)}) for i, v in
            enumerate(rng.normal(25, 2, 30))]
    alone = summarize(table_from_records(rows), seed=3)["bins"]["a"]["metrics"]["psnr"]
    beside = summarize(table_from_records(more + rows), seed=3)["bins"]["a"]["metrics"]["psnr"]
    assert alone == beside
