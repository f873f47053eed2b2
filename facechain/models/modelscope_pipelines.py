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
    """``(pipeline, OutputKeys)`` for registry model ``model_name`` and ModelScope task ``task``.

    ``task`` is a ``Tasks`` attribute name (``"skin_retouching"``) or a task string as the model's
    card gives it (``"skin-retouching-torch"``). facechain never passes ``trust_remote_code``: a model
    whose pipeline is code inside its own repository is refused by ModelScope, and we say so.
    """
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
        return pipeline(getattr(Tasks, task, task), model=str(path)), OutputKeys
    except Exception as e:  # the files are there but ModelScope cannot build the pipeline
        if "trust_remote_code" in str(e):
            raise FacechainError(f"{model_name} at {path}: its ModelScope pipeline is code shipped in the model repository, "
                                 "which facechain does not execute; use the offline default backend") from None
        raise FacechainError(f"{model_name} at {path} could not be loaded by ModelScope ({type(e).__name__}: {str(e)[:160]})") from None
