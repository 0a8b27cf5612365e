"""Every error the user can fix, in one module that imports only the standard library.

The command line (``rfr/cli.py``) catches these to print one clear line instead of a
traceback, and it must not pay for torch, numpy or PIL to know them. Each class is also
re-exported by the module it belongs to (``rfr.model.checkpoint.CheckpointError`` is
``rfr.errors.CheckpointError``), so either import gives the same class.
"""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the field and the fix."""


class PipelineError(ConfigError):
    """The profile is inconsistent or names something that is not there; says what to do."""


class LaunchError(ConfigError):
    """The launch cannot start or go on (DVC failed, an unknown stage); says what to do."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and what is wrong."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset, or a part of one, is not where it is expected. The message says what
    was expected, where, and where the dataset is published."""


class DatasetFormatError(ValueError):
    """A dataset's list file is malformed or its split is empty; the message names the
    file and the line."""


class ImageReadError(ValueError):
    """An image or mask file cannot be used; the message names the file and why."""


class ImageWriteError(ValueError):
    """An output image path cannot be written; the message names the path and why."""


class MaskBankError(ValueError):
    """A mask bank or mask folder cannot be used or made; the message names the file."""


class WeightsNotFoundError(FileNotFoundError):
    """A weights file is not on disk; the message says where to put it or what to use instead.

    Subclasses FileNotFoundError so callers that already handle missing files keep working.
    `path` is the file that was looked for.
    """

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class InvalidWeightsError(ValueError):
    """A weights file exists but cannot be used (unreadable, or not the expected network)."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class ChecksumMismatchError(InvalidWeightsError):
    """The file's sha256 does not start with the prefix its name promises (a partial or
    substituted download)."""


class TrainingError(RuntimeError):
    """Training cannot go on (diverged loss, mismatching resume); the message says why."""


class DivergedError(TrainingError):
    """A loss term became NaN or infinite; the last good checkpoint is kept."""


class ReportError(ValueError):
    """A user-fixable problem with the report's inputs; the message names the file."""


__all__ = [
    "CheckpointError",
    "ChecksumMismatchError",
    "ConfigError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DivergedError",
    "ImageReadError",
    "ImageWriteError",
    "InvalidWeightsError",
    "LaunchError",
    "MaskBankError",
    "PipelineError",
    "ReportError",
    "TrainingError",
    "WeightsNotFoundError",
]
