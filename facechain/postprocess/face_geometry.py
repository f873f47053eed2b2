"""Classical face-warping tools behind the offline face fusion: masks, warps, colour transfer.

All images are RGB uint8 ``(H, W, 3)``; landmarks are iBUG 68-point ``(68, 2)`` pixel coordinates.
"""

from __future__ import annotations

import cv2
import numpy as np


def clip_points(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    pts = np.asarray(points, dtype=np.float64).copy()
    pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
    return pts


def hull_mask(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Binary uint8 (0/255) mask of the convex hull of ``points``."""
    mask = np.zeros(shape[:2], dtype=np.uint8)
    hull = cv2.convexHull(np.round(clip_points(points, shape)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8)
    return mask


def face_size(points: np.ndarray) -> float:
    """A scale for the face: the geometric mean of the landmark box's sides."""
    span = np.ptp(np.asarray(points, dtype=np.float64), axis=0)
    return float(np.sqrt(max(span[0], 1.0) * max(span[1], 1.0)))


def feathered_face_mask(points: np.ndarray, shape: tuple[int, ...], erode_frac: float = 0.06,
                        feather_frac: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(core, alpha): the eroded hull (uint8 0/255) and a soft float alpha in [0, 1] that stays inside the hull.

    Eroding keeps the warped jaw outline (where the source face meets its background) out of the
    blend; feathering by less than the erosion keeps every non-zero alpha inside the face hull.
    """
    hull = hull_mask(points, shape)
    size = face_size(points)
    erode = max(1, int(round(size * erode_frac)))
    core = cv2.erode(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1)))
    sigma = max(0.5, size * feather_frac / 3.0)
    alpha = cv2.GaussianBlur(core.astype(np.float32) / 255.0, (0, 0), sigmaX=sigma, sigmaY=sigma)
    alpha *= (hull > 0)  # never outside the hull, whatever the blur does
    return core, np.clip(alpha, 0.0, 1.0)


def delaunay_triangles(points: np.ndarray) -> np.ndarray:
    """(T, 3) vertex indices of a Delaunay triangulation of ``points`` (the target face's landmarks).

    Indices refer to the 68-point layout, so the same triangles exist on the source face.
    """
    from scipy.spatial import Delaunay

    return Delaunay(np.asarray(points, dtype=np.float64)).simplices.astype(np.int32)


def _area(tri: np.ndarray) -> float:
    (x1, y1), (x2, y2), (x3, y3) = tri
    return abs((x2 - x1) * (y3 - y1) - (x3 - x1) * (y2 - y1)) / 2.0


def piecewise_affine_warp(src: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray,
                          dst_shape: tuple[int, ...]) -> np.ndarray:
    """Warp ``src`` so its landmarks ``src_pts`` land on ``dst_pts`` (one affine map per triangle)."""
    out = np.zeros((dst_shape[0], dst_shape[1], 3), dtype=np.uint8)
    src_pts = np.asarray(src_pts, dtype=np.float32)
    dst_pts = clip_points(dst_pts, dst_shape).astype(np.float32)
    for tri in delaunay_triangles(dst_pts):
        s, d = src_pts[tri], dst_pts[tri]
        if _area(s) < 0.5 or _area(d) < 0.5:  # degenerate (collinear) in one of the faces
            continue
        x, y, w, h = cv2.boundingRect(np.round(d).astype(np.int32))
        if w <= 0 or h <= 0:
            continue
        w = min(w + 1, dst_shape[1] - x)
        h = min(h + 1, dst_shape[0] - y)
        if w <= 0 or h <= 0:
            continue
        m = cv2.getAffineTransform(s, (d - np.array([x, y], dtype=np.float32)))
        patch = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        tri_mask = np.zeros((h, w), dtype=np.uint8)
        cv2.fillConvexPoly(tri_mask, np.round(d - [x, y]).astype(np.int32), 1, lineType=cv2.LINE_8)
        region = out[y:y + h, x:x + w]
        region[tri_mask > 0] = patch[tri_mask > 0]
    return out


def reinhard_colour_transfer(src: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give ``src`` the colour statistics (mean, std in LAB) that ``ref`` has inside ``mask`` (Reinhard 2001)."""
    sel = mask > 0
    if sel.sum() < 16:
        return src.copy()
    s = cv2.cvtColor(src, cv2.COLOR_RGB2LAB).astype(np.float32)
    r = cv2.cvtColor(ref, cv2.COLOR_RGB2LAB).astype(np.float32)
    out = s.copy()
    for c in range(3):
        ms, ss = s[..., c][sel].mean(), s[..., c][sel].std() + 1e-6
        mr, sr = r[..., c][sel].mean(), r[..., c][sel].std() + 1e-6
        out[..., c] = (s[..., c] - ms) * (sr / ss) + mr
    out = np.clip(out, 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_LAB2RGB)


def poisson_blend(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``cv2.seamlessClone`` of ``src`` into ``dst`` inside ``mask``, keeping ``src`` where it is.

    OpenCV places the mask's bounding box at ``center - size // 2``, so the centre is chosen to make
    that the identity placement. The mask is kept off the image border, which seamlessClone needs.
    """
    m = mask.copy()
    m[:2, :] = 0
    m[-2:, :] = 0
    m[:, :2] = 0
    m[:, -2:] = 0
    if m.max() == 0:
        return dst.copy()
    x, y, w, h = cv2.boundingRect(m)
    center = (x + w // 2, y + h // 2)
    out = cv2.seamlessClone(np.ascontiguousarray(src[..., ::-1]), np.ascontiguousarray(dst[..., ::-1]), m, center, cv2.NORMAL_CLONE)
    return np.ascontiguousarray(out[..., ::-1])
