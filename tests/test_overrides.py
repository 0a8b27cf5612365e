"""``-S key=value`` on the command line: a dotted key of the run config (``--config``) or
of the profile (``--params``, ``rfr profile``), its value read as YAML, checked against
the same schema as the file it changes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rfr import cli, pipeline
from rfr.cli import main
from rfr.config import ConfigError
from rfr.errors import PipelineError
from rfr.overrides import apply_overrides, parse_override
from rfr.train.config import TrainConfig, load_train_config

ROOT = Path(__file__).resolve().parents[1]
TRAIN_DEMO = ROOT / "examples" / "train_demo.yaml"
DEMO = ROOT / "profiles" / "demo.yaml"


def test_parse_override_reads_the_value_as_yaml():
    assert parse_override("loss.hole=6.0") == (["loss", "hole"], 6.0)
    assert parse_override("compare.seeds=[0, 1]") == (["compare", "seeds"], [0, 1])
    assert parse_override("curves_dir=null") == (["curves_dir"], None)
    assert parse_override("device=cuda:1") == (["device"], "cuda:1")
    for bad in ("steps", "=3", "loss..hole=1"):
        with pytest.raises(ConfigError, match="-S takes KEY=VALUE"):
            parse_override(bad)


def test_config_overrides_apply_top_level_and_nested_keys():
    config = load_train_config(TRAIN_DEMO, ["steps=10", "loss.hole=6.5",
                                            "model_config.width=8", "dataset.size=32"])
    assert (config.steps, config.loss.hole) == (10, 6.5)
    assert config.loss.vgg_weights == "random"  # the file's other nested keys stay
    assert config.model_config == {"width": 8} and config.dataset.size == 32
    assert config.dataset.name == "demo-scenes"


def test_flags_apply_after_the_overrides():
    config = load_train_config(TRAIN_DEMO, ["out_dir=elsewhere"], out_dir="from-flag")
    assert config.out_dir == "from-flag"


@pytest.mark.parametrize("setting,message", [
    ("stpes=10", "-S stpes=10: unknown key 'stpes' for TrainConfig; known keys: ["),
    ("loss.hol=6.0", "-S loss.hol=6.0: unknown key 'hol' under loss for LossConfig; "
                     "known keys: ['hole', 'perceptual', 'style', 'tv', 'valid', "
                     "'vgg_weights']"),
    ("steps.x=1", "-S steps.x=1: steps is an integer, it has no key 'x'"),
    ("steps=ten", "-S steps=ten: expected an integer, got 'ten' (str)"),
    ("lr=2e-4", "-S lr=2e-4: expected a number, got '2e-4' (str); YAML reads 2e-4 as a "
                "string (a YAML float needs a dot, and a sign in its exponent): write 2.0e-4"),
    ("loss.hole=six", "-S loss.hole=six: expected a number, got 'six' (str)"),
    ("dataset.limit=[1]", "-S dataset.limit=[1]: expected an integer or null, got [1]"),
])
def test_config_overrides_refuse_unknown_keys_and_wrong_types(setting, message):
    with pytest.raises(ConfigError) as caught:
        load_train_config(TRAIN_DEMO, [setting])
    assert str(caught.value).startswith(message)


def test_unknown_key_lists_every_known_key():
    with pytest.raises(ConfigError) as caught:
        apply_overrides({}, ["stpes=1"], TrainConfig)
    known = re.search(r"known keys: (\[.*\])$", str(caught.value)).group(1)
    assert "'steps'" in known and "'finetune_steps'" in known and "'loss'" in known


def test_a_range_error_after_the_overrides_names_them():
    with pytest.raises(ConfigError, match=re.escape(
            "steps + finetune_steps must be at least 1 (with -S steps=0 "
            "-S finetune_steps=0)")):
        load_train_config(TRAIN_DEMO, ["steps=0", "finetune_steps=0"])


def test_profile_overrides_change_the_run_config_the_pipeline_builds(tmp_path):
    params = pipeline.load_params(DEMO, overrides=[
        "train.lr=1.0e-4", "model.width=32", "datasets.demo-scenes.schedule.steps=7",
        "datasets.demo-scenes.data.size=32", "runtime.checkpoint_every=5"])
    config = pipeline.train_config(params, "demo-scenes", "rfr", 0, tmp_path / "run", None)
    assert config.lr == 1.0e-4 and config.model_config["width"] == 32
    assert config.steps == 7 and config.dataset.size == 32 and config.checkpoint_every == 5
    untouched = pipeline.load_params(DEMO)
    assert untouched["train"]["lr"] != 1.0e-4


@pytest.mark.parametrize("setting,message", [
    ("train.lrr=1.0e-4", "-S train.lrr=1.0e-4: unknown key 'lrr' under train for "
                         "TrainConfig; known keys: ["),
    ("train.loss.hol=1.0", "-S train.loss.hol=1.0: unknown key 'hol' under train.loss for "
                           "LossConfig; known keys: ["),
    ("datasets.demo-scenes.data.sise=32", "-S datasets.demo-scenes.data.sise=32: unknown "
                                          "key 'sise' under datasets.demo-scenes.data for "
                                          "DatasetConfig"),
    ("train.lr=fast", "-S train.lr=fast: expected a number, got 'fast' (str)"),
    ("model.widht=32", "-S model.widht=32: unknown key 'widht' for the model section"),
    ("compare.seed=[0]", "-S compare.seed=[0]: unknown key 'seed' under compare for "
                         "Compare; known keys: ['datasets', 'seeds', 'variants']"),
    ("trian.lr=1.0", "-S trian.lr=1.0: unknown key 'trian' for Profile; known keys: ["),
    ("masks.per_bins=2", "-S masks.per_bins=2: unknown key 'per_bins' for masks"),
    ("datasets.demo-scenes.data.size=big",
     "-S datasets.demo-scenes.data.size=big: expected an integer, got 'big' (str)"),
])
def test_profile_overrides_refuse_unknown_keys_and_wrong_types(setting, message):
    with pytest.raises(ConfigError) as caught:
        pipeline.load_params(DEMO, overrides=[setting])
    assert str(caught.value).startswith(message)


def test_profile_rules_still_hold_after_the_overrides():
    with pytest.raises(PipelineError, match=re.escape(
            f"{DEMO}: train must not set ['seed']")) as caught:
        pipeline.load_params(DEMO, overrides=["train.seed=3"])
    assert str(caught.value).endswith("(with -S train.seed=3)")
    with pytest.raises(PipelineError, match="ablation.seeds \\[7\\]"):
        pipeline.load_params(DEMO, overrides=["ablation.seeds=[0, 7]"])


def test_profile_verb_writes_the_override_into_params(tmp_path):
    dest = tmp_path / "params.yaml"
    assert main(["profile", "demo", "--params", str(dest), "-S", "train.lr=1.0e-4",
                 "-S", "model.width=32"]) == 0
    written = yaml.safe_load(dest.read_text())
    assert written["train"]["lr"] == 1.0e-4 and written["model"]["width"] == 32
    assert dest.read_text().startswith("#")  # the profile's header comment is kept
    pipeline.load_params(dest)


def test_cli_refuses_a_bad_override_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(TRAIN_DEMO), "--out", str(out),
                 "-S", "loss.hol=6.0"]) == 2
    assert "error: -S loss.hol=6.0: unknown key 'hol' under loss" in capsys.readouterr().err
    assert main(["train", "--params", str(DEMO), "--dataset", "demo-scenes", "--variant",
                 "rfr", "--run-seed", "0", "--out", str(out), "-S", "train.lr=fast"]) == 2
    assert "-S train.lr=fast: expected a number" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", "c.pth", "--dataset", "demo-scenes",
                 "--masks", "m", "--out", str(out), "-S", "limt=8"]) == 2
    assert "-S limt=8: unknown key 'limt' for EvalConfig" in capsys.readouterr().err
    assert not out.exists()


def test_torchrun_rerun_keeps_the_overrides(monkeypatch):
    seen = {}

    class Done:
        returncode = 0

    def fake_run(command, check):
        seen["command"] = command
        return Done()

    import subprocess

    monkeypatch.setattr(subprocess, "run", fake_run)
    args = cli.build_parser().parse_args(["train", "--config", "c.yaml", "-S", "gpus=2",
                                          "-S", "loss.hole=6.0"])
    assert cli.rerun_under_torchrun(args, 2) == 0
    command = seen["command"]
    assert command[command.index("train"):] == ["train", "--config", "c.yaml", "-S", "gpus=2",
                                                "-S", "loss.hole=6.0"]
