"""Load a Stable Diffusion base model from any reference the model store understands.

A diffusers folder (``model_index.json``), a single-file ``.safetensors`` checkpoint (SD 1.5 or
SDXL, loaded offline with the shipped configs of :mod:`.checkpoints`), or a hub id.
Errors are :class:`ModelNotFoundError` / :class:`InputError` with a one-line reason.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, translate
from ..models.store import ModelRef, ModelStore, default_store
from ..textfiles import read_json
from ..weight_files import check_safetensors

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


def resolve_model_path(reference: str | Path, name: str, store: ModelStore | None = None, kind: str | None = None) -> Path:
    """Local path of a model reference; a hub model of ``kind`` downloads just that layout's files."""
    return (store or default_store()).resolve(reference, name=name, kind=kind)


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(e).__name__}: {first[:200]}" if first else type(e).__name__


def _single_file_pipeline(path: Path, cls: Any, common: dict[str, Any], config: str | Path | None, store: ModelStore | None):
    """``cls.from_single_file`` with a local config: the shipped one for the detected architecture."""
    from diffusers import StableDiffusionXLPipeline

    from .checkpoints import config_dir, pipeline_family

    family = pipeline_family(path)
    if config is None:
        config = config_dir(family, (store or default_store()).cache_dir)
    if cls is None:
        from diffusers import StableDiffusionPipeline

        cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    elif family == "sdxl" and "XL" not in cls.__name__:
        raise InputError(path, f"an SDXL checkpoint; this step needs an SD 1.5 model ({cls.__name__})")
    if family == "sdxl":
        for key in ("safety_checker", "requires_safety_checker", "feature_extractor"):
            common.pop(key, None)  # SDXL pipelines have none
    try:
        return cls.from_single_file(str(path), config=str(config), local_files_only=True, **common)
    except Exception as e:  # wrong architecture for the config, truncated file, ...
        raise InputError(path, f"cannot load this {family.upper()} checkpoint ({_one_line(e)})") from None


def load_sd_pipeline(
    reference: str | Path,
    pipeline_cls: Any = None,
    *,
    dtype: torch.dtype = torch.float32,
    store: ModelStore | None = None,
    name: str = "base model",
    config: str | Path | None = None,
    **kwargs: Any,
):
    """Build ``pipeline_cls`` (default ``StableDiffusionPipeline``) from a base-model reference.

    A single-file checkpoint (``.safetensors``; ``.ckpt`` read with ``weights_only``) loads with
    no network: SD 1.5 vs SDXL is told from its keys and the shipped config of that architecture is
    used (``config``: another diffusers config folder). The safety checker is not loaded (it is a
    separate download and blanks portraits).
    """
    quiet_ml_logs()
    from diffusers import StableDiffusionPipeline

    path = resolve_model_path(reference, name, store, kind="pipeline")
    common = dict(_dtype_kwarg(pipeline_cls or StableDiffusionPipeline, dtype), safety_checker=None,
                  requires_safety_checker=False, feature_extractor=None)
    common.update(kwargs)
    if path.is_file():
        if path.suffix.lower() not in (".safetensors", ".ckpt"):
            raise InputError(path, "a single-file base model must be a .safetensors (or .ckpt) checkpoint")
        if path.suffix.lower() == ".ckpt":
            log.warning("%s: .ckpt checkpoints are pickles (read with weights_only=True); prefer .safetensors", path)
        return _single_file_pipeline(path, pipeline_cls, common, config, store)
    cls = pipeline_cls or StableDiffusionPipeline
    if not (path / "model_index.json").exists():
        raise InputError(path, "not a diffusers model folder (no model_index.json)")
    check_model_folder(path, "model_index.json")
    try:
        return cls.from_pretrained(str(path), **common)
    except Exception as e:
        raise _load_error(path, e) from None


def check_model_folder(path: Path, index: str) -> None:
    """Cheap checks of a diffusers folder before loading it: its index is JSON, its weights are whole."""
    read_json(path / index, dict, f"diffusers {index}")
    for weights in sorted(path.rglob("*.safetensors")):
        check_safetensors(weights)


def _load_error(path: Path, error: Exception) -> InputError:
    """One line for whatever diffusers raised: a recognised file problem, else its first line."""
    known = translate(error, path)
    if isinstance(known, InputError):
        return known
    if isinstance(error, (OSError, ValueError, KeyError, RuntimeError)):
        return InputError(path, f"cannot load diffusers model: {_one_line(error)}")
    raise error


def load_controlnet(reference: str | Path, *, dtype: torch.dtype = torch.float32, store: ModelStore | None = None,
                    name: str = "controlnet", config: str | Path | None = None):
    """A ControlNet from a diffusers folder, a hub id, or a single-file checkpoint (offline, like pipelines)."""
    quiet_ml_logs()
    from diffusers import ControlNetModel

    path = resolve_model_path(reference, name, store, kind="controlnet")
    kw = _dtype_kwarg(ControlNetModel, dtype)
    if path.is_file():
        from .checkpoints import config_dir, controlnet_family

        if path.suffix.lower() not in (".safetensors", ".ckpt", ".pth"):
            raise InputError(path, "a single-file ControlNet must be a .safetensors (or .pth/.ckpt) checkpoint")
        family = controlnet_family(path)
        if config is None:
            config = config_dir(f"controlnet-{family}", (store or default_store()).cache_dir)
        try:
            return ControlNetModel.from_single_file(str(path), config=str(config), local_files_only=True, **kw)
        except Exception as e:
            raise InputError(path, f"cannot load this {family.upper()} ControlNet checkpoint ({_one_line(e)})") from None
    if not (path / "config.json").exists():
        raise InputError(path, "not a diffusers ControlNet folder (no config.json)")
    check_model_folder(path, "config.json")
    try:
        return ControlNetModel.from_pretrained(str(path), **kw)
    except Exception as e:
        raise _load_error(path, e) from None


def describe_reference(reference: str | Path) -> str:
    try:
        return str(ModelRef.parse(str(reference)))
    except ValueError:
        return str(reference)
