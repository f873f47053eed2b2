"""Exposed skin, found with a colour model learned from the person's own face.

No pip package ships a human-parsing model (skin vs clothes), but every try-on photo shows the
face, and the face is skin of the same person under the same light. So: take the face's skin
pixels (the 68-landmark outline minus eyes, brows, nostrils and mouth, colour-gated; see
:func:`facechain.perception.retouch.skin_mask`), fit a Gaussian to their *chromaticity*
(r = R/(R+G+B), g = G/(R+G+B): brightness cancels, so shaded hands still match the lit face) and
accept pixels within ``max_distance`` (Mahalanobis, 2 degrees of freedom) and within a generous
brightness range of the face's (very dark and very bright pixels have meaningless chromaticity).
Specks and thin slivers (fabric threads, mixed pixels at outlines) are removed by an opening
sized to the face. Limits, honestly: clothes of the skin's own hue (a beige or orange garment
on a matching skin tone) are taken for skin and would be redrawn; use a ``--garment-mask`` or
the M2FP backend for those.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_SAMPLE = 50  # face skin pixels needed to fit the model


@dataclass
class SkinColourModel:
    mean: np.ndarray  # (2,) chromaticity (r, g)
    inv_cov: np.ndarray  # (2, 2)
    brightness: tuple[float, float]  # accepted (low, high) mean-RGB brightness
    samples: int

    @classmethod
    def from_face(cls, image: np.ndarray, lm68: np.ndarray) -> "SkinColourModel | None":
        """Fit on the face's skin (None when the face shows too few skin pixels)."""
        from ...perception.retouch import skin_mask

        x1, y1 = np.floor(lm68.min(axis=0) - 0.6 * np.ptp(lm68, axis=0)).astype(int)
        x2, y2 = np.ceil(lm68.max(axis=0) + 0.6 * np.ptp(lm68, axis=0)).astype(int)
        h, w = image.shape[:2]
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        crop = np.ascontiguousarray(image[y1:y2, x1:x2])
        sample = crop[skin_mask(crop, lm68 - (x1, y1)) > 0.5]
        if len(sample) < MIN_SAMPLE:
            return None
        chroma = _chromaticity(sample)
        cov = np.cov(chroma.T) + np.eye(2) * 1e-5
        lum = sample.astype(np.float32).mean(axis=1)
        lo, hi = np.percentile(lum, [2, 98])
        return cls(chroma.mean(axis=0), np.linalg.inv(cov), (0.4 * float(lo), 1.2 * float(hi) + 20.0), len(sample))

    def distance(self, image: np.ndarray) -> np.ndarray:
        """(H, W) squared Mahalanobis distance of each pixel's chromaticity to the face skin."""
        d = _chromaticity(image) - self.mean
        return np.einsum("...i,ij,...j->...", d, self.inv_cov, d)

    def mask(self, image: np.ndarray, where: np.ndarray, size: float, max_distance: float = 9.0) -> np.ndarray:
        """Bool skin mask inside ``where``; ``size`` (the face size, px) scales the speck removal."""
        lum = image.astype(np.float32).mean(axis=2)
        lo, hi = self.brightness
        skin = where & (self.distance(image) < max_distance) & (lum > lo) & (lum < hi)
        k = max(3, int(round(0.04 * size)) | 1)
        skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        return drop_small_components(skin > 0, 0.01 * size * size)


def _chromaticity(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels.astype(np.float32) + 1.0
    total = rgb.sum(axis=-1, keepdims=True)
    return (rgb[..., :2] / total).astype(np.float32)


def drop_small_components(mask: np.ndarray, min_area: float) -> np.ndarray:
    """``mask`` without its connected components smaller than ``min_area`` pixels."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]
