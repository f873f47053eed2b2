"""Pose the portrait's face mesh for one frame of a :class:`~.motion.MotionTrack`.

The rig is the 468-point mesh plus two rings of points around the head and the frame's border,
triangulated once on the portrait. A frame moves only the points; :mod:`.render` warps the
portrait's pixels triangle by triangle. How each motion moves the points, and why:

* **jaw**: the mandible turns about the jaw joints, which sit behind the face near the ears, so a
  point drops in proportion to how far *in front of* the joints it lies (the mesh's depth): the
  chin and lower lip most, the jaw angles barely. Points above the mouth line stay, the upper lip
  lifts a little, the cheeks next to the mouth stretch down a little.
* **width**: the mouth corners move out (spread vowels) or in (rounded ones); lip points follow by
  their distance from the mouth's centre line, the cheeks beside the corners by less.
* **blinks**: each upper-lid point moves onto its lower-lid partner; the skin above it follows.
* **brows**: lift with emphasis, the forehead above them follows.
* **head**: the expressed mesh turns in 3-D (yaw, pitch, roll about a pivot in the neck) and shifts;
  the inner ring moves with the head's outline, the outer ring by less, the border not at all,
  so hair and shoulders bend smoothly into a still background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay

from . import face_mesh as fm
from .face_mesh import FaceMesh

JAW_DROP = 0.27  # inner-lip gap at full opening, in interocular distances
WIDTH_SHIFT = 0.07  # corner displacement at full spread/rounding, in interocular distances
BROW_LIFT = 0.06
CORNER_DROP = 0.35  # share of the lower lip's drop taken by the mouth corners
INNER_RING = 1.3  # ring radii as multiples of the face outline's distance from its centre
OUTER_RING = 2.1
OUTER_RING_FOLLOW = 0.35


@dataclass(frozen=True)
class FramePose:
    """The motion of one frame (see :class:`~.motion.MotionTrack` for units)."""

    mouth_open: float = 0.0
    mouth_width: float = 0.0
    blink: float = 0.0
    brow: float = 0.0
    head: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass
class FaceRig:
    """Control points of one portrait and the weights that say how each follows each motion."""

    rest: np.ndarray  # (N, 2): 468 mesh points, inner ring, outer ring, border
    depth: np.ndarray  # (468,) mesh depth (px, smaller = nearer)
    triangles: np.ndarray  # (M, 3) indices into rest
    inner_ring: np.ndarray  # indices of the inner ring's points in rest
    outer_ring: np.ndarray
    right: np.ndarray  # unit vector along the eye line (image-left eye -> image-right eye)
    down: np.ndarray  # unit vector perpendicular to it, pointing to the chin
    io: float  # interocular distance, px
    jaw: np.ndarray  # (468,) share of the jaw drop each mesh point takes
    width: np.ndarray  # (468,) signed share of the corner shift (+ on the image-right side)
    brow: np.ndarray  # (468,)
    lid_pairs: np.ndarray  # (K, 2) upper-lid index, lower-lid index
    above_lids: np.ndarray  # (468,) share of the lid travel taken by skin above the lids
    pivot: np.ndarray  # (3,) head rotation centre (x, y, z)

    @property
    def num_mesh(self) -> int:
        return len(self.depth)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def build_rig(mesh: FaceMesh, image_size: tuple[int, int]) -> FaceRig:
    """The rig of ``mesh`` in an image of ``image_size`` (width, height)."""
    w, h = image_size
    pts = mesh.xy.astype(np.float64)
    z = mesh.points[:, 2].astype(np.float64)
    eye_r, eye_l = mesh.eye_centres
    io = max(float(np.linalg.norm(eye_l - eye_r)), 1.0)
    right = (eye_l - eye_r) / io
    down = np.array([-right[1], right[0]])
    mouth = pts[list(fm.MOUTH_CORNERS)].mean(0)
    u = (pts - mouth) @ right / io  # across the face
    v = (pts - mouth) @ down / io  # down the face, 0 at the mouth corners

    # Jaw: depth in front of the joints (behind the face sides at ear level), below the mouth line.
    z_joint = float(np.mean(z[list(fm.FACE_SIDES)])) + 0.25 * io
    z_chin = float(z[fm.CHIN])
    v_lower_lip = float(v[fm.LOWER_LIP_BOTTOM])
    in_front = np.clip((z_joint - z) / max(z_joint - z_chin, 1e-6), 0.0, 1.0)
    below = _smoothstep((v + 0.05) / max(v_lower_lip + 0.05, 1e-6))
    jaw = in_front * below
    # Along the lips the drop changes smoothly from the middle to the corners, which sit between
    # both lips: the opening is a lens (arched upper lip, U-shaped lower lip), not a box.
    u_corner = max(float(np.abs(u[list(fm.MOUTH_CORNERS)]).mean()), 1e-6)
    for contour, middle, power in ((fm.LIPS_LOWER_INNER, 1.0, 2.2), (fm.LIPS_LOWER_OUTER, 0.94, 2.2),
                                   (fm.LIPS_UPPER_INNER, -0.08, 4.0), (fm.LIPS_UPPER_OUTER, -0.08, 4.0)):
        idx = list(contour)
        t = np.clip(np.abs(u[idx]) / u_corner, 0.0, 1.0) ** power
        jaw[idx] = middle + (CORNER_DROP - middle) * t
    # Cheeks beside and above the mouth stretch with the opening.
    cheek = (np.abs(u) > 0.45) & (np.abs(u) < 1.1) & (v < 0.05) & (v > -0.9)
    jaw[cheek] = np.maximum(jaw[cheek], 0.18 * (1 - np.abs(v[cheek]) / 0.9))

    # Width: lips by their distance from the mouth's centre line, cheeks beside the corners by less.
    lips = list(set(fm.LIPS_UPPER_OUTER + fm.LIPS_LOWER_OUTER + fm.LIPS_UPPER_INNER + fm.LIPS_LOWER_INNER))
    width = np.zeros(len(pts))
    near_mouth = np.exp(-((np.abs(u) - u_corner) / 0.35) ** 2 - (v / 0.45) ** 2) * np.sign(u) * 0.45
    width[:] = near_mouth * (np.abs(u) > 0.5 * u_corner)
    width[lips] = np.clip(u[lips] / u_corner, -1.0, 1.0)

    # Brows and the forehead above them.
    brows = list(fm.RIGHT_BROW + fm.LEFT_BROW)
    v_brow = float(v[brows].mean())
    brow = np.where(v < v_brow, _smoothstep(1 - (v_brow - v) / 0.6) * 0.6, 0.0)
    brow[brows] = 1.0

    # Lids: the upper lid closes onto the lower one; the skin just above follows part of the way.
    pairs = np.array(list(zip(fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)) + list(zip(fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER)))
    above = np.zeros(len(pts))
    lid_set = set(pairs.ravel().tolist())
    for upper in (fm.RIGHT_EYE_UPPER, fm.LEFT_EYE_UPPER):
        c = pts[list(upper)].mean(0)
        d = pts - c
        du, dv = d @ right / io, d @ down / io
        region = (np.abs(du) < 0.32) & (dv < 0) & (dv > -0.22)
        above[region] = 0.35 * (1 - np.abs(du[region]) / 0.32) * (1 + dv[region] / 0.22)
    above[list(lid_set)] = 0.0

    # Rings around the head, outside the face outline, and the frame border.
    oval = pts[list(fm.FACE_OVAL)]
    centre = oval.mean(0)
    inner = centre + (oval - centre) * INNER_RING
    outer = centre + (oval - centre) * OUTER_RING
    margin = 2.0
    inside = lambda p: (p[:, 0] > margin) & (p[:, 0] < w - 1 - margin) & (p[:, 1] > margin) & (p[:, 1] < h - 1 - margin)  # noqa: E731
    inner, outer = inner[inside(inner)], outer[inside(outer)]
    border = _border_points(w, h, step=max(w, h) / 8)
    rest = np.vstack([pts, inner, outer, border])
    n = len(pts)
    inner_idx = np.arange(n, n + len(inner))
    outer_idx = np.arange(n + len(inner), n + len(inner) + len(outer))
    triangles = Delaunay(rest).simplices.astype(np.int32)

    pivot = np.array([*(centre + down * 0.6 * io), float(z.mean()) + 1.2 * io])
    return FaceRig(rest, z, triangles, inner_idx, outer_idx, right, down, io, jaw, width, brow, pairs, above, pivot)


def _border_points(w: int, h: int, step: float) -> np.ndarray:
    xs = np.linspace(0, w - 1, max(2, int(round((w - 1) / step)) + 1))
    ys = np.linspace(0, h - 1, max(2, int(round((h - 1) / step)) + 1))
    top = np.stack([xs, np.zeros_like(xs)], 1)
    bottom = np.stack([xs, np.full_like(xs, h - 1)], 1)
    left = np.stack([np.zeros_like(ys[1:-1]), ys[1:-1]], 1)
    right = np.stack([np.full_like(ys[1:-1], w - 1), ys[1:-1]], 1)
    return np.vstack([top, bottom, left, right])


def _rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation of image-space points (x right, y down, z away from the camera)."""
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def expression_points(rig: FaceRig, pose: FramePose) -> np.ndarray:
    """The 468 mesh points after mouth, blink and brow motion (before the head turns)."""
    n = rig.num_mesh
    pts = rig.rest[:n].copy()
    drop = JAW_DROP * rig.io * pose.mouth_open
    pts += np.outer(rig.jaw * drop, rig.down)
    # Opening wide pulls the corners in a little; spreading moves them out and slightly up.
    shift = WIDTH_SHIFT * rig.io * (pose.mouth_width - 0.25 * pose.mouth_open)
    pts += np.outer(rig.width * shift, rig.right)
    pts -= np.outer(np.abs(rig.width) * 0.25 * WIDTH_SHIFT * rig.io * max(pose.mouth_width, 0.0), rig.down)
    pts -= np.outer(rig.brow * BROW_LIFT * rig.io * pose.brow, rig.down)
    if pose.blink > 0:
        upper, lower = rig.lid_pairs[:, 0], rig.lid_pairs[:, 1]
        travel = rig.rest[lower] - rig.rest[upper]
        # Closed, the lids keep a sliver apart: triangles never collapse (no fold, no artefact).
        pts[upper] += pose.blink * 0.86 * travel
        pts[lower] -= pose.blink * 0.06 * travel
        gap = float(np.mean(travel @ rig.down))
        pts += np.outer(rig.above_lids * pose.blink * gap, rig.down)
    return pts


def pose_points(rig: FaceRig, pose: FramePose) -> np.ndarray:
    """Every control point of the rig for ``pose`` (same order as ``rig.rest``)."""
    n = rig.num_mesh
    mesh = expression_points(rig, pose)
    yaw, pitch, roll, dx, dy = pose.head
    rot = _rotation(yaw, pitch, roll)
    p3 = np.column_stack([mesh, rig.depth]) - rig.pivot
    moved = (p3 @ rot.T + rig.pivot)[:, :2]
    face_size = rig.io * 2.5
    moved += np.array([dx, dy]) * face_size
    out = rig.rest.copy()
    out[:n] = moved
    # Rings: the inner one follows the head's outline (2-D rigid fit of the oval's motion).
    oval = list(fm.FACE_OVAL)
    a, t = _rigid_fit(rig.rest[oval], moved[oval])
    if len(rig.inner_ring):
        out[rig.inner_ring] = rig.rest[rig.inner_ring] @ a.T + t
    if len(rig.outer_ring):
        full = rig.rest[rig.outer_ring] @ a.T + t
        out[rig.outer_ring] = rig.rest[rig.outer_ring] + OUTER_RING_FOLLOW * (full - rig.rest[rig.outer_ring])
    return out


def _rigid_fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation + translation taking ``src`` onto ``dst`` (2-D Kabsch)."""
    cs, cd = src.mean(0), dst.mean(0)
    u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
    r = (u @ vt).T
    if np.linalg.det(r) < 0:
        vt[-1] *= -1
        r = (u @ vt).T
    return r, cd - cs @ r.T
