"""Pipelines as objects (diffusers style): load once, call many times, share components.

    >>> from facechain import PortraitPipeline, TemplatePipeline
    >>> portraits = PortraitPipeline.from_pretrained("./my-sd15", device="cuda")
    >>> result = portraits("alice", "cyberpunk", num_images=4, seed=1)        # -> Portraits
    >>> templates = TemplatePipeline.from_pipe(portraits)                     # same UNet, VAE, text encoder
    >>> group = templates("group.jpg", ["alice", "bob"], seed=1)               # -> Portraits

A pipeline object holds the loaded-components cache (:class:`~facechain.generation.pipeline_cache.
PipelineCache`), the model store and the face analyzer, and is pinned to one base model, device
and dtype. Calling it takes the same keywords as :func:`facechain.generate` /
:func:`facechain.inpaint` (which are thin wrappers that pick the base model from the style or
identity and use the process-wide cache). Calls are thread-safe: the cache's lock is held while a
call applies its LoRAs and samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .generation.pipeline_cache import PipelineCache
from .models.store import ModelStore, default_store
from .results import Portraits


class PortraitPipeline:
    """Portraits of a trained identity (or FACT photos) in a style, on one base model."""

    def __init__(self, base_model: str | Path, *, device: str = "auto", dtype: str = "auto", store: ModelStore | None = None,
                 cache: PipelineCache | None = None, analyzer: Any = None, cpu_offload: bool = False,
                 vae_tiling: bool = False, vae_slicing: bool = False):
        self.base_model = str(base_model)
        self.device, self.dtype = device, dtype
        self.store = store or default_store()
        self.cache = cache if cache is not None else PipelineCache()
        self.analyzer = analyzer
        self.memory = dict(cpu_offload=cpu_offload, vae_tiling=vae_tiling, vae_slicing=vae_slicing)

    @classmethod
    def from_pretrained(cls, base_model: str | Path, *, device: str = "auto", dtype: str = "auto",
                        store: ModelStore | None = None, cache: PipelineCache | None = None, analyzer: Any = None,
                        **memory: bool) -> "PortraitPipeline":
        """Load ``base_model`` (folder, single file, hub id, registry name) now, once."""
        from .diffusion.device import resolve_device, resolve_dtype
        from .generation.pipeline_cache import LoraSet, PipelineKey, dtype_name
        from .models.registry import MODELS

        pipe = cls(base_model, device=device, dtype=dtype, store=store, cache=cache, analyzer=analyzer, **memory)
        ref = MODELS[pipe.base_model].reference if pipe.base_model in MODELS else pipe.base_model
        pipe.base_model = ref
        path = pipe.store.resolve(ref, name=str(base_model))
        dev = resolve_device(device)
        key = PipelineKey(str(Path(path).resolve()), str(dev), dtype_name(resolve_dtype(dev, dtype)),
                          pipe.memory["cpu_offload"], pipe.memory["vae_tiling"], pipe.memory["vae_slicing"])
        with pipe.cache.lock:
            pipe.cache.get(key, LoraSet(()))
        return pipe

    def __call__(self, person=None, style=None, **options: Any) -> Portraits:
        """:func:`facechain.generate` on this pipeline's base model and components."""
        from .generation.api import generate

        for fixed in ("base_model", "device", "dtype", "cache", "store"):
            if fixed in options:
                raise TypeError(f"{fixed} is fixed by the pipeline; make another pipeline for another one")
        return generate(person, style, base_model=self.base_model, device=self.device, dtype=self.dtype,
                        store=self.store, cache=self.cache, analyzer=self.analyzer, **self.memory, **options)

    def __repr__(self) -> str:
        return f"PortraitPipeline(base_model={self.base_model!r}, device={self.device!r}, dtype={self.dtype!r})"


class TemplatePipeline:
    """Two-stage template inpainting (paper section 2.5) sharing a :class:`PortraitPipeline`'s components."""

    def __init__(self, portrait_pipeline: PortraitPipeline, openpose: str | Path | None = None,
                 canny: str | Path | None = None):
        self.portraits = portrait_pipeline
        self.openpose = None if openpose is None else str(openpose)
        self.canny = None if canny is None else str(canny)

    @classmethod
    def from_pipe(cls, portrait_pipeline: PortraitPipeline, *, openpose: str | Path | None = None,
                  canny: str | Path | None = None) -> "TemplatePipeline":
        """Reuse ``portrait_pipeline``'s loaded base model (``from_pipe``: no second copy) and cache;
        ``openpose``/``canny``: ControlNet references (default: the registry's)."""
        return cls(portrait_pipeline, openpose, canny)

    def __call__(self, template, person=None, **options: Any) -> Portraits:
        """:func:`facechain.inpaint` on the shared base model and components."""
        from .inpainting.api import inpaint

        p = self.portraits
        for fixed in ("base_model", "device", "dtype", "cache", "store", "openpose_controlnet", "canny_controlnet"):
            if fixed in options:
                raise TypeError(f"{fixed} is fixed by the pipeline; make another pipeline for another one")
        return inpaint(template, person, base_model=p.base_model, device=p.device, dtype=p.dtype, store=p.store,
                       cache=p.cache, analyzer=p.analyzer, openpose_controlnet=self.openpose, canny_controlnet=self.canny,
                       **options)

    def __repr__(self) -> str:
        return f"TemplatePipeline(base_model={self.portraits.base_model!r}, openpose={self.openpose!r}, canny={self.canny!r})"
