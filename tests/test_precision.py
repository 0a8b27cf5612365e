"""bf16 is refused, with the reason, where the CPU would emulate it (rfr.precision).

The CPU's capability is read once per process, so each "other CPU" runs in a fresh
interpreter: ``ATEN_CPU_CAPABILITY=avx2`` makes torch's ATen kernels use AVX2 as on an
AVX2-only CPU, and ``ONEDNN_MAX_CPU_ISA=AVX2`` takes oneDNN's bf16 kernels away, which is
what makes bf16 slow there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rfr.precision
from rfr.cli import USER_ERRORS
from rfr.config import ConfigError, RFRNetConfig
from rfr.evaluate.api import EvalConfig, evaluate
from rfr.model.api import RFRNet
from rfr.model.checkpoint import save_authors_checkpoint
from rfr.precision import (
    ALLOW_SLOW_BF16_ENV,
    Bf16Support,
    PrecisionUnsupportedError,
    bf16_is_native,
    check_precision,
    precision_context,
)
from rfr.train.loop import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys, torch
from rfr.precision import PrecisionUnsupportedError, check_precision, precision_context
result = {}
check_precision("fp32", "cpu")
with precision_context("fp32", "cpu"):
    result["fp32"] = "ok"
for name in ("check", "context"):
    try:
        if name == "check":
            check_precision("bf16", "cpu")
            check_precision("bf16", "cpu")  # warned once only
        else:
            with precision_context("bf16", "cpu"):
                result["autocast"] = torch.is_autocast_enabled("cpu")
        result[name] = "ok"
    except PrecisionUnsupportedError as exc:
        result[name] = str(exc)
print(json.dumps(result))
"""


def child_env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", ALLOW_SLOW_BF16_ENV)}
    env.update({k: v for k, v in changes.items() if v is not None})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def probe(**env: str) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", PROBE], env=child_env(**env), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def assert_refusal(message: str, *needles: str) -> None:
    assert "\n" not in message
    for needle in ("precision bf16 is refused on this CPU", "emulated",
                   "tens of times slower than in fp32", "--precision fp32",
                   "precision: fp32", "AVX-512 BF16 or AMX", "Sapphire Rapids", "Zen 4",
                   "CUDA GPUs", f"{ALLOW_SLOW_BF16_ENV}=1", *needles):
        assert needle in message, (needle, message)


# ------------------------------------------------------------ other CPUs, in subprocesses


@pytest.mark.slow
def test_avx2_refuses_bf16_and_names_the_capability() -> None:
    result, stderr = probe(ATEN_CPU_CAPABILITY="avx2")
    assert result["fp32"] == "ok"
    assert_refusal(result["check"], "ATen CPU capability AVX2", "ATEN_CPU_CAPABILITY=avx2")
    assert result["context"] == result["check"]  # no bf16 forward can start
    assert "autocast" not in result
    assert "WARNING" not in stderr and "running bf16" not in stderr


@pytest.mark.slow
def test_without_onednn_bf16_kernels_bf16_is_refused() -> None:
    result, _ = probe(ONEDNN_MAX_CPU_ISA="AVX2")
    assert result["fp32"] == "ok"
    assert_refusal(result["check"], "oneDNN bf16 no")


@pytest.mark.slow
def test_escape_hatch_turns_the_refusal_into_one_warning() -> None:
    result, stderr = probe(ATEN_CPU_CAPABILITY="avx2", **{ALLOW_SLOW_BF16_ENV: "1"})
    assert result == {"fp32": "ok", "check": "ok", "context": "ok", "autocast": True}
    warnings = [line for line in stderr.splitlines() if "running bf16" in line]
    assert len(warnings) == 1, stderr  # once per process, not once per forward
    assert "AVX2" in warnings[0] and f"{ALLOW_SLOW_BF16_ENV}=1 is set" in warnings[0]
    assert "--precision fp32" in warnings[0]


def write_inputs(tmp_path: Path) -> list[str]:
    """An authors'-format width-8 checkpoint, a 48 x 32 image and its mask."""
    torch.manual_seed(0)
    checkpoint = save_authors_checkpoint(tmp_path / "authors_w8.pth",
                                         RFRNet(RFRNetConfig(width=8)).state_dict())
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(tmp_path / "i.png")
    hole = np.zeros((32, 48), dtype=np.uint8)
    hole[8:20, 10:30] = 255
    Image.fromarray(hole).save(tmp_path / "m.png")
    return ["--checkpoint", str(checkpoint), "--image", str(tmp_path / "i.png"),
            "--mask", str(tmp_path / "m.png")]


def run_cli(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rfr.cli", *argv], env=child_env(**env),
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_cli_inpaint_bf16_on_avx2_exits_2_with_one_line(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path)
    out = tmp_path / "out" / "filled.png"
    done = run_cli(["inpaint", *inputs, "--out", str(out), "--precision", "bf16"],
                   ATEN_CPU_CAPABILITY="avx2")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: precision bf16 is refused")
    assert_refusal(lines[0].removeprefix("error: "), "AVX2")
    assert not out.exists() and not out.parent.exists()
    # The escape hatch: it runs, with the warning on stderr.
    done = run_cli(["inpaint", *inputs, "--out", str(out), "--precision", "bf16"],
                   ATEN_CPU_CAPABILITY="avx2", **{ALLOW_SLOW_BF16_ENV: "1"})
    assert done.returncode == 0, done.stderr
    assert out.exists()
    assert "WARNING rfr.precision: running bf16" in done.stderr


# ------------------------------------------------------------------------- in-process


@pytest.mark.native_bf16
def test_this_machine_runs_bf16_natively() -> None:
    assert bf16_is_native("cpu")
    check_precision("bf16", "cpu")
    check_precision("bf16", torch.device("cpu"))
    with precision_context("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu")


def test_fp32_always_passes_and_unknown_precisions_are_config_errors() -> None:
    for device in ("cpu", "cuda", "cuda:1", torch.device("cpu")):
        check_precision("fp32", device)
    with pytest.raises(ConfigError, match="precision must be 'fp32' or 'bf16', got 'fp16'"):
        check_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="got 'fp16'"), precision_context("fp16"):
        pass
    assert issubclass(PrecisionUnsupportedError, ConfigError)
    assert any(issubclass(PrecisionUnsupportedError, kind) for kind in USER_ERRORS)


def test_inpaint_module_still_exports_precision_context() -> None:
    import rfr.inpaint

    assert rfr.inpaint.precision_context is precision_context
    assert rfr.inpaint.Precision is rfr.precision.Precision


@pytest.fixture
def emulating_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process sees a CPU without native bf16."""
    monkeypatch.delenv(ALLOW_SLOW_BF16_ENV, raising=False)
    emulated = Bf16Support(False, "ATen CPU capability AVX2, AVX-512 BF16 no")
    monkeypatch.setattr(rfr.precision, "bf16_support", lambda device_type="cpu": emulated)


def test_evaluate_refuses_before_reading_anything(tmp_path: Path, emulating_cpu: None) -> None:
    config = EvalConfig(checkpoint=str(tmp_path / "missing.pth"), masks=str(tmp_path / "none"),
                        out_dir=str(tmp_path / "eval"), precision="bf16")
    with pytest.raises(PrecisionUnsupportedError, match="AVX2"):
        evaluate(config, progress=False)
    assert not (tmp_path / "eval").exists()


def test_train_refuses_before_building_anything(tmp_path: Path, emulating_cpu: None) -> None:
    config = TrainConfig(out_dir=str(tmp_path / "train"), precision="bf16", device="cpu",
                         steps=1, progress=False)
    with pytest.raises(PrecisionUnsupportedError, match="AVX2"):
        train(config)
    assert not (tmp_path / "train").exists()
