"""What the UNet is conditioned on besides the noisy latent: text, and for SDXL size and crop.

SD 1.x/2.x: one CLIP text encoder, its last hidden state. SDXL (as its pipelines encode prompts):
both encoders' *penultimate* hidden states side by side (768 + 1280 = 2048 wide), the second
encoder's pooled projection, and six "micro-conditioning" time ids per image -- original size,
crop top-left, target size -- that tell the UNet how the training image was resized and cropped.
Everything here is a pure function of the caption and the image geometry, so the dataset caches
it once, like the latents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class TextConditioning:
    """Encoded captions: (B, 77, D) hidden states and, for SDXL, (B, P) pooled embeddings."""

    hidden: torch.Tensor
    pooled: torch.Tensor | None = None

    def select(self, indices: list[int] | slice) -> "TextConditioning":
        return TextConditioning(self.hidden[indices], None if self.pooled is None else self.pooled[indices])

    def to(self, device: torch.device, dtype: torch.dtype) -> "TextConditioning":
        return TextConditioning(self.hidden.to(device, dtype), None if self.pooled is None else self.pooled.to(device, dtype))


class PromptEncoder:
    """Tokenizes and encodes captions with one (SD 1.5) or two (SDXL) CLIP text encoders."""

    def __init__(self, text_encoders: list[Any], tokenizers: list[Any]):
        if len(text_encoders) != len(tokenizers) or len(text_encoders) not in (1, 2):
            raise ValueError("one or two text encoders, each with its tokenizer")
        self.text_encoders, self.tokenizers = list(text_encoders), list(tokenizers)

    @property
    def dual(self) -> bool:
        return len(self.text_encoders) == 2

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        """(B, n_encoders, 77) token ids, each tokenizer padding its own way (as the pipelines do)."""
        ids = [tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True,
                   return_tensors="pt").input_ids for tok in self.tokenizers]
        return torch.stack(ids, dim=1)

    def __call__(self, input_ids: torch.Tensor) -> TextConditioning:
        """Encode (B, n, 77) ids on the encoders' device; gradients flow when an encoder is trained."""
        if not self.dual:
            te = self.text_encoders[0]
            return TextConditioning(te(input_ids[:, 0].to(te.device))[0])
        hidden, pooled = [], None
        for i, te in enumerate(self.text_encoders):
            out = te(input_ids[:, i].to(te.device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]  # the last (projection) encoder's pooled text embedding
        return TextConditioning(torch.cat(hidden, dim=-1), pooled)


def size_time_ids(original_hw: tuple[int, int], crop_top_left: tuple[int, int], target_hw: tuple[int, int]) -> torch.Tensor:
    """SDXL's six micro-conditioning numbers: original (h, w), crop (top, left), target (h, w)."""
    return torch.tensor([*original_hw, *crop_top_left, *target_hw], dtype=torch.float32)
