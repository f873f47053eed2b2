"""FACT: train-free identity portraits with a face adapter (FaceChain-FACT).

* :class:`FactSession` - run a diffusers pipeline with face tokens from one or a few photos.
* :func:`load_fact` / :func:`convert_published` - our ``.safetensors`` or the published checkpoints.
* :func:`train_adapter` - train the adapter + resampler (``facechain train-adapter``).
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "FactConfig": "facechain.fact.config",
    "AdapterTrainConfig": "facechain.fact.config",
    "FaceEncoder": "facechain.fact.encoder",
    "FaceResampler": "facechain.fact.resampler",
    "FactAdapter": "facechain.fact.adapter",
    "GatedFaceLayer": "facechain.fact.adapter",
    "FactModel": "facechain.fact.models",
    "load_fact": "facechain.fact.models",
    "convert_published": "facechain.fact.models",
    "FactSession": "facechain.fact.integration",
    "encode_faces": "facechain.fact.integration",
    "prepare_face_photo": "facechain.fact.preprocess",
    "train_adapter": "facechain.fact.training",
    "AdapterTrainResult": "facechain.fact.training",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'facechain.fact' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
