"""Atomic writes: build the output beside its destination, then rename it into place.

An interrupted or failing run never leaves a half-written file or directory, and an
existing output is replaced only once the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from liteasr.errors import UserError


def check_writable(dst: str | Path, overwrite: bool, file: bool = False) -> Path:
    """`dst` as a Path, after the mistakes that would otherwise surface only when the work is done: an
    existing output (unless `overwrite`), a folder where a `file` goes, a location that cannot be written."""
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise UserError(f"{dst} already exists (pass --overwrite to replace it)")
    if file and dst.is_dir():
        raise UserError(f"{dst} is a folder: give a file name")
    parent = dst.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {dst}: {parent} is {'not a folder' if not parent.is_dir() else 'not writable'}")
    return dst


@contextlib.contextmanager
def _beside(dst: Path):
    """Errors making the temporary output beside `dst` (a read-only or special file system) as one line."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"cannot write {dst}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def atomic_dir(dst: str | Path, overwrite: bool = False):
    """Yield a temporary directory next to `dst`; on success it replaces `dst`."""
    dst = check_writable(dst, overwrite)
    with _beside(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        yield tmp
        if dst.exists():
            old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
            os.replace(dst, old)
            os.replace(tmp, dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(dst: str | Path, overwrite: bool = True):
    """Yield a temporary file path next to `dst`; on success it is renamed to `dst`."""
    dst = check_writable(dst, overwrite, file=True)
    with _beside(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.tmp-", dir=dst.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
