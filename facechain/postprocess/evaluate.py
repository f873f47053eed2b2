"""``facechain eval``: how much do the portraits look like the person? Our measuring stick for likeness.

The reference is the identity's own training photos (``<identity>/dataset``, the dataset folder
named in its manifest, or the source photos listed in the dataset's ``report.json``); their
embeddings are averaged into one L2-normalised centroid. Each portrait's largest face is compared
with it (cosine similarity of dlib's 128-d embedding: same person is typically >= 0.93,
different people <= 0.88 on our test photos). Reported: face-detection rate, mean and best
similarity, and the share of portraits above ``threshold``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import options, progress
from ..errors import FacechainError, InputError
from ..identity import Identity, resolve_identity
from ..image_io import IMAGE_SUFFIXES, list_images, load_image
from ..textfiles import read_json
from ..types import cosine_similarity

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.9
MAX_SIDE = 1024  # detection runs on photos downscaled to this
_SKIP = {"contact_sheet.jpg"}


@dataclass
class ImageScore:
    path: str
    face_found: bool
    similarity: float | None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "face_found": self.face_found,
                "similarity": None if self.similarity is None else round(self.similarity, 4)}


@dataclass
class EvalReport:
    """Likeness figures for a set of portraits against one identity."""

    person: str
    threshold: float
    reference_source: str
    reference_images: int
    scores: list[ImageScore] = field(default_factory=list)
    unreadable: list[InputError] = field(default_factory=list)  # images that could not be read (skipped)

    @property
    def images(self) -> int:
        return len(self.scores)

    @property
    def detection_rate(self) -> float:
        return sum(s.face_found for s in self.scores) / max(1, len(self.scores))

    @property
    def similarities(self) -> list[float]:
        return [s.similarity for s in self.scores if s.similarity is not None]

    @property
    def mean_similarity(self) -> float | None:
        sims = self.similarities
        return float(np.mean(sims)) if sims else None

    @property
    def best_similarity(self) -> float | None:
        sims = self.similarities
        return float(max(sims)) if sims else None

    @property
    def share_above(self) -> float:
        """Share of *all* portraits (faceless ones count as misses) above the threshold."""
        return sum(1 for s in self.similarities if s >= self.threshold) / max(1, len(self.scores))

    def to_json(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
        return {
            "person": self.person, "images": self.images, "detection_rate": r(self.detection_rate),
            "mean_similarity": r(self.mean_similarity), "best_similarity": r(self.best_similarity),
            "threshold": self.threshold, "share_above_threshold": r(self.share_above),
            "reference_source": self.reference_source, "reference_images": self.reference_images,
            "per_image": [s.to_json() for s in self.scores],
            "unreadable": [{"path": e.path, "reason": e.reason} for e in self.unreadable],
        }

    def summary(self) -> str:
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        return "\n".join([
            f"person:             {self.person} (reference: {self.reference_images} photo(s) from {self.reference_source})",
            f"portraits:          {self.images}",
            f"face detection:     {self.detection_rate:.0%}",
            f"similarity mean:    {fmt(self.mean_similarity)}",
            f"similarity best:    {fmt(self.best_similarity)}",
            f"above {self.threshold:.2f}:         {self.share_above:.0%}",
        ])


def _images_in(folder: Path) -> list[Path]:
    """A prepared dataset's training images (``images/``), else the images directly in ``folder``."""
    for d in (folder / "images", folder):
        if d.is_dir():
            found = [p for p in list_images([d]) if p.name not in _SKIP and not p.name.startswith(".")]
            if found:
                return found
    return []


def _report_sources(report: Path) -> list[Path]:
    """Existing image paths named anywhere in a dataset's report.json (its accepted source photos)."""
    try:
        data = read_json(report, dict, "prepare report")
    except InputError as e:
        log.warning("ignoring %s", e)
        return []
    found: list[Path] = []

    def walk(v: Any, key: str = "") -> None:
        if isinstance(v, dict):
            if "reason" in v and key in ("rejected", "rejections"):
                return
            for k, x in v.items():
                if k not in ("rejected", "rejections"):
                    walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif isinstance(v, str) and Path(v).suffix.lower() in IMAGE_SUFFIXES:
            p = Path(v) if Path(v).is_absolute() else report.parent / v
            if p.is_file():
                found.append(p)

    walk(data)
    return list(dict.fromkeys(found))


def reference_photos(identity: Identity) -> tuple[list[Path], str]:
    """The identity's training photos and where they were found."""
    candidates: list[tuple[Path, str]] = [(identity.path / "dataset", "identity dataset")]
    ds = identity.dataset.get("path") if isinstance(identity.dataset, dict) else None
    if ds:
        ds_path = Path(ds) if Path(ds).is_absolute() else identity.path / ds
        if ds_path != identity.path / "dataset":
            candidates.append((ds_path, "dataset folder in the manifest"))
    for folder, label in candidates:
        photos = _images_in(folder)
        if photos:
            return photos, f"{label} ({folder})"
        if (folder / "report.json").is_file():
            photos = _report_sources(folder / "report.json")
            if photos:
                return photos, f"sources listed in {folder / 'report.json'}"
    if identity.template_face_path.is_file():
        return [identity.template_face_path], "template face (no training photos found)"
    return [], "nothing"


def _embed_largest(path: Path, analyzer) -> np.ndarray | None:
    img = load_image(path, max_side=MAX_SIDE)
    faces = analyzer.analyze(img, landmarks=True, embedding=True, max_faces=1)
    return faces[0].embedding if faces else None


def evaluate(
    outputs: str | Path | Sequence[str | Path],
    person: str | Path | Identity | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    quiet: bool = False,
    analyzer=None,
) -> EvalReport:
    """Face-detection rate and identity similarity of ``outputs`` (a folder or image files) vs ``person``.

    ``person``: identity name, folder or :class:`Identity` (default: the newest identity); ``threshold``:
    the similarity counted as a likeness; ``quiet``: no progress.
    """
    threshold = options.validate({"threshold": threshold})["threshold"]
    identity = person if isinstance(person, Identity) else resolve_identity(person)
    inputs = [outputs] if isinstance(outputs, (str, Path)) else list(outputs)
    for p in map(Path, inputs):
        if not p.exists():
            raise InputError(p, "not found")
    paths = [p for p in list_images(inputs) if p.name not in _SKIP]
    if not paths:
        raise InputError(inputs[0], "no images to evaluate")
    with progress.reporting(quiet=quiet):
        if analyzer is None:
            from ..perception import get_analyzer

            progress.say("loading face models")
            analyzer = get_analyzer()

        refs, source = reference_photos(identity)
        with progress.task("reference photos", total=len(refs), unit="img") as bar:
            embs = []
            for p in refs:
                emb = _embed_or_skip(p, analyzer)
                if emb is not None:
                    embs.append(emb)
                bar.update(1)
        if not embs and identity.embedding is not None:
            embs, source = [identity.embedding], "template embedding in the manifest"
        if not embs:
            raise FacechainError(f"identity '{identity.name}': no face found in its reference photos ({source}); cannot evaluate likeness")
        centroid = np.mean(np.stack(embs), axis=0)
        centroid /= np.linalg.norm(centroid) + 1e-12

        report = EvalReport(identity.name, float(threshold), source, len(embs))
        with progress.task("scoring portraits", total=len(paths), unit="img") as bar:
            for p in paths:
                try:
                    emb = _embed_largest(p, analyzer)
                except InputError as e:
                    report.unreadable.append(e)
                else:
                    sim = None if emb is None else cosine_similarity(emb, centroid)
                    report.scores.append(ImageScore(str(p), emb is not None, sim))
                bar.update(1)
    if not report.scores:  # nothing was measured: a report of zeros would look like a (bad) result
        raise NothingToEvaluateError(f"none of the {len(paths)} image(s) could be read (first: {report.unreadable[0]})")
    if report.unreadable:
        log.warning("skipped %d unreadable image(s) (first: %s)", len(report.unreadable), report.unreadable[0])
    return report


class NothingToEvaluateError(FacechainError):
    """Every image given to ``eval`` was unreadable: there is no measurement to report."""

    exit_code = 1


def _embed_or_skip(path: Path, analyzer) -> np.ndarray | None:
    try:
        return _embed_largest(path, analyzer)
    except InputError as e:
        log.warning("reference photo skipped: %s", e)
        return None
