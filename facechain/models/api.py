"""What ``facechain models`` does, as Python functions."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any, Sequence

from .. import progress
from ..errors import ConfigError
from .registry import MODELS, ModelSpec, find_by_reference
from .store import MARKER, ModelRef, ModelStore, default_store


def _size_on_disk(spec: ModelSpec, store: ModelStore, path: Path | None) -> int | None:
    """Bytes of the files this model uses, as they lie on disk (None when not measurable)."""
    if spec.bundled or spec.fetch is not None:
        if path is None:
            return None
        if path.is_file():
            return path.stat().st_size
        if spec.fetch is not None:  # a folder of model files (mediapipe groups share one folder)
            from ..pose import model_files

            files = model_files.GROUPS.get(spec.name, {})
            return sum((path / f).stat().st_size for f in files if (path / f).is_file()) or None
        return None
    folder = store.local_dir(spec.reference)
    try:
        files = json.loads((folder / MARKER).read_text()).get("files", {})
    except (OSError, ValueError):
        return None
    patterns = spec.allow_patterns or ("*",)
    return sum(size for f, size in files.items() if any(fnmatch.fnmatch(f, p) for p in patterns)) or None


def model_status(store: ModelStore | None = None) -> list[dict[str, Any]]:
    """One row per known model: name, reference, purpose, used_by, optional, present, path, license, size."""
    store = store or default_store()
    rows = []
    for spec in MODELS.values():
        if spec.bundled or spec.fetch is not None:
            path = spec.locate() if spec.locate else None
            present = path is not None
        else:
            present = store.is_present(spec.reference, spec.allow_patterns)
            path = store.resolve(spec.reference, allow_patterns=spec.allow_patterns, download=False) if present else None
        size = _size_on_disk(spec, store, Path(path) if path else None) if present else None
        rows.append(dict(name=spec.name, reference=spec.reference, kind=spec.kind, purpose=spec.purpose, used_by=list(spec.used_by),
                         optional=spec.optional, present=present, path=str(path) if path else None, license=spec.license,
                         size_bytes=size, approx_size_mb=spec.size_mb))
    return rows


def _specs_for(names: list[str]) -> list[ModelSpec | str]:
    """Registry names -> specs; a hub reference that is no registry name stays a reference."""
    out: list[ModelSpec | str] = []
    for n in names:
        if n in MODELS:
            out.append(MODELS[n])
            continue
        try:
            ref = ModelRef.parse(n)
        except ValueError:
            ref = None
        if ref is None or ref.source == "local":
            raise ConfigError(f"unknown model '{n}': give a name from 'facechain models' or a hub reference "
                              "(org/name, ms:org/name, with @revision and #subfolder or #file)")
        out.append(find_by_reference(n) or n)
    return out


def download_models(names: list[str] | None = None, include_optional: bool = False,
                    store: ModelStore | None = None) -> list[tuple[str, Path]]:
    """Fetch models: registry names or raw hub references (default: every required hub model).

    Models already complete in the cache are not fetched again. A raw reference downloads exactly what it names: the file after ``#`` when there is one,
    else the layout its repository declares (see :meth:`ModelStore.resolve`). Bundled models need
    no download.
    """
    store = store or default_store()
    if names:
        specs = _specs_for(names)
    else:
        specs = [s for s in MODELS.values() if include_optional or not s.optional]
    done = []
    for spec in specs:
        if isinstance(spec, str):
            done.append((spec, store.resolve(spec)))
            continue
        if spec.bundled:
            path = spec.locate() if spec.locate else None
            done.append((spec.name, Path(path) if path else Path(spec.reference)))
            continue
        if spec.fetch is not None:
            done.append((spec.name, Path(spec.fetch(store))))
            continue
        done.append((spec.name, store.resolve(spec.reference, name=spec.name, allow_patterns=spec.allow_patterns)))
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
    if not download:  # download also takes raw hub references (checked there)
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
