"""Datasets: the paper's three (CelebA, Paris StreetView, Places2), any folder of images,
and two demo sets that ship inside scikit-image, behind one registry.

``build_dataset(DatasetConfig(name="celeba", root="data/raw/celeba", split="test",
size=256))`` gives an ``ImageDataset`` whose items are ``{"image": 3 x S x S float32 in
[0, 1], "index": int}``, preprocessed as the authors do (``rfr.data.transforms``), every
random draw seeded by (seed, epoch, index). Use ``make_loader`` and ``iter_batches`` for
DataLoader passes that are the same everywhere and report skipped images.

Modules: ``transforms`` (crop, resize, flip), ``base`` (the dataset class, errors, skip
handling, loaders), ``published`` (on-disk layouts), ``embedded`` (demo sets), ``config``
(``DatasetConfig``), ``registry`` (``DATASET_BUILDERS``). Layouts and splits:
docs/datasets.md.
"""

from rfr.data.base import (
    Batch,
    DatasetFormatError,
    DatasetNotFoundError,
    ImageDataset,
    ImageFileDataset,
    Sample,
    Skipped,
    iter_batches,
    make_loader,
)
from rfr.data.config import DatasetConfig
from rfr.data.embedded import DemoFaces, DemoScenes
from rfr.data.published import IMAGE_EXTENSIONS, list_images
from rfr.data.registry import DATASET_BUILDERS, build_dataset
from rfr.data.transforms import CropPlan, centre_plan, preprocess, sample_rng, train_plan

__all__ = [
    "DATASET_BUILDERS",
    "IMAGE_EXTENSIONS",
    "Batch",
    "CropPlan",
    "DatasetConfig",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DemoFaces",
    "DemoScenes",
    "ImageDataset",
    "ImageFileDataset",
    "Sample",
    "Skipped",
    "build_dataset",
    "centre_plan",
    "iter_batches",
    "list_images",
    "make_loader",
    "preprocess",
    "sample_rng",
    "train_plan",
]
