"""facechain: identity-preserving portraits from a few personal photos.

The public API mirrors the CLI verbs (``facechain prepare`` ↔ ``facechain.prepare``).
Heavy modules (torch, diffusers) are imported only when a verb that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "prepare": "facechain.preprocess.pipeline",
    "PrepareResult": "facechain.preprocess.pipeline",
    "train": "facechain.training.api",
    "train_style": "facechain.training.api",
    "Identity": "facechain.identity",
    "list_identities": "facechain.identity",
    "generate": "facechain.generation.api",
    "evaluate": "facechain.postprocess.evaluate",
    "inpaint": "facechain.inpainting.api",
    "tryon": "facechain.apps.tryon.api",
    "FaceAnalyzer": "facechain.perception",
    "ModelStore": "facechain.models",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'facechain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
