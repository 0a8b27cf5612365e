"""The record of a released-checkpoint run: what was evaluated, and that nothing was
trained here.

The report reads every run's ``train/<run>/summary.json`` beside its evaluation; for run
``<dataset>-released-0`` (the authors' file, ``rfr evaluate --released``) that file says
which checkpoint it was (path and SHA-256, so a swapped file shows) and that it was not
trained by this suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rfr.atomic import write_json_atomic
from rfr.weights import file_sha256


def released_record(checkpoint: str | Path, run: dict[str, Any]) -> dict[str, Any]:
    """The training summary of a released-checkpoint run (``run``: the eval's run block)."""
    checkpoint = Path(checkpoint)
    return {
        "run": dict(run),
        "released": {"checkpoint": str(checkpoint), "sha256": file_sha256(checkpoint),
                     "format": "authors", "trained_here": False},
        # Not trained here: no losses, so no random-VGG warning applies to it.
        "train": {"released": True, "vgg_random": False},
    }


def write_released_record(path: str | Path, checkpoint: str | Path,
                          run: dict[str, Any]) -> Path:
    """Write ``released_record`` as JSON to ``path`` (atomically)."""
    write_json_atomic(path, released_record(checkpoint, run), indent=2, sort_keys=True)
    return Path(path)


__all__ = ["file_sha256", "released_record", "write_released_record"]
