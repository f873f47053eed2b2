"""Face fusion: blend the template face's identity into a generated face (paper section 2.4).

Two backends behind one function, :func:`fuse_face`:

* ``landmark`` (offline default, runs here): warp the template face onto the output face's 68
  landmarks (piecewise-affine over a Delaunay triangulation), give it the output face's colours
  (Reinhard transfer in LAB), Poisson-blend it (``cv2.seamlessClone``) inside the eroded convex
  hull of the landmarks and composite with a feathered alpha. Classical vision, no learned model:
  it transfers the template's facial texture and inner features, while the face outline, hair and
  everything outside the face stay the generated image's.
* ``modelscope``: the paper's learned model ``damo/cv_unet-image-face-fusion_damo`` (registry name
  ``face-fusion``), through ModelScope's pipeline API. It needs ``pip install 'modelscope[framework]'``
  and a download, so it is optional; its result is composited inside the same face mask.

Whatever the backend, no pixel outside the returned ``mask`` changes, and a missing face is not an
error: the target comes back unchanged with ``fused=False`` and a reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import ConfigError
from ..types import Face
from .face_geometry import feathered_face_mask, piecewise_affine_warp, poisson_blend, reinhard_colour_transfer

log = logging.getLogger(__name__)

FUSION_BACKENDS = ("landmark", "modelscope")


@dataclass
class FusionResult:
    """The fused image, the blend region (float HxW in [0, 1]) and whether fusion happened."""

    image: np.ndarray
    mask: np.ndarray
    fused: bool
    reason: str | None = None
    backend: str = "landmark"

    def to_json(self) -> dict:
        return {"fused": self.fused, "reason": self.reason, "backend": self.backend}


class FusionBackend(Protocol):
    """A backend: returns the target with the source's face blended in (before masking)."""

    name: str

    def fuse(self, target: np.ndarray, source: np.ndarray, target_face: Face, source_face: Face) -> np.ndarray: ...


class LandmarkFaceFuser:
    """Offline fusion: landmark warp + colour transfer + Poisson blending (see module docstring)."""

    name = "landmark"

    def fuse(self, target: np.ndarray, source: np.ndarray, target_face: Face, source_face: Face) -> np.ndarray:
        dst_pts = np.asarray(target_face.landmarks68, dtype=np.float64)
        warped = piecewise_affine_warp(source, source_face.landmarks68, dst_pts, target.shape)
        core, _ = feathered_face_mask(dst_pts, target.shape)
        warped = reinhard_colour_transfer(warped, target, core)
        return poisson_blend(warped, target, core)


class ModelScopeFaceFuser:
    """The paper's face-fusion model via ModelScope (optional; needs ``modelscope[framework]`` and a download)."""

    name = "modelscope"

    def __init__(self, store=None):
        from ..models.modelscope_pipelines import modelscope_pipeline

        self._pipe, keys = modelscope_pipeline("face-fusion", "image_face_fusion", store=store)
        self._key = keys.OUTPUT_IMG

    def fuse(self, target: np.ndarray, source: np.ndarray, target_face: Face, source_face: Face) -> np.ndarray:
        from PIL import Image

        out = self._pipe(dict(template=Image.fromarray(target), user=Image.fromarray(source)))[self._key]
        out = np.asarray(out)[..., ::-1]  # ModelScope returns BGR
        if out.shape != target.shape:
            import cv2

            out = cv2.resize(out, (target.shape[1], target.shape[0]), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(out.astype(np.uint8))


_FUSERS: dict[str, FusionBackend] = {}


def get_fuser(name: str = "landmark") -> FusionBackend:
    """The process-wide backend called ``name`` (models load once)."""
    if name not in FUSION_BACKENDS:
        raise ConfigError(f"unknown face fusion backend '{name}' (known: {', '.join(FUSION_BACKENDS)})")
    if name not in _FUSERS:
        _FUSERS[name] = LandmarkFaceFuser() if name == "landmark" else ModelScopeFaceFuser()
    return _FUSERS[name]


def _largest_face_with_landmarks(image: np.ndarray, analyzer) -> Face | None:
    faces = analyzer.analyze(image, landmarks=True, embedding=False)
    return faces[0] if faces else None


def fuse_face(
    target_rgb: np.ndarray,
    source_rgb: np.ndarray,
    *,
    strength: float = 1.0,
    analyzer=None,
    target_face: Face | None = None,
    source_face: Face | None = None,
    backend: str | FusionBackend = "landmark",
) -> FusionResult:
    """Blend ``source_rgb``'s (the template's) face into the largest face of ``target_rgb``.

    ``strength`` in [0, 1] scales the blend (0 = unchanged). Faces are detected with ``analyzer``
    (default: the shared dlib analyzer) unless given with 68 landmarks. Pixels outside the returned
    ``mask`` are never changed.
    """
    target = np.ascontiguousarray(np.asarray(target_rgb, dtype=np.uint8))
    source = np.ascontiguousarray(np.asarray(source_rgb, dtype=np.uint8))
    empty = np.zeros(target.shape[:2], dtype=np.float32)
    fuser = get_fuser(backend) if isinstance(backend, str) else backend
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"fusion strength must be between 0 and 1, got {strength}")
    if strength == 0.0:
        return FusionResult(target.copy(), empty, False, "fusion strength is 0", fuser.name)
    if analyzer is None and (target_face is None or source_face is None):
        from ..perception import get_analyzer

        analyzer = get_analyzer()
    if target_face is None or target_face.landmarks68 is None:
        target_face = _largest_face_with_landmarks(target, analyzer)
        if target_face is None:
            return FusionResult(target.copy(), empty, False, "no face found in the image", fuser.name)
    if source_face is None or source_face.landmarks68 is None:
        source_face = _largest_face_with_landmarks(source, analyzer)
        if source_face is None:
            return FusionResult(target.copy(), empty, False, "no face found in the template face image", fuser.name)

    blended = fuser.fuse(target, source, target_face, source_face)
    _, alpha = feathered_face_mask(target_face.landmarks68, target.shape)
    a = (alpha * float(strength))[..., None]
    out = target.astype(np.float32) * (1.0 - a) + blended.astype(np.float32) * a
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    out[alpha <= 0] = target[alpha <= 0]  # exact: nothing outside the mask moves
    return FusionResult(out, alpha.astype(np.float32), True, None, fuser.name)


class FaceFuser:
    """Face fusion as every pipeline uses it (generate, inpaint, try-on): one backend, one strength,
    one analyzer, and the person's face detected once by the caller (``source_face``)."""

    def __init__(self, analyzer=None, strength: float = 1.0, backend: str | FusionBackend = "landmark"):
        self.analyzer = analyzer
        self.strength = strength
        self.backend = backend

    def __call__(self, target: np.ndarray, source: np.ndarray, source_face: Face | None = None) -> FusionResult:
        res = fuse_face(target, source, strength=self.strength, analyzer=self.analyzer, source_face=source_face,
                        backend=self.backend)
        res.image = np.asarray(res.image, dtype=np.uint8)
        return res

    @staticmethod
    def skipped(image: np.ndarray, reason: str) -> FusionResult:
        """The result of not fusing ``image`` (fusion off, no person photo)."""
        return FusionResult(image, np.zeros(image.shape[:2], dtype=np.float32), False, reason, "none")
