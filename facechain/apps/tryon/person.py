"""Person vs background: Google's selfie segmentation under ai-edge-litert (offline).

``selfie_segmentation.tflite`` (model group ``selfie-segmentation`` of the mediapipe 0.10.21 wheel,
see :mod:`facechain.pose.model_files`) takes the whole image stretched to 256x256 RGB in [0, 1]
(MediaPipe's graph does not keep the aspect ratio either) and returns a 256x256 person
probability, which is resized back to the photo. It is the only person segmenter that ships in a
pip package; at 256 px its outline is coarse on large photos (a few pixels of a 2000 px photo per
mask pixel), which the try-on's eroded garment mask absorbs.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from ...errors import InputError, ModelNotFoundError
from ...pose import model_files

MODEL_NAME = "selfie-segmentation"
FILE = "selfie_segmentation.tflite"
INPUT_SIZE = 256


class PersonSegmenter:
    """``segmenter(image) -> (H, W) float32`` person probability in [0, 1]."""

    def __init__(self, model_dir: Path | str | None = None, num_threads: int | None = None):
        from ...pose.estimate import TfliteModel

        self.model_dir = Path(model_dir) if model_dir else model_files.require(MODEL_NAME)
        if not (self.model_dir / FILE).is_file():
            raise ModelNotFoundError(MODEL_NAME, str(self.model_dir), model_files.how_to_get(MODEL_NAME), f"{FILE} not found")
        self.model = TfliteModel(self.model_dir / FILE, num_threads, MODEL_NAME)

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError("image", f"expected an RGB uint8 array (H, W, 3), got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        small = cv2.resize(image, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        out = self.model(small.astype(np.float32) / 255.0)
        prob = next(iter(out.values()))[0, ..., 0]
        return np.clip(cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=2)
def _cached(model_dir: str) -> PersonSegmenter:
    return PersonSegmenter(model_dir)


def get_person_segmenter(model_dir: Path | str | None = None) -> PersonSegmenter:
    """A process-wide segmenter (the model loads once)."""
    return _cached(str(Path(model_dir) if model_dir else model_files.require(MODEL_NAME)))
