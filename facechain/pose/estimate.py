"""Offline body-pose estimation: Google's BlazePose (full) under the ai-edge-litert TFLite runtime.

Why this model: it is the only pretrained body-pose model that works offline here (its files
come from the mediapipe 0.10.21 wheel on PyPI, see :mod:`.model_files`), and ``ai-edge-litert``
runs it with numpy 2 where mediapipe itself cannot. The OpenPose body model the ControlNet was
trained with is not available offline; BlazePose's 33 landmarks map onto its 18 keypoints
(:meth:`~.skeleton.BodyPose.from_mediapipe33`).

The story of :meth:`BodyPoseEstimator.estimate`, per image:

1. the person detector finds people (letterboxed 224 px input) → one rotated ROI each;
2. faces the caller already found (dlib) but no detected person explains get an ROI derived
   from the face box (a body is centred below the face; its size follows the face size);
3. each ROI is cropped to 256 px and the landmark model predicts 33 landmarks; with
   ``refine`` the crop is redone once around the model's own alignment points, as MediaPipe
   does between video frames (steadier on a single photo, costs a second pass);
4. landmarks go back to image pixels and become OpenPose 18-point :class:`BodyPose` values.

Not done (MediaPipe extras): heat-map refinement of landmark positions and temporal smoothing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError, ModelNotFoundError, reading
from ..types import Face
from . import blazepose as bp
from . import model_files
from .skeleton import BodyPose

log = logging.getLogger(__name__)

# A body ROI derived from a face box (dlib box height h, centre c): hip centre ≈ c + 3.9 h
# straight down and a whole-body radius ≈ 4.8 h. Medians of the person detector's own
# alignment points relative to dlib faces on the ten test portraits (ranges 2.9-4.6 and 3.5-5.7).
FACE_TO_HIP = 3.9
FACE_TO_RADIUS = 4.8


@dataclass
class PoseEstimate:
    """One person: BlazePose landmarks in image pixels and the OpenPose body made from them."""

    body: BodyPose
    landmarks: bp.Landmarks
    roi: bp.Roi
    source: str  # "detector" or "face"


def _load_interpreter(path: Path, num_threads: int | None, name: str = model_files.MODEL_NAME):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ModelNotFoundError(name, model_files.REFERENCE, "install the TFLite runtime: pip install ai-edge-litert",
                                 "ai-edge-litert is not installed") from None
    with reading(path, "not a valid TFLite model (delete it and run 'facechain models download body-pose')"):
        interp = Interpreter(model_path=str(path), num_threads=num_threads)
        with _quiet_native_stderr():  # TFLite prints "INFO: Created ... XNNPACK delegate" from C++
            interp.allocate_tensors()
    return interp


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence output written straight to file descriptor 2 (native libraries) for a moment."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced by a non-file object
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class TfliteModel:
    """A TFLite model with one image input; returns its outputs by tensor name.

    Shared by every offline mediapipe model (body pose, hands, selfie segmentation); ``name`` is
    the model group a missing runtime is reported for."""

    def __init__(self, path: Path, num_threads: int | None, name: str = model_files.MODEL_NAME):
        self.interp = _load_interpreter(path, num_threads, name)
        self.input_index = self.interp.get_input_details()[0]["index"]
        self.outputs = {d["name"]: d["index"] for d in self.interp.get_output_details()}

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.interp.set_tensor(self.input_index, np.ascontiguousarray(x[None], dtype=np.float32))
        self.interp.invoke()
        return {name: self.interp.get_tensor(i).copy() for name, i in self.outputs.items()}


def face_roi(face: Face | np.ndarray) -> bp.Roi:
    """A whole-body ROI guessed from a face box (upright, tilted with the eye line when known)."""
    bbox = np.asarray(face.bbox if isinstance(face, Face) else face, dtype=np.float64)
    h = float(bbox[3] - bbox[1])
    centre = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2])
    roll = 0.0
    if isinstance(face, Face) and face.kps is not None:
        roll = math.radians(face.eye_angle_deg)
    down = np.array([-math.sin(roll), math.cos(roll)])
    hip = centre + FACE_TO_HIP * h * down
    return bp.roi_from_alignment_points(hip, hip - FACE_TO_RADIUS * h * down)


def _explains_face(pose: bp.Landmarks, face_box: np.ndarray) -> bool:
    """Whether a pose's nose or eyes fall inside the face box (grown by a third)."""
    x1, y1, x2, y2 = face_box
    mx, my = (x2 - x1) / 3, (y2 - y1) / 3
    head = pose.points[[0, 2, 5]]
    inside = (head[:, 0] >= x1 - mx) & (head[:, 0] <= x2 + mx) & (head[:, 1] >= y1 - my) & (head[:, 1] <= y2 + my)
    return bool(inside.any())


def _faces_camera(pose: bp.Landmarks) -> bool:
    """A person whose face was detected faces the camera: eyes and shoulders in the same order.

    (Mirrored orders mean a person seen from behind, which cannot have a detected face.)
    """
    eyes = pose.points[2, 0] - pose.points[5, 0]  # left eye minus right eye, x
    shoulders = pose.points[11, 0] - pose.points[12, 0]
    return bool(eyes * shoulders > 0)


class BodyPoseEstimator:
    """BlazePose person detector + full landmark model → OpenPose 18-point bodies.

    ``model_dir`` holds ``pose_detection.tflite`` and ``pose_landmark_full.tflite`` (default:
    found by :func:`.model_files.locate`; a one-line :class:`ModelNotFoundError` naming
    ``facechain models download body-pose`` when absent).
    """

    def __init__(
        self,
        model_dir: Path | str | None = None,
        *,
        min_detection_score: float = 0.5,
        min_pose_score: float = 0.5,
        min_visibility: float = 0.5,
        max_people: int = 8,
        refine: bool = True,
        num_threads: int | None = None,
    ):
        self.model_dir = Path(model_dir) if model_dir else model_files.require()
        missing = [n for n in model_files.FILES if not (self.model_dir / n).is_file()]
        if missing:
            raise ModelNotFoundError(model_files.MODEL_NAME, str(self.model_dir), model_files.HOW_TO_GET, f"{missing[0]} not found")
        self.detector = TfliteModel(self.model_dir / "pose_detection.tflite", num_threads)
        self.landmarker = TfliteModel(self.model_dir / "pose_landmark_full.tflite", num_threads)
        self.anchors = bp.ssd_anchor_centers()
        self.min_detection_score = min_detection_score
        self.min_pose_score = min_pose_score
        self.min_visibility = min_visibility
        self.max_people = max_people
        self.refine = refine

    # -- public ---------------------------------------------------------------------------
    def estimate(self, image_rgb: np.ndarray, faces: Sequence[Face | np.ndarray] | None = None) -> list[BodyPose]:
        """OpenPose bodies of the people in an RGB uint8 image, largest first."""
        return [p.body for p in self.estimate_detailed(image_rgb, faces)]

    def estimate_detailed(self, image_rgb: np.ndarray, faces: Sequence[Face | np.ndarray] | None = None) -> list[PoseEstimate]:
        """Like :meth:`estimate`, keeping the 33 BlazePose landmarks, the ROI and its source."""
        image = self._check_image(image_rgb)
        found: list[PoseEstimate] = []
        for det in self.detect_people(image):
            self._add(found, image, det.roi(), "detector")
        for face in faces or ():
            box = np.asarray(face.bbox if isinstance(face, Face) else face, dtype=np.float64)
            if not any(_explains_face(p.landmarks, box) for p in found):
                self._add(found, image, face_roi(face), "face", require_face=box)
        found.sort(key=lambda p: -p.roi.size)
        return found[: self.max_people]

    def detect_people(self, image_rgb: np.ndarray) -> list[bp.PersonDetection]:
        """The person detector alone: boxes and alignment keypoints in image pixels."""
        h, w = image_rgb.shape[:2]
        patch, to_image = bp.crop(image_rgb, bp.whole_image_roi(w, h), bp.DETECTOR_SIZE)
        out = self.detector(patch.astype(np.float32) / 127.5 - 1.0)
        scores, boxes, kps = bp.decode_detections(out["Identity"], out["Identity_1"], self.anchors, self.min_detection_score)
        people = []
        for score, box, keypoints in bp.weighted_nms(scores, boxes, kps, max_results=self.max_people):
            corners = bp.apply_affine(to_image, box.reshape(2, 2) * bp.DETECTOR_SIZE).ravel()
            people.append(bp.PersonDetection(score, corners, bp.apply_affine(to_image, keypoints * bp.DETECTOR_SIZE)))
        return people

    def landmarks_in(self, image_rgb: np.ndarray, roi: bp.Roi) -> bp.Landmarks | None:
        """The landmark model on one ROI; None when it says no person is there."""
        patch, to_image = bp.crop(image_rgb, roi, bp.LANDMARK_SIZE)
        out = self.landmarker(patch.astype(np.float32) / 255.0)
        flag = float(np.ravel(out["Identity_1"])[0])  # already a probability
        if flag < self.min_pose_score:
            return None
        return bp.decode_landmarks(out["Identity"][0], flag, to_image)

    # -- internals ------------------------------------------------------------------------
    @staticmethod
    def _check_image(image_rgb: np.ndarray) -> np.ndarray:
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError("image", f"expected an RGB uint8 array (H, W, 3), got {image.dtype} {image.shape}")
        return np.ascontiguousarray(image)

    def _add(self, found: list[PoseEstimate], image: np.ndarray, roi: bp.Roi, source: str,
             require_face: np.ndarray | None = None) -> None:
        lms = self.landmarks_in(image, roi)
        if lms is not None and self.refine:
            refined = self.landmarks_in(image, lms.next_roi())
            if refined is not None:
                roi, lms = lms.next_roi(), refined
            elif require_face is not None:
                return  # a guessed crop that does not survive re-centring is not a person
        if lms is None:
            return
        if require_face is not None and not (_explains_face(lms, require_face) and _faces_camera(lms)):
            return  # the crop locked onto somebody else, or onto something that is no body
        if any(self._same_person(lms, p.landmarks) for p in found):
            return
        h, w = image.shape[:2]
        body = BodyPose.from_mediapipe33(lms.points, np.minimum(lms.visibility, lms.presence),
                                         image_size=(w, h), min_visibility=self.min_visibility)
        found.append(PoseEstimate(body, lms, roi, source))

    @staticmethod
    def _same_person(a: bp.Landmarks, b: bp.Landmarks) -> bool:
        shoulder = max(np.linalg.norm(a.points[11] - a.points[12]), 1.0)
        return float(np.linalg.norm(a.points[0] - b.points[0])) < 0.25 * shoulder


@functools.lru_cache(maxsize=2)
def _cached_estimator(model_dir: str) -> BodyPoseEstimator:
    return BodyPoseEstimator(model_dir)


def get_body_pose_estimator(model_dir: Path | str | None = None) -> BodyPoseEstimator:
    """A process-wide estimator (models load once, ~0.1 s)."""
    return _cached_estimator(str(Path(model_dir) if model_dir else model_files.require()))
