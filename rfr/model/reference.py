"""The authors' release as data: state-dict layout and the seeded weight recipe.

``../shared/reference/README.md`` defines a recipe that fills the authors' state dict with
seeded, well-scaled values. With it, faithfulness can be tested without the released
checkpoints (which cannot be downloaded here): the golden output was produced by the
authors' own code from the same recipe.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor


def load_state_dict_layout(path: str | Path) -> list[tuple[str, tuple[int, ...], str]]:
    """Read ``rfrnet_official_state_dict.json``: ``[key, shape, dtype]`` in state-dict order."""
    entries = json.loads(Path(path).read_text())
    return [(key, tuple(shape), dtype) for key, shape, dtype in entries]


def recipe_tensor(key: str, shape: tuple[int, ...], dtype: torch.dtype,
                  generator: torch.Generator) -> Tensor:
    """One entry of the recipe; draws from ``generator`` only for floating-point tensors."""
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=generator)
    if key.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=generator)
    if len(shape) == 1:
        if key.endswith("weight"):
            return 1.0 + 0.1 * torch.randn(shape, generator=generator)
        return 0.1 * torch.randn(shape, generator=generator)
    fan_in = 1
    for size in shape[1:]:
        fan_in *= size
    return torch.randn(shape, generator=generator) * (1.0 / fan_in) ** 0.5


def recipe_state_dict(layout: list[tuple[str, tuple[int, ...], torch.dtype]],
                      seed: int) -> OrderedDict[str, Tensor]:
    """Fill a state-dict layout by the recipe, in layout order (the order is the recipe)."""
    generator = torch.Generator().manual_seed(seed)
    return OrderedDict(
        (key, recipe_tensor(key, shape, dtype, generator)) for key, shape, dtype in layout
    )


def layout_of(state_dict: dict[str, Tensor]) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """The layout of a live state dict, e.g. ``RFRNet(config).state_dict()``."""
    return [(key, tuple(t.shape), t.dtype) for key, t in state_dict.items()]


def json_layout_dtypes(layout: list[tuple[str, tuple[int, ...], str]]
                       ) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """Turn the JSON's dtype names ("float32", "int64") into torch dtypes."""
    return [(key, shape, getattr(torch, name)) for key, shape, name in layout]
