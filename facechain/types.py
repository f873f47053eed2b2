"""The small typed values that flow between pipeline stages.

Perception backends all return :class:`Face`; nothing downstream knows which backend made it.
Coordinates are pixels of the image the face was found in, ``x`` right and ``y`` down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Index ranges of the iBUG 68-point layout (also OpenPose's face order).
LANDMARKS68_JAW = slice(0, 17)
LANDMARKS68_RIGHT_BROW = slice(17, 22)  # image-left brow (subject's right)
LANDMARKS68_LEFT_BROW = slice(22, 27)
LANDMARKS68_NOSE = slice(27, 36)
LANDMARKS68_RIGHT_EYE = slice(36, 42)  # image-left eye
LANDMARKS68_LEFT_EYE = slice(42, 48)  # image-right eye
LANDMARKS68_MOUTH = slice(48, 68)


def five_points_from_68(lm68: np.ndarray) -> np.ndarray:
    """ArcFace-order 5 points from 68 landmarks.

    Order: image-left eye centre, image-right eye centre, nose tip, image-left mouth
    corner, image-right mouth corner (the order of insightface's ``kps``).
    """
    lm68 = np.asarray(lm68, dtype=np.float64)
    return np.stack(
        [
            lm68[LANDMARKS68_RIGHT_EYE].mean(axis=0),
            lm68[LANDMARKS68_LEFT_EYE].mean(axis=0),
            lm68[30],
            lm68[48],
            lm68[54],
        ]
    )


@dataclass
class Face:
    """One detected face and whatever the perception layer learned about it."""

    bbox: np.ndarray  # (4,) x1, y1, x2, y2
    score: float  # detector confidence (backend-specific scale, higher is better)
    kps: np.ndarray | None = None  # (5, 2), ArcFace order, see five_points_from_68
    landmarks68: np.ndarray | None = None  # (68, 2), iBUG order
    embedding: np.ndarray | None = None  # L2-normalised identity embedding
    gender: str | None = None  # "male" / "female"
    age: float | None = None
    quality: float | None = None  # 0..1, higher is better
    quality_parts: dict[str, float] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return float(self.bbox[2] - self.bbox[0])

    @property
    def height(self) -> float:
        return float(self.bbox[3] - self.bbox[1])

    @property
    def size(self) -> float:
        """Geometric mean of box width and height."""
        return float(np.sqrt(max(self.width, 0.0) * max(self.height, 0.0)))

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2])

    @property
    def eye_angle_deg(self) -> float:
        """Angle of the eye line in degrees (0 = level; positive = image-right eye lower)."""
        if self.kps is None:
            raise ValueError("face has no keypoints")
        d = self.kps[1] - self.kps[0]
        return float(np.degrees(np.arctan2(d[1], d[0])))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bbox": [round(float(v), 2) for v in self.bbox], "score": round(float(self.score), 4)}
        if self.gender is not None:
            out["gender"] = self.gender
        if self.age is not None:
            out["age"] = round(float(self.age), 1)
        if self.quality is not None:
            out["quality"] = round(float(self.quality), 4)
            out["quality_parts"] = {k: round(float(v), 4) for k, v in self.quality_parts.items()}
        return out


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two identity embeddings (1 = same direction)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


@dataclass
class Rejection:
    """A photo that was not used, and why (one line, for people)."""

    source: Path
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"source": str(self.source), "reason": self.reason}
