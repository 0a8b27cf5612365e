"""Describing what is wrong with a weights file, for error messages.

Both model checkpoints and pretrained feature networks fail the same ways (unreadable
files, missing keys, unexpected keys, wrong shapes); one description keeps their
messages alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from torch import Tensor

_MAX_LISTED = 8
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # torch colours parts of its messages
_MAX_DETAIL = 200


def torch_load_detail(exc: BaseException) -> str:
    """The informative line of a failed ``torch.load``: safe loading wraps every failure in
    the same long preamble, and the line that says what was refused ("Unsupported global:
    ..." for a pickled class, "Unsupported operand ..." for corrupt bytes or a plain pickle)
    sits further down. Colour codes are removed."""
    lines = [line.strip() for line in _ANSI_ESCAPE.sub("", str(exc)).splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if "Unsupported" in line:
            return line[:_MAX_DETAIL]
    return lines[0][:_MAX_DETAIL] if lines else type(exc).__name__


def state_dict_mismatches(state_dict: Mapping[str, Tensor],
                          expected_shapes: Mapping[str, Sequence[int]]) -> list[str]:
    """One phrase per kind of mismatch, each listing the first offending keys; empty when
    every expected key is present with its shape and nothing else is there."""
    missing = [key for key in expected_shapes if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected_shapes]
    mis_shaped = [
        f"{key}: file {tuple(state_dict[key].shape)}, expected {tuple(shape)}"
        for key, shape in expected_shapes.items()
        if key in state_dict and tuple(state_dict[key].shape) != tuple(shape)
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("wrong shapes", mis_shaped)):
        if items:
            problems.append(f"{label} ({len(items)}): {preview(items)}")
    return problems


def preview(items: Sequence[str], limit: int = _MAX_LISTED) -> str:
    """The first ``limit`` items, and how many more there are."""
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return shown + (f", ... (+{more} more)" if more > 0 else "")
