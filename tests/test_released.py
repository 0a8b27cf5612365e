"""The released profile: the authors' checkpoints evaluated per hole-ratio bin, and the
methods table's "released checkpoint" / "trained here" / "published" columns.

On CPU: a recipe-weight RFR-Net (width 8, rfr.model.reference's seeded recipe) saved in
the authors' format, and CelebA and Paris StreetView folders in their published layouts
written from real photos (rfr.data.rehearsal). The profile is the released one with its
size cut to 64 pixels and one image per bin (-S), so the pipeline is the real one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from rfr import pipeline
from rfr.cli import main
from rfr.config import RFRNetConfig
from rfr.data.rehearsal import write_celeba, write_paris
from rfr.errors import CheckpointError
from rfr.model.api import RFRNet
from rfr.model.checkpoint import (
    require_authors_format,
    save_authors_checkpoint,
    save_checkpoint,
)
from rfr.model.reference import layout_of, recipe_state_dict
from rfr.report.build import RELEASED_VARIANT
from rfr.report.methods import RELEASED

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["-S", "datasets.celeba.data.size=64", "-S", "datasets.paris.data.size=64",
         "-S", "masks.size=64", "-S", "masks.per_bin=1", "-S", "evaluate.limit=1",
         "-S", "evaluate.device=cpu", "-S", "evaluate.latency_batches=1",
         "-S", "evaluate.grid_examples=1", "-S", "evaluate.resamples=200",
         "-S", "report.resamples=200", "-S", "runtime.num_workers=0",
         "-S", f"report.published={ROOT / 'results' / 'published.yaml'}"]


def recipe_model() -> RFRNet:
    model = RFRNet(RFRNetConfig(width=8))
    model.load_state_dict(recipe_state_dict(layout_of(model.state_dict()), 7))
    return model.eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, single_thread) -> dict[str, Path]:
    """Layouts, an authors'-format checkpoint, the profile, the mask bank."""
    root = tmp_path_factory.mktemp("released")
    found = {"celeba": write_celeba(root / "celeba"), "paris": write_paris(root / "paris")}
    model = recipe_model()
    found["checkpoint"] = save_authors_checkpoint(root / "authors.pth", model.state_dict(),
                                                  n_iter=3)
    found["suite"] = save_checkpoint(root / "suite.pth", model, "rfr", model.config)
    found["params"] = root / "params.yaml"
    assert main(["profile", "released", "--params", str(found["params"]),
                 "--checkpoint", f"celeba={found['checkpoint']}",
                 "--checkpoint", f"paris={found['checkpoint']}",
                 "--root", f"celeba={found['celeba']}", "--root", f"paris={found['paris']}",
                 *SMALL]) == 0
    found["masks"] = root / "masks"
    assert main(["masks", "--out", str(found["masks"]), "--per-bin", "1", "--size", "64",
                 "--seed", "0"]) == 0
    found["results"] = root / "results"
    for dataset in ("celeba", "paris"):
        run = f"{dataset}-released-0"
        assert main(["evaluate", "--params", str(found["params"]), "--released", dataset,
                     "--masks", str(found["masks"]),
                     "--out", str(found["results"] / "metrics" / run),
                     "--record", str(found["results"] / "train" / run / "summary.json"),
                     "--no-progress"]) == 0
    return found


def profile_args(setup, *extra: str) -> list[str]:
    return ["profile", "released", "--params", str(setup["params"].parent / "other.yaml"),
            "--root", f"celeba={setup['celeba']}", "--root", f"paris={setup['paris']}",
            *extra]


def test_the_profile_records_the_checkpoints_and_trains_nothing(setup):
    params = yaml.safe_load(setup["params"].read_text())
    assert params["released"] == {"celeba": str(setup["checkpoint"].resolve()),
                                  "paris": str(setup["checkpoint"].resolve())}
    assert params["compare"]["seeds"] == [] and pipeline.runs(params) == []
    assert params["datasets"]["celeba"]["data"]["size"] == 64


def test_a_missing_checkpoint_fails_at_once_naming_it(setup, capsys):
    missing = setup["params"].parent / "no-such.pth"
    assert main(profile_args(setup, "--checkpoint", f"celeba={missing}")) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (setup["params"].parent / "other.yaml").exists()


def test_a_checkpoint_for_a_dataset_outside_the_profile_fails(setup, capsys):
    assert main(profile_args(setup, "--checkpoint", f"places2={setup['checkpoint']}")) == 2
    err = capsys.readouterr().err
    assert "--checkpoint for ['places2']" in err and "celeba" in err


def test_the_released_profile_needs_a_checkpoint(setup, capsys):
    assert main(profile_args(setup)) == 2
    assert "--checkpoint DATASET=FILE" in capsys.readouterr().err


def test_a_suite_format_file_is_refused(setup, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="this suite's checkpoint format"):
        require_authors_format(setup["suite"])
    params = yaml.safe_load(setup["params"].read_text())
    params["released"]["celeba"] = str(setup["suite"])
    swapped = tmp_path / "params.yaml"
    swapped.write_text(yaml.safe_dump(params))
    assert main(["evaluate", "--params", str(swapped), "--released", "celeba",
                 "--masks", str(setup["masks"]), "--out", str(tmp_path / "out")]) == 2
    assert "not the authors' released one" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change,message", [
    (lambda sd: sd.pop("bn1.weight"), "missing"),
    (lambda sd: sd.__setitem__("extra.weight", torch.zeros(1)), "unexpected"),
])
def test_missing_or_unexpected_weights_are_refused(setup, tmp_path, change, message):
    state = dict(torch.load(setup["checkpoint"], weights_only=True)["generator"])
    change(state)
    path = save_authors_checkpoint(tmp_path / "bad.pth", state)
    with pytest.raises(CheckpointError, match=message):
        require_authors_format(path)


def test_a_file_without_the_generator_is_refused(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not the authors' checkpoint format"):
        require_authors_format(path)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("dataset", ["celeba", "paris"])
def test_the_released_run_equals_evaluating_the_file_directly(setup, dataset, tmp_path):
    run = setup["results"] / "metrics" / f"{dataset}-released-0"
    direct = tmp_path / "direct"
    assert main(["evaluate", "--checkpoint", str(setup["checkpoint"]), "--dataset", dataset,
                 "--root", str(setup[dataset]), "--size", "64", "--masks", str(setup["masks"]),
                 "--out", str(direct), "--limit", "1", "--grid-examples", "1",
                 "-S", "resamples=200", "-S", "latency_batches=1", "--no-progress"]) == 0
    released_bins, direct_bins = read_csv(run / "bins.csv"), read_csv(direct / "bins.csv")
    assert len(released_bins) == 6 and released_bins == direct_bins
    assert read_csv(run / "per_image.csv") == read_csv(direct / "per_image.csv")
    psnr = [float(row["psnr"]) for row in released_bins]
    assert all(0 < value < 60 for value in psnr)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run"] == {"name": f"{dataset}-released-0", "dataset": dataset,
                              "variant": RELEASED_VARIANT, "seed": 0}


def test_the_record_names_the_file_and_its_digest(setup):
    record = json.loads((setup["results"] / "train" / "paris-released-0" / "summary.json")
                        .read_text())
    digest = hashlib.sha256(setup["checkpoint"].read_bytes()).hexdigest()
    assert record["released"] == {"checkpoint": str(setup["checkpoint"].resolve()),
                                  "sha256": digest, "format": "authors",
                                  "trained_here": False}
    assert record["train"]["vgg_random"] is False


def test_the_methods_table_shows_the_released_column_and_an_empty_published_one(setup):
    assert main(["report", "--params", str(setup["params"]),
                 "--results", str(setup["results"])]) == 0
    for dataset in ("celeba", "paris"):
        rows = read_csv(setup["results"] / "tables" / f"methods_{dataset}.csv")
        released = [r for r in rows if r["method"] == f"rfr ({RELEASED})"]
        assert {r["method"] for r in rows} == {f"rfr ({RELEASED})"}  # nothing trained here
        bins = read_csv(setup["results"] / "metrics" / f"{dataset}-released-0" / "bins.csv")
        psnr = {r["bin"]: float(r["mean"]) for r in released if r["metric"] == "psnr"}
        for row in bins:
            assert psnr[row["bin"]] == pytest.approx(float(row["psnr"]), abs=1e-3)
        assert all(r["published"] == "" and r["citation"] == "" for r in rows)
        markdown = (setup["results"] / "tables" / f"methods_{dataset}.md").read_text()
        header = next(line for line in markdown.splitlines() if line.startswith("| Metric"))
        cells = [c.strip() for c in header.strip("|").split("|")]
        assert cells == ["Metric", "Hole ratio", f"rfr ({RELEASED})", "rfr (published)"]


def test_the_stage_declares_exactly_the_params_it_reads(setup):
    params = pipeline.load_params(setup["params"])
    tracked = pipeline.TrackedParams(params)
    pipeline.released_eval_config(tracked, "paris", setup["masks"], "out")
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate-released"]
    declared = {re.sub(r"\$\{key\}", "paris", key) for key in stage["do"]["params"]}
    assert tracked.read == declared
    assert pipeline.RELEASED_VARIANT == RELEASED_VARIANT


def test_an_evaluation_for_a_dataset_without_a_checkpoint_fails(setup, tmp_path):
    params = pipeline.load_params(setup["params"])
    del params["released"]["paris"]
    with pytest.raises(pipeline.PipelineError, match="no checkpoint for 'paris'"):
        pipeline.released_eval_config(params, "paris", setup["masks"], tmp_path)


def test_the_launcher_plans_the_released_stage_and_no_run(setup):
    from rfr.launch.launcher import plan_every_run
    from rfr.launch.plan import read_dvc_stages

    plan = plan_every_run(pipeline.load_params(setup["params"]), read_dvc_stages(ROOT))
    assert plan.jobs == ()
    assert plan.setup == ("prepare", "masks")
    assert plan.rest == ("evaluate-released", "recurrence", "report")


def test_an_evaluation_only_profile_has_no_ablation_runs():
    params = pipeline.read_profile("released")
    params["ablation"] = {"dataset": "celeba", "variants": ["rfr_iter1"], "seeds": []}
    with pytest.raises(pipeline.PipelineError, match="ablation.variants and ablation.seeds "
                                                     "must be empty"):
        pipeline.validate_params(params, "released", check_roots=False)
    params = pipeline.read_profile("released")
    params["released"] = {"places2": "x.pth"}
    with pytest.raises(pipeline.PipelineError, match="not one of compare.datasets"):
        pipeline.validate_params(params, "released", check_roots=False)
    params = pipeline.read_profile("demo")
    params["ablation"]["seeds"] = []  # a training profile still needs its ablation seeds
    with pytest.raises(pipeline.PipelineError, match="ablation.seeds must be a non-empty"):
        pipeline.validate_params(params, "demo", check_roots=False)


def test_with_trained_runs_too_the_table_has_all_three_groups(setup, tmp_path):
    """A released run next to trained ones: the columns "released checkpoint", "trained
    here" and "published" (a cited number shows only in the last)."""
    from rfr.report.inputs import RunKey, load_run
    from rfr.report.methods import TRAINED, methods_table
    from rfr.report.published import Published, PublishedEntry
    from rfr.report.summaries import Summarizer

    run = load_run(setup["results"], RunKey("paris", RELEASED_VARIANT, 0))
    cited = PublishedEntry(method="rfr", dataset="paris", bin="(0.1, 0.2]", metric="psnr",
                           value=30.5, citation="a test citation", note="")
    table = methods_table("paris", ["rfr"], {"rfr": [run]}, Summarizer(200, 0),
                          Published([cited], tmp_path / "published.yaml"), {"rfr": [run]})
    assert table.header == ["Metric", "Hole ratio", f"rfr ({RELEASED})", f"rfr ({TRAINED})",
                            "rfr (published)"]
    psnr = next(row for row in table.rows
                if row[0].text.startswith("PSNR") and row[1].text == "(0.1, 0.2]")
    assert psnr[2].text == psnr[3].text  # the same run in both groups: the same cell
    assert psnr[4].text.startswith("30.5")
    methods = {row[3] for row in table.csv_rows}
    assert methods == {f"rfr ({RELEASED})", f"rfr ({TRAINED})"}
