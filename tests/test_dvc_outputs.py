"""dvc.yaml's metrics, outs and plots against the files the verbs write.

`dvc metrics show` prints one row per metrics file and one column per key, so each
metrics.json must be flat and numeric (provenance lives in summary.json beside it); `dvc
plots show` must draw a few plots that overlay runs, not one per run and series. The
static checks read dvc.yaml and the writers' constants; the writers are run on small
fixtures; the slow test runs real DVC on a tiny workspace.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rfr import pipeline
from rfr.evaluate import layout
from rfr.evaluate.aggregate import ImageRecord, MetricTable, summarize
from rfr.evaluate.recurrence import RECURRENCE_JSON
from rfr.evaluate.summary_files import ALWAYS_IN_BINS, BINS_COLUMNS, flat_metrics
from rfr.report import build, plot_data
from rfr.report.inputs import RunData, RunKey
from rfr.train.run_log import METRICS_FILE, PLOTS_DIR, SUMMARY_FILE, TrainingCurves

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]
PROFILES = sorted(path.stem for path in (ROOT / "profiles").glob("*.yaml"))
RUN = "${item.dataset}-${item.variant}-${item.seed}"
INTERPOLATED = re.compile(r"\$\{([\w.-]+)\}")
# What each verb writes in the folder its command names: (cmd option, file names).
WRITERS = {
    "train": {"--out": set(), "--curves": {METRICS_FILE, SUMMARY_FILE, PLOTS_DIR}},
    "evaluate": {"--out": {layout.METRICS_JSON, layout.SUMMARY_JSON, layout.BINS_CSV,
                           layout.PER_IMAGE_CSV, layout.PAIRS_CSV, layout.GRID_PNG,
                           layout.TILES_DIR, RECURRENCE_JSON}},
    "report": {"--results": {build.TABLES_DIR, build.FIGURES_DIR, plot_data.PLOTS_DIR}},
}
VERB_OF = {"train": "train", "train-ablation": "train", "evaluate": "evaluate",
           "evaluate-ablation": "evaluate", "report": "report"}


def paths_of(entries: list[Any]) -> dict[str, dict[str, Any]]:
    """{path: options} of a stage's outs/metrics list (strings or one-key mappings)."""
    found = {}
    for entry in entries:
        if isinstance(entry, str):
            found[entry] = {}
        else:
            (path, options), = entry.items()
            found[path] = options or {}
    return found


def option(cmd: str, name: str) -> str:
    match = re.search(rf"{re.escape(name)} (\S+)", cmd)
    assert match, f"{name} not in {cmd!r}"
    return match.group(1)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


# --- dvc.yaml, statically ---------------------------------------------------------------

def test_no_stage_declares_plots_and_top_level_plots_overlay_runs():
    assert not [name for name, stage in STAGES.items() if "plots" in stage]
    plots = {k: v for entry in DVC_YAML["plots"] for k, v in entry.items()}
    assert 1 < len(plots) <= 6, "a handful of overlaid plots"
    headers = {plot_data.TRAIN_LOSS_CSV: {*plot_data.RUN_COLUMNS, "step", *plot_data.LOSS_TERMS},
               plot_data.BINS_CSV: {*plot_data.RUN_COLUMNS, *BINS_COLUMNS, *ALWAYS_IN_BINS}}
    report_out = option(STAGES["report"]["cmd"], "--results") + "/" + plot_data.PLOTS_DIR
    assert report_out in paths_of(STAGES["report"]["outs"])
    for name, spec in plots.items():
        assert isinstance(spec["y"], dict), f"{name}: y maps files to fields (an overlay)"
        template = ROOT / ".dvc" / "plots" / f"{spec['template']}.json"
        assert template.is_file(), f"{name}: no template {template}"
        assert '"field": "run"' in template.read_text(), "lines are coloured by run"
        for path, field in spec["y"].items():
            folder, _, file = path.rpartition("/")
            assert folder == report_out, f"{name}: {path} is not written by rfr report"
            assert {spec["x"], field} <= headers[file], f"{name}: {spec['x']}/{field}"
    assert {"train_loss", "psnr_vs_hole_ratio", "ssim_vs_hole_ratio"} <= set(plots)


def test_metrics_are_the_flat_files_and_outs_are_written_by_the_stage_verb():
    for name, verb in VERB_OF.items():
        stage = STAGES[name]
        metrics = paths_of(stage.get("metrics", []))
        outs = paths_of(stage.get("outs", []))
        for path in metrics:
            assert path.endswith("/" + METRICS_FILE), f"{name}: metrics {path}"
            assert metrics[path].get("cache") is False
        for path, options in {**metrics, **outs}.items():
            folders = {option(stage["cmd"], flag): files
                       for flag, files in WRITERS[verb].items()}
            if path in folders:  # the folder itself (a run's checkpoints)
                continue
            folder, _, file = path.rpartition("/")
            assert folder in folders, f"{name}: {path} is in no folder {verb} writes"
            assert file in folders[folder], f"{name}: {verb} writes no {file} in {folder}"
            assert options.get("cache") is False, f"{name}: {path} should be a plain file"
    for name in ("evaluate", "evaluate-ablation"):
        assert f"${{paths.results}}/metrics/{RUN}/{layout.SUMMARY_JSON}" in paths_of(
            STAGES[name]["outs"])
    for name in ("train", "train-ablation"):
        outs = paths_of(STAGES[name]["outs"])
        curves = f"${{paths.results}}/train/{RUN}"
        # a resume appends to the curves and adds to summary.json's wall time
        assert outs[f"{curves}/{SUMMARY_FILE}"]["persist"] is True
        assert outs[f"{curves}/{PLOTS_DIR}"]["persist"] is True


@pytest.mark.parametrize("profile", PROFILES)
def test_top_level_plots_resolve_in_every_profile(profile):
    params = pipeline.read_profile(profile)
    for entry in DVC_YAML["plots"]:
        (spec,) = entry.values()
        for path in spec["y"]:
            keys = INTERPOLATED.findall(path)
            assert keys == ["paths.results"], path
            resolved = path.replace("${paths.results}", params["paths"]["results"])
            assert not Path(resolved).is_absolute() and ".." not in resolved


# --- the writers, on small fixtures -----------------------------------------------------

def training_summary(tmp_path: Path, terms: dict[str, float]) -> Path:
    curves = TrainingCurves(tmp_path, resume=False)
    for step in range(3):
        curves.log(step, {k: v / (step + 1) for k, v in terms.items()})
    curves.flush()
    curves.finish({"steps": 3, "seconds": 1.5, "steps_per_second": 2.0, "parameters": 42,
                   "model": "rfr", "vgg_weights": "random VGG16 weights", "vgg_random": True,
                   "world_size": 1})
    return tmp_path


def test_training_metrics_are_flat_numbers_and_the_summary_keeps_everything(tmp_path):
    folder = training_summary(tmp_path, {"total": 3.0, "hole": 1.5, "tv": math.nan})
    flat = json.loads((folder / METRICS_FILE).read_text())
    assert flat == {"loss_total": 1.0, "loss_hole": 0.5, "steps": 3, "seconds": 1.5,
                    "steps_per_second": 2.0, "parameters": 42}  # the NaN term left out
    assert all(is_number(v) for v in flat.values())
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    assert summary["train"]["total"] == 1.0 and summary["step"] == 2
    assert summary["vgg_random"] is True and summary["model"] == "rfr"
    assert not set(flat) & {"psnr", "ssim", "l1", "l1_hole", "lpips", "fid", "ms_per_image"}


def test_a_resume_reads_the_summary_and_an_old_layout_still_counts(tmp_path):
    folder = training_summary(tmp_path / "new", {"total": 2.0})
    assert TrainingCurves(folder, resume=True).summary["seconds"] == 1.5
    old = tmp_path / "old"
    old.mkdir()  # before summary.json: the whole record was metrics.json
    (old / METRICS_FILE).write_text(json.dumps({"train": {"total": 1.0}, "seconds": 7.0}))
    assert TrainingCurves(old, resume=True).summary["seconds"] == 7.0


def evaluation_summary(offset: float = 0.0) -> dict[str, Any]:
    ids = [f"bin{b}/img{i}" for b in (0, 1) for i in range(3)]
    bins = ["01-10%", "10-20%"]
    rng = np.random.default_rng(0)
    table = MetricTable()
    for k, image_id in enumerate(ids):
        value = 20.0 + offset + rng.random()
        table.add(ImageRecord(image_id, bins[k // 3], {
            "psnr": value, "ssim": 1 - 1 / value, "l1": 1 / value, "l1_hole": 2 / value,
            "lpips": None}), {"lpips": "no weights (test)"})
    summary = summarize(table, resamples=20, seed=0)
    for index, label in enumerate(bins):
        summary["bins"][label].update(bin_index=index, mean_hole_ratio=0.05 + 0.1 * index)
    summary["latency"] = {"ms_per_image": 3.0, "device": "cpu"}
    summary["run"] = {"name": "x", "dataset": "d", "variant": "rfr", "seed": 0}
    return summary


def test_evaluation_metrics_are_flat_numbers():
    flat = flat_metrics(evaluation_summary())
    assert set(flat) == {"psnr", "ssim", "l1", "l1_hole", "ms_per_image"}  # lpips: no number
    assert all(is_number(v) for v in flat.values())


def run_data(tmp_path: Path, variant: str, steps: int, offset: float) -> RunData:
    key = RunKey("d", variant, 0)
    train_dir = tmp_path / "train" / key.name
    curves = train_dir / "plots" / "metrics" / "train"
    curves.mkdir(parents=True)
    for term in ("total", "hole"):
        rows = [f"{s}\t{1.0 / (s + 1) + offset}" for s in range(steps)]
        (curves / f"{term}.tsv").write_text("\n".join([f"step\t{term}", *rows]) + "\n")
    return RunData(key=key, metrics_dir=tmp_path / "metrics" / key.name, train_dir=train_dir,
                   summary=evaluation_summary(offset), train={}, image_bins={},
                   per_image={}, unavailable={}, metric_names=())


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_plot_data_puts_every_run_in_one_file_per_series(tmp_path):
    runs = [run_data(tmp_path, "rfr", 5, 0.0),
            run_data(tmp_path, "pconv", plot_data.MAX_CURVE_POINTS * 2 + 1, 1.0)]
    written = plot_data.write_plot_data(plot_data.plot_data(runs), tmp_path / "plots")
    assert [p.name for p in written] == [plot_data.TRAIN_LOSS_CSV, plot_data.BINS_CSV]
    loss = read_csv(tmp_path / "plots" / plot_data.TRAIN_LOSS_CSV)
    first = [r for r in loss if r["run"] == "d-rfr-0"]
    assert [int(r["step"]) for r in first] == list(range(5))
    assert float(first[2]["total"]) == pytest.approx(1 / 3) and first[2]["valid"] == ""
    long = [int(r["step"]) for r in loss if r["run"] == "d-pconv-0"]
    assert len(long) <= plot_data.MAX_CURVE_POINTS + 1
    assert long[0] == 0 and long[-1] == plot_data.MAX_CURVE_POINTS * 2
    bins = read_csv(tmp_path / "plots" / plot_data.BINS_CSV)
    assert [(r["run"], r["bin"]) for r in bins] == [
        ("d-rfr-0", "01-10%"), ("d-rfr-0", "10-20%"),
        ("d-pconv-0", "01-10%"), ("d-pconv-0", "10-20%")]
    summary = runs[1].summary["bins"]["10-20%"]
    assert float(bins[3]["psnr"]) == summary["metrics"]["psnr"]["mean"]
    assert float(bins[3]["mean_hole_ratio"]) == summary["mean_hole_ratio"]
    assert "lpips" not in bins[0]  # no run has a number for it


# --- real DVC on a tiny workspace -------------------------------------------------------

@pytest.mark.slow
def test_dvc_reads_flat_metrics_and_draws_overlaid_plots(tmp_path):
    """One tiny `dvc repro` (three runs); then what a user sees."""
    from launch_checks import dvc, make_workspace, tiny_profile

    params = tiny_profile(steps=2)
    workspace = make_workspace(tmp_path / "ws", params)
    dvc(workspace, "repro", "--quiet")
    files = json.loads(dvc(workspace, "metrics", "show", "--json").stdout)[""]["data"]
    assert len(files) == 6  # 3 runs x (training, evaluation)
    for path, content in files.items():
        assert all(is_number(v) for v in content["data"].values()), path
    table = dvc(workspace, "metrics", "show").stdout.splitlines()
    assert len(table) == 7 and max(map(len, table)) < 300
    plots = json.loads(dvc(workspace, "plots", "show", "--json").stdout)["data"]
    assert set(plots) == {"train_loss", "psnr_vs_hole_ratio", "ssim_vs_hole_ratio",
                          "l1_vs_hole_ratio"}
    for name, rendered in plots.items():
        values = rendered[0]["content"]["data"]["values"]
        assert len({v["run"] for v in values}) == 3, name
    # a changed number after a commit: `dvc metrics diff` shows that one row
    results = params["paths"]["results"]
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=test"]
    subprocess.run([*git, "add", "-f", results], cwd=workspace, check=True)
    subprocess.run([*git, "commit", "-qm", "results"], cwd=workspace, check=True)
    metrics = workspace / results / "metrics" / "demo-scenes-rfr-0" / layout.METRICS_JSON
    flat = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**flat, "psnr": flat["psnr"] + 0.5}))
    diff = dvc(workspace, "metrics", "diff").stdout.splitlines()
    assert len(diff) == 2 and diff[1].split()[1:2] == ["psnr"] and diff[1].split()[-1] == "0.5"
