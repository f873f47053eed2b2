"""Draw OpenPose-style conditioning images, the way the OpenPose ControlNet saw them in training.

Conventions of the ControlNet 1.1 OpenPose annotator (what ``control_v11p_sd15_openpose`` was
trained on), reproduced here from their description:

* black canvas, RGB;
* each of the 17 limbs is a filled ellipse spanning its two joints, 4 px half-width, in the
  limb's colour (:data:`~.skeleton.COLORS`); the whole limb layer is then dimmed to 60 %;
* each body keypoint is a filled circle of radius 4 in its keypoint colour, at full strength;
* hands: 20 bone lines (2 px) coloured around the hue circle, joints as blue dots (radius 4);
* face: the 68 iBUG landmarks as white dots of radius 3.

The sizes are absolute pixels, as in the annotator (trained at ~512 px); they are not scaled
with the image so a 512 px condition looks like the training data.
"""

from __future__ import annotations

import colorsys
import math
from typing import Iterable, Sequence

import cv2
import numpy as np

from .skeleton import COLORS, LIMBS, NUM_KEYPOINTS, BodyPose

STICK_HALF_WIDTH = 4
BODY_POINT_RADIUS = 4
LIMB_BRIGHTNESS = 0.6
FACE_POINT_RADIUS = 3
HAND_LINE_WIDTH = 2
HAND_POINT_RADIUS = 4
HAND_POINT_COLOR = (0, 0, 255)
FACE_POINT_COLOR = (255, 255, 255)

# 21-point hand (wrist, then 4 joints per finger from thumb to little finger): 20 bones.
HAND_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
    (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
)


def _hand_edge_color(i: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _valid_points(points: np.ndarray) -> np.ndarray:
    """True where a point is usable: finite and not the (0, 0) 'missing' marker."""
    finite = np.isfinite(points).all(axis=1)
    return finite & ~((np.abs(points[:, 0]) < 1e-6) & (np.abs(points[:, 1]) < 1e-6))


def draw_bodies(canvas: np.ndarray, bodies: Iterable[BodyPose], min_score: float = 0.0) -> np.ndarray:
    """Limbs (dimmed ellipses) then joints (full-colour dots) of every body, onto ``canvas``."""
    bodies = list(bodies)
    for i, (a, b) in enumerate(LIMBS):
        for body in bodies:
            if body.scores[a] <= min_score or body.scores[b] <= min_score:
                continue
            pa, pb = body.keypoints[a], body.keypoints[b]
            length = math.hypot(*(pa - pb))
            angle = math.degrees(math.atan2(pa[1] - pb[1], pa[0] - pb[0]))
            centre = _pt((pa + pb) / 2)
            polygon = cv2.ellipse2Poly(centre, (int(length / 2), STICK_HALF_WIDTH), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, COLORS[i])
    canvas[:] = (canvas * LIMB_BRIGHTNESS).astype(np.uint8)
    for i in range(NUM_KEYPOINTS):
        for body in bodies:
            if body.scores[i] > min_score:
                cv2.circle(canvas, _pt(body.keypoints[i]), BODY_POINT_RADIUS, COLORS[i], thickness=-1)
    return canvas


def draw_hands(canvas: np.ndarray, hands: Iterable) -> np.ndarray:
    """21-point hands: coloured bones, blue joints. Missing joints are NaN or (0, 0).

    A hand is a (21, 2+) array or anything with such ``points`` (a :class:`~.hands.Hand`).
    """
    for hand in hands:
        pts = np.asarray(getattr(hand, "points", hand), dtype=np.float64)[:, :2]
        ok = _valid_points(pts)
        for i, (a, b) in enumerate(HAND_EDGES):
            if ok[a] and ok[b]:
                cv2.line(canvas, _pt(pts[a]), _pt(pts[b]), _hand_edge_color(i), thickness=HAND_LINE_WIDTH)
        for p, good in zip(pts, ok):
            if good:
                cv2.circle(canvas, _pt(p), HAND_POINT_RADIUS, HAND_POINT_COLOR, thickness=-1)
    return canvas


def draw_faces(canvas: np.ndarray, faces68: Iterable[np.ndarray]) -> np.ndarray:
    """Face landmarks (68 iBUG points, pixels) as white dots."""
    for face in faces68:
        pts = np.asarray(face, dtype=np.float64).reshape(-1, 2)
        for p, good in zip(pts, _valid_points(pts)):
            if good:
                cv2.circle(canvas, _pt(p), FACE_POINT_RADIUS, FACE_POINT_COLOR, thickness=-1)
    return canvas


def draw_openpose(
    size: tuple[int, int],
    bodies: Sequence[BodyPose] = (),
    faces68: Sequence[np.ndarray] = (),
    hands: Sequence = (),
    bones_only: bool = False,
) -> np.ndarray:
    """An OpenPose conditioning image of ``size=(W, H)``: (H, W, 3) uint8 RGB on black.

    ``bones_only`` draws the body skeleton alone (no face dots, no hands), as the paper's
    inpainting stage 1 does, so the ControlNet fixes the body pose but leaves the face free.
    Bodies and ``hands`` without ``faces68`` is the virtual try-on's condition (bones + hands).
    """
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive (W, H), got {size}")
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    draw_bodies(canvas, bodies)
    if not bones_only:
        draw_hands(canvas, hands)
        draw_faces(canvas, faces68)
    return canvas
