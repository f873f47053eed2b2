"""The face region that stage 2 repaints, and its soft compositing weight.

The region is a head mask from the perception layer when one is offered, else the convex hull of
the 68 landmarks extended up to the forehead (dlib's points stop at the brows). It is dilated so a
face of another shape fits, and feathered *inside* the dilated area: the weight is exactly zero
outside it, so every pixel there stays the template's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..types import LANDMARKS68_JAW, LANDMARKS68_LEFT_BROW, LANDMARKS68_RIGHT_BROW, Face

CHIN = 8


@dataclass
class FaceMask:
    region: np.ndarray  # bool (H, W): the face itself (hull or segmentation)
    hard: np.ndarray  # bool (H, W): region dilated, what the diffusion model repaints
    soft: np.ndarray  # float32 (H, W) in [0, 1]: compositing weight, > 0 exactly on ``hard``

    @property
    def area(self) -> int:
        return int(self.hard.sum())


def face_region_polygon(lm68: np.ndarray, forehead: float = 0.5) -> np.ndarray:
    """Convex hull of jaw + brows + brows lifted by ``forehead`` x (chin -> brow distance)."""
    lm = np.asarray(lm68, dtype=np.float64)
    brows = np.vstack([lm[LANDMARKS68_RIGHT_BROW], lm[LANDMARKS68_LEFT_BROW]])
    up = brows.mean(axis=0) - lm[CHIN]
    lifted = brows + forehead * up
    pts = np.vstack([lm[LANDMARKS68_JAW], brows, lifted]).astype(np.float32)
    return cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)


def rasterize_polygon(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(shape, dtype=np.uint8)
    pts = np.round(np.asarray(polygon) * 16).astype(np.int32)  # 4 fractional bits: sub-pixel edges
    cv2.fillPoly(canvas, [pts], 255, lineType=cv2.LINE_8, shift=4)
    return canvas > 0


def dilate_and_feather(region: np.ndarray, dilate_px: float, feather_px: float) -> FaceMask:
    """Grow ``region`` by ``dilate_px``; ramp the weight from 1 down to 0 over the outer ``feather_px``."""
    outside = np.where(region, 0, 255).astype(np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, 5)  # 0 inside the region
    hard = dist < dilate_px
    ramp = np.clip((dilate_px - dist) / max(feather_px, 1e-6), 0.0, 1.0)
    soft = (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)  # smoothstep: no visible kink
    soft[~hard] = 0.0
    return FaceMask(region=region, hard=hard, soft=soft)


def build_face_mask(
    shape: tuple[int, int],
    lm68: np.ndarray,
    face_size: float,
    *,
    dilate: float = 0.12,
    feather: float = 0.08,
    forehead: float = 0.5,
    region: np.ndarray | None = None,
) -> FaceMask:
    """The mask of one face in an image of ``shape`` (H, W); sizes are shares of ``face_size``."""
    if region is None:
        region = rasterize_polygon(face_region_polygon(lm68, forehead), shape)
    return dilate_and_feather(region.astype(bool), max(1.0, dilate * face_size), max(1.0, feather * face_size))


class HeadRegion:
    """Face + hair from the perception layer's head segmenter, always including the landmark hull.

    ``segmenter`` implements ``segment(image, face) -> soft mask`` (default: the offline GrabCut
    head segmenter of :mod:`facechain.perception.segmentation`). Replacing the hair too lets the
    new person's hairline differ from the template's; ``--mask landmarks`` keeps the template's hair.
    """

    def __init__(self, segmenter=None, forehead: float = 0.5):
        self._segmenter = segmenter
        self.forehead = forehead

    def __call__(self, image: np.ndarray, lm68: np.ndarray) -> np.ndarray:
        if self._segmenter is None:
            from ..perception.segmentation import get_head_segmenter

            self._segmenter = get_head_segmenter("grabcut")
        lo, hi = lm68.min(axis=0), lm68.max(axis=0)
        face = Face(bbox=np.concatenate([lo, hi]), score=1.0, landmarks68=np.asarray(lm68, dtype=np.float64))
        head = np.asarray(self._segmenter.segment(image, face)) > 0.5
        return head | rasterize_polygon(face_region_polygon(lm68, self.forehead), image.shape[:2])
