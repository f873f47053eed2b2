"""Prompt embeddings for a pipeline call, the same way for SD 1.5 and SDXL pipelines.

Generation encodes a prompt once and samples many seeds from it, so it passes embeddings instead
of text. SD 1.x/2.x pipelines take ``prompt_embeds``/``negative_prompt_embeds``; SDXL ones also
need the second text encoder's pooled embeddings (``pooled_prompt_embeds``/
``negative_pooled_prompt_embeds``), which feed its added text/time conditioning. One value type
carries both, so callers never branch on the family.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from .family import family_of_pipeline


@dataclass
class PromptEmbeds:
    """Encoded prompt and negative prompt (``negative`` None: no classifier-free guidance)."""

    prompt: torch.Tensor  # (B, tokens, D)
    negative: torch.Tensor | None = None
    pooled: torch.Tensor | None = None  # SDXL only: (B, P)
    negative_pooled: torch.Tensor | None = None

    def repeat(self, n: int) -> "PromptEmbeds":
        """The same embeddings for a batch of ``n`` images."""
        def rep(t):
            return None if t is None else t.repeat(n, *([1] * (t.dim() - 1)))

        return PromptEmbeds(rep(self.prompt), rep(self.negative), rep(self.pooled), rep(self.negative_pooled))

    def with_tokens(self, prompt: torch.Tensor, negative: torch.Tensor | None) -> "PromptEmbeds":
        """Other token embeddings (e.g. FACT face tokens appended), the pooled ones kept."""
        return replace(self, prompt=prompt, negative=negative)

    def kwargs(self) -> dict[str, torch.Tensor | None]:
        """Keywords for ``pipe(...)``; the pooled ones only for SDXL pipelines."""
        out = {"prompt_embeds": self.prompt, "negative_prompt_embeds": self.negative}
        if self.pooled is not None:
            out.update(pooled_prompt_embeds=self.pooled, negative_pooled_prompt_embeds=self.negative_pooled)
        return out


def encode_prompt(pipe: Any, prompt: str | list[str], negative_prompt: str | list[str] | None, *,
                  guidance: bool = True, device: torch.device | None = None, clip_skip: int | None = None) -> PromptEmbeds:
    """Encode with ``pipe``'s own ``encode_prompt`` (its text encoders, tokenizers and LoRA scale).

    A ``None`` negative prompt under guidance stays what the pipeline makes of it (SDXL: zeros,
    exactly like a plain ``pipe(prompt)`` call).
    """
    device = device or pipe._execution_device
    if isinstance(prompt, list) and isinstance(negative_prompt, str):
        negative_prompt = [negative_prompt] * len(prompt)
    negative_prompt = negative_prompt if guidance else None
    if family_of_pipeline(pipe) == "sdxl":  # its encode_prompt also returns pooled embeddings
        pe, npe, pooled, npooled = pipe.encode_prompt(
            prompt=prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=guidance,
            negative_prompt=negative_prompt, clip_skip=clip_skip)
        return PromptEmbeds(pe, npe if guidance else None, pooled, npooled if guidance else None)
    pe, npe = pipe.encode_prompt(prompt, device, 1, guidance, negative_prompt=negative_prompt, clip_skip=clip_skip)
    return PromptEmbeds(pe, npe if guidance else None)
