"""One family of exceptions for everything a user can get wrong.

The CLI turns a :class:`FacechainError` into a one-line message and its ``exit_code``
(no traceback); anything else is a bug and is reported as such.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import re
from typing import Iterator

_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_.:/@#=+,%~-]+$")


def shell_command(*words: object) -> str:
    """A command line to print in a hint: words that need it are double-quoted, so the whole
    command can itself sit inside the hint's single quotes and still paste into a POSIX shell."""
    out = []
    for w in map(str, words):
        if _PLAIN_WORD.match(w) and not w.startswith("#"):
            out.append(w)
        else:
            out.append('"' + re.sub(r'(["\\$`])', r"\\\1", w) + '"')
    return " ".join(out)


class FacechainError(Exception):
    """A problem the user can fix (bad input, missing model, bad option)."""

    exit_code: int = 2


class _AboutAPath(FacechainError):
    """``path: reason``: the message names the file to fix first."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class InputError(_AboutAPath):
    """A file or argument given by the user is unusable."""


class FamilyMismatchError(InputError):
    """A model of one Stable Diffusion family (SD 1.5 / SDXL) given with a base model of the other,
    or a base model of neither (:mod:`facechain.diffusion.family`)."""


class ConfigError(FacechainError):
    """A configuration or style file is invalid."""


class ModelNotFoundError(FacechainError):
    """A model reference could not be resolved to local files."""

    def __init__(self, name: str, reference: str, hint: str, detail: str = "", command: str | None = None):
        self.name = name
        self.reference = reference
        self.hint = hint
        self.command = command  # the shell command in ``hint`` that fetches the model, if there is one
        msg = f"model '{name}' ({reference}) is not available locally"
        if detail:
            msg += f" ({detail})"
        msg += f"; {hint}"
        super().__init__(msg)


class NoUsablePhotosError(FacechainError):
    """Every photo was rejected: nothing to train on."""

    exit_code = 1


class OutputExistsError(FacechainError):
    """Refusing to overwrite a user's existing output without --overwrite."""

    def __init__(self, path: object):
        from .options import spell_value  # "--overwrite" from the CLI, "overwrite=True" in Python

        self.path = str(path)
        super().__init__(f"{path}: already exists; pass {spell_value('overwrite')} to replace it")


class TrainingError(FacechainError):
    """Training cannot go on (e.g. the loss became NaN)."""

    exit_code = 1


class OutputError(_AboutAPath):
    """An output location cannot be written (read-only, full, not a folder, someone else's folder)."""


class ResourceError(FacechainError):
    """The machine ran out of something (memory) that is not the user's file's fault."""

    exit_code = 1


# --- one place where library exceptions become one-line errors ------------------------------

_OS_REASONS = {
    errno.ENOENT: "not found",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for its file system",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "input/output error (failing disk or network share?)",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files in the system",
    errno.EEXIST: "already exists",
    errno.ENOTEMPTY: "folder is not empty",
    errno.ETXTBSY: "file is busy",
    errno.ENXIO: "no such device",
}
#: Errors that mean "this location cannot take our output" (as opposed to a bad input file).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EIO})
_GENERIC_WEIGHTS_REASON = "cannot load the weights in it (missing, truncated or corrupt file)"
_NO_SPACE_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during (libraries often re-wrap)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 8:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _first_line(text: object, limit: int = 160) -> str:
    lines = str(text).strip().splitlines()
    return lines[0][:limit] if lines else ""


def _is(exc: BaseException, module_prefix: str, name: str) -> bool:
    return any(c.__name__ == name and c.__module__.startswith(module_prefix) for c in type(exc).__mro__)


def _reason(exc: BaseException) -> str | None:
    """Our one-line reason for a library exception we recognise, else ``None``.

    Never quotes advice from the library: torch's "re-run with weights_only=False" would tell
    people to execute code from the file.
    """
    text = str(exc)
    low = text.lower()
    if _is(exc, "PIL", "DecompressionBombError"):
        m = re.search(r"\((\d+) pixels\)", text)
        size = f" ({int(m.group(1)) / 1e6:.0f} megapixels)" if m else ""
        return f"image too large to decode safely{size}"
    if _is(exc, "PIL", "UnidentifiedImageError"):
        return "not an image (unrecognised format)"
    if _is(exc, "safetensors", "SafetensorError"):
        if any(t in low for t in _NO_SPACE_TEXT):
            return "no space left on the device"
        detail = _first_line(text).removeprefix("Error while deserializing header: ")
        return f"not a valid .safetensors file: truncated or corrupt ({detail})"
    if isinstance(exc, pickle.UnpicklingError):
        if "weights only" in low or "weights_only" in low:
            return ("holds Python objects besides tensors; facechain only loads plain tensors from pickle files "
                    "and refuses this one (use a .safetensors file)")
        return "not a valid PyTorch file: truncated or corrupt"
    if isinstance(exc, EOFError):
        return "truncated file (it ends early)"
    if isinstance(exc, RuntimeError) and ("pytorchstreamreader" in low or "zip archive" in low):
        return "not a valid PyTorch file: truncated or corrupt"
    if isinstance(exc, RuntimeError) and ("pytorchstreamwriter" in low or "file write failed" in low):
        return "could not write the file (disk full or not writable?)"
    if _is(exc, "yaml", "YAMLError"):
        mark = getattr(exc, "problem_mark", None)
        return "invalid YAML" + (f" at line {mark.line + 1}" if mark is not None else "")
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg} at line {exc.lineno})"
    if isinstance(exc, UnicodeDecodeError):
        bad = exc.object[exc.start:exc.start + 1].hex().upper() if isinstance(exc.object, (bytes, bytearray)) else "?"
        return f"not UTF-8 text (byte 0x{bad} at position {exc.start}); save it as UTF-8"
    if isinstance(exc, OSError):
        if exc.errno in _OS_REASONS:
            return _OS_REASONS[exc.errno]
        if any(t in low for t in _NO_SPACE_TEXT):
            return "no space left on the device"
        if exc.errno is not None and exc.strerror:
            return exc.strerror[:1].lower() + exc.strerror[1:]
        if "unable to load weights" in low or "error no file named" in low:
            return _GENERIC_WEIGHTS_REASON
    return None


def _path_of(exc: BaseException) -> str | None:
    for e in _chain(exc):
        name = getattr(e, "filename", None)
        if isinstance(name, (str, bytes)) and name:
            return os.fsdecode(name)
    return None


def translate(exc: BaseException, path: object = None, *, output: bool = False) -> FacechainError | None:
    """The one-line :class:`FacechainError` for a library exception about ``path``, or ``None``.

    Recognises PIL (decompression bombs, unknown formats), safetensors, torch pickles, YAML, JSON,
    text that is not UTF-8, and OS errors (full disk, read-only, permissions, ...), also when a
    library re-raised them as something else. The file named is the one an OS error names (the most
    precise), else ``path``; with ``output=True`` (a location we write to, whose temporary files
    mean nothing to the user) it is ``path``, as an :class:`OutputError`. Out-of-memory becomes a
    :class:`ResourceError`. Anything else: ``None`` (a bug).
    """
    if isinstance(exc, FacechainError):
        return exc
    for e in _chain(exc):
        if isinstance(e, MemoryError) or _is(e, "torch", "OutOfMemoryError"):
            where = "GPU memory" if _is(e, "torch", "OutOfMemoryError") else "memory"
            return ResourceError(f"out of {where}; try a smaller --size, --batch-size 1, --cpu-offload or --device cpu")
    found = [(e, r) for e in _chain(exc) if (r := _reason(e)) is not None]
    # the most specific reason wins: diffusers' "unable to load weights" wraps the safetensors error that says why
    found.sort(key=lambda item: item[1] == _GENERIC_WEIGHTS_REASON)
    if not found:
        return None
    e, reason = found[0]
    where = path if output and path is not None else (_path_of(e) or path)
    if where is None:
        if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
            return OutputError("output", reason) if output else FacechainError(reason)
        return None
    writing = output or (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS))
    return OutputError(where, reason) if writing else InputError(where, reason)


def is_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the destination cannot take more data (full, read-only, quota, too large)."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
            return True
        low = str(e).lower()
        if any(t in low for t in _NO_SPACE_TEXT) or "pytorchstreamwriter" in low or "file write failed" in low:
            return True
    return False


@contextlib.contextmanager
def reading(path: object, unrecognised: str | None = None) -> Iterator[None]:
    """Library errors while reading ``path`` become one-line :class:`InputError` naming it.

    ``unrecognised``: the reason for errors :func:`translate` does not know (a native model loader's
    own exception types, e.g. ONNX Runtime, TFLite, dlib), followed by their first line; without it
    they propagate (as bugs).
    """
    try:
        yield
    except FacechainError:
        raise
    except Exception as e:
        err = translate(e, path)
        if err is None and unrecognised is not None:
            detail = _first_line(e)
            err = InputError(path, f"{unrecognised} ({type(e).__name__}{': ' + detail if detail else ''})")
        if err is None:
            raise
        raise err from e


@contextlib.contextmanager
def writing(path: object) -> Iterator[None]:
    """Errors while writing ``path`` (full disk, read-only, ...) become one-line :class:`OutputError`."""
    try:
        yield
    except FacechainError:
        raise
    except Exception as e:
        err = translate(e, path, output=True)
        if err is None:
            raise
        raise err from e
