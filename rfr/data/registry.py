"""The dataset registry: one plain dict {name: builder}, and ``build_dataset``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rfr.config import ConfigError, from_dict
from rfr.data.base import ImageDataset
from rfr.data.config import DatasetConfig
from rfr.data.embedded import demo_faces, demo_scenes
from rfr.data.published import celeba, image_folder, paris_streetview, places2

DatasetBuilder = Callable[[DatasetConfig], ImageDataset]

DATASET_BUILDERS: dict[str, DatasetBuilder] = {
    "celeba": celeba,
    "paris": paris_streetview,
    "places2": places2,
    "folder": image_folder,
    "demo-scenes": demo_scenes,
    "demo-faces": demo_faces,
}


def build_dataset(config: DatasetConfig | Mapping[str, Any]) -> ImageDataset:
    """The dataset a config (or its plain-mapping form, e.g. parsed YAML) describes."""
    if not isinstance(config, DatasetConfig):
        config = from_dict(DatasetConfig, config, "dataset")
    try:
        builder = DATASET_BUILDERS[config.name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {config.name!r}; known: {sorted(DATASET_BUILDERS)}"
        ) from None
    return builder(config)


__all__ = ["DATASET_BUILDERS", "DatasetBuilder", "build_dataset"]
