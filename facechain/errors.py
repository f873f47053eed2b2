"""One family of exceptions for everything a user can get wrong.

The CLI turns a :class:`FacechainError` into a one-line message and its ``exit_code``
(no traceback); anything else is a bug and is reported as such.
"""

from __future__ import annotations

import re

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


class InputError(FacechainError):
    """A file or argument given by the user is unusable."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


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
