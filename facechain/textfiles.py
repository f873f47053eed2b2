"""Reading the small text files facechain and its users write (JSON manifests, captions, YAML).

Every reader names the file in a one-line :class:`~facechain.errors.InputError` when it cannot be
used: missing, unreadable, not UTF-8, not valid JSON, or JSON of the wrong shape (a manifest
that is a list). ``what`` says what the file was meant to be, for the message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InputError, reading


def read_text(path: Path | str) -> str:
    """The file's text, decoded as UTF-8 (a leading byte-order mark is dropped)."""
    path = Path(path)
    with reading(path):
        return path.read_text(encoding="utf-8-sig")


def read_json(path: Path | str, expect: type = dict, what: str = "JSON file") -> Any:
    """Parse a JSON file and check its top-level type (``dict`` or ``list``)."""
    path = Path(path)
    text = read_text(path)
    with reading(path):
        data = json.loads(text)
    if not isinstance(data, expect):
        kind = {dict: "an object ({...})", list: "a list ([...])"}.get(expect, expect.__name__)
        raise InputError(path, f"not a valid {what}: expected {kind} at the top level, found {_json_kind(data)}")
    return data


def read_json_lines(path: Path | str) -> list[tuple[int, Any]]:
    """``(line number, value)`` for every non-empty line of a JSON Lines file."""
    path = Path(path)
    rows = []
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            raise InputError(path, f"line {lineno}: invalid JSON ({e.msg})") from None
    return rows


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")
