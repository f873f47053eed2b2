"""One cache of loaded diffusion components per process, shared by every verb.

The cache holds one base pipeline (a second SD model would double memory), keyed by base model,
device, dtype and memory options, and remembers which LoRA set (files + weights) is fused into it.
Fused LoRAs change the weights themselves, so a different LoRA set is applied by unfusing the old
one first (the adapters are kept, merged, for exactly that); with CPU offload the pipeline is
rebuilt instead. ControlNet pipelines are made from the base one with ``from_pipe``, sharing its
UNet, text encoder and VAE; ControlNets and FACT encoder/adapters are loaded once and kept.

Thread safety: :meth:`PipelineCache.use` holds the cache's lock for the whole block in which a
caller applies its LoRAs *and samples*, so two threads (a server's workers) can never unfuse
weights or swap the scheduler under each other's denoising. Calls on one base model run one
after the other; that is also what one GPU does anyway.

The cache is explicit: :func:`default_cache` is the process-wide one the public functions use,
:func:`set_default_cache` replaces it (tests, services), and every function also takes
``cache=`` — nothing reaches for a hidden module global.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ..diffusion.loading import load_controlnet, load_sd_pipeline, quiet_ml_logs
from .lora import LoraSpec, apply_loras, remove_loras

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineKey:
    base_model: str  # resolved local path
    device: str
    dtype: str
    cpu_offload: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False


@dataclass(frozen=True)
class LoraSet:
    loras: tuple[LoraSpec, ...]
    fused: bool = True

    @property
    def key(self) -> tuple:
        """Names, files (with size and mtime: a retrained LoRA at the same path is a new LoRA) and weights."""
        return tuple((lo.name, *_file_id(lo.path), round(float(lo.weight), 6)) for lo in self.loras), self.fused


def _file_id(path: Path) -> tuple[str, int, int]:
    p = Path(path).resolve()
    try:
        st = p.stat()
        return str(p), st.st_size, st.st_mtime_ns
    except OSError:
        return str(p), -1, -1


class PipelineCache:
    """One reusable text-to-image pipeline (+ ControlNet variants) per process."""

    def __init__(self):
        self._lock = threading.RLock()
        self._key: PipelineKey | None = None
        self._pipe = None
        self._loras: LoraSet | None = None
        self._controlnets: dict[tuple[str, str], object] = {}
        self._controlnet_models: dict[tuple, object] = {}
        self._fact_models: dict[tuple, object] = {}
        self.builds = 0  # how many times a base model was loaded (tests check reuse)
        self.loads = 0  # ControlNets and FACT models loaded

    def clear(self) -> None:
        with self._lock:
            self._key, self._pipe, self._loras = None, None, None
            self._controlnets.clear()
            self._fact_models.clear()  # adapters are sized for (and hooked into) that UNet

    @contextlib.contextmanager
    def use(self, key: PipelineKey, loras: LoraSet) -> Iterator[object]:
        """The base pipeline for ``key`` with exactly ``loras`` applied, held exclusively in the block."""
        with self._lock:
            yield self.get(key, loras)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def get(self, key: PipelineKey, loras: LoraSet):
        """The base pipeline for ``key`` with exactly ``loras`` applied (hold :attr:`lock` while using it)."""
        with self._lock:
            if self._pipe is None or self._key != key:
                self.clear()
                self._pipe = self._build(key)
                self._key = key
                self.builds += 1
            if self._loras is None or self._loras.key != loras.key:
                if self._loras is not None and self._loras.loras:
                    if key.cpu_offload:  # offload hooks + unfuse: rebuild rather than risk a mix
                        self.clear()
                        self._pipe, self._key = self._build(key), key
                        self.builds += 1
                    else:
                        remove_loras(self._pipe, fused=self._loras.fused)
                        self._controlnets.clear()
                self._loras = None
                try:
                    with warnings.catch_warnings():  # peft: "Already found a peft_config attribute" for a 2nd adapter
                        warnings.filterwarnings("ignore", message=".*peft_config.*", category=UserWarning)
                        apply_loras(self._pipe, list(loras.loras), fuse=loras.fused, unload=False)
                except BaseException:
                    self.clear()  # half-applied adapters: start from a fresh load next time
                    raise
                self._loras = loras
                if key.cpu_offload:
                    self._pipe.enable_model_cpu_offload(device=key.device)
            return self._pipe

    def controlnet(self, path: str | Path, key: PipelineKey, name: str = "controlnet"):
        """A ControlNet model, loaded once per (file, device, dtype) and kept."""
        ck = (str(Path(path).resolve()), key.device, key.dtype, key.cpu_offload)
        with self._lock:
            if ck not in self._controlnet_models:
                from .. import progress

                progress.say(f"loading {name} {path}")
                with _quiet_loading():
                    model = load_controlnet(path, dtype=_DTYPES[key.dtype], name=name)
                self._controlnet_models[ck] = model if key.cpu_offload else model.to(key.device)
                self.loads += 1
            return self._controlnet_models[ck]

    def fact_model(self, files, unet):
        """A FACT encoder + adapter for ``unet``, loaded once per (files, UNet) and kept."""
        ck = (str(files.adapter), str(files.encoder), id(unet))
        with self._lock:
            if ck not in self._fact_models:
                from .. import progress
                from ..fact.models import load_fact

                progress.say(f"loading FACT adapter {files.adapter}")
                self._fact_models[ck] = load_fact(files, unet)
                self.loads += 1
            return self._fact_models[ck]

    def controlnet_pipe(self, base_pipe, controlnet_path: str | Path, key: PipelineKey):
        """A ControlNet pipeline sharing ``base_pipe``'s components (built once per ControlNet)."""
        from diffusers import StableDiffusionControlNetPipeline

        from ..diffusion.family import family_of_pipeline
        from ..diffusion.loading import pipeline_class_for

        ck = (str(controlnet_path), repr(self._loras.key if self._loras else None))
        with self._lock:
            if ck not in self._controlnets:
                controlnet = self.controlnet(controlnet_path, key, name="openpose-controlnet")
                cls = pipeline_class_for(family_of_pipeline(base_pipe), StableDiffusionControlNetPipeline)
                pipe = cls.from_pipe(base_pipe, controlnet=controlnet)
                pipe.set_progress_bar_config(disable=True)
                if key.cpu_offload:
                    pipe.enable_model_cpu_offload(device=key.device)
                self._controlnets[ck] = pipe
            return self._controlnets[ck]

    @staticmethod
    def _build(key: PipelineKey):
        from .. import progress

        quiet_ml_logs()
        log.info("loading base model %s (%s, %s)", key.base_model, key.device, key.dtype)
        progress.say(f"loading base model {key.base_model} ({key.device}, {key.dtype})")
        with _quiet_loading():
            pipe = load_sd_pipeline(key.base_model, dtype=_DTYPES[key.dtype])
        if not key.cpu_offload:
            pipe = pipe.to(key.device)
        if key.vae_tiling:
            pipe.vae.enable_tiling()
        if key.vae_slicing:
            pipe.vae.enable_slicing()
        pipe.set_progress_bar_config(disable=True)
        return pipe


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No "Loading pipeline components" / "Loading weights" bars unless --verbose."""
    if log.isEnabledFor(logging.INFO):
        yield
        return
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.enable_progress_bar()
        tlog.enable_progress_bar()


_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}[dtype]


_DEFAULT = PipelineCache()


def default_cache() -> PipelineCache:
    """The process-wide cache the public functions use unless given ``cache=``."""
    return _DEFAULT


def set_default_cache(cache: PipelineCache | None) -> PipelineCache:
    """Replace the process-wide cache (``None``: a fresh, empty one); returns the new cache."""
    global _DEFAULT
    _DEFAULT = cache if cache is not None else PipelineCache()
    return _DEFAULT
