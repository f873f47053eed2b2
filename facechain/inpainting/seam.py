"""Paste a redrawn crop back into the template without a colour seam.

Stable Diffusion sees the crop through the VAE at the model's resolution: even where nothing is
repainted, decode(encode(crop)) differs from the crop (colour shifts, lost detail), and resizing
adds blur. The paper's fix: add the round-trip error (crop - decode(encode(crop))) back to the
generated crop, so it equals the template wherever the model left the latent alone. Here the
round trip includes the resize to the model's resolution and back, so it corrects both.

Compositing ``out = template * (1 - m) + crop * m`` with the soft mask ``m`` (zero outside the
dilated face region) leaves every other pixel exactly the template's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .geometry import CropBox, resize_to
from .masks import FaceMask


def vae_round_trip(vae, image: np.ndarray, family: str | None = None) -> np.ndarray:
    """decode(encode(image)) as float32 RGB in [0, 255] (posterior mean: SD's VAE is near-deterministic;
    fp16-safe, SDXL's VAE in fp32: :func:`facechain.diffusion.vae.round_trip`)."""
    from ..diffusion.vae import round_trip

    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    y = round_trip(vae, x, family)
    y = ((y / 2 + 0.5).clamp(0, 1) * 255.0)[0].permute(1, 2, 0)
    return y.cpu().numpy().astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


@dataclass
class SeamReport:
    """Mean absolute colour error (0-255 units) of the pasted crop against the template.

    ``band``: the feathered edge of the mask, where a seam would show; ``border``: the crop's
    outer ring, where pasting the whole crop would show a square edge. Both with and without the
    round-trip correction, so every run documents what the correction bought.
    """

    band_corrected: float | None  # None when the correction was switched off
    band_uncorrected: float
    border_corrected: float | None
    border_uncorrected: float

    def to_json(self) -> dict[str, float | None]:
        return {k: None if v is None else round(v, 3) for k, v in self.__dict__.items()}


def _mean_abs(image: np.ndarray, reference: np.ndarray, where: np.ndarray) -> float:
    """Mean |clip(image) - reference| over ``where`` (indexed first: crops can be 4000 px)."""
    if not where.any():
        return 0.0
    return float(np.abs(np.clip(image[where], 0, 255) - reference[where].astype(np.float32)).mean())


def border_ring(side: int) -> np.ndarray:
    width = max(2, side // 32)
    ring = np.ones((side, side), dtype=bool)
    ring[width:-width, width:-width] = False
    return ring


def corrected_crop(generated: np.ndarray, crop: np.ndarray, round_trip: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Bring the model-resolution result to crop size and add the round-trip error back.

    Returns (corrected, uncorrected) float32 crops in [0, 255] units (not clipped).
    """
    side = crop.shape[0]
    up = resize_to(generated.astype(np.float32), side)
    if round_trip is None:
        return up, up
    corrected = crop.astype(np.float32)
    corrected -= resize_to(round_trip, side)
    corrected += up
    return corrected, up


def measure_seam(crop: np.ndarray, corrected: np.ndarray | None, uncorrected: np.ndarray, mask: FaceMask) -> SeamReport:
    band = (mask.soft > 0) & (mask.soft < 1)
    ring = border_ring(crop.shape[0])
    return SeamReport(None if corrected is None else _mean_abs(corrected, crop, band), _mean_abs(uncorrected, crop, band),
                      None if corrected is None else _mean_abs(corrected, crop, ring), _mean_abs(uncorrected, crop, ring))


def composite(canvas: np.ndarray, box: CropBox, patch: np.ndarray, mask: FaceMask) -> None:
    """``canvas[box] = canvas * (1 - m) + patch * m`` on the mask's support only (in place)."""
    region = canvas[box.slices]
    m = mask.soft[mask.hard][:, None]
    old = region[mask.hard].astype(np.float32)
    region[mask.hard] = to_uint8(old * (1.0 - m) + np.clip(patch[mask.hard], 0, 255) * m)
