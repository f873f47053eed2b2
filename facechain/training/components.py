"""The Stable Diffusion parts a LoRA is trained on, loaded once from a base-model reference.

The base model can be a diffusers folder, a single-file ``.safetensors`` checkpoint, a Hugging
Face id, a ModelScope id (``ms:owner/name@rev#subfolder``) or a ``facechain models`` name
(``base-sdxl``); the model store resolves it and raises a one-line
:class:`~facechain.errors.ModelNotFoundError` when it is not available. Its family (SD 1.5 or
SDXL) is read from its configs or checkpoint header at that point, before anything loads.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from ..diffusion.family import ModelFamily, base_model_family, family_of_unet_config
from ..errors import TrainingError
from ..models.references import resolve_reference
from ..models.store import ModelStore, file_sha256


@dataclass
class SDComponents:
    """Frozen base-model parts plus the DDPM noise schedule it was trained with (SDXL: two text encoders)."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    noise_scheduler: Any  # diffusers DDPMScheduler built from the base model's scheduler config
    reference: str = "in-memory"
    text_encoder_2: Any = None  # SDXL's second (projection) text encoder
    tokenizer_2: Any = None

    @classmethod
    def from_pipeline(cls, pipe: Any, reference: str = "in-memory") -> "SDComponents":
        from diffusers import DDPMScheduler

        return cls(unet=pipe.unet, vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                   noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config), reference=reference,
                   text_encoder_2=getattr(pipe, "text_encoder_2", None), tokenizer_2=getattr(pipe, "tokenizer_2", None))

    @property
    def family(self) -> ModelFamily:
        family = family_of_unet_config(self.unet.config)
        if family is None:
            raise TrainingError(f"{self.reference}: the UNet's '{self.unet.config.addition_embed_type}' conditioning "
                                "is neither SD 1.x/2.x nor SDXL")
        if (family == "sdxl") != (self.text_encoder_2 is not None):
            raise TrainingError(f"{self.reference}: an {family} UNet needs {'two text encoders' if family == 'sdxl' else 'one text encoder'}")
        return family

    @property
    def text_encoders(self) -> list[Any]:
        return [self.text_encoder] + ([self.text_encoder_2] if self.text_encoder_2 is not None else [])

    @property
    def tokenizers(self) -> list[Any]:
        return [self.tokenizer] + ([self.tokenizer_2] if self.text_encoder_2 is not None else [])

    @property
    def prediction_type(self) -> str:
        return str(self.noise_scheduler.config.get("prediction_type", "epsilon"))


@dataclass(frozen=True)
class BaseModelInfo:
    """Where the base model came from, for the identity manifest (reproducibility)."""

    reference: str  # as the user gave it (absolute path for local files)
    path: Path  # resolved local path
    revision: str | None  # hub revision / snapshot commit, if any
    unet_sha256: str | None  # hash of the UNet weights file (or of the single-file checkpoint)
    family: ModelFamily = "sd15"


def resolve_base_model(reference: str, store: ModelStore | None = None) -> BaseModelInfo:
    """Find the base model locally (downloading when allowed) and read its family; fails fast,
    before any heavy work (a model that is neither SD 1.x/2.x nor SDXL is a one-line error here)."""
    path, ref = resolve_reference(reference, store, what="base model", kind="pipeline")
    revision = ref.revision
    if revision is None and ref.source == "hf":
        m = re.search(r"snapshots/([0-9a-f]{40})", path.as_posix())
        revision = m.group(1) if m else None
    shown = str(path.resolve()) if ref.source == "local" else str(ref)
    family = base_model_family(path).family
    return BaseModelInfo(shown, path, revision, unet_weightsfile_sha256(path), family)


def unet_weightsfile_sha256(path: Path) -> str | None:
    """sha256 of the UNet weights (diffusers folder) or of the single-file checkpoint."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    unet = path / "unet"
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                 "diffusion_pytorch_model.bin"):
        if (unet / name).is_file():
            return file_sha256(unet / name)
    return None



@contextlib.contextmanager
def _no_loading_bars() -> Iterator[None]:
    """diffusers/transformers draw per-component loading bars: noise next to our own progress output."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    was_d, was_t = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if was_d:
            dlog.enable_progress_bar()
        if was_t:
            tlog.enable_progress_bar()


def load_components(info: BaseModelInfo, dtype: torch.dtype = torch.float32, vae: str | None = None) -> SDComponents:
    """Load the pipeline parts in ``dtype`` through the shared loader (safety checker off);
    ``vae``: another VAE (reference or ``facechain models`` name, e.g. ``sdxl-vae-fp16-fix``)."""
    from ..diffusion.loading import load_sd_pipeline, load_vae

    with _no_loading_bars():
        extra = {"vae": load_vae(vae, dtype=dtype, family=info.family)} if vae else {}
        pipe = load_sd_pipeline(info.path, dtype=dtype, name=info.reference, **extra)
    return SDComponents.from_pipeline(pipe, reference=info.reference)
