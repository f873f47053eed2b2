"""Run any diffusers Stable Diffusion pipeline with FACT face tokens: the integration API.

    from facechain.fact import FactSession

    fact = FactSession.from_photos(pipe, ["me.jpg"], adapter="fact-adapter", scale=0.5)
    with fact:                                     # hooks the adapter into pipe.unet (+ ControlNets)
        images = pipe(**fact.embeds(prompt, negative_prompt), image=pose, ...).images
    # leaving the block removes every hook: pipe is exactly the base pipeline again

``embeds`` returns ``prompt_embeds`` / ``negative_prompt_embeds`` = the pipeline's own text
encoding (77 tokens) followed by 16 face tokens per photo; the negative side gets the
unconditional face tokens (resampler output for zero face features), so classifier-free guidance
also pushes toward the face. Works with StableDiffusion(Img2Img|Inpaint|ControlNet|
ControlNetInpaint)Pipeline and MultiControlNets (ControlNets never receive face tokens); several
pipelines sharing the UNet (``from_pipe``) run with the face inside ``with fact.applied_to(p1, p2):``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from .adapter import AdapterHooks, FaceTokenRouting, install_adapter, shield_controlnet
from .config import DEFAULT_SCALE_GENERATE
from .models import DEFAULT_REFERENCE, FactModel, load_fact
from .preprocess import FacePhoto, MaskFn, PhotoInput, photos_to_tensor, prepare_face_photos


@dataclass
class FaceCondition:
    """Face tokens of one person: (1, 16·N, D) for N photos, and their unconditional twin."""

    cond: torch.Tensor
    uncond: torch.Tensor
    photos: list[FacePhoto]

    @property
    def num_tokens(self) -> int:
        return int(self.cond.shape[1])


@torch.no_grad()
def encode_faces(model: FactModel, photos: Sequence[FacePhoto]) -> FaceCondition:
    """Face encoder -> resampler for the given aligned photos (run once per portrait set)."""
    p = next(model.adapter.parameters())
    tokens = model.encoder.to(p.device)(photos_to_tensor(photos).to(p.device, next(model.encoder.parameters()).dtype))
    cond, uncond = model.adapter.face_embeds(tokens.to(p.dtype))
    return FaceCondition(cond, uncond, list(photos))


class FactSession:
    """Face tokens of one person + the adapter, attachable to pipelines (see module docstring)."""

    def __init__(self, pipe: Any, model: FactModel, condition: FaceCondition, scale: float = DEFAULT_SCALE_GENERATE):
        self.pipe = pipe
        self.model = model
        self.condition = condition
        self.routing = FaceTokenRouting(face_len=condition.num_tokens, scale=float(scale))
        self._hooks: AdapterHooks | None = None
        self._depth = 0

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_photos(
        cls,
        pipe: Any,
        photos: Sequence[PhotoInput] | PhotoInput,
        adapter: str | Path | FactModel = DEFAULT_REFERENCE,
        scale: float = DEFAULT_SCALE_GENERATE,
        *,
        encoder: str | Path | None = None,
        variant: str = "film",
        analyzer=None,
        mask_fn: MaskFn | None = None,
        store=None,
    ) -> "FactSession":
        """Load the adapter for ``pipe.unet`` (unless a :class:`FactModel` is given), detect and
        align the face in each photo (InputError naming the file when there is none) and encode
        them. Several photos of one person give 16 tokens each."""
        prepared = prepare_face_photos(photos, analyzer=analyzer, mask_fn=mask_fn)
        model = adapter if isinstance(adapter, FactModel) else load_fact(adapter, pipe.unet, encoder=encoder, variant=variant, store=store)
        unet_param = next(pipe.unet.parameters())
        model.adapter.to(unet_param.device, unet_param.dtype)
        return cls(pipe, model, encode_faces(model, prepared), scale)

    # -- scale and metadata --------------------------------------------------------------------
    @property
    def scale(self) -> float:
        return self.routing.scale

    @scale.setter
    def scale(self, value: float) -> None:
        self.routing.scale = float(value)

    def metadata(self) -> dict[str, Any]:
        """What to record with each portrait."""
        return {
            "fact_adapter": self.model.source,
            "adapter_scale": self.scale,
            "face_photos": [p.source for p in self.condition.photos],
            "face_tokens": self.condition.num_tokens,
        }

    # -- installing ------------------------------------------------------------------------------
    def install(self, pipe: Any | None = None) -> None:
        pipe = pipe or self.pipe
        if self._hooks is None:
            self._hooks = AdapterHooks(self.routing)
        install_adapter(pipe.unet, self.model.adapter, self.routing, self._hooks)
        controlnet = getattr(pipe, "controlnet", None)
        if isinstance(controlnet, nn.Module):
            shield_controlnet(controlnet, self._hooks)

    def remove(self) -> None:
        """Take every hook out again (the pipelines behave exactly as before)."""
        if self._hooks is not None:
            self._hooks.remove()
            self._hooks = None

    def __enter__(self) -> "FactSession":
        self.install()
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth <= 0:
            self.remove()

    @contextlib.contextmanager
    def applied_to(self, *pipes: Any) -> Iterator["FactSession"]:
        """Run ``pipes`` (default: the session's pipe; e.g. a text-to-image pipe and an inpainting
        pipe made from it with ``from_pipe``) with the face inside this block."""
        for pipe in pipes or (self.pipe,):
            self.install(pipe)
        self._depth += 1
        try:
            yield self
        finally:
            self.__exit__()

    # -- prompt embeddings -------------------------------------------------------------------------
    def embeds(self, prompt: str | list[str], negative_prompt: str | list[str] | None = None,
               pipe: Any | None = None, clip_skip: int | None = None) -> dict[str, torch.Tensor]:
        """``prompt_embeds``/``negative_prompt_embeds`` (+ pooled ones for SDXL) for ``pipe(...)``."""
        from ..diffusion.prompt_embeds import encode_prompt

        pipe = pipe or self.pipe
        device = next(pipe.unet.parameters()).device
        # None stays None: SDXL then uses zeros as its negative, exactly like a plain pipe(prompt) call
        embeds = encode_prompt(pipe, prompt, negative_prompt, device=device, clip_skip=clip_skip)
        return self.append_face_tokens_to(embeds).kwargs()

    def append_face_tokens_to(self, embeds):
        """:meth:`append_face_tokens` on a :class:`~facechain.diffusion.prompt_embeds.PromptEmbeds`
        (the pooled SDXL embeddings pass unchanged: face tokens only extend the token sequence)."""
        out = self.append_face_tokens(embeds.prompt, embeds.negative)
        return embeds.with_tokens(out["prompt_embeds"], out["negative_prompt_embeds"])

    def append_face_tokens(self, prompt_embeds: torch.Tensor,
                           negative_prompt_embeds: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        """Append the face tokens to text embeddings you encoded yourself (any prompt length).

        Without ``negative_prompt_embeds`` (no classifier-free guidance) the negative stays None.
        """
        if negative_prompt_embeds is not None and prompt_embeds.shape[1] != negative_prompt_embeds.shape[1]:
            raise ValueError("prompt and negative prompt embeddings must have the same number of tokens")
        self.routing.text_len = int(prompt_embeds.shape[1])
        dev, dt = prompt_embeds.device, prompt_embeds.dtype
        cond = self.condition.cond.to(dev, dt)
        out: dict[str, torch.Tensor | None] = {
            "prompt_embeds": torch.cat([prompt_embeds, cond.expand(prompt_embeds.shape[0], -1, -1)], dim=1),
            "negative_prompt_embeds": None,
        }
        if negative_prompt_embeds is not None:
            uncond = self.condition.uncond.to(dev, dt).expand(negative_prompt_embeds.shape[0], -1, -1)
            out["negative_prompt_embeds"] = torch.cat([negative_prompt_embeds, uncond], dim=1)
        return out
