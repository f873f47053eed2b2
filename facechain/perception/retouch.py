"""Skin retouching, paper section 2.1.

The paper runs ABPN (a learned retouching network on ModelScope) so that blemishes and sensor
noise do not become part of what the face LoRA learns. The offline default,
:class:`ClassicalSkinRetoucher`, is classical: an edge-preserving (bilateral) smoothing of the
face, blended in only where there is skin. The skin mask comes from the 68 landmarks (the face
outline with forehead) minus the eyes, brows, nostrils and mouth, narrowed to pixels whose
colour is close to the face's own skin colour (so beards, glasses and hair stay untouched) and
feathered so no edge shows. A little of the original fine texture is added back, so skin looks
smoothed rather than plastic. It evens skin; it does not remove large blemishes the way ABPN does.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..types import Face
from .segmentation import face_geometry, face_polygon


@runtime_checkable
class SkinRetoucher(Protocol):
    def retouch(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The retouched RGB uint8 image (same size)."""


def _poly(mask: np.ndarray, pts: np.ndarray, value: float) -> None:
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32).reshape(-1, 1, 2)], value)


def skin_mask(image: np.ndarray, lm: np.ndarray, colour_tolerance: float = 3.0) -> np.ndarray:
    """Soft mask (float32, 0..1) of facial skin, with eyes, brows, nostrils and mouth excluded."""
    h, w = image.shape[:2]
    g = face_geometry(lm)
    region = np.zeros((h, w), np.float32)
    _poly(region, face_polygon(lm, 0.3), 1.0)
    holes = np.zeros((h, w), np.uint8)
    for part in (lm[36:42], lm[42:48], lm[48:60], lm[31:36]):
        _poly(holes, cv2.convexHull(part.astype(np.float32)).reshape(-1, 2), 1)
    for brow in (lm[17:22], lm[22:27]):  # brows are lines: thicken them
        cv2.polylines(holes, [np.round(brow).astype(np.int32).reshape(-1, 1, 2)], False, 1, max(int(0.08 * g["height"]), 2))
    k = max(int(0.06 * g["height"]), 3)
    holes = cv2.dilate(holes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    region[holes > 0] = 0.0
    # Colour gate: distance to the cheek skin colour in YCrCb chroma, in units of its spread.
    ycc = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    cheeks = np.zeros((h, w), np.uint8)
    for a, b, c in ((1, 3, 31), (15, 13, 35)):
        _poly(cheeks, np.array([lm[a], lm[b], lm[c]]), 1)
    sample = ycc[cheeks > 0][:, 1:]
    if len(sample) >= 20:
        mu = sample.mean(axis=0)
        sd = sample.std(axis=0) + 2.0
        d = np.sqrt((((ycc[..., 1:] - mu) / sd) ** 2).sum(axis=-1))
        gate = np.clip((colour_tolerance + 1.0 - d) / 1.0, 0.0, 1.0)
        region *= gate
    blur = max(0.02 * g["height"], 1.0)
    return cv2.GaussianBlur(region, (0, 0), blur)


class ClassicalSkinRetoucher:
    """Offline default: bilateral smoothing restricted to skin (see the module docstring).

    ``strength`` (0..1) is how much of the smoothed skin replaces the original;
    ``texture`` is the share of fine detail given back.
    """

    def __init__(self, strength: float = 0.7, texture: float = 0.2):
        self.strength = float(np.clip(strength, 0.0, 1.0))
        self.texture = texture

    def retouch(self, image: np.ndarray, face: Face) -> np.ndarray:
        if face.landmarks68 is None:
            raise ValueError("skin retouching needs 68 landmarks")
        lm = face.landmarks68
        g = face_geometry(lm)
        mask = skin_mask(image, lm) * self.strength
        if float(mask.max()) <= 0.0:
            return image
        src = image.astype(np.float32)
        d = int(np.clip(0.1 * g["height"], 5, 25))
        smooth = cv2.bilateralFilter(np.ascontiguousarray(image), d, 40, d / 2.0).astype(np.float32)
        fine = src - cv2.GaussianBlur(src, (0, 0), 1.0)  # pore-scale texture
        smooth = smooth + self.texture * fine
        a = mask[..., None]
        return np.clip(src * (1.0 - a) + smooth * a, 0, 255).round().astype(np.uint8)


class ABPNRetoucher:
    """The paper's retoucher: ABPN on ModelScope (``abpn-retouch``), optional backend.

    The torch model ``damo/cv_unet_skin_retouching_torch`` (ModelScope task ``skin-retouching-torch``),
    as the reference now uses: the older TensorFlow ``cv_unet_skin-retouching`` downloads a face
    detector at run time. Needs ``pip install 'modelscope[framework]'`` and the model files
    (``facechain models download abpn-retouch``); otherwise construction raises
    :class:`~facechain.errors.ModelNotFoundError`. Not run here (no hub access): untested on real weights.
    """

    MODEL_NAME = "abpn-retouch"
    TASK = "skin-retouching-torch"

    def __init__(self, reference: str | None = None):
        from ..models.modelscope_pipelines import modelscope_pipeline

        self._pipe, keys = modelscope_pipeline(self.MODEL_NAME, self.TASK, reference)
        self._key = keys.OUTPUT_IMG

    def retouch(self, image: np.ndarray, face: Face) -> np.ndarray:
        out = self._pipe(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
        res = out.get(self._key) if out else None
        if res is None:
            return image
        return cv2.cvtColor(np.asarray(res, dtype=np.uint8), cv2.COLOR_BGR2RGB)


def get_retoucher(kind: str, strength: float = 0.7, reference: str | None = None) -> SkinRetoucher:
    """``classical`` (offline default) or ``abpn`` (ModelScope)."""
    if kind == "classical":
        return ClassicalSkinRetoucher(strength)
    if kind == "abpn":
        return ABPNRetoucher(reference)
    raise ValueError(f"unknown retoucher {kind!r} (classical or abpn)")
