"""Build ModelScope pipelines for the paper's own models, which are optional backends here.

One place for the two things that can be missing: the model files (resolved through the model
store: one-line :class:`ModelNotFoundError` naming ``facechain models download NAME``) and
ModelScope's pipeline framework (``pip install 'modelscope[framework]'``).
"""

from __future__ import annotations

from typing import Any

from ..errors import FacechainError, ModelNotFoundError
from .registry import get_model_spec
from .store import ModelStore, default_store


def modelscope_pipeline(model_name: str, task: str, reference: str | None = None,
                        store: ModelStore | None = None) -> tuple[Any, Any]:
    """``(pipeline, OutputKeys)`` for registry model ``model_name`` and ModelScope task name ``task``."""
    spec = get_model_spec(model_name)
    path = (store or default_store()).resolve(reference or spec.reference, name=model_name, allow_patterns=spec.allow_patterns)
    try:
        from modelscope.outputs import OutputKeys  # type: ignore
        from modelscope.pipelines import pipeline  # type: ignore
        from modelscope.utils.constant import Tasks  # type: ignore
    except ImportError as e:
        raise ModelNotFoundError(model_name, spec.reference, "pip install 'modelscope[framework]' to run ModelScope pipelines",
                                 f"cannot import modelscope ({e.name})") from None
    try:
        return pipeline(getattr(Tasks, task), model=str(path)), OutputKeys
    except Exception as e:  # the files are there but ModelScope cannot build the pipeline
        raise FacechainError(f"{model_name} at {path} could not be loaded by ModelScope ({type(e).__name__}: {str(e)[:160]})") from None
