"""The try-on's three control images (paper section 3.1), at the size Stable Diffusion works on.

* **OpenPose, bones + hands**: the model photo's body skeleton (BlazePose -> OpenPose 18 points)
  and the 21-point hands, drawn the way the OpenPose ControlNet saw them (no face dots: the face
  is the trained person's). Hands and body pose make or break a try-on.
* **Canny edges of the body**: edges of the person (garment, arms, hands), blanked on the head so
  the new face and hair are free to differ.
* **Depth on the hand region** (optional): a monocular depth estimate of the photo (near = bright,
  as the depth ControlNet was trained), kept only on the dilated hands and black elsewhere, so the
  depth ControlNet shapes the fingers and nothing else. It needs two hub models (the registry's
  ``depth-estimator`` and ``depth-controlnet``); when they are absent, or no hand was found, the
  step is skipped and the result records why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ...pose.draw import draw_openpose
from ...pose.hands import Hand
from ...pose.skeleton import BodyPose


@dataclass
class TryOnControls:
    """Control images (work size) and what they were made from (photo pixels)."""

    pose: np.ndarray  # (h, w, 3) uint8: bones + hands
    canny: np.ndarray  # (h, w, 3) uint8
    depth: np.ndarray | None  # (h, w, 3) uint8, hands only; None when the step was skipped
    depth_step: str  # "ran" or "skipped: <why>"

    def images(self) -> list[np.ndarray]:
        """In the order of the ControlNets: OpenPose, Canny, then depth when it ran."""
        return [self.pose, self.canny] + ([self.depth] if self.depth is not None else [])


def work_size(shape: tuple[int, ...], long_side: int, multiple: int = 8) -> tuple[int, int]:
    """(W, H) with the photo's aspect ratio, the long side ``long_side``, both multiples of ``multiple``."""
    h, w = shape[:2]
    scale = long_side / max(h, w)
    return (max(multiple, int(round(w * scale / multiple)) * multiple),
            max(multiple, int(round(h * scale / multiple)) * multiple))


def pose_image(size: tuple[int, int], photo_shape: tuple[int, ...], bodies: Sequence[BodyPose],
               hands: Sequence[Hand]) -> np.ndarray:
    """OpenPose bones + hands of the photo, drawn at ``size=(W, H)``."""
    sx, sy = size[0] / photo_shape[1], size[1] / photo_shape[0]
    return draw_openpose(size, bodies=[b.scaled(sx, sy) for b in bodies], hands=[h.scaled(sx, sy) for h in hands])


def body_canny(image: np.ndarray, person: np.ndarray | None, head: np.ndarray | None,
               low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges of ``image`` on the (slightly grown) person, none on the head; 3-channel uint8."""
    edges = cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), low, high)
    if person is not None:
        grow = max(3, int(round(0.01 * max(image.shape[:2]))) | 1)
        edges[~(cv2.dilate(person.astype(np.uint8), np.ones((grow, grow), np.uint8)) > 0)] = 0
    if head is not None:
        edges[head] = 0
    return np.repeat(edges[:, :, None], 3, axis=2)


def hand_depth_image(depth: np.ndarray, hands_mask: np.ndarray) -> np.ndarray:
    """Depth (H, W, float, near = large) as the ControlNet's grey image, black outside ``hands_mask``."""
    d = depth.astype(np.float32)
    lo, hi = float(d.min()), float(d.max())
    grey = np.zeros(d.shape, np.uint8) if hi - lo < 1e-8 else np.round((d - lo) / (hi - lo) * 255).astype(np.uint8)
    grey[~hands_mask] = 0
    return np.repeat(grey[:, :, None], 3, axis=2)


def resize_mask(mask: np.ndarray, size: tuple[int, int], *, conservative: bool) -> np.ndarray:
    """Resize a bool mask to ``size=(W, H)``; ``conservative`` keeps only pixels fully inside it."""
    m = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return m > 0.999 if conservative else m > 1e-3


class DepthEstimator:
    """Monocular depth from a transformers depth model (Depth Anything, DPT, ...).

    ``estimator(image) -> (H, W) float32`` relative inverse depth (near = large), photo size.
    Weights load from ``.safetensors`` only.
    """

    def __init__(self, model, processor, device="cpu"):
        self.model = model.eval()
        self.processor = processor
        self.device = device

    @classmethod
    def from_pretrained(cls, reference: str | Path, *, store=None, device="cpu", dtype=None) -> "DepthEstimator":
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        from ...diffusion.loading import quiet_ml_logs, resolve_model_path
        from ...errors import InputError

        quiet_ml_logs()
        path = resolve_model_path(reference, "depth-estimator", store)
        try:
            model = AutoModelForDepthEstimation.from_pretrained(str(path), use_safetensors=True)
            processor = AutoImageProcessor.from_pretrained(str(path))
        except (OSError, ValueError) as e:
            raise InputError(path, f"cannot load a depth model: {str(e).splitlines()[0][:200]}") from None
        return cls(model.to(device=device, dtype=dtype or torch.float32), processor, device)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        inputs = self.processor(images=Image.fromarray(image), return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, dtype=next(self.model.parameters()).dtype)
        with torch.no_grad():
            depth = self.model(pixel_values=pixels).predicted_depth
        depth = depth.float().cpu().numpy().reshape(depth.shape[-2:])
        h, w = image.shape[:2]
        return cv2.resize(depth, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
