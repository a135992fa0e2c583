"""Files the audit log writes outside the database (archives, checkpoints): whole or
not at all.

Each file is written under a temporary name in its own directory, flushed and
``fsync``-ed, renamed over its final name, and the directory is ``fsync``-ed so the
rename itself survives a power cut.  A reader sees the old file, the new file, or no
file — never a part.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700


def ensure_directory(path: Path) -> None:
    """Create *path* (mode 0700) if it is missing; the parents must exist."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")


def sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, write: Callable[[BinaryIO], None], *, mode: int) -> None:
    """Call ``write(file)`` on a temporary file beside *path*, then put it in place.

    The temporary file has *mode* from the start; on any error it is removed and
    *path* is left as it was.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    sync_directory(path.parent)


def write_bytes_atomically(path: Path, data: bytes, *, mode: int) -> None:
    def write(f: BinaryIO) -> None:
        f.write(data)

    write_atomically(path, write, mode=mode)
