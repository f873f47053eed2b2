"""Template portraits (paper section 2.5): two-stage inpainting of trained people into a photo.

``inpaint`` / ``template_faces`` (:mod:`.api`) are the public calls; :class:`TemplatePortraitPipeline`
(:mod:`.pipeline`) is the pipeline with injected components. Heavy modules load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "inpaint": ".api",
    "template_faces": ".api",
    "InpaintResult": ".api",
    "TemplateFacesReport": ".api",
    "InpaintConfig": ".config",
    "TemplatePortraitPipeline": ".pipeline",
    "PersonJob": ".pipeline",
    "InpaintOutcome": ".pipeline",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
