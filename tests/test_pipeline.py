"""The DVC pipeline: profiles, stage params declarations, configs built per run."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from rfr import pipeline
from rfr.cli import main
from rfr.config import ConfigError
from rfr.pipeline import PipelineError, TrackedParams

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted(path.stem for path in (ROOT / "profiles").glob("*.yaml"))
NEEDS_ROOTS = ("paper", "rehearsal", "released")  # profiles of the published datasets
ITEM = re.compile(r"\$\{item\.(\w+)\}")
INTERPOLATED = re.compile(r"\$\{([\w.-]+)\}")


def load_profile(name: str) -> dict[str, Any]:
    return pipeline.read_profile(name)


def stage_definitions() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def substitute_item(value: Any, item: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return ITEM.sub(lambda m: str(item[m.group(1)]), value)
    if isinstance(value, list):
        return [substitute_item(v, item) for v in value]
    if isinstance(value, dict):
        return {substitute_item(k, item): substitute_item(v, item) for k, v in value.items()}
    return value


def declared_params(stage: dict[str, Any], item: dict[str, Any]) -> set[str]:
    return set(substitute_item(stage.get("params", []), item))


def covered(read: set[str], declared: set[str]) -> tuple[set[str], set[str]]:
    """(keys read but not declared, keys declared but never read)."""
    def under(key: str, prefix: str) -> bool:
        return key == prefix or key.startswith(prefix + ".")

    undeclared = {key for key in read if not any(under(key, d) for d in declared)}
    unread = {d for d in declared if not any(under(key, d) or under(d, key) for key in read)}
    return undeclared, unread


def test_the_declaration_check_sees_both_directions():
    assert covered({"train", "datasets.a.data"}, {"train", "datasets.a.data"}) == (set(), set())
    assert covered({"train.lr"}, {"train"}) == (set(), set())
    assert covered({"model"}, {"train"}) == ({"model"}, {"train"})


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_is_consistent(name):
    params = load_profile(name)
    pipeline.validate_params(params, name, check_roots=name not in NEEDS_ROOTS)
    assert params["profile"] == name
    assert len(pipeline.runs(params)) == (
        len(params["compare"]["datasets"]) * len(params["compare"]["variants"])
        * len(params["compare"]["seeds"])
        + len(params["ablation"]["variants"]) * len(params["ablation"]["seeds"]))


def test_the_default_profile_is_demo_with_two_seeds_per_ablation():
    """params.yaml on main is the demo profile (the README's main command runs it)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if params["profile"] != "demo":
        pytest.skip("params.yaml is switched to another profile in this checkout")
    assert params == load_profile("demo")
    assert len(params["ablation"]["seeds"]) >= 2
    names = set(params["compare"]["variants"]) | set(params["ablation"]["variants"])
    from rfr.model.variants import load_variants
    assert names == set(load_variants()), "the demo runs every variant"


@pytest.mark.parametrize("stage_name,builder", [
    ("train", "train"), ("train-ablation", "train"),
    ("evaluate", "evaluate"), ("evaluate-ablation", "evaluate"),
    ("prepare", "prepare"), ("report", "report"), ("recurrence", "recurrence"),
])
@pytest.mark.parametrize("profile", PROFILES)
def test_each_stage_declares_exactly_the_params_it_reads(stage_name, builder, profile,
                                                         tmp_path):
    params = load_profile(profile)
    stage = stage_definitions()[stage_name]
    if stage_name != "prepare" and "matrix" in stage and not pipeline.runs(params):
        pytest.skip(f"profile {profile} trains nothing: no {stage_name} stage")
    dataset = params["ablation"]["dataset"] if "ablation" in stage_name \
        else params["compare"]["datasets"][-1]
    variant = params["ablation"]["variants"][0] if "ablation" in stage_name else "pconv"
    item = {"dataset": dataset, "variant": variant,
            "seed": (params["compare"]["seeds"] or [0])[0]}
    tracked = TrackedParams(params)
    if builder == "train":
        pipeline.train_config(tracked, dataset, variant, item["seed"], tmp_path / "r", None)
    elif builder == "evaluate":
        pipeline.eval_config(tracked, dataset, variant, item["seed"], tmp_path / "c.pth",
                             tmp_path / "m", tmp_path / "o")
    elif builder == "prepare":
        pipeline.dataset_config(tracked, dataset, "train")
        pipeline.dataset_config(tracked, dataset, "test")
    elif builder == "recurrence":
        pipeline.recurrence_settings(tracked)
    else:
        pipeline.report_params(tracked)
    undeclared, unread = covered(tracked.read, declared_params(stage, item))
    assert not undeclared, f"{stage_name} reads params it does not declare: {undeclared}"
    assert not unread, f"{stage_name} declares params it never reads: {unread}"


def test_interpolated_params_are_declared():
    """A value a stage takes through ${...} in its command is a declared param too (so
    the declaration is the whole truth), apart from paths and the matrix item."""
    for name, stage in stage_definitions().items():
        stage = stage.get("do", stage)  # a foreach stage: ${key} and ${item} are its entry
        used = {key for key in INTERPOLATED.findall(stage["cmd"])
                if not key.startswith(("item.", "paths.")) and key not in ("key", "item")}
        undeclared, _ = covered(used, set(stage.get("params", [])))
        assert not undeclared, f"{name}: ${{...}} in cmd not declared: {undeclared}"


def test_run_folders_in_dvc_yaml_follow_run_name():
    name = pipeline.run_name("celeba", "rfr_iter2", 1)
    assert name == "celeba-rfr_iter2-1"
    for stage_name in ("train", "evaluate", "train-ablation", "evaluate-ablation"):
        cmd = substitute_item(stage_definitions()[stage_name]["cmd"],
                              {"dataset": "celeba", "variant": "rfr_iter2", "seed": 1})
        assert f"/{name}" in cmd


def test_train_config_is_the_variant_at_the_profile_width(tmp_path):
    params = load_profile("demo")
    config = pipeline.train_config(params, "demo-faces", "rfr_iter2", 1, tmp_path / "run",
                                   tmp_path / "curves")
    assert config.model == "rfr"
    assert config.model_config["iter_num"] == 2 and config.model_config["width"] == 16
    assert config.seed == 1 and config.dataset.name == "demo-faces"
    assert config.dataset.split == "train" and config.dataset.size == 64
    assert (config.steps, config.finetune_steps) == (100, 25)
    assert config.loss.vgg_weights == "random"
    assert config.curves_dir == str(tmp_path / "curves")


def test_eval_config_records_the_run(tmp_path):
    params = load_profile("smoke")
    config = pipeline.eval_config(params, "demo-scenes", "encdec", 0, tmp_path / "c.pth",
                                  tmp_path / "masks", tmp_path / "out")
    assert config.run == {"name": "demo-scenes-encdec-0", "dataset": "demo-scenes",
                          "variant": "encdec", "seed": 0}
    assert config.dataset.split == "test" and config.dataset.limit == 8


@pytest.mark.parametrize("change,message", [
    (lambda p: p["ablation"].update(dataset="demo-faces-x"), "must be one of compare"),
    (lambda p: p["ablation"].update(seeds=[0, 7]), "ablation.seeds [7]"),
    (lambda p: p["compare"].update(variants=["pconv", "encdec"]), "must include 'rfr'"),
    (lambda p: p["ablation"]["variants"].append("rfr"), "must not list 'rfr'"),
    (lambda p: p["compare"]["variants"].append("rfr_typo"), "unknown variant 'rfr_typo'"),
    (lambda p: p["compare"].update(datasets=["nowhere"]), "not under datasets"),
    (lambda p: p["datasets"]["demo-scenes"]["data"].update(split="test"), "must not set split"),
    (lambda p: p["datasets"]["demo-scenes"]["data"].update(colour=1), "colour"),
    (lambda p: p.pop("report"), "missing section 'report'"),
    (lambda p: p["compare"].update(seeds=[0, 0]), "duplicates"),
])
def test_inconsistent_profiles_are_refused_with_the_key(change, message):
    params = load_profile("demo")
    change(params)
    with pytest.raises(ConfigError, match=re.escape(message)):
        pipeline.validate_params(params, "test.yaml")


def test_pipeline_sets_run_keys_itself(tmp_path):
    params = load_profile("demo")
    params["train"]["seed"] = 3
    with pytest.raises(PipelineError, match=r"train must not set \['seed'\]"):
        pipeline.train_config(params, "demo-scenes", "rfr", 0, tmp_path, None)


def test_paper_profile_without_roots_fails_at_once_naming_each(tmp_path, capsys):
    dest = tmp_path / "params.yaml"
    code = main(["profile", "paper", "--params", str(dest)])
    err = capsys.readouterr().err
    assert code == 2 and not dest.exists()
    for name in ("celeba", "paris", "places2"):
        assert f"{name}: no root given" in err
    assert "rfr profile paper --root NAME=FOLDER" in err and "docs/datasets.md" in err


def test_paper_profile_with_roots_writes_params(tmp_path, capsys):
    roots = []
    for name in ("celeba", "paris", "places2"):
        (tmp_path / name).mkdir()
        roots += ["--root", f"{name}={tmp_path / name}"]
    dest = tmp_path / "params.yaml"
    assert main(["profile", "paper", "--params", str(dest), *roots]) == 0
    params = pipeline.load_params(dest)
    assert params["datasets"]["paris"]["data"]["root"] == str(tmp_path / "paris")
    assert params["datasets"]["celeba"]["schedule"] == {"steps": 350000,
                                                        "finetune_steps": 150000}
    assert dest.read_text().startswith("# Profile \"paper\"")
    # a root that is not a folder is named
    shutil.rmtree(tmp_path / "paris")
    with pytest.raises(PipelineError, match="paris: root .* is not a folder"):
        pipeline.load_params(dest)


def test_profile_switch_is_one_command(tmp_path, capsys):
    dest = tmp_path / "params.yaml"
    assert main(["profile", "smoke", "--params", str(dest)]) == 0
    assert dest.read_text() == (ROOT / "profiles" / "smoke.yaml").read_text()
    assert main(["profile", "nope", "--params", str(dest)]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
    assert main(["profile", "--params", str(dest)]) == 0
    assert "demo, paper, rehearsal, released, smoke" in capsys.readouterr().out


@pytest.mark.slow
def test_prepare_writes_a_manifest_that_changes_with_the_test_images(tmp_path):
    params = load_profile("smoke")
    first = pipeline.prepare_dataset(params, "demo-scenes", tmp_path / "a.json", progress=False)
    assert first["splits"]["test"] == 8 and first["splits"]["train"] == 8
    assert len(first["test_names"]) == 8
    assert json.loads((tmp_path / "a.json").read_text()) == first
    again = pipeline.prepare_dataset(params, "demo-scenes", tmp_path / "b.json", progress=False)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    params["datasets"]["demo-scenes"]["data"]["size"] = 48
    resized = pipeline.prepare_dataset(params, "demo-scenes", tmp_path / "c.json",
                                       progress=False)
    assert resized["test_sha256"] != again["test_sha256"]


def test_prepare_of_a_missing_dataset_names_the_folder(tmp_path, capsys):
    params = load_profile("demo")
    params["datasets"]["demo-scenes"]["data"] = {"name": "celeba",
                                                 "root": str(tmp_path / "nope"), "size": 64}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = main(["prepare", "--params", str(tmp_path / "params.yaml"), "--dataset",
                 "demo-scenes", "--out", str(tmp_path / "m.json")])
    assert code == 2
    assert "demo-scenes: root" in capsys.readouterr().err


def committed_lock() -> dict[str, Any]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    lock_path = ROOT / "dvc.lock"
    if params["profile"] != "demo" or not lock_path.exists():
        pytest.skip("this checkout is not on the committed demo profile")
    return yaml.safe_load(lock_path.read_text())


@pytest.mark.slow
def test_committed_lock_covers_every_stage_of_the_demo_profile():
    """dvc.lock on main is the demo profile's: one entry per stage, nothing stale."""
    lock = committed_lock()
    params = load_profile("demo")
    expected = {f"prepare@{d}" for d in params["compare"]["datasets"]} | {
        "masks", "recurrence", "report"}
    for dataset, variant, seed in pipeline.runs(params):
        group = "" if variant in params["compare"]["variants"] else "-ablation"
        expected |= {f"train{group}@{pipeline.run_name(dataset, variant, seed)}",
                     f"evaluate{group}@{pipeline.run_name(dataset, variant, seed)}"}
    assert set(lock["stages"]) == expected


@pytest.mark.slow
def test_committed_results_are_the_ones_the_lock_records():
    """Every committed result file (a cache: false output) has the hash dvc.lock holds,
    so results/ is exactly what `dvc repro` produced, not an edited copy."""
    import hashlib

    checked = 0
    for stage in committed_lock()["stages"].values():
        for out in stage.get("outs", []):
            path = ROOT / out["path"]
            if not out["path"].startswith("results/") or not path.is_file():
                continue
            assert hashlib.md5(path.read_bytes()).hexdigest() == out["md5"], out["path"]
            checked += 1
    assert checked >= 150


@pytest.mark.slow
def test_report_verb_names_a_missing_run_and_what_to_do(tmp_path, capsys):
    params = load_profile("smoke")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = main(["report", "--params", str(tmp_path / "params.yaml"), "--results",
                 str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert "demo-scenes-rfr-0" in err and "dvc repro" in err


@pytest.mark.slow
def test_recurrence_verb_reads_its_section(tmp_path, capsys, single_thread):
    params = load_profile("smoke")
    params["recurrence"] = {"size": 32, "per_bin": 1, "seed": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["recurrence", "--params", str(tmp_path / "params.yaml"), "--out",
                 str(tmp_path / "rec"), "--no-progress"]) == 0
    record = json.loads((tmp_path / "rec" / "recurrence.json").read_text())
    assert (record["size"], record["seed"], record["iter_num"]) == (32, 2, 6)
    params["recurrence"]["colour"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["recurrence", "--params", str(tmp_path / "params.yaml"), "--out",
                 str(tmp_path / "rec")]) == 2
    assert "recurrence must have exactly size, per_bin and seed" in capsys.readouterr().err


@pytest.mark.slow
def test_rerun_of_a_finished_stage_trains_afresh_but_an_interrupted_one_resumes(
        tmp_path, single_thread):
    """The run folder is a persistent DVC output: an interrupted repro resumes, while a
    stage DVC reruns (changed code, data or params, or -f) must not return the old run."""
    from rfr.train.loop import train

    params = load_profile("smoke")
    config = pipeline.train_config(params, "demo-scenes", "encdec", 0, tmp_path / "run",
                                   tmp_path / "curves")
    assert pipeline.reset_stale_run(config) == "new"
    first = train(config)
    (tmp_path / "run" / "marker").write_text("from the first run")
    assert pipeline.reset_stale_run(config) == "fresh"
    assert not (tmp_path / "run").exists() and not (tmp_path / "curves").exists()
    again = train(config)
    assert again.resumed_from is None
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name

    # an interrupted run of the same config resumes
    interrupted = pipeline.train_config(params, "demo-scenes", "encdec", 0, tmp_path / "i",
                                        None)
    partial = dataclasses.replace(interrupted, checkpoint_every=1)

    def stop_at_step_two(step, info):  # after step 2, before its checkpoint
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(partial, on_step=stop_at_step_two)
    assert pipeline.reset_stale_run(partial) == "resume"
    assert train(partial).resumed_from == 1

    # a run of another config is replaced
    other = dataclasses.replace(partial, lr=1e-3)
    assert pipeline.reset_stale_run(other) == "fresh"
