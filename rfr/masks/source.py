"""Where the test masks come from, as configuration: the seeded bank or the NVIDIA test
set in a folder. The profile's ``masks:`` section names one (``source: bank`` when the key
is absent, so profiles written before the NVIDIA source stay valid, and the demo's params
and mask bank hash do not change); ``rfr masks --params`` writes whichever it names, and
every evaluation reads the result with ``read_mask_bank``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_type_hints

from rfr.config import check_type, from_dict
from rfr.errors import ConfigError
from rfr.masks.bank import MIN_BANK_SIZE, write_mask_bank
from rfr.masks.bins import MaskEntry
from rfr.masks.nvidia import (
    DEFAULT_RATIO_TOLERANCE,
    NVIDIA_BANK_PATTERN,
    NVIDIA_FILE_SIZE,
    SOURCE_NAME,
    NvidiaLayout,
    write_nvidia_bank,
)

MASK_SOURCES = ("bank", "nvidia")
SOURCE_KEY = "source"


@dataclass(frozen=True)
class BankSource:
    """The seeded bank: ``write_mask_bank``'s arguments but out_dir (a test keeps the two
    equal)."""

    per_bin: int
    size: int
    seed: int


@dataclass(frozen=True)
class NvidiaSource:
    """The NVIDIA irregular mask test set in ``folder`` (published layout).

    ``hole`` is the colour of the hole in the files (copies differ; no default). ``size``
    is the bank's mask side (nearest resize; null keeps ``file_size``), ``file_size`` the
    side every file must have (512 in the published set), ``per_bin``/``border`` a subset
    (the first per_bin of each chosen half of each bin; null = all), ``ratio_tolerance``
    the allowance of the bin check and ``threshold`` (null = files must be binary) the
    cut for anti-aliased copies.
    """

    folder: str
    hole: Literal["white", "black"]
    size: int | None = None
    file_size: int | None = NVIDIA_FILE_SIZE
    per_bin: int | None = None
    border: Literal["both", "with", "without"] = "both"
    ratio_tolerance: float = DEFAULT_RATIO_TOLERANCE
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.size is not None and self.size < MIN_BANK_SIZE:
            raise ConfigError(f"size must be at least {MIN_BANK_SIZE} or null, got {self.size}")
        if self.file_size is not None and self.file_size < 1:
            raise ConfigError(f"file_size must be positive or null, got {self.file_size}")
        if self.per_bin is not None and self.per_bin < 1:
            raise ConfigError(f"per_bin must be at least 1 or null, got {self.per_bin}")
        if self.ratio_tolerance < 0:
            raise ConfigError(f"ratio_tolerance must be >= 0, got {self.ratio_tolerance}")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ConfigError(f"threshold must be in (0, 1) or null, got {self.threshold}")

    @property
    def hole_is_white(self) -> bool:
        """Whether white pixels of the files are the hole."""
        return self.hole == "white"


MaskSource = BankSource | NvidiaSource
SOURCE_CLASSES: dict[str, type] = {"bank": BankSource, "nvidia": NvidiaSource}


def source_hints(source: str = "bank") -> dict[str, Any]:
    """{key: type hint} of one source's section keys (``source`` itself excluded)."""
    if source not in SOURCE_CLASSES:
        raise ConfigError(f"masks.source: expected one of {list(MASK_SOURCES)}, got {source!r}")
    if source == "bank":
        hints = get_type_hints(write_mask_bank)
        return {name: hints[name] for name in inspect.signature(write_mask_bank).parameters
                if name != "out_dir"}
    cls = SOURCE_CLASSES[source]
    hints = get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def mask_source(settings: Mapping[str, Any]) -> MaskSource:
    """The source a profile's ``masks:`` section names, checked: ``source`` (default
    ``bank``) picks the kind; a bank needs exactly per_bin, size and seed (dvc.yaml used to
    interpolate each; kept strict so a typo fails), the NVIDIA source needs folder and hole,
    the rest have defaults. Errors are ConfigErrors naming ``masks.<key>``."""
    if not isinstance(settings, Mapping):
        raise ConfigError(f"masks: expected a mapping, got {settings!r}")
    rest = dict(settings)
    kind = rest.pop(SOURCE_KEY, "bank")
    if kind not in MASK_SOURCES:
        raise ConfigError(f"masks.source: expected one of {list(MASK_SOURCES)}, got {kind!r}")
    if kind == "bank":
        hints = source_hints("bank")
        if set(rest) != set(hints):
            raise ConfigError(f"masks must have exactly the keys {list(hints)} (for the "
                              f"seeded bank; or set source: nvidia), got {sorted(rest)!r}")
        for name, hint in hints.items():
            check_type(rest[name], hint, f"masks.{name}")
        return BankSource(**rest)
    missing = [name for name in ("folder", "hole") if name not in rest]
    if missing:
        raise ConfigError(f"masks: source: nvidia needs {missing} (the test-set folder and "
                          f"the colour of its holes, white or black)")
    return from_dict(NvidiaSource, rest, path="masks")


def _remove_other_source(out_dir: Path) -> None:
    """Files an NVIDIA bank left in ``out_dir`` (its masks and source.json), once the
    seeded bank is written there: the folder then holds exactly what write_mask_bank
    writes. (``write_nvidia_bank`` removes stale seeded masks itself.) Other files are
    left alone."""
    for path in sorted(out_dir.iterdir()):
        if NVIDIA_BANK_PATTERN.fullmatch(path.name) or path.name == SOURCE_NAME:
            path.unlink()


def write_masks(source: MaskSource, out_dir: str | Path,
                layout: NvidiaLayout | None = None) -> list[MaskEntry]:
    """Write the bank of ``source`` to ``out_dir``: the seeded bank exactly as
    ``write_mask_bank`` writes it (same files, same bytes), or the NVIDIA set through
    ``write_nvidia_bank`` (``layout`` is for tests; None is the published one)."""
    out_dir = Path(out_dir)
    if isinstance(source, BankSource):
        entries = write_mask_bank(out_dir, source.per_bin, size=source.size, seed=source.seed)
        _remove_other_source(out_dir)
        return entries
    extra = {} if layout is None else {"layout": layout}
    return write_nvidia_bank(source.folder, out_dir, hole_is_white=source.hole_is_white,
                             size=source.size, file_size=source.file_size,
                             per_bin=source.per_bin, border=source.border,
                             ratio_tolerance=source.ratio_tolerance,
                             threshold=source.threshold, **extra)


def describe_source(source: MaskSource) -> str:
    """One line for the CLI: what was written."""
    if isinstance(source, BankSource):
        return (f"seeded bank ({source.size}x{source.size}, seed {source.seed}, white = "
                f"hole)")
    size = "the files' size" if source.size is None else f"{source.size}x{source.size}"
    subset = "all" if source.per_bin is None else f"first {source.per_bin} per half"
    return (f"NVIDIA test set from {source.folder} ({source.hole} = hole in the files, "
            f"border {source.border}, {subset}, at {size}; written white = hole)")
