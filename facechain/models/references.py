"""A model reference *or* a ``facechain models`` name -> local path, fetched with the registry's file list.

``--base-model base-sdxl`` and ``--base-model stabilityai/stable-diffusion-xl-base-1.0`` mean the
same model; both download only the files the registry lists (not a repo's single-file, fp16,
ONNX and Flax copies of the same weights).
"""

from __future__ import annotations

from pathlib import Path

from .registry import MODELS, ModelSpec, find_by_reference
from .store import ModelRef, ModelStore, default_store


def registry_spec(reference: str | Path) -> ModelSpec | None:
    """The registry entry a reference names (by name, or by its hub reference), if any; an existing
    local path is never taken for a name."""
    text = str(reference)
    spec = MODELS.get(text) if not Path(text).exists() else None
    return spec or find_by_reference(text)


def resolve_reference(reference: str | Path, store: ModelStore | None = None, what: str | None = None,
                      kind: str | None = None) -> tuple[Path, ModelRef]:
    """Local path and parsed hub reference. A registry entry brings its file list and its name (errors
    then say ``models download NAME``); otherwise ``kind`` (a :mod:`.layouts` kind) picks the files and
    errors name ``what``, else the reference itself."""
    spec = registry_spec(reference)
    hub = spec.reference if spec is not None else str(reference)
    ref = ModelRef.parse(hub)
    name = spec.name if spec is not None else (what or str(ref))
    path = (store or default_store()).resolve(hub, name=name, allow_patterns=spec.allow_patterns if spec else None,
                                              kind=None if spec else kind)
    return path, ref
