"""Image rotation to upright (0/90/180/270 degrees), paper section 2.1.

EXIF orientation is applied when a photo is loaded; this step handles photos whose pixels are
sideways or upside down without saying so. No pretrained orientation classifier ships in a pip
package, so the offline default asks the face detector itself: the photo is scanned in all four
rotations (on a copy downscaled to ``max_side`` so that this stays cheap) and the rotation in
which the most confident face is found wins. dlib's HOG detector only finds faces within about
±40 degrees of upright, so a face found with a high score is strong evidence of the right way
up. When no rotation shows a face (a head tilted by ~45 degrees on top of a sideways photo),
the four diagonal angles are tried too; the result then carries ``tilt = 45`` and the face
rotation step levels the rest. A photo with no face anywhere keeps its orientation (and is
later rejected).

``OnnxOrientationClassifier`` is the optional learned backend: any 4-class (0/90/180/270)
image classifier exported to ONNX, resolved through the model store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..errors import reading
from ..types import Face
from .base import FaceDetector

ROTATIONS = (0, 90, 180, 270)
DIAGONALS = (45, 135, 225, 315)


def rotate_image(image: np.ndarray, rotation: float) -> np.ndarray:
    """Rotate clockwise by ``rotation`` degrees; the canvas grows to keep every pixel.

    Multiples of 90 are exact pixel moves; other angles are resampled (edges replicated).
    """
    if rotation % 90 == 0:
        k = int(rotation // 90) % 4
        return np.ascontiguousarray(np.rot90(image, k=-k)) if k else image
    m, size = rotation_canvas(image.shape, rotation)
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def rotation_canvas(shape: tuple[int, ...], rotation: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The 2x3 matrix and ``(width, height)`` of a clockwise rotation about the image centre
    onto a canvas just large enough for the whole image."""
    from .alignment import similarity_matrix

    h, w = shape[:2]
    t = math.radians(rotation)
    nw = int(math.ceil(abs(w * math.cos(t)) + abs(h * math.sin(t)) - 1e-6))
    nh = int(math.ceil(abs(w * math.sin(t)) + abs(h * math.cos(t)) - 1e-6))
    return similarity_matrix(rotation, 1.0, (w / 2, h / 2), (nw / 2, nh / 2)), (nw, nh)


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose longer side is at most ``max_side``, and the factor (small / original)."""
    h, w = image.shape[:2]
    f = min(1.0, max_side / max(h, w))
    if f >= 1.0:
        return image, 1.0
    small = cv2.resize(image, (max(int(round(w * f)), 1), max(int(round(h * f)), 1)), interpolation=cv2.INTER_AREA)
    return small, small.shape[1] / w


@dataclass
class OrientationResult:
    """How to turn a photo upright, and what the detector saw on the way.

    ``rotation``: clockwise degrees to apply (0/90/180/270); ``tilt``: 45 when the face was
    only found on a diagonal (then ``rotation + tilt`` is what to apply). ``scores``: best face
    score per angle tried (or the classifier's probability). ``faces``: detections in the
    turned, downscaled copy (empty for classifier backends); ``scale`` maps them back:
    ``bbox_full = bbox_small / scale``.
    """

    rotation: int
    scores: dict[int, float] = field(default_factory=dict)
    faces: list[Face] = field(default_factory=list)
    scale: float = 1.0
    tilt: int = 0

    @property
    def angle(self) -> int:
        """Total clockwise degrees to apply."""
        return self.rotation + self.tilt


@runtime_checkable
class OrientationModel(Protocol):
    def estimate(self, image: np.ndarray) -> OrientationResult:
        """Which clockwise rotation makes ``image`` (RGB uint8) upright."""


class DetectorOrientation:
    """Offline default: the rotation in which the face detector is most confident.

    ``margin`` keeps the photo as it is unless another rotation beats it clearly (EXIF was
    already applied, so "as loaded" is the better prior). When nothing is found on the small
    copy of a large photo, the search is repeated once at ``retry_side`` (small faces).
    """

    def __init__(self, detector: FaceDetector, max_side: int = 640, margin: float = 0.25, retry_side: int = 1280):
        self.detector = detector
        self.max_side = max_side
        self.margin = margin
        self.retry_side = retry_side

    def estimate(self, image: np.ndarray) -> OrientationResult:
        result = self._search(image, self.max_side)
        if not result.faces and max(image.shape[:2]) > self.max_side and self.retry_side > self.max_side:
            result = self._search(image, self.retry_side)
        return result

    def _search(self, image: np.ndarray, max_side: int) -> OrientationResult:
        small, scale = downscale(image, max_side)
        found: dict[int, list[Face]] = {}
        scores: dict[int, float] = {}
        for angles in (ROTATIONS, DIAGONALS):
            for angle in angles:
                faces = self.detector.detect(rotate_image(small, angle))
                found[angle] = faces
                scores[angle] = max((f.score for f in faces), default=float("-inf"))
            if any(found.values()):
                break
        best = max(scores, key=lambda r: scores[r])
        if best != 0 and scores[best] < scores[0] + self.margin:
            best = 0
        clean = {r: round(s, 4) for r, s in scores.items() if s > float("-inf")}
        return OrientationResult(best - best % 90, clean, found[best], scale, tilt=best % 90)


class OnnxOrientationClassifier:
    """Optional backend: a 4-class orientation classifier in ONNX (run on onnxruntime, CPU).

    Expected interface (the common export of such classifiers): input ``(1, 3, S, S)`` float32,
    RGB, ImageNet mean/std normalisation; output ``(1, 4)`` logits for the classes in
    ``classes`` = "how far the photo is rotated clockwise" (it is turned back by that much).
    The model file comes from ``reference`` via :class:`~facechain.models.ModelStore`.
    """

    MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

    def __init__(self, reference: str, size: int = 224, classes: tuple[int, ...] = ROTATIONS, session=None):
        self.size = size
        self.classes = classes
        if session is None:
            import onnxruntime as ort

            from ..models import ModelStore

            path = ModelStore().resolve(reference, name="orientation-classifier")
            if path.is_dir():
                onnx_files = sorted(path.glob("*.onnx"))
                if not onnx_files:
                    from ..errors import ModelNotFoundError

                    raise ModelNotFoundError("orientation-classifier", reference, "give a folder with one .onnx file or the file itself", "no .onnx file")
                path = onnx_files[0]
            with reading(path, "not a valid ONNX model"):
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.session = session

    def estimate(self, image: np.ndarray) -> OrientationResult:
        x = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        x = ((x - self.MEAN) / self.STD).transpose(2, 0, 1)[None]
        name = self.session.get_inputs()[0].name
        logits = np.asarray(self.session.run(None, {name: x})[0], dtype=np.float64).reshape(-1)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        rotated_by = self.classes[int(np.argmax(p))]
        return OrientationResult((-rotated_by) % 360, {(-c) % 360: round(float(v), 4) for c, v in zip(self.classes, p)})
