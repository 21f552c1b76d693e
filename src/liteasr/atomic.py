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


def check_writable(dst: str | Path, overwrite: bool) -> Path:
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise UserError(f"{dst} already exists (pass --overwrite to replace it)")
    return dst


@contextlib.contextmanager
def atomic_dir(dst: str | Path, overwrite: bool = False):
    """Yield a temporary directory next to `dst`; on success it replaces `dst`."""
    dst = check_writable(dst, overwrite)
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
    dst = check_writable(dst, overwrite)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.tmp-", dir=dst.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
