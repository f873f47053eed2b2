"""Find the faces of a template photo and number them left to right.

The numbering is what ``--face-index`` refers to and what ``facechain faces TEMPLATE`` shows (with a
numbered preview image). Huge templates are searched on a downscaled copy; boxes and landmarks
are scaled back to full-resolution pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..types import Face


@dataclass
class TemplateFace:
    """A face of the template, numbered left to right (by box centre)."""

    index: int
    face: Face  # full-resolution pixel coordinates, landmarks68 filled

    @property
    def size(self) -> float:
        return self.face.size

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "size": round(self.size, 1), **self.face.to_json()}


def _scaled(face: Face, s: float) -> Face:
    lm = None if face.landmarks68 is None else face.landmarks68 * s
    kps = None if face.kps is None else face.kps * s
    return Face(bbox=face.bbox * s, score=face.score, kps=kps, landmarks68=lm)


def find_template_faces(image: np.ndarray, analyzer, *, max_side: int = 2048, min_score: float = 0.3) -> list[TemplateFace]:
    """Faces with 68 landmarks, weak detections dropped, numbered left to right."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = image if scale >= 1.0 else cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                   interpolation=cv2.INTER_AREA)
    faces = [f for f in analyzer.analyze(small, landmarks=True) if f.score >= min_score]
    if scale < 1.0:
        faces = [_scaled(f, 1.0 / scale) for f in faces]
    faces.sort(key=lambda f: (float(f.center[0]), float(f.center[1])))
    return [TemplateFace(i, f) for i, f in enumerate(faces)]


def draw_numbered_faces(image: np.ndarray, faces: list[TemplateFace], min_face_size: float | None = None) -> np.ndarray:
    """A copy of ``image`` with each face boxed and numbered (faces too small to redraw in red)."""
    out = image.copy()
    h, w = out.shape[:2]
    thick = max(2, round(max(h, w) / 400))
    for tf in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in tf.face.bbox)
        small = min_face_size is not None and tf.size < min_face_size
        colour = (255, 40, 40) if small else (40, 220, 40)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        label = str(tf.index)
        scale = max(0.6, tf.size / 60)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        tx, ty = max(0, x1), max(th + base, y1 - thick)
        cv2.rectangle(out, (tx, ty - th - base), (tx + tw + 2 * thick, ty), colour, -1)
        cv2.putText(out, label, (tx + thick, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out
