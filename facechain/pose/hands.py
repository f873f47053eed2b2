"""Offline hand keypoints: Google's palm detector + hand landmark model under ai-edge-litert.

The two TFLite files (``palm_detection_full.tflite``, ``hand_landmark_full.tflite``) come from the
mediapipe 0.10.21 wheel (model group ``hands``, :mod:`.model_files`); the pre/post-processing that
MediaPipe does in C++ graph calculators is written here in numpy from the published graph options
(``palm_detection_cpu`` and ``hand_landmark_cpu``):

* **palm detector**: the image (or a search square) letterboxed into 192x192 RGB in [0, 1]; 2016
  SSD anchors (strides 8, 16, 16, 16; fixed size) each predict a logit and 18 numbers: box centre
  and size, then 7 palm keypoints (0 = wrist centre, 2 = middle-finger knuckle), in 192-px units
  relative to the anchor. Sigmoid scores >= 0.5, weighted NMS at IoU 0.3.
* **hand ROI**: the palm box turned so that wrist -> middle knuckle points up, shifted half a box
  towards the fingers and grown to a square of 2.6 x its long side (the whole hand fits).
* **landmark model**: the ROI warped to 224x224 RGB in [0, 1]; ``Identity`` is 21 x (x, y, z) in
  crop pixels, ``Identity_1`` the hand-presence probability, ``Identity_2`` the handedness score.
  With ``refine`` the crop is redone once around the model's own points (bounding square of the
  hand turned upright, x 2.0, shifted a tenth towards the fingers), as MediaPipe does between
  video frames.

Small hands in a large photo are few pixels in a 192-px letterbox; the caller can name search
squares (:func:`wrist_search_regions` makes them from BlazePose wrists), where the detector runs
again at a useful scale. Hands found twice are merged.

The 21 points are in the same order as OpenPose's hand model (wrist, then 4 joints per finger from
thumb to little finger), so :func:`.draw.draw_hands` draws them as the OpenPose ControlNet saw hands.
Handedness: MediaPipe's model assumes mirrored (selfie) input; its raw score is read here as the
probability of the person's *right* hand in an ordinary photo (checked on the test photos against
BlazePose's wrists), and should be trusted less than a body-pose wrist when both are at hand.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ModelNotFoundError
from . import blazepose as bp
from . import model_files
from ..image_io import rgb_array as _check_image

MODEL_NAME = "hands"
PALM_SIZE = 192
HAND_SIZE = 224
NUM_HAND_POINTS = 21
PALM_KEYPOINTS = 7
PALM_STRIDES = (8, 16, 16, 16)
PALM_ROI_SCALE, PALM_ROI_SHIFT = 2.6, -0.5
LANDMARK_ROI_SCALE, LANDMARK_ROI_SHIFT = 2.0, -0.1
WRIST, INDEX_MCP, MIDDLE_MCP, RING_MCP = 0, 5, 9, 13
FILES = ("palm_detection_full.tflite", "hand_landmark_full.tflite")

# BlazePose 33-point indices of each hand: wrist, pinky knuckle, index knuckle, thumb.
_POSE_HAND_POINTS = {"left": (15, 17, 19, 21), "right": (16, 18, 20, 22)}


@dataclass
class Hand:
    """One hand: 21 keypoints in image pixels (OpenPose / MediaPipe hand order)."""

    points: np.ndarray  # (21, 2) x right, y down, pixels
    depth: np.ndarray  # (21,) relative depth in pixels (smaller = nearer the camera; wrist ~ 0)
    score: float  # hand-presence probability from the landmark model
    right_score: float  # probability that this is the person's right hand (see the module docstring)
    roi: bp.Roi  # the square the landmarks were read from
    source: str  # "image" (palm found in the whole image) or "search" (in a search square)

    @property
    def side(self) -> str:
        return "right" if self.right_score >= 0.5 else "left"

    @property
    def box(self) -> np.ndarray:
        """(x1, y1, x2, y2) of the 21 points."""
        return np.concatenate([self.points.min(axis=0), self.points.max(axis=0)])

    @property
    def size(self) -> float:
        """The long side of the points' box (pixels)."""
        x1, y1, x2, y2 = self.box
        return float(max(x2 - x1, y2 - y1))

    def scaled(self, sx: float, sy: float | None = None) -> "Hand":
        sy = sx if sy is None else sy
        roi = bp.Roi(self.roi.cx * sx, self.roi.cy * sy, self.roi.size * math.sqrt(sx * sy), self.roi.rotation)
        return Hand(self.points * np.array([sx, sy]), self.depth * math.sqrt(sx * sy), self.score,
                    self.right_score, roi, self.source)

    def to_json(self) -> dict:
        return {"side": self.side, "score": round(self.score, 3), "right_score": round(self.right_score, 3),
                "source": self.source, "box": [round(float(v), 1) for v in self.box],
                "points": [[round(float(x), 1), round(float(y), 1)] for x, y in self.points]}


# --- geometry (no model) -----------------------------------------------------------------------


def palm_anchor_centers() -> np.ndarray:
    """(2016, 2) anchor centres of the palm detector, in MediaPipe's order."""
    return bp.ssd_anchor_centers(PALM_SIZE, PALM_STRIDES)


def rotated_rect_roi(center: np.ndarray, width: float, height: float, rotation: float,
                     scale: float, shift_y: float) -> bp.Roi:
    """MediaPipe's RectTransformation (square_long) in pixels: shift along the rect's own "up", grow."""
    shift = np.array([-height * shift_y * math.sin(rotation), height * shift_y * math.cos(rotation)])
    cx, cy = np.asarray(center, dtype=np.float64) + shift
    return bp.Roi(float(cx), float(cy), float(max(width, height) * scale), rotation)


def _upright_angle(start: np.ndarray, end: np.ndarray) -> float:
    """Rotation that makes the vector start -> end point up in the crop."""
    dx, dy = float(end[0] - start[0]), float(end[1] - start[1])
    return bp.normalize_radians(math.pi / 2 - math.atan2(-dy, dx))


def palm_roi(box: np.ndarray, keypoints: np.ndarray) -> bp.Roi:
    """The hand square of a palm detection (box x1y1x2y2 and its 7 keypoints, image pixels)."""
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    rotation = _upright_angle(keypoints[0], keypoints[2])
    return rotated_rect_roi(((x1 + x2) / 2, (y1 + y2) / 2), x2 - x1, y2 - y1, rotation, PALM_ROI_SCALE, PALM_ROI_SHIFT)


def landmarks_roi(points: np.ndarray) -> bp.Roi:
    """The hand square from 21 landmarks: turned so the wrist -> knuckles line points up."""
    pts = np.asarray(points, dtype=np.float64)
    knuckles = ((pts[INDEX_MCP] + pts[RING_MCP]) / 2 + pts[MIDDLE_MCP]) / 2
    rotation = _upright_angle(pts[WRIST], knuckles)
    c, s = math.cos(rotation), math.sin(rotation)
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
    local = (pts - centre) @ np.array([[c, -s], [s, c]])  # into the upright frame
    lo, hi = local.min(axis=0), local.max(axis=0)
    mid = (lo + hi) / 2
    centre = centre + np.array([[c, -s], [s, c]]) @ mid
    return rotated_rect_roi(centre, hi[0] - lo[0], hi[1] - lo[1], rotation, LANDMARK_ROI_SCALE, LANDMARK_ROI_SHIFT)


def wrist_search_regions(landmarks33: np.ndarray, visibility: np.ndarray | None = None,
                         min_visibility: float = 0.3, scale: float = 1.5) -> list[bp.Roi]:
    """Upright squares around each visible BlazePose hand, ``scale`` x the shoulder width on a side."""
    pts = np.asarray(landmarks33, dtype=np.float64)
    vis = np.ones(len(pts)) if visibility is None else np.asarray(visibility, dtype=np.float64)
    side = scale * max(float(np.linalg.norm(pts[11] - pts[12])), 16.0)
    regions = []
    for idx in _POSE_HAND_POINTS.values():
        if vis[idx[0]] < min_visibility:
            continue
        cx, cy = pts[list(idx)].mean(axis=0)
        regions.append(bp.Roi(float(cx), float(cy), side, 0.0))
    return regions


def same_hand(a: Hand, b: Hand, tolerance: float = 0.35) -> bool:
    """Whether two detections are one hand: their point centres closer than ``tolerance`` x hand size."""
    d = float(np.linalg.norm(a.points.mean(axis=0) - b.points.mean(axis=0)))
    return d < tolerance * max(a.size, b.size, 1.0)


# --- the estimator -----------------------------------------------------------------------------


class HandEstimator:
    """Palm detector + hand landmark model -> :class:`Hand` values (see the module docstring).

    ``model_dir`` holds both TFLite files (default: :func:`.model_files.require` ``("hands")``;
    a one-line :class:`ModelNotFoundError` naming ``facechain models download hands`` when absent).
    """

    def __init__(self, model_dir: Path | str | None = None, *, min_detection_score: float = 0.5,
                 min_presence: float = 0.5, max_hands: int = 4, refine: bool = True,
                 num_threads: int | None = None):
        from .estimate import TfliteModel

        self.model_dir = Path(model_dir) if model_dir else model_files.require(MODEL_NAME)
        missing = [n for n in FILES if not (self.model_dir / n).is_file()]
        if missing:
            raise ModelNotFoundError(MODEL_NAME, str(self.model_dir), model_files.how_to_get(MODEL_NAME),
                                     f"{missing[0]} not found")
        self.detector = TfliteModel(self.model_dir / FILES[0], num_threads, MODEL_NAME)
        self.landmarker = TfliteModel(self.model_dir / FILES[1], num_threads, MODEL_NAME)
        self.anchors = palm_anchor_centers()
        self.min_detection_score = min_detection_score
        self.min_presence = min_presence
        self.max_hands = max_hands
        self.refine = refine

    def estimate(self, image_rgb: np.ndarray, search: Iterable[bp.Roi] = ()) -> list[Hand]:
        """Hands in an RGB uint8 image, largest first: palms in the whole image, then in ``search`` squares."""
        image = _check_image(image_rgb)
        h, w = image.shape[:2]
        found: list[Hand] = []
        regions = [(bp.whole_image_roi(w, h), "image")] + [(r, "search") for r in search]
        for region, source in regions:
            for roi in self.detect_palms(image, region):
                hand = self.landmarks_in(image, roi, source)
                if hand is not None and not any(same_hand(hand, f) for f in found):
                    found.append(hand)
        found.sort(key=lambda hd: -hd.size)
        return found[: self.max_hands]

    def detect_palms(self, image_rgb: np.ndarray, region: bp.Roi) -> list[bp.Roi]:
        """Hand squares (image pixels) of the palms the detector finds inside ``region``."""
        patch, to_image = bp.crop(image_rgb, region, PALM_SIZE)
        out = self.detector(patch.astype(np.float32) / 255.0)
        scores, boxes, kps = bp.decode_detections(out["Identity"], out["Identity_1"], self.anchors,
                                                  self.min_detection_score, PALM_SIZE, PALM_KEYPOINTS)
        rois = []
        for _, box, keypoints in bp.weighted_nms(scores, boxes, kps, max_results=self.max_hands):
            # Boxes are axis-aligned in the crop; the search squares are upright, so they stay so.
            corners = bp.apply_affine(to_image, box.reshape(2, 2) * PALM_SIZE).ravel()
            x1, x2 = sorted(corners[[0, 2]])
            y1, y2 = sorted(corners[[1, 3]])
            rois.append(palm_roi(np.array([x1, y1, x2, y2]), bp.apply_affine(to_image, keypoints * PALM_SIZE)))
        return rois

    def landmarks_in(self, image_rgb: np.ndarray, roi: bp.Roi, source: str = "image") -> Hand | None:
        """The landmark model on one hand square; None when it sees no hand there.

        With ``refine`` the model reads again on the square its own points give, and the reading
        with the higher presence is kept: a palm square is only a guess of where the fingers are,
        and a partly hidden hand (arms crossed) often passes only once it is centred.
        """
        hand = self._read(image_rgb, roi, source)
        if self.refine:
            again = self._read(image_rgb, landmarks_roi(hand.points), source)
            hand = again if again.score > hand.score else hand
        return hand if hand.score >= self.min_presence else None

    def _read(self, image_rgb: np.ndarray, roi: bp.Roi, source: str) -> Hand:
        patch, to_image = bp.crop(image_rgb, roi, HAND_SIZE)
        out = self.landmarker(patch.astype(np.float32) / 255.0)
        presence = float(np.ravel(out["Identity_1"])[0])
        raw = np.asarray(out["Identity"], dtype=np.float64).reshape(NUM_HAND_POINTS, 3)
        points = bp.apply_affine(to_image, raw[:, :2])
        depth = raw[:, 2] * (roi.size / HAND_SIZE)
        right = float(np.ravel(out["Identity_2"])[0])
        return Hand(points, depth, presence, right, roi, source)


@functools.lru_cache(maxsize=2)
def _cached(model_dir: str) -> HandEstimator:
    return HandEstimator(model_dir)


def get_hand_estimator(model_dir: Path | str | None = None) -> HandEstimator:
    """A process-wide hand estimator (models load once)."""
    return _cached(str(Path(model_dir) if model_dir else model_files.require(MODEL_NAME)))


def hands_points(hands: Sequence[Hand]) -> list[np.ndarray]:
    """The (21, 2) point arrays of ``hands``, as :func:`.draw.draw_openpose` takes them."""
    return [h.points for h in hands]
