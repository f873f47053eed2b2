"""Decisions over all photos: whose photos these are, which face is the template, which tags recur."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..perception import FaceAnalyzer
from ..perception.attributes import PersonAttributes, combine_attributes
from ..types import Rejection
from .photo import ProcessedPhoto


@dataclass
class Selection:
    """What the whole set decided: the photos kept, who the person is, the template face."""

    kept: list[ProcessedPhoto]
    similarity: dict[int, float]  # id(photo) -> mean similarity to the rest of the group
    person: PersonAttributes
    trigger_word: str
    template: ProcessedPhoto
    template_checked: bool  # the detector finds exactly one face in the template crop
    template_embedding: np.ndarray
    tags_frequent: list[str]


def select(photos: Sequence[ProcessedPhoto], analyzer: FaceAnalyzer, identity_threshold: float, trigger: str | None = None) -> tuple[Selection | None, list[Rejection]]:
    """Decisions over all photos; ``None`` when nobody is left. Also returns the identity outliers."""
    split = split_by_identity(photos, identity_threshold)
    outliers = [
        Rejection(p.source, f"a different person than the majority (similarity {s:.2f} to the others, need {identity_threshold:.2f})")
        for p, s in split.outliers
    ]
    if not split.kept:
        return None, outliers
    kept = split.kept
    person = combine_attributes([p.face.gender for p in kept], [p.face.age for p in kept], [p.face.quality for p in kept])
    template, checked = choose_template(kept, analyzer)
    found = analyzer.analyze(template.template, embedding=True)
    embedding = found[0].embedding if found else template.face.embedding
    return (
        Selection(kept, split.similarity, person, trigger or person.trigger_word, template, checked, embedding, frequent_tags([p.tags for p in kept])),
        outliers,
    )


@dataclass
class IdentitySplit:
    kept: list[ProcessedPhoto]
    outliers: list[tuple[ProcessedPhoto, float]]  # photo, its similarity to the group
    similarity: dict[int, float]  # id(photo) -> mean similarity to the other group members


def split_by_identity(photos: Sequence[ProcessedPhoto], threshold: float) -> IdentitySplit:
    """Keep the majority person; photos of anybody else are outliers.

    The anchor is the photo that matches (cosine ≥ ``threshold``) the most others (ties: the
    higher summed similarity, then quality); its matches form the group. A photo stays when its
    mean similarity to the *other* group members reaches the threshold. With two photos of two
    different people there is no majority: the better-quality photo's person is kept.
    """
    photos = list(photos)
    if len(photos) < 2:
        return IdentitySplit(photos, [], {})
    emb = np.stack([p.face.embedding / np.linalg.norm(p.face.embedding) for p in photos])
    sim = emb @ emb.T
    support = (sim >= threshold).sum(axis=1) - 1
    quality = np.array([p.face.quality or 0.0 for p in photos])
    anchor = max(range(len(photos)), key=lambda i: (support[i], sim[i].sum(), quality[i]))
    group = [i for i in range(len(photos)) if sim[anchor, i] >= threshold]
    kept, outliers, sims = [], [], {}
    for i, p in enumerate(photos):
        others = [j for j in group if j != i]
        s = float(sim[i, others].mean()) if others else 1.0
        sims[id(p)] = s
        (kept.append(p) if s >= threshold else outliers.append((p, s)))
    return IdentitySplit(kept, outliers, sims)


def choose_template(photos: Sequence[ProcessedPhoto], analyzer: FaceAnalyzer) -> tuple[ProcessedPhoto, bool]:
    """The best-quality photo whose template crop the detector sees exactly one face in.

    Returns the photo and whether that check passed (False: none passed; the best is used).
    """
    ranked = sorted(photos, key=lambda p: p.face.quality or 0.0, reverse=True)
    for p in ranked:
        if len(analyzer.detector.detect(p.template)) == 1:
            return p, True
    return ranked[0], False


def frequent_tags(tag_lists: Sequence[Sequence[str]], share: float = 0.5) -> list[str]:
    """Tags present in at least ``share`` of the images, most frequent first."""
    if not tag_lists:
        return []
    counts = Counter(t for tags in tag_lists for t in dict.fromkeys(tags))
    need = share * len(tag_lists)
    return [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= need]
