"""The model store: one place that turns a model reference into local files."""

from .registry import MODELS, ModelSpec, get_model_spec
from .store import ModelRef, ModelStore, default_store

__all__ = ["MODELS", "ModelRef", "ModelSpec", "ModelStore", "default_store", "get_model_spec"]
