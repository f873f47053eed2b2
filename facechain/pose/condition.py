"""Turn whatever the user passes as ``--pose`` into an OpenPose conditioning image.

A pose image may already be a skeleton (drawn by an OpenPose annotator or by hand): it is used
as is, only resized. Otherwise it is a photo: bodies come from the offline BlazePose estimator
and faces' 68 landmarks from the face analyzer, and both are drawn the OpenPose way. Without
the body-pose model the condition falls back to faces only (with a warning), which still fixes
head position and size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ..errors import InputError, ModelNotFoundError
from .draw import draw_openpose
from .skeleton import BodyPose

log = logging.getLogger(__name__)

# looks_like_openpose thresholds (HSV, 8-bit): see the function's docstring.
_DARK_V = 40
_MIN_DARK_FRACTION = 0.6
_MIN_INK_PIXELS = 20
_INK_EXPLAINED = 0.75
_COLOURED_S, _COLOURED_V = 100, 60
_GREY_S, _GREY_V = 50, 80
_MIN_FACE_DOTS = 20


def looks_like_openpose(image: np.ndarray) -> bool:
    """Whether an RGB image already is a pose skeleton rather than a photo.

    A skeleton is mostly black (>= 60 % dark pixels) and nearly all of the rest (>= 75 %) is
    either strongly saturated colour (limbs, joints, hands) or white-grey (face dots, also
    after JPEG and downscaling). A body drawing spreads its colour over several hues (>= 3 of
    12 hue bins); a face-only drawing is sparse white dots (>= 20 separate blobs). Photos fail
    one test or another: even dark photos have dim, weakly saturated non-black pixels.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        return False
    hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1].astype(np.int32), hsv[..., 2].astype(np.int32)
    ink = val > _DARK_V
    n_ink = int(ink.sum())
    if 1.0 - n_ink / ink.size < _MIN_DARK_FRACTION or n_ink < _MIN_INK_PIXELS:
        return False
    coloured = ink & (sat >= _COLOURED_S) & (val >= _COLOURED_V)
    grey = ink & (sat <= _GREY_S) & (val >= _GREY_V)
    n_col, n_grey = int(coloured.sum()), int(grey.sum())
    if (n_col + n_grey) / n_ink < _INK_EXPLAINED:
        return False
    if n_col >= 0.3 * n_ink:  # a body (or hand) drawing
        bins = np.bincount((hue[coloured].astype(np.int32) * 12) // 180, minlength=12)
        return int((bins >= 0.02 * n_col).sum()) >= 3
    n_blobs = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)[0] - 1
    return n_grey >= 0.6 * n_ink and n_blobs >= _MIN_FACE_DOTS and n_ink <= 0.1 * ink.size


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if image.shape[1] == w and image.shape[0] == h:
        return image.copy()
    shrink = w < image.shape[1] or h < image.shape[0]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@dataclass
class PoseCondition:
    """A conditioning image and how it was made (recorded in the outputs' metadata)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    source: str  # "skeleton" (given as such), "estimated" (bodies found), "faces-only"
    bodies: list[BodyPose] = field(default_factory=list)  # in output pixels
    faces68: list[np.ndarray] = field(default_factory=list)  # in output pixels
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "size": [int(self.image.shape[1]), int(self.image.shape[0])],
                "bodies": len(self.bodies), "faces": len(self.faces68), "warnings": list(self.warnings)}


def build_pose_condition(
    image_rgb: np.ndarray | str | Path,
    *,
    size: tuple[int, int] | None = None,
    include_face: bool = True,
    analyzer: Any = None,
    estimator: Any = None,
) -> PoseCondition:
    """The OpenPose condition for ``--pose`` plus its provenance; see :func:`pose_condition_from_image`."""
    label = str(image_rgb) if isinstance(image_rgb, (str, Path)) else "pose image"
    if isinstance(image_rgb, (str, Path)):
        from ..image_io import load_image

        image_rgb = load_image(image_rgb)
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(label, f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    out_size = (int(size[0]), int(size[1])) if size else (w, h)
    if looks_like_openpose(image):
        return PoseCondition(_resize(image, out_size), "skeleton")

    if analyzer is None:
        from ..perception import get_analyzer

        analyzer = get_analyzer()
    faces = analyzer.analyze(image, landmarks=True)
    warnings: list[str] = []
    bodies: list[BodyPose] = []
    model_hint = ""
    try:
        if estimator is None:
            from .estimate import get_body_pose_estimator

            estimator = get_body_pose_estimator()
        bodies = estimator.estimate(image, faces=faces)
    except ModelNotFoundError as e:
        model_hint = e.hint
        msg = f"body pose unavailable, using face landmarks only: {e}"
        log.warning(msg)
        warnings.append(msg)

    sx, sy = out_size[0] / w, out_size[1] / h
    bodies = [b.scaled(sx, sy) for b in bodies]
    faces68 = [f.landmarks68 * np.array([sx, sy]) for f in faces if f.landmarks68 is not None] if include_face else []
    if not bodies and not faces68:
        what = "no body pose or face" if include_face else "no body pose"
        hint = f" (the body-pose model is missing: {model_hint})" if warnings else ""
        raise InputError(label, f"{what} found to copy the pose from{hint}")
    canvas = draw_openpose(out_size, bodies=bodies, faces68=faces68)
    return PoseCondition(canvas, "estimated" if bodies else "faces-only", bodies, faces68, warnings)


def pose_condition_from_image(
    image_rgb: np.ndarray | str | Path,
    *,
    size: tuple[int, int] | None = None,
    include_face: bool = True,
    analyzer: Any = None,
    estimator: Any = None,
) -> np.ndarray:
    """The OpenPose conditioning image (H, W, 3 uint8) for ``--pose IMAGE``.

    A skeleton image is returned resized to ``size=(W, H)`` (default: its own size). A photo
    gets its people's body poses (``estimator``, default the offline BlazePose one) and, with
    ``include_face``, their 68 face landmarks (``analyzer``, default dlib) drawn at ``size``.
    Missing body-pose model → warning and faces only; nobody found → :class:`InputError`.
    """
    return build_pose_condition(image_rgb, size=size, include_face=include_face, analyzer=analyzer, estimator=estimator).image


def face_landmark_condition(size: tuple[int, int], faces68: Sequence[np.ndarray]) -> np.ndarray:
    """White 68-point face dots on black at ``size=(W, H)``: the inpainting stage-2 condition
    (the generated face's landmarks warped onto the template face)."""
    return draw_openpose(size, faces68=faces68)
