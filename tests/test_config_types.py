"""Wrong value types in a profile or a config file fail when it is loaded, naming the file
and the key as written there, instead of at a stage or at training step 1."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rfr import pipeline
from rfr.cli import main
from rfr.config import ConfigError
from rfr.evaluate.api import load_eval_config
from rfr.train.loop import load_train_config

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def demo_params(tmp_path: Path, change: Callable[[dict[str, Any]], None] | None = None,
                text_change: tuple[str, str] | None = None) -> Path:
    """A copy of profiles/demo.yaml as tmp_path/params.yaml, changed as parsed data or as
    text (text keeps YAML's own typing of the new value, e.g. 2e-4 as a string)."""
    text = (ROOT / "profiles" / "demo.yaml").read_text()
    if text_change is not None:
        old, new = text_change
        assert old in text
        text = text.replace(old, new)
    if change is not None:
        params = yaml.safe_load(text)
        change(params)
        text = yaml.safe_dump(params, sort_keys=False)
    dest = tmp_path / "params.yaml"
    dest.write_text(text)
    return dest


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_committed_profiles_still_load(path):
    params = pipeline.load_params(path, check_roots=path.stem not in ("paper", "rehearsal",
                                                                     "released"))
    assert params["profile"] == path.stem


def test_committed_examples_still_load():
    names = {path.name for path in EXAMPLES}
    assert names == {"train_demo.yaml", "evaluate_demo.yaml"}
    assert load_train_config(ROOT / "examples" / "train_demo.yaml").model_config["width"] == 16
    assert load_eval_config(ROOT / "examples" / "evaluate_demo.yaml").limit == 8


def test_train_loss_hole_six_fails_at_load_naming_file_and_key(tmp_path):
    dest = demo_params(tmp_path, text_change=("loss: {vgg_weights: random}",
                                              "loss: {vgg_weights: random, hole: six}"))
    with pytest.raises(ConfigError) as caught:
        pipeline.load_params(dest)
    assert str(caught.value) == (f"{dest}: train.loss.hole: expected a number, "
                                 f"got 'six' (str)")


@pytest.mark.parametrize("text_change,message", [
    (("lr: 2.0e-4", "lr: 2e-4"),
     "train.lr: expected a number, got '2e-4' (str); YAML reads 2e-4 as a string (a YAML "
     "float needs a dot, and a sign in its exponent): write 2.0e-4"),
    (("finetune_lr: 5.0e-5", "finetune_lr: 5.0e5"),
     "train.finetune_lr: expected a number, got '5.0e5' (str); YAML reads 5.0e5 as a string "
     "(a YAML float needs a dot, and a sign in its exponent): write 5.0e+5"),
    (("  keep_checkpoints: 1\n", "  keep_checkpoints: 1\n  progress: no\n"),
     None),  # YAML 1.1: a bool
    (("  keep_checkpoints: 1\n", "  keep_checkpoints: 1\n  progress: 'no'\n"),
     "runtime.progress: expected true or false, got 'no' (str)"),
    (("mask_kind: strokes", "mask_kind: strokes\n  progress: false"),
     "train: ['progress'] cannot change any number, so they belong under runtime:"),
    (("  keep_checkpoints: 1\n", "  keep_checkpoints: 1\n  lr: 1.0e-3\n"),
     "runtime: ['lr'] cannot go here"),
    (("grid_examples: 2", "grid_examples: 2\n  limit: null"), None),  # Optional: None
    (("lr: 2.0e-4", "lr: 1"), None),  # an int for a float field
    (("precision: fp32\n  loss", "precision: fp16\n  loss"),
     "train.precision: expected one of ['fp32', 'bf16'], got 'fp16' (str)"),
    (("batch_size: 6", "batch_size: '6'"), "train.batch_size: expected an integer, got '6'"),
    (("batch_size: 6", "batch_size: 0"), "train: batch_size must be an integer >= 1, got 0"),
    (("grid_examples: 2", "grid_examples: two"),
     "evaluate.grid_examples: expected an integer, got 'two' (str)"),
    (("resamples: 2000\n# How", "resamples: 2.0e+3\n# How"),
     "evaluate.resamples: expected an integer, got 2000.0 (float)"),
    (("  width: 16", "  width: '16'"), "model.width: expected an integer, got '16' (str)"),
    (("  width: 16", "  width: 12"), "model: width must be a positive multiple of 8"),
    (("  width: 16", "  widht: 16"), "model: unknown key(s) ['widht']"),
    (("  per_bin: 16", "  per_bin: many"), "masks.per_bin: expected an integer, got 'many'"),
    (("  size: 64\n  seed: 0", "  size: 64.0\n  seed: 0"),
     "masks.size: expected an integer, got 64.0 (float)"),
    (("  per_bin: 16\n", ""), "masks must have exactly the keys ['per_bin', 'size', 'seed']"),
    (("{name: demo-faces, size: 64}", "{name: demo-faces, size: big}"),
     "datasets.demo-faces.data.size: expected an integer, got 'big' (str)"),
    (("{steps: 100, finetune_steps: 25}\n  demo-faces",
      "{steps: 1e2, finetune_steps: 25}\n  demo-faces"),
     "datasets.demo-scenes.schedule.steps: expected an integer, got '1e2' (str)"),
])
def test_wrong_types_in_each_section_fail_at_load(tmp_path, text_change, message):
    dest = demo_params(tmp_path, text_change=text_change)
    if message is None:
        pipeline.load_params(dest)
        return
    with pytest.raises(ConfigError, match=re.escape(f"{dest}: {message}")):
        pipeline.load_params(dest)


@pytest.mark.parametrize("section,key", [("train", "seed"), ("train", "out_dir"),
                                         ("evaluate", "checkpoint"), ("evaluate", "masks")])
def test_sections_must_leave_run_keys_to_the_pipeline_at_load(tmp_path, section, key):
    dest = demo_params(tmp_path, lambda p: p[section].update({key: 1}))
    with pytest.raises(pipeline.PipelineError,
                       match=re.escape(f"{dest}: {section} must not set ['{key}']")):
        pipeline.load_params(dest)


def test_unknown_keys_in_a_section_name_the_file_and_section(tmp_path):
    dest = demo_params(tmp_path, lambda p: p["train"]["loss"].update(hol=6))
    with pytest.raises(ConfigError, match=re.escape(
            f"{dest}: train.loss: unknown key(s) ['hol'] for LossConfig; known keys:")):
        pipeline.load_params(dest)


def test_use_profile_checks_types_too(tmp_path, monkeypatch):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    demo_params(tmp_path, lambda p: p["train"].update(lr="fast")).rename(profiles / "bad.yaml")
    monkeypatch.setattr(pipeline, "PROFILES_DIR", profiles)
    dest = tmp_path / "params.yaml"
    with pytest.raises(ConfigError, match=r"bad\.yaml: train\.lr: expected a number"):
        pipeline.use_profile("bad", dest=dest)
    assert not dest.exists()


def write_train_yaml(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load((ROOT / "examples" / "train_demo.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = data
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_load_train_config_names_file_and_key(tmp_path):
    path = write_train_yaml(tmp_path, loss__hole="six")
    with pytest.raises(ConfigError) as caught:
        load_train_config(path)
    assert str(caught.value) == f"{path}: loss.hole: expected a number, got 'six' (str)"
    path = write_train_yaml(tmp_path, dataset__limit="8")
    with pytest.raises(ConfigError, match=re.escape(
            f"{path}: dataset.limit: expected an integer or null, got '8' (str)")):
        load_train_config(path)


def test_load_eval_config_names_file_and_key(tmp_path):
    path = tmp_path / "evaluate.yaml"
    path.write_text((ROOT / "examples" / "evaluate_demo.yaml").read_text()
                    .replace("limit: 8", "limit: eight"))
    with pytest.raises(ConfigError, match=re.escape(
            f"{path}: limit: expected an integer or null, got 'eight' (str)")):
        load_eval_config(path)


def test_cli_train_refuses_a_wrong_type_with_the_key_on_stderr(tmp_path, capsys):
    path = write_train_yaml(tmp_path, loss__hole="six")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: loss.hole: expected a number, got 'six' (str)" in err
    assert not (tmp_path / "run").exists()


def test_cli_pipeline_train_refuses_a_bad_profile_at_load(tmp_path, capsys):
    dest = demo_params(tmp_path, text_change=("lr: 2.0e-4", "lr: 2e-4"))
    code = main(["train", "--params", str(dest), "--dataset", "demo-scenes", "--variant",
                 "rfr", "--run-seed", "0", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{dest}: train.lr: expected a number, got '2e-4' (str)" in err
    assert "write 2.0e-4" in err
