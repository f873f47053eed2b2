"""Turning a style's LoRA reference into a local ``.safetensors`` file through the model store.

Hub LoRA repositories often hold several LoRAs, so a style names the file after ``#``
(``ms:YorickHe/polaroid_lora@v1.0.0#InstantPhotoX3.safetensors``) and only that file is fetched.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError, ModelNotFoundError
from ..models.store import ModelRef, ModelStore, default_store


def resolve_style_lora(reference: str | Path, store: ModelStore | None = None, label: str = "style LoRA") -> Path:
    store = store or default_store()
    ref = ModelRef.parse(str(reference))
    if ref.source == "local":
        path = Path(ref.id)
        if not path.exists():
            raise InputError(path, "style LoRA not found")
        return path
    patterns = [ref.subfolder] if ref.subfolder and ref.subfolder.endswith(".safetensors") else None
    path = store.resolve(str(reference), name=label, allow_patterns=patterns)
    if not path.exists():
        # The repository is cached, but from another style that needed a different file.
        if store.offline:
            raise ModelNotFoundError(label, str(ref), store.how_to_get(label, ref), f"{ref.subfolder} is not in the cached copy")
        path = store.download(str(reference), name=label, allow_patterns=patterns)
    if not path.exists():
        raise ModelNotFoundError(label, str(ref), "check the file name after '#' in the style's style_lora", "file not in repository")
    return path
