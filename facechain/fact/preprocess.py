"""Turn a photo into what the face encoder was trained on.

The published encoder saw a *head-masked* photo (background black), warped by a 5-point
similarity transform onto the standard ArcFace 112x112 template, RGB scaled to [-1, 1].

Head mask: the reference used M2FP human parsing (face + hair). That model is not available
offline, so the default is the offline GrabCut head segmentation of
:mod:`facechain.perception.segmentation` (face + hair); ``landmarks`` (the 68-point hull over the
forehead, no hair) and ``m2fp`` can be chosen, or any ``mask_fn(image, face)``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, Union

import cv2
import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..types import Face

log = logging.getLogger(__name__)

#: insightface's ArcFace template for 112x112 crops (eye centres, nose tip, mouth corners).
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

MaskFn = Callable[[np.ndarray, Face], np.ndarray]
HEAD_MASKS = ("grabcut", "m2fp", "landmarks")
DEFAULT_HEAD_MASK = "grabcut"
PhotoInput = Union[str, Path, np.ndarray, "FacePhoto"]


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping
    ``src`` points onto ``dst`` (Umeyama 1991). Returns a 2x3 matrix for ``cv2.warpAffine``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var_s = (s**2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ sign) / var_s) if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def landmark_head_mask(shape: tuple[int, ...], face: Face, forehead: float = 0.55, dilate: float = 0.08) -> np.ndarray:
    """Float mask (H, W) in {0, 1}: landmark hull + forehead, dilated by ``dilate`` x face size.

    The brows are lifted by ``forehead`` x (eye line to chin distance) along the face's up axis,
    so the forehead (part of every ArcFace crop) is kept. Needs 68 landmarks.
    """
    if face.landmarks68 is None:
        raise ValueError("landmark_head_mask needs the face's 68 landmarks")
    lm = np.asarray(face.landmarks68, dtype=np.float64)
    eyes = lm[36:48].mean(0)
    chin = lm[8]
    up = eyes - chin
    length = float(np.linalg.norm(up)) or 1.0
    up /= length
    brows = lm[17:27] + up * forehead * length
    pts = np.concatenate([lm, brows]).round().astype(np.int32)
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(pts), 1)
    k = max(1, int(round(dilate * face.size)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return mask.astype(np.float32)


@functools.lru_cache(maxsize=4)
def head_mask_fn(kind: str = "grabcut") -> MaskFn:
    """The head-mask function for ``kind``: ``grabcut`` (offline face + hair segmentation from
    :mod:`facechain.perception.segmentation`), ``m2fp`` (the reference's parsing model, ModelScope)
    or ``landmarks`` (the landmark hull over the forehead, no hair)."""
    if kind == "landmarks":
        return lambda image, face: landmark_head_mask(image.shape, face)
    if kind not in HEAD_MASKS:
        raise ConfigError(f"unknown head mask '{kind}' (known: {', '.join(HEAD_MASKS)})")
    try:
        from ..perception.segmentation import get_head_segmenter
    except ImportError:  # perception without a segmentation module
        log.warning("head segmentation unavailable: using the landmark hull as the FACT head mask")
        return head_mask_fn("landmarks")
    segmenter = get_head_segmenter(kind)

    def segment(image: np.ndarray, face: Face) -> np.ndarray:
        cv2.setRNGSeed(0)  # GrabCut's k-means draws from OpenCV's global RNG: same photo, same mask
        return np.clip(segmenter.segment(image, face), 0.0, 1.0).astype(np.float32)

    return segment


def align_face(image: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp ``image`` so the 5 ``kps`` land on the ArcFace template (scaled to ``size``)."""
    m = similarity_transform(kps, ARCFACE_TEMPLATE_112 * (size / 112.0))
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


@dataclass
class FacePhoto:
    """One photo ready for the face encoder."""

    source: str
    face: Face
    aligned: np.ndarray  # (size, size, 3) uint8 RGB, head-masked and aligned
    mask: np.ndarray = field(repr=False)  # (H, W) float head mask of the original photo

    def tensor(self) -> torch.Tensor:
        """(3, size, size) float in [-1, 1]."""
        return torch.from_numpy(self.aligned).permute(2, 0, 1).float() / 127.5 - 1.0


def prepare_face_photo(
    photo: PhotoInput,
    *,
    analyzer=None,
    mask_fn: MaskFn | None = None,
    size: int = 112,
    name: str | None = None,
) -> FacePhoto:
    """Detect the largest face, black out everything but the head, align to the template.

    Raises :class:`InputError` naming the file when there is no usable face.
    """
    if isinstance(photo, FacePhoto):
        return photo
    from ..image_io import load_image

    if isinstance(photo, np.ndarray):
        image, source = photo, name or "<image>"
    else:
        image, source = load_image(photo, max_side=2048), str(photo)
    if analyzer is None:
        from ..perception import get_analyzer

        analyzer = get_analyzer()
    faces = analyzer.analyze(image, landmarks=True)
    if not faces:
        raise InputError(source, "no face found in this photo (FACT needs one clearly visible face)")
    face = faces[0]
    if face.kps is None or face.landmarks68 is None:
        raise InputError(source, "face landmarks could not be found")
    if face.size < 24:
        raise InputError(source, f"the face is too small ({face.size:.0f} px; FACT needs at least 24 px)")
    mask = (mask_fn or head_mask_fn(DEFAULT_HEAD_MASK))(image, face)
    masked = (image.astype(np.float32) * mask[..., None]).round().astype(np.uint8)
    return FacePhoto(source, face, align_face(masked, face.kps, size), mask)


def prepare_face_photos(photos: Sequence[PhotoInput] | PhotoInput, **kw) -> list[FacePhoto]:
    if isinstance(photos, (str, Path, np.ndarray, FacePhoto)):
        photos = [photos]
    out = [prepare_face_photo(p, **kw) for p in photos]
    if not out:
        raise InputError("--photo", "no photo given")
    return out


def photos_to_tensor(photos: Sequence[FacePhoto]) -> torch.Tensor:
    return torch.stack([p.tensor() for p in photos])
