"""The precisions the suite runs in, and whether bf16 is native where it would run.

bf16 autocast pays off only where the hardware computes in bf16: CUDA GPUs with bf16
(compute capability 8.0 and later) and CPUs with AVX-512 BF16 or AMX (Intel Cooper Lake,
Sapphire Rapids and later; AMD Zen 4 and later). Elsewhere bf16 is emulated: without
oneDNN's bf16 kernels every convolution falls back to ATen's reference path
(``slow_conv2d``), and one RFR-Net eval forward on 2 threads measured 25x (width 16,
64 x 64) to 75x (width 64, the released network) slower than in fp32; at 256 x 256 on an
AVX2-only CPU it did not finish in 10 minutes, against about 10 s in fp32.

``check_precision`` refuses bf16 there with a user error before anything runs;
``precision_context`` calls it, so no bf16 forward runs on an emulating CPU.
``RFR_ALLOW_SLOW_BF16=1`` in the environment turns the refusal into a logged warning.

On x86, bf16 is native when all three hold (each is read from torch, once per process):

- ATen dispatches to AVX-512 (``torch.backends.cpu.get_cpu_capability()``; the
  ``ATEN_CPU_CAPABILITY`` variable can lower it, e.g. to ``avx2``);
- the CPU has AVX-512 BF16 or AMX BF16 (``torch.cpu._is_avx512_bf16_supported()``,
  ``torch.cpu.get_capabilities()["amx_bf16"]``);
- oneDNN has bf16 kernels (``torch.ops.mkldnn._is_mkldnn_bf16_supported()``; false on
  AVX2-only CPUs and under ``ONEDNN_MAX_CPU_ISA=AVX2``: that is what makes it slow).

On other CPU architectures (e.g. aarch64) oneDNN's own check decides: it is true on CPUs
with BF16 instructions (not measured here).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from rfr.config import ConfigError

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
ALLOW_SLOW_BF16_ENV = "RFR_ALLOW_SLOW_BF16"
X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")

_warned: set[str] = set()


class PrecisionUnsupportedError(ConfigError):
    """The requested precision would be emulated (tens of times slower) on this device."""


@dataclass(frozen=True)
class Bf16Support:
    """Whether bf16 autocast runs natively on a device type, and what was detected."""

    native: bool
    capability: str  # what was detected, for messages: "ATen CPU capability AVX2, ..."


def _call(name: str, default: object) -> object:
    """``torch.cpu.<name>()``, or ``default`` where this torch lacks it or it fails."""
    function = getattr(torch.cpu, name, None)
    if function is None:
        return default
    try:
        return function()
    except Exception:  # a probe: absence means "not detected"
        return default


def _onednn_bf16() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # an older torch without the op
        return False


@functools.cache
def cpu_bf16_support() -> Bf16Support:
    """Detect native bf16 on this CPU (cached: the answer cannot change in a process)."""
    capability = str(torch.backends.cpu.get_cpu_capability())
    avx512_bf16 = bool(_call("_is_avx512_bf16_supported", False))
    features = _call("get_capabilities", {})
    amx_bf16 = bool(features.get("amx_bf16", False)) if isinstance(features, dict) else False
    onednn = _onednn_bf16()
    machine = platform.machine().lower()
    if machine in X86_MACHINES:
        native = capability.startswith(("AVX512", "AMX")) and (avx512_bf16 or amx_bf16) \
            and onednn
        parts = [
            f"ATen CPU capability {capability}",
            f"AVX-512 BF16 {'yes' if avx512_bf16 else 'no'}",
            f"AMX BF16 {'yes' if amx_bf16 else 'no'}",
            f"oneDNN bf16 {'yes' if onednn else 'no'}",
        ]
    else:
        native = onednn
        parts = [f"{machine or 'unknown'} CPU", f"ATen CPU capability {capability}",
                 f"oneDNN bf16 {'yes' if onednn else 'no'}"]
    forced = os.environ.get("ATEN_CPU_CAPABILITY")
    if forced:
        parts.append(f"ATEN_CPU_CAPABILITY={forced} is set")
    return Bf16Support(native, ", ".join(parts))


def bf16_support(device_type: str | torch.device = "cpu") -> Bf16Support:
    """Native bf16 on ``device_type``: CUDA when the GPU computes in bf16 (not emulated),
    the CPU by the rule in this module's docstring. Other device types are not checked
    and count as native."""
    kind = torch.device(device_type).type
    if kind == "cpu":
        return cpu_bf16_support()
    if kind == "cuda":
        if not torch.cuda.is_available():
            return Bf16Support(False, "CUDA is not available")
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        name = torch.cuda.get_device_name()
        return Bf16Support(native, f"CUDA device {name}, bf16 {'yes' if native else 'no'}")
    return Bf16Support(True, f"{kind} (not checked)")


def bf16_is_native(device_type: str | torch.device = "cpu") -> bool:
    """Whether bf16 autocast runs natively (not emulated) on ``device_type``."""
    return bf16_support(device_type).native


def slow_bf16_allowed() -> bool:
    """``RFR_ALLOW_SLOW_BF16=1`` (or true/yes) is set: bf16 runs even where emulated."""
    return os.environ.get(ALLOW_SLOW_BF16_ENV, "").strip().lower() in ("1", "true", "yes")


def _why_and_where(device_type: str) -> tuple[str, str]:
    if device_type == "cpu":
        return ("bf16 is emulated there (no native bf16 kernels) and an RFR-Net forward runs "
                "tens of times slower than in fp32 (measured 25x to 75x)",
                "bf16 is for CPUs with AVX-512 BF16 or AMX (Intel Cooper Lake, Sapphire "
                "Rapids and later; AMD Zen 4 and later) and for CUDA GPUs")
    return ("bf16 would be emulated or cannot run there",
            "bf16 is for CUDA GPUs with bf16 (compute capability 8.0 and later)")


def refusal_message(support: Bf16Support, device_type: str) -> str:
    """One line: what was detected, why bf16 is refused, what to do instead."""
    why, where = _why_and_where(device_type)
    return (
        f"precision bf16 is refused on this {device_type.upper()} ({support.capability}): "
        f"{why}. Use --precision fp32 (precision: fp32 in a config); {where}. "
        f"To run bf16 anyway, set {ALLOW_SLOW_BF16_ENV}=1."
    )


def check_precision(precision: str, device_type: str | torch.device = "cpu") -> None:
    """Raise ``PrecisionUnsupportedError`` when ``precision`` would be emulated on
    ``device_type`` (bf16 without native support); fp32 always passes. With
    ``RFR_ALLOW_SLOW_BF16=1`` the refusal is logged as a warning (once per device type)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if precision == "fp32":
        return
    kind = torch.device(device_type).type
    support = bf16_support(kind)
    if support.native:
        return
    if not slow_bf16_allowed():
        raise PrecisionUnsupportedError(refusal_message(support, kind))
    if kind not in _warned:
        _warned.add(kind)
        why, _ = _why_and_where(kind)
        log.warning("running bf16 on this %s (%s) although %s, because %s=1 is set; "
                    "--precision fp32 is faster here", kind.upper(), support.capability,
                    why, ALLOW_SLOW_BF16_ENV)


@contextlib.contextmanager
def precision_context(precision: Precision, device_type: str = "cpu") -> Iterator[None]:
    """fp32 runs as is; bf16 is autocast (weights stay fp32, matmuls and convs in bf16),
    and refused (``check_precision``) where it would be emulated."""
    check_precision(precision, device_type)
    if precision == "fp32":
        yield
    else:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            yield
