"""Write outputs so that a failed run never leaves something that looks finished.

Everything is written into a hidden sibling temporary folder which is renamed onto the
destination only when the work succeeded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import FacechainError, OutputExistsError, is_write_failure, translate, writing


def check_destination(dest: Path, overwrite: bool) -> None:
    """Refuse a non-empty destination unless ``overwrite``."""
    dest = Path(dest)
    if dest.exists() and (dest.is_file() or any(dest.iterdir())) and not overwrite:
        raise OutputExistsError(dest)


@contextlib.contextmanager
def atomic_directory(dest: Path | str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``dest`` on success and vanishes on failure."""
    dest = Path(dest)
    check_destination(dest, overwrite)
    with writing(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield tmp
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, Exception) and not isinstance(e, FacechainError) and is_write_failure(e):
            raise (translate(e, dest, output=True) or e) from e  # full disk: one line, nothing half-written
        raise
    try:
        with writing(dest):
            _replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, dest: Path) -> None:
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:
            os.replace(old, dest)  # put the previous version back
            raise
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        os.replace(tmp, dest)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write a file via a temporary sibling and ``os.replace``."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def atomic_write_text(path: Path | str, text: str) -> None:
    """UTF-8; a lone surrogate (a file name that is not UTF-8) is written as a ``\\udcXX`` escape, which
    in JSON text reads back as the same name."""
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))
