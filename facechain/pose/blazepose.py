"""The pre- and post-processing around Google's BlazePose TFLite models, in numpy.

MediaPipe runs these models inside C++ graph calculators; here is the same arithmetic, written
from MediaPipe's published graph options (pose_detection / pose_landmark modules; the values
match the BlazePose TF.js port):

* **person detector** (``pose_detection.tflite``): the image is letterboxed into 224×224 RGB
  scaled to [-1, 1]; 2254 SSD anchors (strides 8, 16, 32, 32, 32; fixed size) each predict a
  logit and 12 numbers: box centre offset, box size and 4 keypoints (x, y), in 224-px units
  relative to the anchor centre. Keypoint 0 is the hip centre and keypoint 1 a point whose
  distance from it is the radius of a circle around the whole body, in the body's "up"
  direction. Scores are sigmoids (threshold 0.5), boxes merged by weighted NMS (IoU 0.3).
* **ROI**: a square centred on keypoint 0, side 2 × radius × 1.25, rotated so that the hip →
  scale-point vector points up in the crop.
* **landmark model** (``pose_landmark_full.tflite``): the ROI warped to 256×256 RGB scaled to
  [0, 1]; output ``Identity`` is 39 × (x, y, z, visibility, presence), x/y in crop pixels,
  visibility/presence as logits; ``Identity_1`` is the pose-presence probability. Points
  0-32 are the BlazePose body landmarks; 33 and 34 are the hip centre and scale point again
  (MediaPipe uses them as the next frame's ROI; we use them to re-crop once).

Everything works in pixel coordinates of the original image; a crop is described by an affine
map from crop pixels to image pixels, so mapping points back is one matrix product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
NUM_ANCHORS = 2254
NUM_LANDMARKS = 39
NUM_BODY_LANDMARKS = 33
ROI_SCALE = 1.25  # RectTransformationCalculator scale_x/scale_y in MediaPipe's pose graphs
_STRIDES = (8, 16, 32, 32, 32)


@dataclass(frozen=True)
class Roi:
    """A square, rotated region of the image in pixels (MediaPipe's NormalizedRect, unnormalised)."""

    cx: float
    cy: float
    size: float  # side length
    rotation: float = 0.0  # radians; 0 = upright; positive turns the crop's "up" clockwise

    def crop_to_image(self, out_size: int) -> np.ndarray:
        """(2, 3) affine map from crop pixels (0..out_size) to image pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        rot = np.array([[c, -s], [s, c]]) * (self.size / out_size)
        offset = np.array([self.cx, self.cy]) - rot @ np.array([out_size / 2, out_size / 2])
        return np.hstack([rot, offset[:, None]])

    def contains(self, point: np.ndarray) -> bool:
        """Whether an image point lies inside the (rotated) square."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        d = np.asarray(point, dtype=np.float64) - (self.cx, self.cy)
        local = np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
        return bool(np.all(np.abs(local) <= self.size / 2))


def normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def roi_from_alignment_points(center: np.ndarray, scale_point: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """MediaPipe's AlignmentPointsRects + RectTransformation (square_long) for the pose ROI."""
    dx, dy = float(scale_point[0] - center[0]), float(scale_point[1] - center[1])
    radius = math.hypot(dx, dy)
    rotation = normalize_radians(math.pi / 2 - math.atan2(-dy, dx))
    return Roi(float(center[0]), float(center[1]), 2 * radius * scale, rotation)


def whole_image_roi(width: int, height: int) -> Roi:
    """The letterbox: the whole image, centred in a square of its long side."""
    return Roi(width / 2, height / 2, float(max(width, height)), 0.0)


def crop(image_rgb: np.ndarray, roi: Roi, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``roi`` of the image into an ``out_size`` square (black outside the image).

    Returns the crop (uint8) and its crop→image affine map.
    """
    to_image = roi.crop_to_image(out_size)
    patch = cv2.warpAffine(
        image_rgb, to_image, (out_size, out_size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )
    return patch, to_image


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ affine[:, :2].T + affine[:, 2]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -100.0, 100.0)))


# --- detector ---------------------------------------------------------------------------
def ssd_anchor_centers(input_size: int = DETECTOR_SIZE, strides: tuple[int, ...] = _STRIDES) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1], in MediaPipe's SsdAnchorsCalculator order.

    Consecutive layers with the same stride share one feature map; every layer adds two anchors
    per cell (aspect ratio 1 plus the interpolated scale). With fixed-size anchors only the
    centres matter (width = height = 1).
    """
    centers = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer < len(strides) and strides[layer] == stride:
            same += 1
            layer += 1
        fm = math.ceil(input_size / stride)
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centers.append(np.repeat(cells, 2 * same, axis=0))
    return np.concatenate(centers, axis=0)


@dataclass
class PersonDetection:
    """A detected person: box and the 4 alignment keypoints, in image pixels."""

    score: float
    box: np.ndarray  # (4,) x1, y1, x2, y2
    keypoints: np.ndarray  # (4, 2): hip centre, full-body scale point, shoulder centre, upper-body scale point

    def roi(self) -> Roi:
        return roi_from_alignment_points(self.keypoints[0], self.keypoints[1])


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
                      min_score: float = 0.5, input_size: int = DETECTOR_SIZE,
                      num_keypoints: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw detector outputs → (scores (K,), boxes (K, 4) x1y1x2y2, keypoints (K, num_keypoints, 2)),
    all in [0, 1] of the detector input, for the anchors scoring at least ``min_score``.

    The layout is MediaPipe's BlazeFace-family SSD head (box centre, size, then keypoints), shared
    by the person detector (4 keypoints) and the palm detector (7 keypoints)."""
    raw_boxes = raw_boxes.reshape(-1, 4 + 2 * num_keypoints)
    scores = sigmoid(raw_scores.reshape(-1))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return np.zeros(0), np.zeros((0, 4)), np.zeros((0, num_keypoints, 2))
    r = raw_boxes[keep] / input_size
    a = anchors[keep]
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kps = r[:, 4:].reshape(-1, num_keypoints, 2) + a[:, None, :]
    return scores[keep], boxes, kps


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
                 iou_threshold: float = 0.3, max_results: int | None = None) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """MediaPipe's WEIGHTED non-max suppression: each cluster of overlapping candidates becomes
    one detection whose box and keypoints are the score-weighted mean of the cluster."""
    order = np.argsort(-scores)
    remaining = order
    out = []
    while remaining.size and (max_results is None or len(out) < max_results):
        top = remaining[0]
        overlap = _iou(boxes[top], boxes[remaining]) > iou_threshold
        cluster = remaining[overlap]
        w = scores[cluster][:, None]
        box = (boxes[cluster] * w).sum(0) / w.sum()
        kps = (keypoints[cluster] * w[:, :, None]).sum(0) / w.sum()
        out.append((float(scores[top]), box, kps))
        remaining = remaining[~overlap]
    return out


# --- landmarks --------------------------------------------------------------------------
@dataclass
class Landmarks:
    """BlazePose landmarks mapped to image pixels."""

    points: np.ndarray  # (39, 2) image pixels
    visibility: np.ndarray  # (39,) probability the point is visible (not occluded)
    presence: np.ndarray  # (39,) probability the point is inside the image
    pose_score: float

    def next_roi(self) -> Roi:
        """The ROI MediaPipe would track with: from auxiliary points 33 (centre) and 34 (scale)."""
        return roi_from_alignment_points(self.points[33], self.points[34])


def decode_landmarks(raw: np.ndarray, pose_flag: float, crop_to_image: np.ndarray,
                     input_size: int = LANDMARK_SIZE) -> Landmarks:
    """``Identity`` (195,) + ``Identity_1`` of the landmark model → image-space :class:`Landmarks`."""
    lm = np.asarray(raw, dtype=np.float64).reshape(NUM_LANDMARKS, 5)
    points = apply_affine(crop_to_image, lm[:, :2] * (LANDMARK_SIZE / input_size))
    return Landmarks(points, sigmoid(lm[:, 3]), sigmoid(lm[:, 4]), float(pose_flag))
