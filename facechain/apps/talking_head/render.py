"""Draw one frame: warp the portrait along the posed mesh, then paint the open mouth's inside.

**Warp.** The rig's triangulation is fixed; each frame, every triangle whose corners moved gets
the affine map from its new position back to its place in the portrait. The triangles are
rasterised into an index image and one ``cv2.remap`` samples the portrait, so the map is exact
and continuous across triangle edges (no seams), and costs a few milliseconds at 512 px.

**Mouth.** A closed mouth in a photo has no inside to stretch: pixels between the parted lips
would smear lip colour. So the region bounded by the inner lip contour is painted: a dark
throat shaded from the lips' own colour, the upper teeth under the upper lip (lit like the
face), a hint of tongue at the bottom. It fades in as the lips part beyond their rest gap, so a
portrait that already shows its teeth keeps them when the mouth is at rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import face_mesh as fm
from .animate import FaceRig

_SHIFT = 4  # sub-pixel bits for cv2's polygon rasteriser
_UPPER_INNER = list(fm.LIPS_UPPER_INNER)
_LOWER_INNER = list(fm.LIPS_LOWER_INNER)


class MeshWarper:
    """Piecewise-affine warp of one image along a fixed triangulation.

    The sampling map is computed on a grid ``step`` times coarser than the image and upsampled
    bilinearly: the map is piecewise linear, so this moves no pixel by more than a fraction of a
    pixel, and makes the map four times cheaper at ``step=2``.
    """

    def __init__(self, image: np.ndarray, rest: np.ndarray, triangles: np.ndarray, step: int | None = None):
        self.image = np.ascontiguousarray(image)
        self.rest = np.asarray(rest, dtype=np.float64)
        self.triangles = np.asarray(triangles, dtype=np.int32)
        h, w = image.shape[:2]
        self.step = step if step is not None else (2 if min(h, w) >= 320 else 1)
        gh, gw = -(-h // self.step), -(-w // self.step)
        # Grid sample j stands for image coordinate step*j + (step-1)/2 (cv2.resize's convention).
        off = (self.step - 1) / 2
        gx = np.arange(gw, dtype=np.float32) * self.step + off
        gy = np.arange(gh, dtype=np.float32) * self.step + off
        self.grid_x, self.grid_y = np.meshgrid(gx, gy)

    def warp(self, points: np.ndarray) -> np.ndarray:
        """The image with the rest points moved to ``points``."""
        h, w = self.image.shape[:2]
        moved = np.abs(points - self.rest).max(axis=1) > 1e-3
        tri = self.triangles[moved[self.triangles].any(axis=1)]
        if len(tri) == 0:
            return self.image.copy()
        dst = points[tri]  # (M, 3, 2)
        m = np.concatenate([dst, np.ones((len(tri), 3, 1))], axis=2)
        ok = np.abs(np.linalg.det(m)) > 1e-6
        m, src, dst = m[ok], self.rest[tri[ok]], dst[ok]
        # Affine dest -> source per triangle: [x y 1] @ A = [sx sy].
        affine = np.linalg.solve(m, src).reshape(-1, 6)  # [x->sx, x->sy, y->sx, y->sy, 1->sx, 1->sy]
        coef = np.vstack([affine, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]]).astype(np.float32)  # last: identity
        off = (self.step - 1) / 2
        ids = np.full(self.grid_x.shape, len(affine), dtype=np.int32)
        fixed = np.round((dst - off) / self.step * (1 << _SHIFT)).astype(np.int32)
        for i, poly in enumerate(fixed):
            cv2.fillConvexPoly(ids, poly, int(i), lineType=cv2.LINE_8, shift=_SHIFT)
        c = np.take(coef, ids, axis=0)
        map_x = self.grid_x * c[..., 0] + self.grid_y * c[..., 2] + c[..., 4]
        map_y = self.grid_x * c[..., 1] + self.grid_y * c[..., 3] + c[..., 5]
        if self.step > 1:
            map_x = cv2.resize(map_x, (w, h), interpolation=cv2.INTER_LINEAR)
            map_y = cv2.resize(map_y, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.remap(self.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


OPEN_AT_REST = 0.04  # inner-lip gap (in interocular distances) above which the photo shows its mouth's inside


@dataclass
class MouthInside:
    """What a portrait with parted lips shows between them, split at the midline between the lips:
    the upper half (upper teeth) moves with the upper lip, the lower half with the lower lip."""

    pixels: np.ndarray  # (h, w, 3) float, the box around the rest opening
    upper: np.ndarray  # (h, w) coverage of the upper half
    lower: np.ndarray
    origin: np.ndarray  # (2,) the box's top-left corner in the image
    rest_upper: np.ndarray  # (11, 2) inner-lip points at rest
    rest_lower: np.ndarray


@dataclass
class MouthStyle:
    """Colours of the painted mouth, taken from the portrait so they match its lighting."""

    throat: np.ndarray  # RGB float
    tongue: np.ndarray
    teeth: np.ndarray
    rest_gap: float  # inner-lip gap of the portrait, px
    inside: MouthInside | None = None  # None: the lips are closed in the photo


def mouth_style(image: np.ndarray, mesh_points: np.ndarray, io: float) -> MouthStyle:
    """Sample lip and skin colour of the portrait; keep what its parted lips show, if they are."""
    h, w = image.shape[:2]
    lips = np.zeros((h, w), np.uint8)
    outer = mesh_points[list(fm.LIPS_UPPER_OUTER) + list(fm.LIPS_LOWER_OUTER[::-1])]
    upper, lower = mesh_points[_UPPER_INNER], mesh_points[_LOWER_INNER]
    inner = np.vstack([upper, lower[::-1]])
    cv2.fillPoly(lips, [np.round(outer).astype(np.int32)], 1)
    cv2.fillPoly(lips, [np.round(inner).astype(np.int32)], 0)
    lip = image[lips > 0].reshape(-1, 3).astype(np.float64)
    lip_rgb = np.median(lip, axis=0) if len(lip) else np.array([150.0, 80.0, 80.0])
    x1, y1 = np.clip(mesh_points.min(0).astype(int), 0, [w - 1, h - 1])
    x2, y2 = np.clip(mesh_points.max(0).astype(int), 0, [w - 1, h - 1])
    face = image[y1:y2 + 1, x1:x2 + 1].reshape(-1, 3).astype(np.float64)
    light = float(np.clip(np.percentile(face.mean(1), 90) / 200.0, 0.45, 1.15)) if len(face) else 1.0
    gap = float(np.linalg.norm(upper[5] - lower[5]))
    inside = None
    if gap > OPEN_AT_REST * io:
        lo = np.maximum(np.floor(inner.min(0)).astype(int) - 2, 0)
        hi = np.minimum(np.ceil(inner.max(0)).astype(int) + 3, [w, h])
        size = (hi[1] - lo[1], hi[0] - lo[0])
        mid = (upper + lower) / 2
        whole = _poly_mask(size, inner - lo)
        top_half = _poly_mask(size, np.vstack([upper, mid[::-1]]) - lo)
        inside = MouthInside(image[lo[1]:hi[1], lo[0]:hi[0]].astype(np.float64), whole * top_half,
                             whole * (1 - top_half), lo.astype(np.float64), upper.copy(), lower.copy())
    return MouthStyle(
        throat=lip_rgb * 0.22,
        tongue=lip_rgb * 0.62 + np.array([20.0, 0.0, 0.0]),
        teeth=np.array([226.0, 220.0, 204.0]) * light,
        rest_gap=gap,
        inside=inside,
    )


def paint_mouth(frame: np.ndarray, points: np.ndarray, style: MouthStyle, io: float) -> np.ndarray:
    """Paint the inside of the mouth bounded by the posed inner lips (in place, returned)."""
    upper, lower = points[_UPPER_INNER], points[_LOWER_INNER]
    gap = float(np.linalg.norm(upper[5] - lower[5]))
    fade = float(np.clip((gap - style.rest_gap - 0.01 * io) / (0.05 * io), 0.0, 1.0))
    if fade <= 0:
        return frame
    poly = np.vstack([upper, lower[::-1][1:-1]])
    lo = np.floor(poly.min(0)).astype(int) - 3
    hi = np.ceil(poly.max(0)).astype(int) + 4
    h, w = frame.shape[:2]
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], w), min(hi[1], h)
    if x1 <= x0 or y1 <= y0:
        return frame
    off = np.array([x0, y0])
    size = (y1 - y0, x1 - x0)
    mask = _poly_mask(size, poly - off)
    # Throat: darkest in the middle, a little lighter towards the lips.
    yy, xx = np.mgrid[0:size[0], 0:size[1]].astype(np.float64)
    centre = poly.mean(0) - off
    span = np.maximum(poly.max(0) - poly.min(0), 1.0)
    r = np.sqrt(((xx - centre[0]) / (span[0] / 2)) ** 2 + ((yy - centre[1]) / (span[1] / 2)) ** 2)
    inside = style.throat[None, None, :] * (0.7 + 0.5 * np.clip(r, 0, 1))[..., None]
    # Tongue: an ellipse resting on the lower lip, visible once the mouth is well open.
    low = lower.mean(0) - off
    tongue = _ellipse_mask(size, (low[0], low[1] - 0.1 * gap), (0.32 * span[0], 0.35 * gap))
    inside = inside * (1 - tongue[..., None]) + style.tongue[None, None, :] * tongue[..., None]
    if style.inside is not None:
        # The photo's own teeth: the upper half rides with the upper lip, the lower with the lower.
        for half, rest, now in ((style.inside.upper, style.inside.rest_upper, upper),
                                (style.inside.lower, style.inside.rest_lower, lower)):
            inside = _paste_moved(inside, style.inside.pixels, half, style.inside.origin, rest, now, off, size)
        alpha = mask[..., None]
    else:
        inside = _paint_teeth(inside, upper, points, style.teeth, off, size, min(0.08 * io, 0.45 * gap))
        alpha = (mask * fade)[..., None]
    region = frame[y0:y1, x0:x1].astype(np.float64)
    frame[y0:y1, x0:x1] = np.clip(region * (1 - alpha) + inside * alpha, 0, 255).astype(np.uint8)
    return frame


def _paste_moved(canvas: np.ndarray, pixels: np.ndarray, coverage: np.ndarray, origin: np.ndarray,
                 rest: np.ndarray, now: np.ndarray, off: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Composite ``pixels`` (a box at ``origin``) moved the way ``rest`` points moved to ``now``."""
    m, _ = cv2.estimateAffinePartial2D(rest - origin, now - off)
    if m is None:
        return canvas
    moved = cv2.warpAffine(pixels, m, (size[1], size[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(coverage, m, (size[1], size[0]), flags=cv2.INTER_LINEAR, borderValue=0.0)[..., None]
    return canvas * (1 - a) + moved * a


def _paint_teeth(inside: np.ndarray, upper: np.ndarray, points: np.ndarray, colour: np.ndarray, off: np.ndarray,
                 size: tuple[int, int], depth: float) -> np.ndarray:
    """Upper incisors for a photo with closed lips: from the upper lip down to an edge that arches
    up towards the corners, so teeth show mid-mouth and vanish where the lip curves to the corners."""
    if depth < 1.0:
        return inside
    down = _down(points)
    across = np.array([down[1], -down[0]])
    top = upper - off - 1.5 * down  # tucked under the lip: no dark seam between lip and teeth
    centre = top.mean(0)
    u = (top - centre) @ across
    v = (top - centre) @ down
    half = max(float(np.abs(u).max()), 1e-6)
    edge = float(v[len(v) // 2]) + depth * (1.0 - 0.6 * (u / half) ** 2)
    bottom = top + np.outer(np.maximum(edge - v, 0.0), down)
    teeth = _poly_mask(size, np.vstack([top, bottom[::-1]]))[..., None]
    xx = np.arange(size[1], dtype=np.float64)[None, :]
    shade = np.clip(1.0 - 0.5 * np.abs(xx - centre[0]) / half, 0.5, 1.0)[..., None]
    return inside * (1 - teeth) + colour[None, None, :] * shade * teeth


def _down(points: np.ndarray) -> np.ndarray:
    right = points[fm.INNER_MOUTH_CORNERS[1]] - points[fm.INNER_MOUTH_CORNERS[0]]
    right = right / max(np.linalg.norm(right), 1e-6)
    return np.array([-right[1], right[0]])


def _poly_mask(size: tuple[int, int], poly: np.ndarray) -> np.ndarray:
    """Anti-aliased polygon coverage (0..1)."""
    m = np.zeros(size, np.uint8)
    cv2.fillPoly(m, [np.round(poly * (1 << _SHIFT)).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return m.astype(np.float64) / 255.0


def _ellipse_mask(size: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    m = np.zeros(size, np.uint8)
    c = (int(round(centre[0] * 16)), int(round(centre[1] * 16)))
    ax = (max(1, int(round(axes[0] * 16))), max(1, int(round(axes[1] * 16))))
    cv2.ellipse(m, c, ax, 0, 0, 360, 255, -1, lineType=cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(m, (0, 0), 1.0).astype(np.float64) / 255.0


class FrameRenderer:
    """Everything needed to draw frames of one portrait: the warper, the rig, the mouth colours."""

    def __init__(self, image: np.ndarray, rig: FaceRig):
        self.rig = rig
        self.warper = MeshWarper(image, rig.rest, rig.triangles)
        self.style = mouth_style(image, rig.rest[:rig.num_mesh], rig.io)

    def render(self, points: np.ndarray) -> np.ndarray:
        frame = self.warper.warp(points)
        return paint_mouth(frame, points[:self.rig.num_mesh], self.style, self.rig.io)
