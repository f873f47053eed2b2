"""Training batches from (image, caption) examples, with or without caching.

Encoding an image with the VAE and a caption with CLIP costs as much as a large part of a UNet
step, yet the inputs never change during training. :class:`CachedDataset` encodes each image
once (and its mirror image, for flip augmentation) and each caption once, then serves batches
from memory; the VAE and, unless the text encoder is trained, CLIP are not needed afterwards.
:class:`LiveDataset` encodes every step (the plain diffusers recipe; kept for ``cache_latents:
false`` and the benchmark). Both draw the VAE's posterior sample from the caller's generator,
so training stays exactly reproducible.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from ..progress import task as progress_task
from ..diffusion.vae import encode_posterior
from .data import TrainingExample, load_training_image


@dataclass
class Batch:
    latents: torch.Tensor  # (B, 4, h, w), already multiplied by the VAE scaling factor
    input_ids: torch.Tensor  # (B, 77) token ids (used when the text encoder is trained)
    encoder_hidden_states: torch.Tensor | None  # (B, 77, D) cached text embeddings, or None


def tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def image_tensor(example: TrainingExample, resolution: int, flipped: bool) -> torch.Tensor:
    arr = load_training_image(example.image, resolution)
    if flipped:
        arr = arr[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class _Encoders:
    def __init__(self, vae, text_encoder, tokenizer, device: torch.device, dtype: torch.dtype):
        self.vae, self.text_encoder, self.tokenizer = vae, text_encoder, tokenizer
        self.device, self.dtype = device, dtype
        self.scaling = float(vae.config.scaling_factor)
        shift = getattr(vae.config, "shift_factor", None)
        self.shift = float(shift) if shift is not None else 0.0

    def posterior(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the VAE's latent distribution for a (B, 3, H, W) batch in [-1, 1].

        In the VAE's (training) dtype, again in fp32 if half precision overflows.
        """
        return encode_posterior(self.vae, pixels)

    @torch.no_grad()
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids.to(self.device))[0].float()

    def sample(self, mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return sample_latents(mean, std, generator, self.shift, self.scaling)


def sample_latents(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator, shift: float,
                   scaling: float) -> torch.Tensor:
    """A draw from the VAE posterior N(mean, std^2), in the UNet's latent scale."""
    eps = torch.randn(mean.shape, generator=generator).to(mean.device)
    return (mean + std * eps - shift) * scaling


class CachedDataset:
    """Latent posteriors (plain and mirrored) and text embeddings computed once per dataset."""

    def __init__(self, examples: list[TrainingExample], vae, text_encoder, tokenizer, *, resolution: int,
                 flip: bool, device: torch.device, dtype: torch.dtype, cache_text: bool = True,
                 progress: bool = False):
        self.examples = list(examples)
        self.flip = flip
        enc = _Encoders(vae, text_encoder, tokenizer, device, dtype)
        self.shift, self.scaling = enc.shift, enc.scaling  # keep no reference to the VAE: it can be freed
        self.input_ids = tokenize(tokenizer, [e.caption for e in self.examples])
        self._posteriors: dict[tuple[int, bool], tuple[torch.Tensor, torch.Tensor]] = {}
        variants = (False, True) if flip else (False,)
        with (progress_task("caching latents", total=len(self.examples) * len(variants), unit="img")
              if progress else contextlib.nullcontext()) as bar:
            for i, ex in enumerate(self.examples):
                for flipped in variants:
                    self._posteriors[(i, flipped)] = enc.posterior(image_tensor(ex, resolution, flipped)[None])
                    if bar is not None:
                        bar.update(1)
        self.embeddings = enc.embed(self.input_ids) if cache_text else None

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, indices: list[int], flips: list[bool], generator: torch.Generator) -> Batch:
        lat = []
        for i, f in zip(indices, flips):
            mean, std = self._posteriors[(i, bool(f) and self.flip)]
            lat.append(sample_latents(mean, std, generator, self.shift, self.scaling))
        ehs = self.embeddings[indices] if self.embeddings is not None else None
        return Batch(torch.cat(lat), self.input_ids[indices], ehs)


class LiveDataset:
    """Encodes images and captions on every step, like diffusers' ``train_text_to_image_lora.py``."""

    def __init__(self, examples: list[TrainingExample], vae, text_encoder, tokenizer, *, resolution: int,
                 flip: bool, device: torch.device, dtype: torch.dtype, cache_text: bool = True,
                 progress: bool = False):
        self.examples = list(examples)
        self.flip, self.resolution, self.cache_text = flip, resolution, cache_text
        self.enc = _Encoders(vae, text_encoder, tokenizer, device, dtype)
        self.input_ids = tokenize(tokenizer, [e.caption for e in self.examples])

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, indices: list[int], flips: list[bool], generator: torch.Generator) -> Batch:
        pixels = torch.stack([image_tensor(self.examples[i], self.resolution, bool(f) and self.flip)
                              for i, f in zip(indices, flips)])
        mean, std = self.enc.posterior(pixels)
        # one draw per example, in the same order as CachedDataset: both give the same batches
        latents = torch.cat([self.enc.sample(mean[k:k + 1], std[k:k + 1], generator) for k in range(len(indices))])
        ids = self.input_ids[indices]
        return Batch(latents, ids, self.enc.embed(ids) if self.cache_text else None)
