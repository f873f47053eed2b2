"""Everything try-on learns about the model photo before a diffusion model is loaded.

The face the identity goes into, the body pose, the hands and the garment mask. All of it runs
offline on CPU in about a second, so every user mistake (no face, no person, a mask of the wrong
size, a mask that covers almost nothing or almost everything) is reported before minutes of
model loading. A missing body-pose or hand model is not a mistake: the step is skipped and the
inputs say so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import InputError, ModelNotFoundError
from ...pose.hands import Hand, wrist_search_regions
from ...pose.skeleton import BodyPose
from ...types import Face
from .garment import GarmentMask, check_garment

log = logging.getLogger(__name__)


@dataclass
class TryOnInputs:
    photo: np.ndarray  # (H, W, 3) uint8: the model photo
    face: Face  # the face the identity goes into (68 landmarks)
    bodies: list[BodyPose]  # the person's OpenPose body (empty when no body-pose model / no body)
    hands: list[Hand]
    garment: GarmentMask
    label: str = "photo"  # the photo's file name, for messages
    steps: dict[str, str] = field(default_factory=dict)  # "body_pose", "hands", "garment": "ran" / "skipped: ..."
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class TryOnPerception:
    """Face, body pose, hands and garment of a model photo (components injectable for tests).

    Faces are searched on a copy of at most ``detect_max_side`` pixels: a model photo's face is
    large, and dlib's HOG detector costs ~10x more at 2048 px than at 1280 px.
    """

    def __init__(self, analyzer=None, *, body_pose=None, hand_estimator=None, garment_segmenter=None,
                 min_face_size: int = 48, detect_max_side: int = 1280):
        self.analyzer = analyzer
        self.body_pose = body_pose
        self.hand_estimator = hand_estimator
        self.garment_segmenter = garment_segmenter
        self.min_face_size = min_face_size
        self.detect_max_side = detect_max_side

    def __call__(self, photo: np.ndarray, *, garment: GarmentMask | None = None, label: str = "photo") -> TryOnInputs:
        inputs = TryOnInputs(photo, None, [], [], None, label)  # type: ignore[arg-type]
        with _timer(inputs, "face"):
            inputs.face = self.find_face(photo, label)
        with _timer(inputs, "body_pose"):
            landmarks = self.find_body(inputs)
        with _timer(inputs, "hands"):
            self.find_hands(inputs, landmarks)
        with _timer(inputs, "segmentation"):
            if garment is None:
                garment = self.segmenter()(photo, inputs.face, inputs.hands, label)
            elif garment.face_box is None:
                garment.face_box = inputs.face.bbox.copy()
            check_garment(garment, label)
        inputs.garment = garment
        inputs.steps["garment"] = f"ran ({garment.method})"
        if garment.person is not None:  # other people's hands are background
            inputs.hands = [h for h in inputs.hands if _inside(garment.person, h.points.mean(axis=0))]
        return inputs

    # -- steps --------------------------------------------------------------------------------
    def find_face(self, photo: np.ndarray, label: str) -> Face:
        """The largest face: the one the identity goes into."""
        from ...inpainting.template_faces import find_template_faces

        faces = find_template_faces(photo, self._analyzer(), max_side=self.detect_max_side)
        if not faces:
            raise InputError(label, "no face found to put the identity in (the model photo needs a visible, "
                                    "roughly frontal face)")
        face = max(faces, key=lambda tf: tf.size).face
        if face.size < self.min_face_size:
            raise InputError(label, f"the face is too small to put the identity in ({face.size:.0f} px, need at least "
                                    f"{self.min_face_size} px); use a larger photo")
        return face

    def find_body(self, inputs: TryOnInputs) -> np.ndarray | None:
        """The person's OpenPose body; returns its 33 BlazePose landmarks (hand search) or None."""
        try:
            estimator = self.body_pose or _default_body_pose()
            poses = list(estimator.estimate_detailed(inputs.photo, faces=[inputs.face]))
        except ModelNotFoundError as e:
            self._skip(inputs, "body_pose", f"body-pose model unavailable ({_first_line(e)})")
            return None
        if not poses:
            inputs.steps["body_pose"] = "ran (no body found)"
            return None
        centre = inputs.face.center
        pose = min(poses, key=lambda p: float(np.linalg.norm(p.landmarks.points[0] - centre)))
        inputs.bodies = [pose.body]
        inputs.steps["body_pose"] = "ran"
        return pose.landmarks

    def find_hands(self, inputs: TryOnInputs, landmarks: Any) -> None:
        """21-point hands: palms in the whole photo, and again around the body's wrists."""
        try:
            estimator = self.hand_estimator or _default_hands()
            search = [] if landmarks is None else wrist_search_regions(landmarks.points, landmarks.visibility)
            inputs.hands = list(estimator.estimate(inputs.photo, search))
        except ModelNotFoundError as e:
            self._skip(inputs, "hands", f"hand model unavailable ({_first_line(e)})")
            return
        inputs.steps["hands"] = f"ran ({len(inputs.hands)} found)"

    def segmenter(self):
        if self.garment_segmenter is None:
            from .garment import get_garment_segmenter

            self.garment_segmenter = get_garment_segmenter("offline")
        return self.garment_segmenter

    def _analyzer(self):
        if self.analyzer is None:
            from ...perception import get_analyzer

            self.analyzer = get_analyzer("hog")
        return self.analyzer

    @staticmethod
    def _skip(inputs: TryOnInputs, step: str, why: str) -> None:
        log.warning("%s: %s skipped: %s", inputs.label, step, why)
        inputs.steps[step] = f"skipped: {why}"
        inputs.warnings.append(f"{step} skipped: {why}")


def _default_body_pose():
    from ...pose.estimate import get_body_pose_estimator

    return get_body_pose_estimator()


def _default_hands():
    from ...pose.hands import get_hand_estimator

    return get_hand_estimator()


def _inside(mask: np.ndarray, point: np.ndarray) -> bool:
    x, y = int(round(float(point[0]))), int(round(float(point[1])))
    h, w = mask.shape
    return 0 <= x < w and 0 <= y < h and bool(mask[y, x])


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


class _timer:
    def __init__(self, inputs: TryOnInputs, name: str):
        self.inputs, self.name = inputs, name

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.inputs.timings[self.name] = self.inputs.timings.get(self.name, 0.0) + time.perf_counter() - self.start
