"""Training batches from (image, caption) examples, with or without caching.

Encoding an image with the VAE and a caption with CLIP costs as much as a large part of a UNet
step, yet the inputs never change during training. :class:`CachedDataset` encodes each image
once (and its mirror image, for flip augmentation) and each caption once (SDXL: both text
encoders, the pooled embedding and the size/crop time ids too), then serves batches from memory;
the VAE and, unless a text encoder is trained, CLIP are not needed afterwards.
:class:`LiveDataset` encodes every step (the plain diffusers recipe; kept for ``cache_latents:
false`` and the benchmark). Both draw the VAE's posterior sample from the caller's generator,
so training stays exactly reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..diffusion.conditioning import PromptEncoder, TextConditioning, size_time_ids
from ..diffusion.vae import encode_posterior
from ..progress import task as progress_task
from .data import TrainingExample, crop_conditioning, load_training_image


@dataclass
class Batch:
    latents: torch.Tensor  # (B, 4, h, w), already multiplied by the VAE scaling factor
    input_ids: torch.Tensor  # (B, n_text_encoders, 77) token ids (used when a text encoder is trained)
    text: TextConditioning | None  # cached text conditioning, or None (encode input_ids)
    time_ids: torch.Tensor | None = None  # (B, 6) SDXL size/crop conditioning, None for SD 1.x/2.x

    def select(self, k: slice) -> "Batch":
        return Batch(self.latents[k], self.input_ids[k], None if self.text is None else self.text.select(k),
                     None if self.time_ids is None else self.time_ids[k])


def image_tensor(example: TrainingExample, resolution: int, flipped: bool) -> torch.Tensor:
    arr = load_training_image(example.image, resolution)
    if flipped:
        arr = arr[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def time_ids_for(examples: list[TrainingExample], resolution: int) -> torch.Tensor:
    """(N, 6) SDXL size/crop ids of each example (a flip keeps a centred crop where it is)."""
    return torch.stack([size_time_ids(*crop_conditioning(e.image, resolution)) for e in examples])


class _Encoders:
    def __init__(self, vae, prompt_encoder: PromptEncoder, device: torch.device):
        self.vae, self.prompt_encoder, self.device = vae, prompt_encoder, device
        self.scaling = float(vae.config.scaling_factor)
        shift = getattr(vae.config, "shift_factor", None)
        self.shift = float(shift) if shift is not None else 0.0

    def posterior(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the VAE's latent distribution for a (B, 3, H, W) batch in [-1, 1].

        In the VAE's dtype (fp32 for VAEs flagged to overflow in fp16: the trainer decides), again
        in fp32 if half precision overflows anyway.
        """
        return encode_posterior(self.vae, pixels)

    @torch.no_grad()
    def embed(self, input_ids: torch.Tensor) -> TextConditioning:
        return self.prompt_encoder(input_ids).to(torch.device("cpu"), torch.float32)

    def sample(self, mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return sample_latents(mean, std, generator, self.shift, self.scaling)


def sample_latents(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator, shift: float,
                   scaling: float) -> torch.Tensor:
    """A draw from the VAE posterior N(mean, std^2), in the UNet's latent scale."""
    eps = torch.randn(mean.shape, generator=generator).to(mean.device)
    return (mean + std * eps - shift) * scaling


class CachedDataset:
    """Latent posteriors (plain and mirrored), text conditioning and SDXL time ids computed once per dataset."""

    def __init__(self, examples: list[TrainingExample], vae, prompt_encoder: PromptEncoder, *, resolution: int,
                 flip: bool, device: torch.device, cache_text: bool = True, time_ids: bool = False,
                 progress: bool = False):
        self.examples = list(examples)
        self.flip = flip
        enc = _Encoders(vae, prompt_encoder, device)
        self.shift, self.scaling = enc.shift, enc.scaling  # keep no reference to the VAE: it can be freed
        self.input_ids = prompt_encoder.tokenize([e.caption for e in self.examples])
        self.time_ids = time_ids_for(self.examples, resolution) if time_ids else None
        self._posteriors: dict[tuple[int, bool], tuple[torch.Tensor, torch.Tensor]] = {}
        variants = (False, True) if flip else (False,)
        with progress_task("caching latents", total=len(self.examples) * len(variants), unit="img") as bar:
            for i, ex in enumerate(self.examples):
                for flipped in variants:
                    self._posteriors[(i, flipped)] = enc.posterior(image_tensor(ex, resolution, flipped)[None])
                    if bar is not None:
                        bar.update(1)
        self.text = enc.embed(self.input_ids) if cache_text else None

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, indices: list[int], flips: list[bool], generator: torch.Generator) -> Batch:
        lat = []
        for i, f in zip(indices, flips):
            mean, std = self._posteriors[(i, bool(f) and self.flip)]
            lat.append(sample_latents(mean, std, generator, self.shift, self.scaling))
        text = self.text.select(indices) if self.text is not None else None
        return Batch(torch.cat(lat), self.input_ids[indices], text,
                     None if self.time_ids is None else self.time_ids[indices])


class LiveDataset:
    """Encodes images and captions on every step, like diffusers' ``train_text_to_image_lora.py``."""

    def __init__(self, examples: list[TrainingExample], vae, prompt_encoder: PromptEncoder, *, resolution: int,
                 flip: bool, device: torch.device, cache_text: bool = True, time_ids: bool = False,
                 progress: bool = False):
        self.examples = list(examples)
        self.flip, self.resolution, self.cache_text = flip, resolution, cache_text
        self.enc = _Encoders(vae, prompt_encoder, device)
        self.input_ids = prompt_encoder.tokenize([e.caption for e in self.examples])
        self.time_ids = time_ids_for(self.examples, resolution) if time_ids else None

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, indices: list[int], flips: list[bool], generator: torch.Generator) -> Batch:
        pixels = torch.stack([image_tensor(self.examples[i], self.resolution, bool(f) and self.flip)
                              for i, f in zip(indices, flips)])
        mean, std = self.enc.posterior(pixels)
        # one draw per example, in the same order as CachedDataset: both give the same batches
        latents = torch.cat([self.enc.sample(mean[k:k + 1], std[k:k + 1], generator) for k in range(len(indices))])
        ids = self.input_ids[indices]
        return Batch(latents, ids, self.enc.embed(ids) if self.cache_text else None,
                     None if self.time_ids is None else self.time_ids[indices])
