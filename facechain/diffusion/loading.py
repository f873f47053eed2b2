"""Load a Stable Diffusion base model from any reference the model store understands.

A diffusers folder (``model_index.json``), a single-file ``.safetensors`` checkpoint (SD 1.5 or
SDXL, loaded offline with the shipped configs of :mod:`.checkpoints`), a hub id, or a
``facechain models`` name (``base-sdxl``). The pipeline class follows the base model's family
(:mod:`.family`).
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
    """Local path of a model reference or registry name; a hub model of ``kind`` downloads just that layout's files."""
    from ..models.references import resolve_reference

    return resolve_reference(reference, store, what=name, kind=kind)[0]


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(e).__name__}: {first[:200]}" if first else type(e).__name__


def _single_file_pipeline(path: Path, cls: Any, family: str, common: dict[str, Any], config: str | Path | None,
                          store: ModelStore | None):
    """``cls.from_single_file`` with a local config: the shipped one for the detected architecture."""
    from .checkpoints import config_dir

    if config is None:
        config = config_dir(family, (store or default_store()).cache_dir)
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
    """Build ``pipeline_cls`` (default: the family's text-to-image pipeline) from a base-model reference.

    The family (SD 1.5 / SDXL) is read first, from a folder's configs or a single file's keys
    (:func:`.family.base_model_family`); a ``pipeline_cls`` of the other family is a one-line error
    (callers pick theirs with :func:`pipeline_class_for`). A single-file checkpoint
    (``.safetensors``; ``.ckpt`` read with ``weights_only``) loads with no network, with the shipped
    config of its architecture (``config``: another diffusers config folder). The safety checker is
    not loaded (it is a separate download and blanks portraits; SDXL has none).
    """
    quiet_ml_logs()
    from .family import base_model_family, family_name

    path = resolve_model_path(reference, name, store, kind="pipeline")
    single_file = path.is_file()
    if single_file and path.suffix.lower() not in (".safetensors", ".ckpt"):
        raise InputError(path, "a single-file base model must be a .safetensors (or .ckpt) checkpoint")
    family = base_model_family(path).family
    cls = pipeline_cls or pipeline_class_for(family)
    if pipeline_class_for(family, cls) is not cls:
        other = "sdxl" if family == "sd15" else "sd15"
        raise InputError(path, f"an {family_name(family)} {'checkpoint' if single_file else 'model'}; this step needs an "
                               f"{family_name(other)} model ({cls.__name__})")
    common = dict(_dtype_kwarg(cls, dtype))
    if family != "sdxl":
        common.update(safety_checker=None, requires_safety_checker=False, feature_extractor=None)
    common.update(kwargs)
    if single_file:
        if path.suffix.lower() == ".ckpt":
            log.warning("%s: .ckpt checkpoints are pickles (read with weights_only=True); prefer .safetensors", path)
        return _single_file_pipeline(path, cls, family, common, config, store)
    check_model_folder(path, "model_index.json")
    try:
        return cls.from_pretrained(str(path), **common)
    except Exception as e:
        raise _load_error(path, e) from None


_XL_EQUIVALENTS = {
    "StableDiffusionPipeline": "StableDiffusionXLPipeline",
    "StableDiffusionImg2ImgPipeline": "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionInpaintPipeline": "StableDiffusionXLInpaintPipeline",
    "StableDiffusionControlNetPipeline": "StableDiffusionXLControlNetPipeline",
    "StableDiffusionControlNetImg2ImgPipeline": "StableDiffusionXLControlNetImg2ImgPipeline",
    "StableDiffusionControlNetInpaintPipeline": "StableDiffusionXLControlNetInpaintPipeline",
}


def pipeline_class_for(family: str, pipeline_cls: Any = None):
    """The diffusers pipeline class doing ``pipeline_cls``'s task (default: text-to-image) for a base model of ``family``."""
    import diffusers

    name = getattr(pipeline_cls, "__name__", "StableDiffusionPipeline")
    sd15 = {xl: sd for sd, xl in _XL_EQUIVALENTS.items()}
    wanted = _XL_EQUIVALENTS.get(name, name) if family == "sdxl" else sd15.get(name, name)
    return pipeline_cls if wanted == name and pipeline_cls is not None else getattr(diffusers, wanted)


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
    what = "ControlNet"
    if path.is_file():
        from .checkpoints import config_dir, controlnet_family

        if path.suffix.lower() not in (".safetensors", ".ckpt", ".pth"):
            raise InputError(path, "a single-file ControlNet must be a .safetensors (or .pth/.ckpt) checkpoint")
        family = controlnet_family(path)
        what = f"{family.upper()} ControlNet"
        if config is None:
            config = config_dir(f"controlnet-{family}", (store or default_store()).cache_dir)
    return _load_model(ControlNetModel, path, dtype, what, config)


def load_vae(reference: str | Path, *, dtype: torch.dtype = torch.float32, family: str = "sdxl",
             store: ModelStore | None = None, config: str | Path | None = None):
    """An ``AutoencoderKL`` to replace a base model's own (``--vae``): a diffusers VAE folder, a
    pipeline folder (its ``vae/``), a hub id or registry name, or a single file (read offline with
    the shipped VAE config of ``family``; ``config``: another pipeline config folder)."""
    quiet_ml_logs()
    from diffusers import AutoencoderKL

    path = resolve_model_path(reference, "vae", store)
    if path.is_file():
        from .checkpoints import config_dir

        config = config or config_dir(family, (store or default_store()).cache_dir)
    elif (path / "vae" / "config.json").is_file():  # a whole pipeline folder: take its VAE
        path = path / "vae"
    return _load_model(AutoencoderKL, path, dtype, "VAE", config, subfolder="vae")


def _load_model(cls: Any, path: Path, dtype: torch.dtype, what: str, config: str | Path | None,
                subfolder: str | None = None):
    """One diffusers model (ControlNet, VAE): a single file read with the local ``config`` folder
    (its ``subfolder``), else a diffusers folder with ``config.json``; one-line errors either way."""
    kw = _dtype_kwarg(cls, dtype)
    if path.is_file():
        extra = {"subfolder": subfolder} if subfolder else {}
        try:
            return cls.from_single_file(str(path), config=str(config), local_files_only=True, **extra, **kw)
        except Exception as e:
            raise InputError(path, f"cannot load this {what} checkpoint ({_one_line(e)})") from None
    if not (path / "config.json").exists():
        raise InputError(path, f"not a diffusers {what} folder (no config.json)")
    check_model_folder(path, "config.json")
    try:
        return cls.from_pretrained(str(path), **kw)
    except Exception as e:
        raise _load_error(path, e) from None


def describe_reference(reference: str | Path) -> str:
    try:
        return str(ModelRef.parse(str(reference)))
    except ValueError:
        return str(reference)
