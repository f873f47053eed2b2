"""What ``facechain models`` does, as Python functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .. import progress
from ..errors import ConfigError
from .registry import MODELS
from .store import ModelStore, default_store


def model_status(store: ModelStore | None = None) -> list[dict[str, Any]]:
    """One row per known model: name, reference, purpose, used_by, optional, present, path."""
    store = store or default_store()
    rows = []
    for spec in MODELS.values():
        if spec.bundled or spec.fetch is not None:
            path = spec.locate() if spec.locate else None
            present = path is not None
        else:
            present = store.is_present(spec.reference, spec.allow_patterns)
            path = None
        rows.append(dict(name=spec.name, reference=spec.reference, purpose=spec.purpose, used_by=list(spec.used_by),
                         optional=spec.optional, present=present, path=str(path) if path else None))
    return rows


def download_models(names: list[str] | None = None, include_optional: bool = False,
                    store: ModelStore | None = None) -> list[tuple[str, Path]]:
    """Fetch hub models (all required ones by default). Bundled models need no download."""
    store = store or default_store()
    if names:
        check_model_names(names)
        specs = [MODELS[n] for n in names]
    else:
        specs = [s for s in MODELS.values() if include_optional or not s.optional]
    done = []
    for spec in specs:
        if spec.bundled:
            path = spec.locate() if spec.locate else None
            done.append((spec.name, Path(path) if path else Path(spec.reference)))
            continue
        if spec.fetch is not None:
            done.append((spec.name, Path(spec.fetch(store))))
            continue
        done.append((spec.name, store.download(spec.reference, name=spec.name, allow_patterns=spec.allow_patterns)))
    return done


def check_model_names(names: Sequence[str]) -> None:
    from ..options import did_you_mean

    for name in names:
        if name not in MODELS:
            raise ConfigError(f"unknown model '{name}' ({did_you_mean(name, sorted(MODELS))})")


def models(names: str | Sequence[str] | None = None, *, download: bool = False, all: bool = False,
           quiet: bool = False) -> list[dict[str, Any]]:
    """The ``facechain models`` verb: one row per model (what ``facechain models --json`` prints).

    ``names``: only these models (default: every one). ``download``: fetch them first (default: every
    required hub model; ``all``: optional backends too); a downloaded row's ``path`` is where it went.
    Row keys: name, reference, purpose, used_by, optional, present, path. ``quiet``: no progress.
    """
    names = [names] if isinstance(names, str) else list(names or [])
    check_model_names(names)
    with progress.reporting(quiet=quiet):
        fetched: dict[str, Path] = {}
        if download:
            for name, path in download_models(names or None, include_optional=all):
                progress.say(f"{name}: {path}")
                fetched[name] = path
        rows = model_status()
    for row in rows:
        if row["name"] in fetched:
            row.update(present=True, path=str(fetched[row["name"]]))
    wanted = set(names) or (set(fetched) if download else None)
    return [r for r in rows if wanted is None or r["name"] in wanted]
