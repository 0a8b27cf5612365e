"""The notebooks: committed clean, the comparison reads results only, and both execute.

The committed notebooks must carry no outputs (diffs stay readable, no stale numbers), the
ablation notebook must not train, evaluate or load checkpoints (it is a view of the
results folder), and both must run headless through ``notebooks/run.py`` as CI runs them:
the walkthrough small and untrained, the comparison on a tiny results folder written
with the real per-run writers of ``rfr.evaluate.aggregate``.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from rfr.evaluate.aggregate import (
    ImageRecord,
    MetricTable,
    summarize,
    write_bins_json,
    write_per_image_csv,
)
from rfr.masks import format_bin

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
RUNNER = NOTEBOOKS / "run.py"
EXPECTED = ("ablation_comparison.ipynb", "rfr_walkthrough.ipynb")
DATASET = "demo-scenes"
SEEDS = (0, 1)
# PSNR shift of each variant against the full model in the fake results.
SHIFTS = {"rfr": 0.0, "rfr_no_kca": -1.0, "rfr_iter1": 0.0, "pconv": -0.5}
IMAGES_PER_BIN = 5


def code_source(name: str) -> str:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")


def run_notebooks(*names: str, out: Path, results: Path | None = None,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """notebooks/run.py in a subprocess, with this interpreter, as CI calls it."""
    command = [sys.executable, str(RUNNER), "--out", str(out), "--timeout", "120", *names]
    if results is not None:
        command += ["--results", str(results)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    if results is None:
        full_env.pop("RFR_RESULTS", None)
    return subprocess.run(command, cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=300)


def outputs_text(path: Path) -> str:
    """Every text an executed notebook printed or displayed, and its errors."""
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                parts.append(f"ERROR {output.get('ename')}: {output.get('evalue')}")
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts.append(data.get("text/markdown", "") or data.get("text/plain", ""))
    return "\n".join(parts)


# --- committed state ----------------------------------------------------------------------


def test_expected_notebooks_exist() -> None:
    assert set(EXPECTED) <= {p.name for p in NOTEBOOKS.glob("*.ipynb")}


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_is_valid_v4_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells and any(cell.cell_type == "markdown" for cell in nb.cells)
    for cell in code_cells:
        assert cell.outputs == [], f"{name}: a committed cell has outputs:\n{cell.source}"
        assert cell.execution_count is None, f"{name}: execution_count set:\n{cell.source}"


def test_ablation_notebook_reads_only_the_results_folder() -> None:
    source = code_source("ablation_comparison.ipynb")
    for forbidden in ("rfr.train", "rfr.evaluate", "rfr.model", "load_checkpoint",
                      "import rfr", "from rfr", "torch", "params.yaml", "subprocess",
                      "os.system"):
        assert forbidden not in source, f"the ablation notebook uses {forbidden!r}"
    # Every path is derived from RESULTS; the repository root only anchors a relative one.
    assert source.count("REPO /") == 1 and "RESULTS = REPO / RESULTS" in source
    assert 'os.environ.get("RFR_RESULTS", "results")' in source


def test_walkthrough_uses_a_hook_not_library_edits() -> None:
    source = code_source("rfr_walkthrough.ipynb")
    assert "register_forward_hook" in source and "handle.remove()" in source
    assert "model.trace(" in source and "RFR_CHECKPOINT" in source


# --- the runner -----------------------------------------------------------------------------


def load_runner():
    spec = importlib.util.spec_from_file_location("notebooks_run", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runner_refuses_to_write_over_the_notebooks() -> None:
    with pytest.raises(SystemExit) as exc:
        load_runner().main(["--out", str(NOTEBOOKS), "rfr_walkthrough.ipynb"])
    assert exc.value.code == 2


def test_runner_kernel_is_this_interpreter() -> None:
    spec = load_runner().ThisInterpreterSpecs().get_kernel_spec("python3")
    assert spec.argv[:3] == [sys.executable, "-m", "ipykernel_launcher"]


@pytest.mark.slow
def test_runner_fails_with_the_cell_error(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(os.getcwd())"),
                nbformat.v4.new_code_cell("raise ValueError('boom from the cell')")]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    result = run_notebooks(str(path), out=tmp_path / "out")
    assert result.returncode == 1
    assert "FAIL broken.ipynb" in result.stdout
    assert "boom from the cell" in result.stderr and "cell 1 failed" in result.stderr
    executed = nbformat.read(tmp_path / "out" / "broken.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == str(NOTEBOOKS)  # cwd = notebooks/


# --- execution --------------------------------------------------------------------------------


@pytest.mark.slow
def test_walkthrough_executes_untrained_and_small(tmp_path: Path) -> None:
    result = run_notebooks("rfr_walkthrough.ipynb", out=tmp_path,
                           env={"RFR_CHECKPOINT": "none", "RFR_WALKTHROUGH_SIZE": "64",
                                "RFR_WALKTHROUGH_WIDTH": "8"})
    assert result.returncode == 0, result.stdout + result.stderr
    text = outputs_text(tmp_path / "rfr_walkthrough.ipynb")
    assert "ERROR" not in text
    assert "WARNING: no trained weights (RFR_CHECKPOINT=none)" in text and "UNTRAINED" in text
    assert "7 feature maps" in text and "6 attention calls captured" in text
    assert "second call identical: True" in text
    assert "PSNR of the composite" in text


def write_fake_results(root: Path) -> Path:
    """A tiny results folder in the pipeline's layout: per-run CSV and JSON from the real
    rfr.evaluate.aggregate writers, recurrence records, training summaries and dvclive-style
    curves, and report tables with the report's columns."""
    rng = np.random.default_rng(0)
    bins = [format_bin(0), format_bin(2)]
    ids = [f"bin{b}/img{i:02d}" for b in (0, 2) for i in range(IMAGES_PER_BIN)]
    base = rng.normal(22.0, 2.0, len(ids))
    for variant, shift in SHIFTS.items():
        for seed in SEEDS:
            run = f"{DATASET}-{variant}-{seed}"
            table = MetricTable()
            for k, image_id in enumerate(ids):
                value = float(base[k] + shift + rng.normal(0.0, 0.05))
                table.add(ImageRecord(image_id, bins[k // IMAGES_PER_BIN], {
                    "psnr": value, "ssim": 1 - 1 / value, "l1": 1 / value,
                    "l1_hole": math.nan if k == 0 else 2 / value, "lpips": None,
                }), {"lpips": "no AlexNet weights in this test"})
            summary = summarize(table, resamples=50, seed=0)
            for index, label in enumerate(bins):
                summary["bins"][label].update(bin_index=2 * index,
                                              mean_hole_ratio=0.05 + 0.2 * index)
            summary["run"] = {"name": run, "dataset": DATASET, "variant": variant,
                              "seed": seed}
            summary["evaluation"] = {"source": {"parameters": 1000 + len(variant),
                                                "gmacs": {"value": 0.01}}}
            summary["latency"] = {"ms_per_image": 1.0 + 0.1 * len(variant)}
            out = root / "metrics" / run
            write_bins_json(summary, out / "summary.json")
            write_per_image_csv(table, out / "per_image.csv")
            recurrence = ({"status": "ok", "iter_num": 2,
                           "overall": {"hole_ratio": [0.2, 0.1, 0.0], "n_images": len(ids)}}
                          if variant.startswith("rfr")
                          else {"status": "not applicable", "reason": "no recurrences"})
            (out / "recurrence.json").write_text(json.dumps(recurrence))
            train = root / "train" / run
            curves = train / "plots" / "metrics" / "train"
            curves.mkdir(parents=True)
            for term in ("total", "hole"):
                rows = [f"{step}\t{2.0 / (step + 1) + shift / 10}" for step in range(4)]
                (curves / f"{term}.tsv").write_text("\n".join([f"step\t{term}", *rows]) + "\n")
            (train / "summary.json").write_text(json.dumps({
                "train": {"total": 0.5, "hole": 0.1, "valid": 0.05}, "step": 3,
                "seconds": 1.5, "steps_per_second": 2.0, "parameters": 1000,
                "vgg_random": True}))
    tables = root / "tables"
    tables.mkdir()
    header = ["study", "dataset", "variant", "setting", "bin", "metric", "mean", "ci_low",
              "ci_high", "delta_vs_full", "p_wilcoxon", "p_holm", "n_pairs", "n_seeds", "note"]
    studies = {"attention": [("rfr", "attention=kca", "", "", ""),
                             ("rfr_no_kca", "attention=none", "-1.0", "0.0004", "0.002")],
               "iternum": [("rfr", "iter_num=6", "", "", ""),
                           ("rfr_iter1", "iter_num=1", "0.01", "0.40", "0.80")]}
    for study, rows in studies.items():
        with open(tables / f"ablation_{study}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for variant, setting, delta, p, p_holm in rows:
                for label in ("all", bins[0]):
                    writer.writerow([study, DATASET, variant, setting, label, "psnr", "22.0",
                                     "21.0", "23.0", delta, p, p_holm, len(ids), 2, ""])
    with open(tables / f"methods_{DATASET}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "bin", "metric", "method", "mean", "ci_low", "ci_high",
                         "n_seeds", "n_images", "published", "citation", "note"])
        for method in ("rfr", "pconv"):
            published = ("30.0", "a paper, Table 1") if method == "rfr" else ("", "")
            writer.writerow([DATASET, bins[0], "psnr", method, "22.0", "21.0", "23.0", 2,
                             IMAGES_PER_BIN, *published, ""])
    with open(tables / "cost.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "variant", "parameters", "gmacs", "latency_ms",
                         "train_seconds", "steps_per_second", "n_seeds"])
        for variant in SHIFTS:
            writer.writerow([DATASET, variant, 1000 + len(variant), 0.01, 1.0, 1.5, 2.0, 2])
    return root


@pytest.mark.slow
def test_ablation_notebook_executes_on_a_tiny_results_folder(tmp_path: Path) -> None:
    results = write_fake_results(tmp_path / "results")
    out = tmp_path / "out"
    result = run_notebooks("ablation_comparison.ipynb", out=out, results=results)
    assert result.returncode == 0, result.stdout + result.stderr
    text = outputs_text(out / "ablation_comparison.ipynb")
    assert "ERROR" not in text
    assert f"{len(SHIFTS) * len(SEEDS)} evaluated runs on 1 dataset(s)" in text
    # The verdicts: rfr_no_kca is significantly worse, rfr_iter1 is not significant.
    assert "**1 of 2** variant/metric comparisons are significant" in text
    assert "`rfr_no_kca` vs `rfr`, psnr: delta -1" in text and "significant: worse" in text
    assert "`rfr_iter1` vs `rfr`, psnr: delta 0.01" in text and "not significant" in text
    # Paired per-image differences: rfr_no_kca is 1 dB worse on every image.
    assert re.search(r"\| psnr \| rfr_no_kca \| 10 \| -[01]\.\d+ \| -[01]\.\d+ \| 0% \|", text)
    assert "(pub. 30 [1])" in text and "[1] a paper, Table 1" in text
    assert "trained with random VGG16 weights" in text
