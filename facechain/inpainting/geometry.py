"""Geometry of template portraits: the square work crop around a face and the landmark warp.

The warp is the paper's M from L_ID (landmarks of the face drawn in stage 1) to L_template: an
affine map fitted by least squares. It is fitted on the inner face points (brows, eyes, nose,
mouth), which sit where the template's features are, and applied to all 68, so the jaw line keeps
the identity's own face shape (the dilated mask leaves room for it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..types import Face

INNER_FACE = slice(17, 68)  # brows, nose, eyes, mouth: stable under a change of face shape


@dataclass(frozen=True)
class CropBox:
    """A square region ``[x0, x0+side) x [y0, y0+side)`` of the template, in pixels."""

    x0: int
    y0: int
    side: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y0 + self.side), slice(self.x0, self.x0 + self.side)

    def cut(self, image: np.ndarray) -> np.ndarray:
        return image[self.slices]

    def to_crop(self, points: np.ndarray, size: int | None = None) -> np.ndarray:
        """Template pixel coordinates -> crop coordinates (optionally of the crop resized to ``size``)."""
        p = np.asarray(points, dtype=np.float64) - (self.x0, self.y0)
        return p if size is None else p * (size / self.side)

    def to_json(self) -> list[int]:
        return [self.x0, self.y0, self.side]


def square_crop_box(face: Face, image_shape: tuple[int, ...], face_share: float) -> CropBox:
    """Square crop centred on the face where the face box takes ``face_share`` of the side.

    The square is shifted (never padded) to stay inside the image and shrunk to the image's short
    side when needed, so every pixel of the crop is real template content.
    """
    h, w = image_shape[:2]
    side = int(round(max(face.width, face.height) / face_share))
    side = max(8, min(side, h, w))
    cx, cy = face.center
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy - side / 2))
    x0 = min(max(x0, 0), w - side)
    y0 = min(max(y0, 0), h - side)
    return CropBox(x0, y0, side)


@dataclass
class AffineFit:
    """``dst ≈ src @ A.T + t`` as a 2x3 matrix, with its residual."""

    matrix: np.ndarray  # (2, 3)
    rms_error: float  # pixels, on the fitted points
    rel_error: float  # rms_error / size of the destination face

    def apply(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        return p @ self.matrix[:, :2].T + self.matrix[:, 2]


def fit_affine(src: np.ndarray, dst: np.ndarray) -> AffineFit:
    """Least-squares affine map from ``src`` to ``dst`` (N >= 3 points each)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 3:
        raise ValueError(f"need two (N>=3, 2) point sets of equal shape, got {src.shape} and {dst.shape}")
    design = np.hstack([src, np.ones((len(src), 1))])
    sol, *_ = np.linalg.lstsq(design, dst, rcond=None)  # (3, 2)
    matrix = sol.T
    residual = design @ sol - dst
    rms = float(np.sqrt((residual ** 2).sum(axis=1).mean()))
    extent = dst.max(axis=0) - dst.min(axis=0)
    size = float(np.sqrt(max(extent[0], 1e-6) * max(extent[1], 1e-6)))
    return AffineFit(matrix, rms, rms / size)


@dataclass
class LandmarkWarp:
    """Stage 1's face structure placed onto the template face."""

    landmarks: np.ndarray  # (68, 2) warped identity landmarks, in the template-face frame
    fit: AffineFit | None  # None when stage 1 gave no face and the template's landmarks were used
    source: str  # "stage1" or "template" (fallback)


def warp_landmarks(identity_lm68: np.ndarray, template_lm68: np.ndarray) -> LandmarkWarp:
    """Map the identity's 68 landmarks onto the template face (fit on the inner face points)."""
    fit = fit_affine(identity_lm68[INNER_FACE], template_lm68[INNER_FACE])
    return LandmarkWarp(fit.apply(identity_lm68), fit, "stage1")


def resize_to(image: np.ndarray, side: int) -> np.ndarray:
    """Square resize with the interpolation that suits the direction (area down, cubic up)."""
    h = image.shape[0]
    if h == side:
        return image.copy()
    interp = cv2.INTER_AREA if side < h else cv2.INTER_CUBIC
    return cv2.resize(image, (side, side), interpolation=interp)
