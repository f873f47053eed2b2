"""One run per output: a lock file beside the output, held for the whole run.

``<parent>/.<name>.lock`` is locked with ``flock`` (released by the kernel when the process dies,
however it dies) and holds who took it: pid, host, start time and command. A second run into the
same output fails at once with one line naming the running one. A lock file left by a process
that is gone is stale: the next run takes it over (and says so). Where ``flock`` is not supported
(some network file systems) the file is created exclusively and a dead pid on this host is stale.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, Iterator

from .errors import FacechainError, OutputError, translate

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class OutputLockedError(FacechainError):
    """Another facechain run is writing the same output."""

    def __init__(self, output: object, holder: dict[str, Any]):
        self.output = str(output)
        self.holder = holder
        who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
               + (f": {holder['command']}" if holder.get("command") else ""))
        super().__init__(f"{output}: another facechain run is writing it ({who}); wait for it to finish or choose "
                         "another output")


def lock_path(output: Path | str) -> Path:
    output = Path(output).expanduser()
    return output.parent / f".{output.name}.lock"


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["facechain", *sys.argv[1:]])[:300] if sys.argv and "facechain" in sys.argv[0] else None}


def _read(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 65536).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(fd: int, info: dict[str, Any]) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(info, ensure_ascii=True) + "\n").encode())


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the holder may still run (unknown hosts count as alive: we cannot look there)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def output_lock(output: Path | str) -> Iterator[Path]:
    """Hold the lock of ``output`` for the duration of the block (see the module doc)."""
    path = lock_path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise (translate(e, output, output=True) or OutputError(output, str(e))) from None
    fd = _acquire(Path(output), path)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still holding it: a waiting run then locks a fresh file
        os.close(fd)


def _acquire(output: Path, path: Path) -> int:
    for _ in range(20):  # retried only when the file was replaced between open and lock
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise (translate(e, output, output=True) or OutputError(output, str(e))) from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise OutputLockedError(output, holder) from None
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return _acquire_without_flock(output, path)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed it after we opened it: lock the new one
            os.close(fd)
            continue
        previous = _read(fd)
        if previous:  # the file outlived its process (killed): flock is free, so it is stale
            log.warning("%s: taking over the stale lock of pid %s on %s (no longer running)",
                        output, previous.get("pid", "?"), previous.get("host", "?"))
        _write(fd, _me())
        return fd
    raise OutputError(output, f"could not take the lock {path}")


def _acquire_without_flock(output: Path, path: Path) -> int:
    for _ in range(2):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            with open(path, "rb") as f:
                try:
                    holder = json.loads(f.read().decode("utf-8", "replace") or "{}")
                except ValueError:
                    holder = {}
            if isinstance(holder, dict) and holder and _alive(holder):
                raise OutputLockedError(output, holder) from None
            log.warning("%s: taking over the stale lock of pid %s (no longer running)", output,
                        holder.get("pid", "?") if isinstance(holder, dict) else "?")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        _write(fd, _me())
        return fd
    raise OutputError(output, f"could not take the lock {path}")
