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
