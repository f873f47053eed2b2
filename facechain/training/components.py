"""The Stable Diffusion parts a LoRA is trained on, loaded once from a base-model reference.

The base model can be a diffusers folder, a single-file ``.safetensors`` checkpoint, a Hugging
Face id or a ModelScope id (``ms:owner/name@rev#subfolder``); the model store resolves it and
raises a one-line :class:`~facechain.errors.ModelNotFoundError` when it is not available.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from ..models.registry import MODELS
from ..models.store import ModelRef, ModelStore, default_store, file_sha256


@dataclass
class SDComponents:
    """Frozen base-model parts plus the DDPM noise schedule it was trained with."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    noise_scheduler: Any  # diffusers DDPMScheduler built from the base model's scheduler config
    reference: str = "in-memory"

    @classmethod
    def from_pipeline(cls, pipe: Any, reference: str = "in-memory") -> "SDComponents":
        from diffusers import DDPMScheduler

        return cls(unet=pipe.unet, vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                   noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config), reference=reference)

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


def registry_name(reference: str) -> str:
    """The ``facechain models`` name of a reference (so errors can say ``models download NAME``)."""
    for spec in MODELS.values():
        if spec.reference == reference:
            return spec.name
    return "base model"


def resolve_base_model(reference: str, store: ModelStore | None = None) -> BaseModelInfo:
    """Find the base model locally (downloading when allowed); fails fast before any heavy work."""
    store = store or default_store()
    ref = ModelRef.parse(reference)
    name = registry_name(reference)
    path = store.resolve(reference, name=name if name != "base model" else str(ref))
    revision = ref.revision
    if revision is None and ref.source == "hf":
        m = re.search(r"snapshots/([0-9a-f]{40})", path.as_posix())
        revision = m.group(1) if m else None
    shown = str(path.resolve()) if ref.source == "local" else str(ref)
    return BaseModelInfo(shown, path, revision, unet_weightsfile_sha256(path))


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


def load_components(info: BaseModelInfo, dtype: torch.dtype = torch.float32) -> SDComponents:
    """Load the pipeline parts in ``dtype`` through the shared loader (safety checker off)."""
    from ..diffusion.loading import load_sd_pipeline

    with _no_loading_bars():
        pipe = load_sd_pipeline(info.path, dtype=dtype, name=info.reference)
    return SDComponents.from_pipeline(pipe, reference=info.reference)
