"""The one atomic writer of rce-art (private): a killed process leaves a whole file or none, concurrent writers each
use a temporary name of their own. The evaluation's results folder, the report's renderings, saved detectors, the
reproduction scripts' records and shard files all write through it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_save", "atomic_write"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path`` (a name of its own: concurrent writers do not race), with the
    permissions a plain ``open`` would give under the current umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def atomic_write(path: str | Path, text: str, *, exclusive: bool = False) -> bool:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, synced, then renamed.

    Args:
        path: The target file.
        text: Its content.
        exclusive: Create the file only if it does not exist (an atomic hard link): return ``False``, writing
            nothing, if it exists.

    Returns:
        Whether the file was written.
    """
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def atomic_save(path: str | Path, save: Any) -> None:
    """Call ``save(temporary_path)`` and rename the file it wrote over ``path``: a killed process leaves the whole
    file or none, and concurrent writers each use a temporary name of their own.

    Args:
        path: The target file.
        save: Writes a file at the path it is given (e.g. a detector's ``save``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        save(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
