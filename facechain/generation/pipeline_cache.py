"""Build the diffusers pipeline once per process and reuse it.

The cache holds one base pipeline (a second SD model would double memory), keyed by base model,
device, dtype and memory options, and remembers which LoRA set (files + weights) is fused into it.
Fused LoRAs change the weights themselves, so a different LoRA set is applied by unfusing the old
one first (the adapters are kept, merged, for exactly that); with CPU offload the pipeline is
rebuilt instead. The OpenPose ControlNet pipeline is made from the base one with ``from_pipe``,
sharing its (LoRA-fused) UNet, text encoder and VAE.
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
        self.builds = 0  # how many times a base model was loaded (tests check reuse)

    def clear(self) -> None:
        with self._lock:
            self._key, self._pipe, self._loras = None, None, None
            self._controlnets.clear()

    def get(self, key: PipelineKey, loras: LoraSet):
        """The base pipeline for ``key`` with exactly ``loras`` applied."""
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

    def controlnet_pipe(self, base_pipe, controlnet_path: str | Path, key: PipelineKey):
        """A ControlNet pipeline sharing ``base_pipe``'s components (built once per ControlNet)."""
        from diffusers import StableDiffusionControlNetPipeline

        ck = (str(controlnet_path), repr(self._loras.key if self._loras else None))
        with self._lock:
            if ck not in self._controlnets:
                dtype = _DTYPES[key.dtype]
                with _quiet_loading():
                    controlnet = load_controlnet(controlnet_path, dtype=dtype, name="openpose-controlnet")
                if not key.cpu_offload:
                    controlnet = controlnet.to(key.device)
                pipe = StableDiffusionControlNetPipeline.from_pipe(base_pipe, controlnet=controlnet)
                pipe.set_progress_bar_config(disable=True)
                if key.cpu_offload:
                    pipe.enable_model_cpu_offload(device=key.device)
                self._controlnets[ck] = pipe
            return self._controlnets[ck]

    @staticmethod
    def _build(key: PipelineKey):
        quiet_ml_logs()
        log.info("loading base model %s (%s, %s)", key.base_model, key.device, key.dtype)
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


#: The process-wide cache ``generate()`` uses.
PIPELINES = PipelineCache()
