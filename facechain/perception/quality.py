"""Face quality: used to reject bad photos and to choose the template face (paper: FQA).

The offline default, :class:`ClassicalFaceQuality`, scores four things that make a training
photo good, each in 0..1, and combines them with a weighted geometric mean (one bad part pulls
the score down):

- ``sharpness``: variance of the Laplacian of the face, measured after resizing the face to a
  fixed 128 px so that big and small faces are comparable; ``v / (v + 100)``. In-focus photos
  here score 0.65-0.87; a Gaussian blur of 2 px (at that scale) brings it under 0.25.
- ``size``: the face's side in the original photo, ``min(1, px / 200)`` (upscaled faces are soft).
- ``frontal``: the nose's position between the jaw's two sides (0.5 = looking at the camera).
- ``exposure``: the face's mean brightness near mid-grey and few clipped pixels.

:class:`FQAQuality` is the paper's learned model (ModelScope ``fqa-quality``), optional.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..types import Face

WEIGHTS = {"sharpness": 0.35, "size": 0.25, "frontal": 0.2, "exposure": 0.2}


@dataclass
class QualityReport:
    score: float
    parts: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class FaceQualityModel(Protocol):
    def assess(self, image: np.ndarray, face: Face, source_face_px: float | None = None) -> QualityReport:
        """Quality of ``face`` in ``image``; ``source_face_px``: its side in the original photo."""


def face_region(image: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """The inner face (brows to chin, jaw side to side) as a crop."""
    h, w = image.shape[:2]
    x0, x1 = int(max(lm[:, 0].min(), 0)), int(min(lm[:, 0].max(), w))
    y0, y1 = int(max(lm[17:27, 1].min(), 0)), int(min(lm[:, 1].max(), h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return image[:0, :0]
    return image[y0:y1, x0:x1]


def sharpness(image: np.ndarray, lm: np.ndarray, size: int = 128) -> float:
    """Laplacian variance of the face resized to ``size`` px (raw, unbounded)."""
    region = face_region(image, lm)
    if region.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def frontality(lm: np.ndarray) -> float:
    """1 when the nose sits halfway between the jaw's sides, 0 at a strong profile."""
    left, right, nose = lm[0:3, 0].mean(), lm[14:17, 0].mean(), lm[30, 0]
    r = (nose - left) / max(right - left, 1e-6)
    return float(np.clip(1.0 - abs(r - 0.5) * 4.0, 0.0, 1.0))


def exposure(image: np.ndarray, lm: np.ndarray) -> float:
    region = face_region(image, lm)
    if region.size == 0:
        return 0.0
    y = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    mean_term = np.clip(1.0 - max(0.0, abs(float(y.mean()) - 0.5) - 0.15) / 0.3, 0.0, 1.0)
    clipped = float(((y < 0.02) | (y > 0.98)).mean())
    return float(mean_term * (1.0 - min(1.0, 4.0 * clipped)))


def combine(parts: dict[str, float], weights: dict[str, float] = WEIGHTS) -> float:
    total = sum(weights[k] for k in parts if k in weights)
    logs = sum(weights[k] * np.log(max(parts[k], 1e-4)) for k in parts if k in weights)
    return float(np.exp(logs / total)) if total else 0.0


class ClassicalFaceQuality:
    """Offline default (see the module docstring). Needs the face's 68 landmarks."""

    def __init__(self, sharpness_scale: float = 100.0, full_size_px: float = 200.0):
        self.sharpness_scale = sharpness_scale
        self.full_size_px = full_size_px

    def assess(self, image: np.ndarray, face: Face, source_face_px: float | None = None) -> QualityReport:
        if face.landmarks68 is None:
            raise ValueError("face quality needs 68 landmarks")
        lm = face.landmarks68
        v = sharpness(image, lm)
        px = face.size if source_face_px is None else source_face_px
        parts = {
            "sharpness": v / (v + self.sharpness_scale),
            "size": float(min(1.0, px / self.full_size_px)),
            "frontal": frontality(lm),
            "exposure": exposure(image, lm),
        }
        return QualityReport(combine(parts), {k: round(val, 4) for k, val in parts.items()})


class FQAQuality:
    """The paper's face quality model: FQA on ModelScope (``fqa-quality``), optional backend.

    Its score replaces the combined score; the classical parts are still reported (and the
    sharpness part still drives the "too blurred" rejection).
    """

    MODEL_NAME = "fqa-quality"

    def __init__(self, reference: str | None = None):
        from ..models.modelscope_pipelines import modelscope_pipeline

        self._pipe, keys = modelscope_pipeline(self.MODEL_NAME, "face_quality_assessment", reference)
        self._key = keys.SCORES
        self._classical = ClassicalFaceQuality()

    def assess(self, image: np.ndarray, face: Face, source_face_px: float | None = None) -> QualityReport:
        base = self._classical.assess(image, face, source_face_px)
        x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
        crop = image[max(y0, 0):y1, max(x0, 0):x1]
        out = self._pipe(cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR))
        scores = out.get(self._key) if out else None
        if not scores:
            return base
        return QualityReport(float(scores[0]), {**base.parts, "fqa": round(float(scores[0]), 4)})


def get_quality_model(kind: str, reference: str | None = None) -> FaceQualityModel:
    """``classical`` (offline default) or ``fqa`` (ModelScope)."""
    if kind == "classical":
        return ClassicalFaceQuality()
    if kind == "fqa":
        return FQAQuality(reference)
    raise ValueError(f"unknown quality model {kind!r} (classical or fqa)")
