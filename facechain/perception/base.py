"""Protocols each perception backend implements. Images are RGB uint8 ``(H, W, 3)`` arrays."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..types import Face


@runtime_checkable
class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces with ``bbox`` and ``score`` (others may be filled too)."""


@runtime_checkable
class LandmarkModel(Protocol):
    def landmarks68(self, image: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """(68, 2) iBUG-order landmarks for the face in ``bbox``."""


@runtime_checkable
class IdentityEmbedder(Protocol):
    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """L2-normalised identity embedding of ``face`` (needs its landmarks)."""


@runtime_checkable
class AttributeModel(Protocol):
    def predict(self, image: np.ndarray, face: Face) -> tuple[str, float]:
        """(gender "male"/"female", age in years)."""
