"""Adapters to the post-processing steps the inpainting pipeline reuses: face fusion and ranking.

Both come from :mod:`facechain.postprocess` (no copies here); the adapters fix the arguments the
pipeline needs (the person's face prepared once, the shared analyzer) and return small values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Face


@dataclass
class Fused:
    image: np.ndarray
    fused: bool
    reason: str = ""


class FaceFuser:
    """:func:`facechain.postprocess.fusion.fuse_face` with the person's face detected once."""

    def __init__(self, analyzer, strength: float = 1.0, fuse_fn=None):
        self.analyzer = analyzer
        self.strength = strength
        self._fn = fuse_fn

    def __call__(self, target: np.ndarray, source: np.ndarray, source_face: Face | None = None) -> Fused:
        if self._fn is None:
            from ..postprocess.fusion import fuse_face

            self._fn = fuse_face
        res = self._fn(target, source, strength=self.strength, analyzer=self.analyzer, source_face=source_face)
        return Fused(np.asarray(res.image, dtype=np.uint8), bool(res.fused), str(res.reason or ""))


@dataclass
class Ranked:
    index: int
    similarity: float | None
    ok: bool
    reason: str = ""


class SimilarityRanker:
    """:func:`facechain.postprocess.ranking.rank_images` against the person's reference embedding."""

    def __init__(self, analyzer, rank_fn=None):
        self.analyzer = analyzer
        self._fn = rank_fn

    def __call__(self, images: list[np.ndarray], reference: np.ndarray | None) -> list[Ranked]:
        """Best first (faces judged ok first, then by similarity); seed order without a reference."""
        if reference is None:
            return [Ranked(i, None, False, "no reference embedding for this person") for i in range(len(images))]
        if self._fn is None:
            from ..postprocess.ranking import rank_images

            self._fn = rank_images
        return [Ranked(int(r.index), None if r.similarity is None else float(r.similarity), bool(r.ok), str(r.reason or ""))
                for r in self._fn(images, reference, analyzer=self.analyzer)]
