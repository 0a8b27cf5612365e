"""Ablation variants: the YAML file, validation, building, GMACs and `rfr variants`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from rfr.cli import main
from rfr.config import ConfigError
from rfr.model.api import count_parameters
from rfr.model.variants import (
    DEFAULT_VARIANTS_PATH,
    Variant,
    build_variant,
    count_gmacs,
    load_variants,
    variant_config,
)

pytestmark = pytest.mark.usefixtures("single_thread")

EXPECTED = [
    "rfr", "rfr_no_kca", "rfr_naive_attention", "rfr_concat_merge", "rfr_iter1",
    "rfr_iter2", "rfr_iter3", "rfr_iter4", "rfr_iter8", "pconv", "encdec",
]


def test_yaml_holds_every_variant_with_a_hypothesis() -> None:
    assert DEFAULT_VARIANTS_PATH.is_file()
    variants = load_variants()
    assert list(variants) == EXPECTED
    assert all(v.hypothesis for v in variants.values())
    assert variant_config("rfr")["iter_num"] == 6


@pytest.mark.parametrize("name", EXPECTED)
def test_variant_builds_runs_and_trains(name: str) -> None:
    model = build_variant(name, width=8)
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 64, 64, generator=gen)
    mask = (torch.rand(2, 1, 64, 64, generator=gen) > 0.4).float()
    out = model(image * mask, mask)
    assert out.shape == (2, 3, 64, 64)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_rfr_variants_differ_from_rfr_only_in_their_delta() -> None:
    base = variant_config("rfr", width=16)
    for variant in load_variants().values():
        if variant.model != "rfr" or variant.name == "rfr":
            continue
        config = variant_config(variant, width=16)
        changed = {k for k in config if config[k] != base[k]}
        assert changed == set(variant.delta), variant.name
        assert 1 <= len(variant.delta) <= 2


def test_width_override_applies_to_every_model() -> None:
    for name in ("rfr", "pconv", "encdec"):
        assert variant_config(name, width=16)["width"] == 16


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "variants.yaml"
    path.write_text(text)
    return path


def test_unknown_model_key_or_variant_is_a_clear_error(tmp_path: Path) -> None:
    bad_model = _write(tmp_path, "variants:\n  x: {model: lama, delta: {}}\n")
    with pytest.raises(ConfigError, match=r"variant 'x'.*unknown model 'lama'.*encdec"):
        load_variants(bad_model)
    bad_key = _write(tmp_path, "variants:\n  x: {model: rfr, delta: {iters: 3}}\n")
    with pytest.raises(ConfigError, match=r"variant 'x'.*unknown key.*iters.*iter_num"):
        load_variants(bad_key)
    bad_value = _write(tmp_path, "variants:\n  x: {model: rfr, delta: {attention: full}}\n")
    with pytest.raises(ConfigError, match=r"variant 'x'.*attention: expected one of"):
        load_variants(bad_value)
    bad_entry = _write(tmp_path, "variants:\n  x: {model: rfr, detla: {}}\n")
    with pytest.raises(ConfigError, match=r"unknown key.*detla"):
        load_variants(bad_entry)
    with pytest.raises(ConfigError, match="unknown variant 'nope'"):
        build_variant("nope")
    with pytest.raises(ConfigError, match="not found"):
        load_variants(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown model"):
        build_variant(Variant("y", "vit"))


def test_explicit_path_is_used(tmp_path: Path) -> None:
    path = _write(tmp_path, "variants:\n  tiny: {model: encdec, delta: {blocks: 1}}\n")
    assert list(load_variants(path)) == ["tiny"]
    model = build_variant("tiny", width=8, path=path)
    assert len(model.bottleneck) == 1


class _OneConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.conv(image)


def test_gmacs_of_one_conv_by_hand() -> None:
    # out channels x output pixels x (in channels x kernel area); the bias is not a MAC
    expected = 8 * (32 * 32) * (3 * 3 * 3)
    assert count_gmacs(_OneConv(), 32) * 1e9 == pytest.approx(expected)


def test_gmacs_grow_with_recurrences() -> None:
    gmacs = [count_gmacs(build_variant(f"rfr_iter{n}", width=8), 32) for n in (1, 2, 4)]
    assert gmacs[0] < gmacs[1] < gmacs[2]
    step = gmacs[1] - gmacs[0]
    assert gmacs[2] - gmacs[1] == pytest.approx(2 * step, rel=1e-6)


def test_cli_variants_prints_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["variants", "--size", "64", "--width", "16"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    assert list(lines) == EXPECTED
    params = int(lines["rfr"][-2].replace(",", ""))
    assert params == count_parameters(build_variant("rfr", width=16))
    assert all(float(cells[-1]) > 0 for cells in lines.values())
    assert "GMACs@64" in out


def test_cli_variants_bad_file_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["variants", "--file", str(tmp_path / "none.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
