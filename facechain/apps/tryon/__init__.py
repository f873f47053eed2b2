"""Virtual try-on (paper section 3.1): a trained person wearing the garment of a model photo.

:func:`tryon` (:mod:`.api`) is the public call; :class:`TryOnPipeline` (:mod:`.pipeline`) the pipeline
with injected components; :mod:`.garment` the garment mask (offline, M2FP, given);
:mod:`.controls` the OpenPose + hands, Canny and depth-on-hands control images. Heavy modules load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "tryon": ".api",
    "TryOnConfig": ".config",
    "TryOnPipeline": ".pipeline",
    "TryOnOutcome": ".pipeline",
    "TryOnImage": ".pipeline",
    "TryOnInputs": ".inputs",
    "TryOnPerception": ".inputs",
    "GarmentMask": ".garment",
    "OfflineGarmentSegmenter": ".garment",
    "M2FPGarmentSegmenter": ".garment",
    "TryOnControls": ".controls",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
