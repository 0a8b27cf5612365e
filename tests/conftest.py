"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Tiny forwards gain nothing from threads, and on a busy 2-core machine OpenMP's
    spinning threads make them several times slower; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub (TORCH_HOME in tmp_path); downloading is made to fail loudly,
    should anything try. Returns the checkpoints folder where weights would be looked up."""
    from rfr.weights import hub_checkpoint_dir

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("the suite must never download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    checkpoints = hub_checkpoint_dir()
    assert checkpoints == tmp_path / "torch_home" / "hub" / "checkpoints"
    return checkpoints


# --- native bf16 ----------------------------------------------------------------------

NATIVE_BF16_MARKER = "native_bf16"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{NATIVE_BF16_MARKER}: runs bf16 on the CPU; skipped where the CPU has no native bf16 "
        "(rfr.precision: there it is emulated, tens of times slower, and refused)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``native_bf16`` on a CPU without native bf16 (e.g. AVX2-only,
    or ATEN_CPU_CAPABILITY=avx2), with what was detected as the reason."""
    marked = [item for item in items if item.get_closest_marker(NATIVE_BF16_MARKER)]
    if not marked:
        return
    from rfr.precision import bf16_support

    support = bf16_support("cpu")
    if support.native:
        return
    skip = pytest.mark.skip(
        reason=f"this CPU has no native bf16 ({support.capability}): bf16 is emulated there, "
               "tens of times slower than fp32, and rfr refuses it"
    )
    for item in marked:
        item.add_marker(skip)
