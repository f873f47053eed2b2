"""The 18-point OpenPose (COCO) body skeleton and the :class:`BodyPose` value.

The OpenPose ControlNet (``lllyasviel/control_v11p_sd15_openpose``) was trained on images
drawn with exactly these keypoints, limbs and colours, so :mod:`.draw` must reproduce them;
they are kept here, in one place, as data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Keypoint order of the 18-point COCO body model. "right"/"left" are the person's sides, so
# for a person facing the camera the r-shoulder is on the image-left.
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
KP = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# The 17 limbs that are drawn, as (from, to) keypoint indices, in drawing order. The i-th limb
# is filled with COLORS[i]; the i-th keypoint is dotted with COLORS[i] too.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7),    # shoulders, right arm, left arm
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),  # right leg, left leg (from the neck)
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),      # head
)

# RGB. 18 colours stepping around the hue circle (red → yellow → green → cyan → blue → magenta).
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

# MediaPipe / BlazePose 33-point indices feeding each OpenPose keypoint (neck is computed).
MEDIAPIPE33_TO_OPENPOSE18: dict[int, int] = {
    0: 0,    # nose
    2: 12,   # r_shoulder  <- right_shoulder
    3: 14,   # r_elbow
    4: 16,   # r_wrist
    5: 11,   # l_shoulder  <- left_shoulder
    6: 13,   # l_elbow
    7: 15,   # l_wrist
    8: 24,   # r_hip
    9: 26,   # r_knee
    10: 28,  # r_ankle
    11: 23,  # l_hip
    12: 25,  # l_knee
    13: 27,  # l_ankle
    14: 5,   # r_eye  <- right_eye (centre)
    15: 2,   # l_eye  <- left_eye (centre)
    16: 8,   # r_ear
    17: 7,   # l_ear
}
_MP_LEFT_SHOULDER, _MP_RIGHT_SHOULDER = 11, 12


@dataclass
class BodyPose:
    """One person's 18 OpenPose keypoints in pixels; ``scores[i] == 0`` means keypoint i is missing."""

    keypoints: np.ndarray  # (18, 2) float, x right / y down, pixels
    scores: np.ndarray  # (18,) float in [0, 1]

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(NUM_KEYPOINTS, 2)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(NUM_KEYPOINTS)

    def visible(self, min_score: float = 0.0) -> np.ndarray:
        """Boolean mask of keypoints that are present (score above ``min_score``)."""
        return self.scores > min_score

    def __getitem__(self, name: str) -> np.ndarray | None:
        """Keypoint by name (``pose["r_shoulder"]``), or None when missing."""
        i = KP[name]
        return self.keypoints[i].copy() if self.scores[i] > 0 else None

    def scaled(self, sx: float, sy: float | None = None) -> "BodyPose":
        """The same pose in an image resized by (sx, sy)."""
        sy = sx if sy is None else sy
        return BodyPose(self.keypoints * np.array([sx, sy]), self.scores.copy())

    def to_json(self) -> dict:
        return {
            "keypoints": {n: [round(float(x), 1), round(float(y), 1), round(float(s), 3)]
                          for n, (x, y), s in zip(KEYPOINT_NAMES, self.keypoints, self.scores) if s > 0},
        }

    @classmethod
    def from_mediapipe33(
        cls,
        points: np.ndarray,
        visibility: np.ndarray | None = None,
        *,
        image_size: tuple[int, int] | None = None,
        min_visibility: float = 0.5,
    ) -> "BodyPose":
        """Convert BlazePose's 33 landmarks (pixels, ``(33, >=2)``) to the OpenPose 18-point body.

        The neck, which BlazePose lacks, is the shoulders' midpoint (scored by the weaker
        shoulder). A keypoint is missing when its visibility is below ``min_visibility`` or, with
        ``image_size=(W, H)``, when it lies outside the image: OpenPose never draws joints it
        could not see, and the ControlNet learned from such drawings.
        """
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[0] < 33 or pts.shape[1] < 2:
            raise ValueError(f"expected (33, 2+) mediapipe landmarks, got shape {pts.shape}")
        pts = pts[:33, :2]
        vis = np.ones(33) if visibility is None else np.asarray(visibility, dtype=np.float64).reshape(-1)[:33]
        kps = np.zeros((NUM_KEYPOINTS, 2))
        scores = np.zeros(NUM_KEYPOINTS)
        for op, mp in MEDIAPIPE33_TO_OPENPOSE18.items():
            kps[op], scores[op] = pts[mp], vis[mp]
        kps[KP["neck"]] = (pts[_MP_LEFT_SHOULDER] + pts[_MP_RIGHT_SHOULDER]) / 2
        scores[KP["neck"]] = min(vis[_MP_LEFT_SHOULDER], vis[_MP_RIGHT_SHOULDER])
        scores[scores < min_visibility] = 0.0
        if image_size is not None:
            w, h = image_size
            outside = (kps[:, 0] < 0) | (kps[:, 1] < 0) | (kps[:, 0] > w - 1) | (kps[:, 1] > h - 1)
            scores[outside] = 0.0
        return cls(kps, scores)
