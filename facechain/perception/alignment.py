"""Face rotation (paper section 2.1) and similarity warps.

The paper levels a face by fitting its 5 landmarks to a standard template with least squares:
both point sets are normalised (minus their mean, divided by their standard deviation), then
``R = ((P1ᵀP1)⁻¹ P1ᵀ P2)ᵀ`` and ``θ = arctan(R21 / R22)``; rotating the image by ``θ`` makes
the face upright. :func:`face_rotation_angle` is exactly that formula.

Angles are in degrees in image coordinates (``x`` right, ``y`` down): rotating by a positive
angle turns the picture clockwise on screen. :func:`similarity_matrix` builds the 2x3 affine
map "rotate by angle, scale, move ``src_center`` to ``dst_center``" that every crop here uses,
so that the rotation and the crop happen in one resampling.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: The standard 5-point face template (ArcFace 112x112 layout: eyes, nose tip, mouth corners),
#: in the order of :attr:`facechain.types.Face.kps`.
FACE_TEMPLATE_5 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def normalise_points(points: np.ndarray) -> np.ndarray:
    """Points minus their mean, divided by their (scalar) standard deviation.

    One scalar for both axes keeps the face's shape, so the fit below only has to explain a
    rotation (and the template's slightly different proportions).
    """
    p = np.asarray(points, dtype=np.float64)
    p = p - p.mean(axis=0)
    return p / max(float(p.std()), 1e-9)


def face_rotation_angle(kps: np.ndarray, template: np.ndarray = FACE_TEMPLATE_5) -> float:
    """The paper's least-squares face rotation: the angle (degrees) to rotate the image by.

    ``R = ((P1ᵀP1)⁻¹P1ᵀP2)ᵀ`` maps the face's normalised points ``P1`` onto the template's
    ``P2``; ``θ = arctan(R21/R22)``. ``arctan2`` is used, which equals ``arctan`` of the
    ratio whenever ``R22 > 0`` (any face within ±90° of upright) and stays defined beyond.
    """
    p1 = normalise_points(kps)
    p2 = normalise_points(template)
    a = np.linalg.solve(p1.T @ p1, p1.T @ p2)
    r = a.T
    return math.degrees(math.atan2(r[1, 0], r[1, 1]))


def similarity_matrix(angle_deg: float, scale: float, src_center, dst_center) -> np.ndarray:
    """2x3 affine ``p' = scale * Rot(angle) (p - src_center) + dst_center`` (y-down coordinates)."""
    t = math.radians(angle_deg)
    c, s = math.cos(t) * scale, math.sin(t) * scale
    sx, sy = float(src_center[0]), float(src_center[1])
    dx, dy = float(dst_center[0]), float(dst_center[1])
    return np.array([[c, -s, dx - (c * sx - s * sy)], [s, c, dy - (s * sx + c * sy)]], dtype=np.float64)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine that applies ``inner`` first, then ``outer``."""
    o = np.vstack([outer, [0.0, 0.0, 1.0]])
    i = np.vstack([inner, [0.0, 0.0, 1.0]])
    return (o @ i)[:2]


def invert(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def transform_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return p @ m[:, :2].T + m[:, 2]


def matrix_angle(m: np.ndarray) -> float:
    """Rotation angle (degrees) of a similarity matrix."""
    return math.degrees(math.atan2(m[1, 0], m[0, 0]))


def matrix_scale(m: np.ndarray) -> float:
    return float(math.hypot(m[0, 0], m[1, 0]))


def warp_similarity(image: np.ndarray, m: np.ndarray, size: tuple[int, int], border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Resample ``image`` through ``m`` into a ``(width, height)`` canvas.

    Only the source region that lands in the canvas is touched, and strong downscaling goes
    through an area-averaging resize first (``warpAffine`` alone would alias).
    """
    w, h = size
    corners = transform_points(invert(m), np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64))
    x0 = int(max(math.floor(corners[:, 0].min()) - 2, 0))
    y0 = int(max(math.floor(corners[:, 1].min()) - 2, 0))
    x1 = int(min(math.ceil(corners[:, 0].max()) + 3, image.shape[1]))
    y1 = int(min(math.ceil(corners[:, 1].max()) + 3, image.shape[0]))
    if x1 <= x0 or y1 <= y0:  # canvas lies entirely outside: replicate the nearest edge pixels
        x0, y0 = min(max(x0, 0), image.shape[1] - 1), min(max(y0, 0), image.shape[0] - 1)
        x1, y1 = x0 + 1, y0 + 1
    region = image[y0:y1, x0:x1]
    m = compose(m, np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]]))
    scale = matrix_scale(m)
    if scale < 0.7 and min(region.shape[:2]) > 4:
        f = scale / 0.9
        rw, rh = max(int(round(region.shape[1] * f)), 1), max(int(round(region.shape[0] * f)), 1)
        fx, fy = rw / region.shape[1], rh / region.shape[0]
        region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
        m = compose(m, np.array([[1.0 / fx, 0.0, 0.0], [0.0, 1.0 / fy, 0.0]]))
    return cv2.warpAffine(np.ascontiguousarray(region), m, (w, h), flags=cv2.INTER_CUBIC, borderMode=border)
