"""The portrait's face mesh: MediaPipe's face detector + 468-point face landmark model, offline.

Both TFLite files come from the mediapipe 0.10.21 wheel (``facechain models download face-mesh``,
:mod:`facechain.pose.model_files`) and run under ``ai-edge-litert``, like body pose. The
arithmetic around them follows MediaPipe's published graph options:

* **detector** (``face_detection_short_range.tflite``): the image letterboxed into 128×128 RGB in
  [-1, 1]; 896 SSD anchors (strides 8, 16, 16, 16) each predict a logit and 16 numbers: box
  centre and size, then 6 keypoints (right eye, left eye, nose tip, mouth, right ear, left ear),
  in 128-px units relative to the anchor. Sigmoid scores ≥ 0.5, weighted NMS at IoU 0.3.
* **ROI**: the detection box, rotated so the eye line is level, squared on its long side and
  grown 1.5×.
* **mesh** (``face_landmark.tflite``): the ROI warped to 192×192 RGB in [0, 1]; 468 × (x, y, z)
  in crop pixels and a face-presence logit. As MediaPipe does between video frames, the crop is
  redone once around the mesh itself (eye corners 33/263 level), which steadies the points.

The 478-point "attention" variant in the same wheel needs MediaPipe's custom TFLite ops and
does not load under ai-edge-litert, hence the 468-point model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ModelNotFoundError
from ...pose import blazepose as bp
from ...pose import model_files
from ...pose.estimate import TfliteModel
from ...image_io import rgb_array as _check_image

MODEL_GROUP = "face-mesh"
DETECTOR_SIZE = 128
MESH_SIZE = 192
NUM_POINTS = 468
ROI_SCALE = 1.5
_STRIDES = (8, 16, 16, 16)

# --- MediaPipe canonical face-mesh indices (the topology every 468-point mesh shares) ----------
# "right"/"left" are the subject's: the right eye is on the image's left.
LIPS_UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
MOUTH_CORNERS = (61, 291)
INNER_MOUTH_CORNERS = (78, 308)
RIGHT_EYE_UPPER = (246, 161, 160, 159, 158, 157, 173)
RIGHT_EYE_LOWER = (7, 163, 144, 145, 153, 154, 155)
LEFT_EYE_UPPER = (466, 388, 387, 386, 385, 384, 398)
LEFT_EYE_LOWER = (249, 390, 373, 374, 380, 381, 382)
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
CHIN = 152
FACE_SIDES = (234, 454)  # the outline's widest points, at ear level
LOWER_LIP_BOTTOM = 17
NOSE_TIP = 1
FOREHEAD = 10


@dataclass
class FaceMesh:
    """One face: detector box and score, and its 468 mesh points in image pixels.

    ``points[:, 2]`` is relative depth in the same pixel units (smaller = nearer the camera).
    """

    box: np.ndarray  # (4,) x1, y1, x2, y2
    score: float
    points: np.ndarray  # (468, 3)
    presence: float

    @property
    def xy(self) -> np.ndarray:
        return self.points[:, :2]

    @property
    def mesh_box(self) -> np.ndarray:
        lo, hi = self.xy.min(0), self.xy.max(0)
        return np.array([lo[0], lo[1], hi[0], hi[1]])

    @property
    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(image-left eye, image-right eye) centres."""
        right = self.xy[list(RIGHT_EYE_CORNERS)].mean(0)
        left = self.xy[list(LEFT_EYE_CORNERS)].mean(0)
        return right, left

    @property
    def interocular(self) -> float:
        a, b = self.eye_centres
        return float(np.linalg.norm(b - a))

    def five_points(self) -> np.ndarray:
        """ArcFace-order 5 points (image-left eye, image-right eye, nose tip, mouth corners)."""
        a, b = self.eye_centres
        return np.stack([a, b, self.xy[NOSE_TIP], self.xy[MOUTH_CORNERS[0]], self.xy[MOUTH_CORNERS[1]]])

    def scaled(self, factor: float, offset: tuple[float, float] = (0.0, 0.0)) -> "FaceMesh":
        """The same mesh after the image was cropped at ``offset`` and resized by ``factor``."""
        off = np.array([offset[0], offset[1], 0.0])
        pts = (self.points - off) * factor
        box = (self.box - np.array([*offset, *offset])) * factor
        return FaceMesh(box, self.score, pts, self.presence)


@dataclass
class FaceDetection:
    score: float
    box: np.ndarray  # (4,) image pixels
    keypoints: np.ndarray  # (6, 2) image pixels

    def roi(self) -> bp.Roi:
        right_eye, left_eye = self.keypoints[0], self.keypoints[1]
        rotation = bp.normalize_radians(-np.arctan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0]))
        x1, y1, x2, y2 = self.box
        return bp.Roi((x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * ROI_SCALE, float(rotation))


def _roi_from_points(points: np.ndarray) -> bp.Roi:
    """MediaPipe's face_landmarks_to_roi: level the eye corners, box the mesh, grow 1.5×."""
    right, left = points[RIGHT_EYE_CORNERS[0], :2], points[LEFT_EYE_CORNERS[0], :2]
    rotation = bp.normalize_radians(-np.arctan2(-(left[1] - right[1]), left[0] - right[0]))
    c, s = np.cos(rotation), np.sin(rotation)
    centre_guess = points[:, :2].mean(0)
    # Bounding box in the rotated frame, then back to the image.
    local = (points[:, :2] - centre_guess) @ np.array([[c, -s], [s, c]])
    lo, hi = local.min(0), local.max(0)
    mid = (lo + hi) / 2
    centre = centre_guess + np.array([[c, s], [-s, c]]) @ mid
    return bp.Roi(float(centre[0]), float(centre[1]), float(max(hi - lo)) * ROI_SCALE, float(rotation))


class FaceMeshModel:
    """MediaPipe face detection + 468-point face mesh under ai-edge-litert."""

    def __init__(self, model_dir: Path | str | None = None, *, min_detection_score: float = 0.5,
                 min_presence: float = 0.5, num_threads: int | None = None):
        self.model_dir = Path(model_dir) if model_dir else model_files.require(MODEL_GROUP)
        for name in ("face_detection_short_range.tflite", "face_landmark.tflite"):
            if not (self.model_dir / name).is_file():
                raise ModelNotFoundError(MODEL_GROUP, str(self.model_dir), model_files.how_to_get(MODEL_GROUP), f"{name} not found")
        self.detector = TfliteModel(self.model_dir / "face_detection_short_range.tflite", num_threads, "face-mesh")
        self.mesh_model = TfliteModel(self.model_dir / "face_landmark.tflite", num_threads, "face-mesh")
        self.anchors = bp.ssd_anchor_centers(DETECTOR_SIZE, _STRIDES)
        self.min_detection_score = min_detection_score
        self.min_presence = min_presence

    def detect(self, image_rgb: np.ndarray) -> list[FaceDetection]:
        """Faces in the whole image (letterboxed), in image pixels, best first."""
        image = _check_image(image_rgb)
        h, w = image.shape[:2]
        patch, to_image = bp.crop(image, bp.whole_image_roi(w, h), DETECTOR_SIZE)
        out = self.detector(patch.astype(np.float32) / 127.5 - 1.0)
        raw = out["regressors"].reshape(-1, 16) / DETECTOR_SIZE
        scores = bp.sigmoid(out["classificators"].reshape(-1))
        keep = np.flatnonzero(scores >= self.min_detection_score)
        if keep.size == 0:
            return []
        r, a = raw[keep], self.anchors[keep]
        cx, cy, bw, bh = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1], r[:, 2], r[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
        found = []
        for score, box, keypoints in bp.weighted_nms(scores[keep], boxes, kps):
            corners = bp.apply_affine(to_image, box.reshape(2, 2) * DETECTOR_SIZE).ravel()
            found.append(FaceDetection(score, corners, bp.apply_affine(to_image, keypoints * DETECTOR_SIZE)))
        return found

    def mesh_in(self, image_rgb: np.ndarray, roi: bp.Roi) -> tuple[np.ndarray, float]:
        """468 points (image pixels, z scaled alike) predicted in ``roi`` and the presence probability."""
        patch, to_image = bp.crop(image_rgb, roi, MESH_SIZE)
        out = self.mesh_model(patch.astype(np.float32) / 255.0)
        raw = out["conv2d_21"].reshape(NUM_POINTS, 3).astype(np.float64)
        presence = float(bp.sigmoid(np.ravel(out["conv2d_31"])[0]))
        xy = bp.apply_affine(to_image, raw[:, :2])
        z = raw[:, 2:] * (roi.size / MESH_SIZE)
        return np.hstack([xy, z]), presence

    def faces(self, image_rgb: np.ndarray) -> list[FaceMesh]:
        """Every face with its mesh, numbered left to right (what ``--face-index`` refers to)."""
        image = _check_image(image_rgb)
        meshes = []
        for det in self.detect(image):
            points, presence = self.mesh_in(image, det.roi())
            if presence < self.min_presence:
                continue
            refined, refined_presence = self.mesh_in(image, _roi_from_points(points))
            if refined_presence >= self.min_presence:
                points, presence = refined, refined_presence
            meshes.append(FaceMesh(det.box, det.score, points, presence))
        return sorted(meshes, key=lambda m: m.box[0] + m.box[2])


@functools.lru_cache(maxsize=2)
def _cached(model_dir: str) -> FaceMeshModel:
    return FaceMeshModel(model_dir)


def get_face_mesh_model(model_dir: Path | str | None = None) -> FaceMeshModel:
    """A process-wide model (two small TFLite files, loaded once)."""
    return _cached(str(Path(model_dir) if model_dir else model_files.require(MODEL_GROUP)))
