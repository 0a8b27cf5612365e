"""Atomic file writes: a reader, or a crash, never sees half a file.

Every write goes to a temporary sibling of the target (``.<name>.<random>.tmp``, in the
same directory, so the rename cannot cross file systems) which replaces the target with
``os.replace`` once it is complete; on an error the temporary file is removed and the
target is left as it was. The temporary file is created like a plain ``open()`` would
create it (mode 0666 less the umask), so the target ends with the permissions a direct
write gives. ``fsync=True`` also flushes the data to the disk before the rename (for
checkpoints: a power cut then leaves the old file or the new one, never an empty one).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _create_sibling(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file next to ``path``: (open descriptor, its path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp  # the umask applies, as for open()
        except FileExistsError:
            continue


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8",
                newline: str | None = None, fsync: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing (``mode`` "w" for text, "wb" for
    bytes); when the ``with`` block ends normally it replaces ``path``, when it raises it
    is removed. The parent directory is created if missing."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_sibling(path)
    try:
        text = dict(encoding=encoding, newline=newline) if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str, *, encoding: str = "utf-8",
                      newline: str | None = None) -> Path:
    """``Path.write_text`` made atomic (same ``newline`` translation)."""
    with atomic_open(path, "w", encoding=encoding, newline=newline) as handle:
        handle.write(text)
    return Path(path)


def write_json_atomic(path: str | Path, data: Any, **options: Any) -> Path:
    """``json.dumps(data, **options)`` plus a final newline, written atomically. The
    options (``indent``, ``sort_keys``, ``default``...) are each caller's file format."""
    return write_text_atomic(path, json.dumps(data, **options) + "\n")


def link_atomic(path: str | Path, target: str | Path) -> Path:
    """Make ``path`` a hard link to ``target`` (a copy where the file system has no hard
    links), replacing any previous ``path`` in one rename."""
    path = Path(path)
    fd, tmp = _create_sibling(path)
    os.close(fd)
    tmp.unlink()  # os.link needs a free name; it is ours until the rename below
    try:
        try:
            os.link(target, tmp)
        except OSError:
            shutil.copyfile(target, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


__all__ = ["atomic_open", "link_atomic", "write_json_atomic", "write_text_atomic"]
