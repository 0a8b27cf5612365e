"""Adapters for the datasets of the paper (CelebA, Paris StreetView, Places2) and for
any folder of images, each with its standard split.

Construction only checks what is cheap: the expected folders and list files exist, a list
parses, and the first, middle and last listed images of the split exist (a wrong root or a
half-extracted archive shows there). It does not open every image; an unreadable one is
found when it is read, and ``on_error`` decides what happens (``rfr.data.base``). Layouts,
sources and split sizes are described in docs/datasets.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rfr.config import ConfigError
from rfr.data.base import DatasetFormatError, DatasetNotFoundError, ImageFileDataset
from rfr.data.config import DatasetConfig

log = logging.getLogger("rfr.data")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
DOCS = "docs/datasets.md"


@dataclass(frozen=True)
class Layout:
    """What one split of a published dataset needs on disk, and where to get it."""

    title: str
    required: tuple[str, ...]  # relative to root; a trailing "/" marks a folder
    source: str  # where the dataset is published
    expected_count: int  # images in the published split

    def expected(self) -> str:
        return " and ".join(self.required)


CELEBA_SOURCE = "published by CUHK MMLAB: https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
PARIS_SOURCE = ("not public: request it from the Context Encoders authors (Pathak et al., "
                "https://github.com/pathak22/context-encoder)")
PLACES2_SOURCE = "published at http://places2.csail.mit.edu/download.html"

CELEBA_IMAGES = "img_align_celeba/"
CELEBA_PARTITION = "list_eval_partition.txt"
CELEBA_SPLITS = {"train": 0, "val": 1, "test": 2}
CELEBA_COUNTS = {"train": 162_770, "val": 19_867, "test": 19_962}

PARIS_FOLDERS = {"train": "paris_train_original/", "test": "paris_eval_gt/"}
PARIS_COUNTS = {"train": 14_900, "test": 100}

# Places365 test labels are not public, so papers (RFR-Net included) evaluate on the
# 36,500 validation images: split "test" is the validation set.
PLACES2_LAYOUT = {
    "train": ("data_256/", "places365_train_standard.txt"),
    "val": ("val_256/", "places365_val.txt"),
    "test": ("val_256/", "places365_val.txt"),
}
PLACES2_COUNTS = {"train": 1_803_460, "val": 36_500, "test": 36_500}

FOLDER_SPLITS = ("train", "val", "test")


def dataset_root(config: DatasetConfig) -> Path:
    """The configured root, or the published datasets' default ``data/raw/<name>``."""
    return Path(config.root) if config.root is not None else Path("data/raw") / config.name


def check_split(title: str, split: str, splits: Sequence[str]) -> None:
    if split not in splits:
        raise ConfigError(f"{title} has splits {list(splits)}, got split {split!r}")


def check_layout(layout: Layout, root: Path) -> None:
    """Raise DatasetNotFoundError naming the first missing piece of ``layout`` under root."""
    hint = f"expected {layout.expected()} (see {DOCS}; {layout.source})"
    if not root.is_dir():
        raise DatasetNotFoundError(f"{layout.title} not found at {root}: {hint}")
    for piece in layout.required:
        path = root / piece
        found = path.is_dir() if piece.endswith("/") else path.is_file()
        if not found:
            raise DatasetNotFoundError(
                f"{layout.title} incomplete at {root}: missing {piece} ({path}); {hint}"
            )


def check_listed_files(layout: Layout, root: Path, folder: str, names: Sequence[str],
                       list_file: str) -> None:
    """Spot-check that the first, middle and last listed images exist."""
    if not names:
        return
    for name in dict.fromkeys((names[0], names[len(names) // 2], names[-1])):
        path = root / folder / name
        if not path.is_file():
            raise DatasetNotFoundError(
                f"{layout.title} incomplete at {root}: {folder}{name} is listed in "
                f"{list_file} but not found ({path}); expected {layout.expected()} "
                f"(see {DOCS}; {layout.source})"
            )


def read_list(path: Path, fields: int) -> list[tuple[int, list[str]]]:
    """(line number, whitespace-separated fields) of each non-blank line; a line with
    another number of fields is a DatasetFormatError naming file and line."""
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != fields:
                raise DatasetFormatError(
                    f"{path}:{number}: expected {fields} fields, got {line.strip()!r}"
                )
            rows.append((number, parts))
    return rows


def warn_count(title: str, split: str, count: int, expected: int) -> None:
    """The split differs from the published one: say so (a subset is legitimate)."""
    if count != expected:
        log.warning("%s %s: %d images, the published split has %d", title, split, count,
                    expected)


def limited(names: list[str], limit: int | None) -> list[str]:
    return names if limit is None else names[:limit]


def file_dataset(config: DatasetConfig, title: str, root: Path,
                 relpaths: list[str]) -> ImageFileDataset:
    return ImageFileDataset(title, config.split, root, limited(relpaths, config.limit),
                            size=config.size, train=config.train_transform,
                            seed=config.seed, on_error=config.on_error)


# ---------------------------------------------------------------------------- CelebA


def celeba(config: DatasetConfig) -> ImageFileDataset:
    """CelebA aligned-and-cropped faces (178 x 218), split by the official
    ``list_eval_partition.txt`` (0 train, 1 val, 2 test)."""
    title = "CelebA"
    check_split(title, config.split, list(CELEBA_SPLITS))
    root = dataset_root(config)
    layout = Layout(title, (CELEBA_IMAGES, CELEBA_PARTITION), CELEBA_SOURCE,
                    CELEBA_COUNTS[config.split])
    check_layout(layout, root)
    wanted = str(CELEBA_SPLITS[config.split])
    names = []
    for number, (name, part) in read_list(root / CELEBA_PARTITION, fields=2):
        if part not in ("0", "1", "2"):
            raise DatasetFormatError(f"{root / CELEBA_PARTITION}:{number}: partition must "
                                     f"be 0, 1 or 2, got {part!r}")
        if part == wanted:
            names.append(name)
    if not names:
        raise DatasetFormatError(f"{root / CELEBA_PARTITION} lists no {config.split} images "
                                 f"(partition {wanted})")
    check_listed_files(layout, root, CELEBA_IMAGES, names, CELEBA_PARTITION)
    warn_count(title, config.split, len(names), layout.expected_count)
    return file_dataset(config, title, root / CELEBA_IMAGES, names)


# ------------------------------------------------------------------ Paris StreetView


def paris_streetview(config: DatasetConfig) -> ImageFileDataset:
    """Paris StreetView (Doersch et al. 2012, as distributed by Pathak et al.): the
    14,900 images of ``paris_train_original/`` for training, the 100 of
    ``paris_eval_gt/`` for testing."""
    title = "Paris StreetView"
    check_split(title, config.split, list(PARIS_FOLDERS))
    root = dataset_root(config)
    folder = PARIS_FOLDERS[config.split]
    layout = Layout(title, (folder,), PARIS_SOURCE, PARIS_COUNTS[config.split])
    check_layout(layout, root)
    names = list_images(root / folder)
    if not names:
        raise DatasetNotFoundError(
            f"{title} incomplete at {root}: no images in {folder} ({root / folder}); "
            f"expected {layout.expected_count} (see {DOCS}; {layout.source})"
        )
    warn_count(title, config.split, len(names), layout.expected_count)
    return file_dataset(config, title, root / folder, names)


# ---------------------------------------------------------------------------- Places2


def places2(config: DatasetConfig) -> ImageFileDataset:
    """Places365-Standard, small (256 x 256) images: ``data_256/`` listed by
    ``places365_train_standard.txt`` for training, ``val_256/`` listed by
    ``places365_val.txt`` for validation and testing."""
    title = "Places2"
    check_split(title, config.split, list(PLACES2_LAYOUT))
    root = dataset_root(config)
    folder, list_file = PLACES2_LAYOUT[config.split]
    layout = Layout(title, (folder, list_file), PLACES2_SOURCE, PLACES2_COUNTS[config.split])
    check_layout(layout, root)
    # Train lines are "/a/airfield/00000001.jpg 0", val lines "Places365_val_00000001.jpg 165".
    names = [parts[0].lstrip("/") for _, parts in read_list(root / list_file, fields=2)]
    if not names:
        raise DatasetFormatError(f"{root / list_file} lists no images")
    check_listed_files(layout, root, folder, names, list_file)
    warn_count(title, config.split, len(names), layout.expected_count)
    return file_dataset(config, title, root / folder, names)


# ----------------------------------------------------------------------------- folder


def list_images(root: Path) -> list[str]:
    """Relative POSIX paths of the images under ``root`` (recursive; extensions in
    IMAGE_EXTENSIONS, any case), sorted so the order is the same on every file system.
    Hidden files and folders are left out: macOS archives carry ``._name.jpg``
    resource forks that look like images and are not."""
    names = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            names.append(relative.as_posix())
    return sorted(names)


def read_file_list(path: Path) -> list[str]:
    """Relative paths, one per line; blank lines and lines starting with # are ignored."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name = line.strip()
        if name and not name.startswith("#"):
            names.append(name)
    return names


def image_folder(config: DatasetConfig) -> ImageFileDataset:
    """Every image under ``root`` (recursive, sorted), or exactly the images named by
    ``file_list``, in its order. The split only selects the transform."""
    title = "image folder"
    check_split(title, config.split, FOLDER_SPLITS)
    if config.root is None:
        raise ConfigError("the folder dataset needs root (a folder of images)")
    root = Path(config.root)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"image folder not found at {root}: expected a folder of images "
            f"({', '.join(sorted(IMAGE_EXTENSIONS))}; see {DOCS})"
        )
    if config.file_list is not None:
        list_path = Path(config.file_list)
        if not list_path.is_file():
            raise DatasetNotFoundError(
                f"file list not found at {list_path}: expected a text file of image paths "
                f"relative to {root}, one per line (see {DOCS})"
            )
        names = read_file_list(list_path)
        missing = [name for name in names if not (root / name).is_file()]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DatasetNotFoundError(
                f"{len(missing)} of {len(names)} images listed in {list_path} not found "
                f"under {root}: {shown}"
            )
        if not names:
            raise DatasetFormatError(f"{list_path} lists no images")
    else:
        names = list_images(root)
        if not names:
            raise DatasetNotFoundError(
                f"no images under {root}: expected files ending in "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))} (any case; see {DOCS})"
            )
    return file_dataset(config, title, root, names)


__all__ = [
    "IMAGE_EXTENSIONS",
    "Layout",
    "celeba",
    "dataset_root",
    "image_folder",
    "list_images",
    "paris_streetview",
    "places2",
    "read_file_list",
]
