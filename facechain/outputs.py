"""Where verbs write, checked before any slow work: never on an input, never over what the user made.

* :func:`check_output` refuses an output that is, contains or lies inside one of the run's inputs
  (whatever the flags: ``prepare PHOTOS -o PHOTOS --overwrite`` must not eat the photos), an
  existing folder without ``overwrite``, and with ``overwrite`` any folder that facechain did not
  write (its :class:`OutputKind` marker files are missing). It then probes that the location is
  writable and has room, so a read-only or full disk fails in one line before the sampling.
* Work folders (``<output>.work``: checkpoints of unfinished training) carry a marker file; only a
  folder with that marker is ever reused or removed.

Locks (one run per output) live in :mod:`facechain.locking`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import InputError, OutputError, OutputExistsError, translate

log = logging.getLogger(__name__)

WORK_MARKER = ".facechain-work.json"
_TEMP_NAME_EXTRA = 24  # ".NAME.partial-XXXXXXXX" beside the output while it is written


@dataclass(frozen=True)
class OutputKind:
    """A kind of folder facechain writes, recognised by marker files that are all present in it."""

    label: str  # "identity", "prepared folder", ...
    markers: tuple[str, ...]

    def owns(self, folder: Path | str) -> bool:
        folder = Path(folder)
        return folder.is_dir() and all((folder / m).is_file() for m in self.markers)


def _resolved(path: Path | str) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def guard_inputs(output: Path | str, inputs: Iterable[Path | str | None]) -> None:
    """Refuse an output that is, contains or lies inside an input (files and folders alike)."""
    out = _resolved(output)
    for item in inputs:
        if item is None or str(item) == "" or not Path(item).expanduser().exists():
            continue  # a name that is not a path (a style, a model id) cannot be written over
        src = _resolved(item)
        if out == src:
            why = "is the input"
        elif src.is_relative_to(out):
            why = "contains the input"
        elif out.is_relative_to(src):
            why = "lies inside the input"
        else:
            continue
        raise InputError(output, f"{why} {item}; facechain never writes over or into its inputs, "
                                 "choose an output outside them")


def _existing_ancestor(path: Path) -> Path:
    p = _resolved(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(output: Path | str, need_bytes: int = 0) -> None:
    """Probe that ``output`` can be created (or replaced) and that its disk has room.

    The probe is a real temporary file (permission bits, read-only mounts, ACLs and quotas all
    answer honestly, also for root); nothing is left behind.
    """
    output = Path(output)
    target = _existing_ancestor(output.parent)
    if not target.is_dir():
        raise OutputError(output, f"cannot be created: {target} is not a folder")
    try:
        name_max = os.pathconf(target, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    for part in _resolved(output).relative_to(target).parts if _resolved(output).is_relative_to(target) else ():
        if len(os.fsencode(part)) + _TEMP_NAME_EXTRA > name_max:  # atomic writes add a hidden prefix/suffix
            raise OutputError(output, f"file name too long ({len(os.fsencode(part))} bytes; at most "
                                      f"{name_max - _TEMP_NAME_EXTRA} here)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".facechain-probe-", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise (translate(e, output, output=True) or OutputError(output, f"cannot write there ({e})")) from None
    if need_bytes > 0:
        free = shutil.disk_usage(target).free
        if free < need_bytes:
            raise OutputError(output, f"not enough free space: about {_mb(need_bytes)} needed, {_mb(free)} free on its disk")


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n < 2**30 else f"{n / 2**30:.1f} GB"


def check_output(
    output: Path | str,
    kind: OutputKind | None = None,
    *,
    inputs: Iterable[Path | str | None] = (),
    overwrite: bool = False,
    need_bytes: int = 0,
) -> str | None:
    """Everything about ``output`` that can fail, checked before the slow work; see the module doc.

    Returns a note saying what will be replaced (``None`` when nothing will be).
    """
    output = Path(output).expanduser()
    guard_inputs(output, inputs)
    note = None
    if output.exists() or output.is_symlink():
        if not output.is_dir():
            raise OutputError(output, "exists and is not a folder; choose another output")
        if any(output.iterdir()):
            if not overwrite:
                raise OutputExistsError(output)
            if kind is None or not kind.owns(output):
                what = f"a facechain {kind.label}" if kind else "something facechain wrote"
                raise OutputError(output, f"is not {what}; --overwrite only replaces folders facechain wrote, "
                                          "so it keeps yours: choose another output")
            note = f"replacing the {kind.label} in {output} (--overwrite)"
    check_writable(output, need_bytes)
    return note


def check_file_output(output: Path | str, *, inputs: Iterable[Path | str | None] = ()) -> None:
    """A single output file: not one of the inputs, and its folder writable (checked before the work)."""
    output = Path(output).expanduser()
    guard_inputs(output, inputs)
    if output.is_dir():
        raise OutputError(output, "is a folder; give a file name")
    check_writable(output)


def announce(note: str | None) -> None:
    """Tell the user what an ``--overwrite`` is about to replace (progress line, else a warning)."""
    if not note:
        return
    from . import progress

    if progress.current_sink() is not None:
        progress.say(note)
    else:
        log.warning(note)


# --- work folders ------------------------------------------------------------------------------


def is_work_dir(work: Path | str) -> bool:
    """A work folder facechain created (it carries :data:`WORK_MARKER`)."""
    return (Path(work) / WORK_MARKER).is_file()


def check_work_dir(work: Path | str) -> None:
    """Refuse a ``<output>.work`` folder facechain did not create: it is never reused or removed."""
    work = Path(work)
    if (work.exists() or work.is_symlink()) and not is_work_dir(work):
        raise OutputError(work, "exists but facechain did not create it (no marker); facechain keeps its "
                                "checkpoints there, so move it away or choose another output")


def claim_work_dir(work: Path | str, output: Path | str) -> Path:
    """Create a fresh, marked work folder for ``output`` (an earlier one of ours is removed first)."""
    work = Path(work)
    check_work_dir(work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    marker = {"output": str(output), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "pid": os.getpid()}
    (work / WORK_MARKER).write_text(json.dumps(marker, ensure_ascii=True) + "\n", encoding="utf-8")
    return work


def remove_work_dir(work: Path | str) -> None:
    """Remove a work folder, only if facechain created it."""
    work = Path(work)
    if is_work_dir(work):
        shutil.rmtree(work, ignore_errors=True)
