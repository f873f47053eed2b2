"""``--enhance``: double the video's resolution and restore the face with GFP-GAN (as the paper does).

GFP-GAN v1.4 runs here as an ONNX export (registry entry ``face-enhancer``, a hub download;
onnxruntime is already a core dependency, so no torch port of its StyleGAN2 decoder is needed).
Each frame is upscaled 2× (Lanczos); the face is aligned by its five points onto the 512×512
FFHQ template GFP-GAN was trained on, restored, and pasted back through a feathered mask. Off by
default: it costs ~0.3-1 s per frame on a CPU, and a restored face can drift from the photo.
Absent weights give one line naming ``facechain models download face-enhancer``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ...errors import ModelNotFoundError

MODEL_NAME = "face-enhancer"
MODEL_FILE = "gfpgan_1.4.onnx"
CROP = 512
SCALE = 2
# Eye centres, nose tip and mouth corners of an aligned 512 px FFHQ face (GFP-GAN's template).
FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float64)

Restorer = Callable[[np.ndarray], np.ndarray]  # (512, 512, 3) float32 RGB in [-1, 1] -> same


class FaceEnhancer:
    """2× upscale with the face restored by ``restore`` (the GFP-GAN ONNX model by default)."""

    def __init__(self, restore: Restorer, name: str = "gfpgan-1.4"):
        self.restore = restore
        self.name = name
        self._mask = _feather_mask(CROP)

    def __call__(self, frame: np.ndarray, five_points: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        big = cv2.resize(frame, (w * SCALE, h * SCALE), interpolation=cv2.INTER_LANCZOS4)
        pts = np.asarray(five_points, dtype=np.float64) * SCALE
        affine, _ = cv2.estimateAffinePartial2D(pts, FFHQ_TEMPLATE_512, method=cv2.LMEDS)
        if affine is None:
            return big
        face = cv2.warpAffine(big, affine, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        x = face.astype(np.float32) / 127.5 - 1.0
        restored = np.clip((self.restore(x) + 1.0) * 127.5, 0, 255).astype(np.uint8)
        back = cv2.invertAffineTransform(affine)
        pasted = cv2.warpAffine(restored, back, (w * SCALE, h * SCALE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        mask = cv2.warpAffine(self._mask, back, (w * SCALE, h * SCALE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        a = mask[..., None]
        return np.clip(big * (1 - a) + pasted * a, 0, 255).astype(np.uint8)


def _feather_mask(size: int, border: float = 0.1) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    b = int(size * border)
    m[b:size - b, b:size - b] = 1.0
    return cv2.GaussianBlur(m, (0, 0), size * border / 2)


def onnx_restorer(model_path: Path | str, device: str = "auto") -> Restorer:
    """GFP-GAN as an onnxruntime session (CUDA when asked for and available, else CPU)."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(model_path), providers=providers)
    input_name = session.get_inputs()[0].name

    def restore(x: np.ndarray) -> np.ndarray:
        out = session.run(None, {input_name: x.transpose(2, 0, 1)[None].astype(np.float32)})[0]
        return out[0].transpose(1, 2, 0)

    return restore


def load_enhancer(device: str = "auto") -> FaceEnhancer:
    """The registry's face enhancer; a one-line :class:`ModelNotFoundError` when it is not downloaded."""
    from ...models.registry import get_model_spec
    from ...models.store import default_store

    spec = get_model_spec(MODEL_NAME)
    folder = default_store().resolve(spec.reference, name=spec.name, allow_patterns=spec.allow_patterns)
    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise ModelNotFoundError(spec.name, spec.reference, f"run 'facechain models download {spec.name}'", f"{MODEL_FILE} not found")
    return FaceEnhancer(onnx_restorer(path, device))
