"""Similarity ranking (paper section 2.4): order outputs by likeness to the template face.

Each image gets the identity embedding of its largest face, compared (cosine) with the reference
embedding. An image is *ok* when it holds exactly one reasonably sized face (``min_face_fraction``
of the image's shorter side, like the reference's 160-360 px at 512 px); others are ranked last
with a reason, never silently dropped here — the caller decides (``--strict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..types import Face, cosine_similarity

#: A face must span at least this share of the image's shorter side to count.
MIN_FACE_FRACTION = 0.15


@dataclass
class RankedImage:
    index: int  # position in the input list
    similarity: float | None  # cosine similarity of the largest face to the reference (None: no face)
    face_count: int  # faces of a reasonable size
    ok: bool
    reason: str | None = None
    face: Face | None = None  # the largest face (with embedding), when there is one

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "similarity": None if self.similarity is None else round(float(self.similarity), 4),
            "face_count": self.face_count,
            "ok": self.ok,
            "reason": self.reason,
        }


def assess_image(image: np.ndarray, reference_embedding: np.ndarray | None, analyzer, index: int = 0,
                 min_face_fraction: float = MIN_FACE_FRACTION) -> RankedImage:
    """Detect, count and compare the faces of one image."""
    img = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    faces = analyzer.analyze(img, landmarks=True, embedding=True)
    min_side = float(min(img.shape[:2]))
    sized = [f for f in faces if f.size >= min_face_fraction * min_side]
    if not faces:
        return RankedImage(index, None, 0, False, "no face found")
    largest = faces[0]
    sim = None if reference_embedding is None else cosine_similarity(largest.embedding, reference_embedding)
    if not sized:
        frac = largest.size / min_side
        return RankedImage(index, sim, 0, False, f"face too small ({frac:.0%} of the image side, need {min_face_fraction:.0%})", largest)
    if len(sized) > 1:
        return RankedImage(index, sim, len(sized), False, f"{len(sized)} faces found (need exactly one)", largest)
    return RankedImage(index, sim, 1, True, None, largest)


def rank_images(
    images: Sequence[np.ndarray],
    reference_embedding: np.ndarray | None,
    analyzer=None,
    min_face_fraction: float = MIN_FACE_FRACTION,
) -> list[RankedImage]:
    """Assess every image and sort: ok images by similarity (best first), then the flagged ones."""
    if analyzer is None:
        from ..perception import get_analyzer

        analyzer = get_analyzer()
    ref = None if reference_embedding is None else np.asarray(reference_embedding, dtype=np.float64)
    ranked = [assess_image(img, ref, analyzer, i, min_face_fraction) for i, img in enumerate(images)]
    return sort_ranked(ranked)


def sort_ranked(ranked: list[RankedImage]) -> list[RankedImage]:
    def key(r: RankedImage):
        sim = -1.0 if r.similarity is None else r.similarity
        return (0 if r.ok else 1, -sim, r.index)

    return sorted(ranked, key=key)


class SimilarityRanker:
    """Ranking as every pipeline uses it: :func:`rank_images` against a person's reference embedding."""

    def __init__(self, analyzer=None, min_face_fraction: float = MIN_FACE_FRACTION):
        self.analyzer = analyzer
        self.min_face_fraction = min_face_fraction

    def __call__(self, images: Sequence[np.ndarray], reference: np.ndarray | None) -> list[RankedImage]:
        """Best first (faces judged ok first, then by similarity; without a reference, ok ones in seed order)."""
        return rank_images(images, reference, analyzer=self.analyzer, min_face_fraction=self.min_face_fraction)
