"""Load a Stable Diffusion base model from any reference the model store understands.

A diffusers folder (``model_index.json``), a single-file ``.safetensors`` checkpoint, or a hub id.
Errors are :class:`ModelNotFoundError` / :class:`InputError` with a one-line reason.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, ModelNotFoundError
from ..models.store import ModelRef, ModelStore, default_store

log = logging.getLogger(__name__)


def quiet_ml_logs() -> None:
    """Silence harmless warnings of the ML stack (torchvision-less CLIP processor, bnb kernels)."""
    try:
        import transformers

        transformers.logging.set_verbosity_error()
    except Exception:  # pragma: no cover
        pass
    try:
        import diffusers

        diffusers.logging.set_verbosity_error()
    except Exception:  # pragma: no cover
        pass
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def _dtype_kwarg(cls, dtype: torch.dtype) -> dict[str, Any]:
    """diffusers >= 0.36 calls the argument ``dtype`` (``torch_dtype`` warns); older ones ``torch_dtype``."""
    params = inspect.signature(cls.from_pretrained).parameters
    return {"dtype": dtype} if "dtype" in params or _diffusers_takes_dtype() else {"torch_dtype": dtype}


def _diffusers_takes_dtype() -> bool:
    import diffusers

    try:
        major, minor = (int(x) for x in diffusers.__version__.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (0, 36)


def resolve_model_path(reference: str | Path, name: str, store: ModelStore | None = None) -> Path:
    return (store or default_store()).resolve(reference, name=name)


def load_sd_pipeline(
    reference: str | Path,
    pipeline_cls: Any = None,
    *,
    dtype: torch.dtype = torch.float32,
    store: ModelStore | None = None,
    name: str = "base model",
    **kwargs: Any,
):
    """Build ``pipeline_cls`` (default: text-to-image) from a base-model reference.

    The class follows the base model's family (:mod:`.family`): ``StableDiffusionControlNetPipeline``
    asked for an SDXL base becomes ``StableDiffusionXLControlNetPipeline``, and so on. The safety
    checker is not loaded (it is a separate download and blanks portraits; SDXL has none).
    """
    quiet_ml_logs()
    from .family import base_model_family

    path = resolve_model_path(reference, name, store)
    cls = pipeline_class_for(base_model_family(path).family, pipeline_cls)
    common = dict(_dtype_kwarg(cls, dtype))
    if "XL" not in cls.__name__:
        common.update(safety_checker=None, requires_safety_checker=False, feature_extractor=None)
    common.update(kwargs)
    if path.is_file():
        if path.suffix.lower() not in (".safetensors", ".ckpt"):
            raise InputError(path, "a single-file base model must be a .safetensors (or .ckpt) checkpoint")
        if path.suffix.lower() == ".ckpt":
            log.warning("%s: .ckpt checkpoints are pickles; prefer .safetensors", path)
        try:
            return cls.from_single_file(str(path), **common)
        except Exception as e:
            raise ModelNotFoundError(
                name, str(path),
                "single-file loading needs the SD 1.5 config from the Hugging Face hub once; "
                "convert it to a diffusers folder on a connected machine, or pass a diffusers folder",
                f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}",
            ) from None
    if not (path / "model_index.json").exists():
        raise InputError(path, "not a diffusers model folder (no model_index.json)")
    try:
        return cls.from_pretrained(str(path), **common)
    except (OSError, ValueError) as e:
        raise InputError(path, f"cannot load diffusers model: {str(e).splitlines()[0][:200]}") from None


_XL_EQUIVALENTS = {
    "StableDiffusionPipeline": "StableDiffusionXLPipeline",
    "StableDiffusionImg2ImgPipeline": "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionInpaintPipeline": "StableDiffusionXLInpaintPipeline",
    "StableDiffusionControlNetPipeline": "StableDiffusionXLControlNetPipeline",
    "StableDiffusionControlNetImg2ImgPipeline": "StableDiffusionXLControlNetImg2ImgPipeline",
    "StableDiffusionControlNetInpaintPipeline": "StableDiffusionXLControlNetInpaintPipeline",
}


def pipeline_class_for(family: str, pipeline_cls: Any = None):
    """The diffusers pipeline class doing ``pipeline_cls``'s task for a base model of ``family``."""
    import diffusers

    name = getattr(pipeline_cls, "__name__", "StableDiffusionPipeline")
    sd15 = {xl: sd for sd, xl in _XL_EQUIVALENTS.items()}
    wanted = _XL_EQUIVALENTS.get(name, name) if family == "sdxl" else sd15.get(name, name)
    return pipeline_cls if wanted == name and pipeline_cls is not None else getattr(diffusers, wanted)


def load_controlnet(reference: str | Path, *, dtype: torch.dtype = torch.float32, store: ModelStore | None = None, name: str = "controlnet"):
    quiet_ml_logs()
    from diffusers import ControlNetModel

    path = resolve_model_path(reference, name, store)
    kw = _dtype_kwarg(ControlNetModel, dtype)
    if path.is_file():
        return ControlNetModel.from_single_file(str(path), **kw)
    if not (path / "config.json").exists():
        raise InputError(path, "not a diffusers ControlNet folder (no config.json)")
    return ControlNetModel.from_pretrained(str(path), **kw)


def describe_reference(reference: str | Path) -> str:
    try:
        return str(ModelRef.parse(str(reference)))
    except ValueError:
        return str(reference)
