"""One photo through the paper's chain: load, upright, detect, align + crop, check, segment,
retouch, describe. A photo that cannot be used raises :class:`PhotoRejected` with a reason
for people; the run goes on with the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..image_io import load_image
from ..perception.dlib_backend import landmarks_to_face
from ..perception.orientation import DetectorOrientation, OrientationResult, downscale, rotate_image, rotation_canvas
from ..perception.segmentation import whiten_background
from ..perception.tagging import filter_identity_tags
from ..types import Face
from .align import align_and_crop, detect_near, template_crop
from .components import PrepareComponents, StepTimer
from .config import PrepareConfig


class PhotoRejected(Exception):
    """This photo is not usable; ``reason`` is one line for people."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class ProcessedPhoto:
    """A photo that passed every per-photo check (the identity check comes later, over all)."""

    source: Path
    image: np.ndarray  # the training image (resolution², RGB)
    template: np.ndarray  # level square face crop, background kept
    face: Face  # in ``image`` coordinates; embedding, gender, age, quality filled in
    angles: dict[str, float] = field(default_factory=dict)
    measures: dict[str, float] = field(default_factory=dict)  # face box measured on ``image``
    tags: list[str] = field(default_factory=list)
    source_face_px: float = 0.0


def choose_main_face(faces: list[Face], cfg: PrepareConfig) -> Face:
    """The photo's one dominant face, or a rejection.

    Faces scoring well below the best detection (dlib fires weakly on clutter) do not count as
    people; of the rest, the largest must be clearly bigger than any other.
    """
    faces = [f for f in faces if f.score >= cfg.min_detection_score]
    if not faces:
        raise PhotoRejected("no face found")
    best = max(f.score for f in faces)
    people = [f for f in faces if f.score >= min(0.5 * best, 0.5)]
    main = max(people, key=lambda f: f.size)
    rivals = [f for f in people if f is not main and f.size >= cfg.dominance_ratio * main.size]
    if rivals:
        raise PhotoRejected(f"several faces of similar size ({len(rivals) + 1} faces; the largest must be clearly dominant)")
    return main


def outside_fraction(bbox: np.ndarray, shape: tuple[int, ...], orient: OrientationResult) -> float:
    """Share of the face box (upright coordinates) that lies outside the original photo."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    box = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)
    area = max((x2 - x1) * (y2 - y1), 1e-6)
    h, w = shape[:2]
    if orient.tilt:
        m, _ = rotation_canvas(shape, orient.angle)
        photo = (np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) @ m[:, :2].T + m[:, 2]).astype(np.float32)
    else:
        uh, uw = (h, w) if orient.rotation in (0, 180) else (w, h)
        photo = np.array([[0, 0], [uw, 0], [uw, uh], [0, uh]], np.float32)
    inter, _ = cv2.intersectConvexConvex(box, photo)
    return float(np.clip(1.0 - inter / area, 0.0, 1.0))


def process_photo(path: Path, cfg: PrepareConfig, comp: PrepareComponents, timer: StepTimer) -> ProcessedPhoto:
    analyzer = comp.analyzer
    r = cfg.resolution

    with timer("load"):
        try:
            image = load_image(path, max_side=cfg.max_image_side)
        except InputError as e:
            raise PhotoRejected(e.reason) from None

    with timer("orientation"):
        orient = comp.orientation.estimate(image) if comp.orientation is not None else OrientationResult(0)
        upright = rotate_image(image, orient.angle)

    with timer("detection"):
        faces, scale = orient.faces, orient.scale
        if not isinstance(comp.orientation, DetectorOrientation):  # no detections came with the orientation
            small, scale = downscale(upright, cfg.orientation_max_side)
            faces = analyzer.detector.detect(small)
        main = choose_main_face(faces, cfg)
        main = Face(bbox=main.bbox / scale, score=main.score)
        landmarks_to_face(main, analyzer.landmark_model.landmarks68(upright, main.bbox))
        if main.size < cfg.min_face_size:
            raise PhotoRejected(f"face too small ({main.size:.0f} px, need at least {cfg.min_face_size})")
        cut = outside_fraction(main.bbox, image.shape, orient)
        if cut > cfg.max_face_outside:
            raise PhotoRejected(f"face cut off at the image edge ({cut:.0%} of it outside the photo)")

    with timer("alignment"):
        aligned = align_and_crop(upright, main, analyzer, r, cfg.face_size, cfg.face_center_y)
        if aligned is None:
            raise PhotoRejected("face lost after alignment (not detectable once levelled)")
        crop, face = aligned.crop, aligned.face

    with timer("quality"):
        q = comp.quality.assess(crop, face, aligned.source_face_px)
        face.quality, face.quality_parts = q.score, q.parts
        sharp = q.parts.get("sharpness", 1.0)
        if sharp < cfg.blur_threshold:
            raise PhotoRejected(f"too blurred (sharpness {sharp:.2f}, need at least {cfg.blur_threshold:.2f})")

    with timer("identity"):
        face.embedding = analyzer.embedder.embed(crop, face)
        face.gender, face.age = analyzer.attribute_model.predict(crop, face)

    with timer("segmentation"):
        mask = comp.segmenter.segment(crop, face) if comp.segmenter is not None else None

    with timer("retouch"):
        out = comp.retoucher.retouch(crop, face) if comp.retoucher is not None else crop
        if mask is not None:
            out = whiten_background(out, mask)

    with timer("verify"):
        final = detect_near(out, np.array([r / 2.0, cfg.face_center_y * r]), analyzer)
        if final is None:
            raise PhotoRejected("face no longer detectable after background removal")
        measures = {
            "size": final.size / r,
            "center_x": float(final.center[0]) / r,
            "center_y": float(final.center[1]) / r,
            "eye_angle": final.eye_angle_deg,
        }

    with timer("tagging"):
        tags = filter_identity_tags(comp.tagger.tag(out, final)) if comp.tagger is not None else []

    with timer("template"):
        template = template_crop(upright, aligned, cfg.template_min_size)

    angles = {"orientation": float(orient.rotation), "tilt": float(orient.tilt), "face_rotation": aligned.angle}
    angles["total"] = (angles["orientation"] + angles["tilt"] + angles["face_rotation"] + 180.0) % 360.0 - 180.0
    return ProcessedPhoto(Path(path), out, template, face, angles, measures, tags, aligned.source_face_px)
