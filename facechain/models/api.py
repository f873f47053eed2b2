"""What ``facechain models`` does, as Python functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            raise ConfigError(f"unknown model '{unknown[0]}' (known: {', '.join(sorted(MODELS))})")
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
