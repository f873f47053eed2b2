"""Test kit for template portraits: tiny models, tiny identities and a composed group photo.

Real architectures with random weights (see :mod:`facechain.testing.tiny`), so the whole two-stage
pipeline runs on CPU in seconds. Nothing here downloads anything.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..identity import Identity
from ..image_io import load_image, save_png


def save_tiny_inpaint_models(folder: Path | str, seed: int = 0, family: str = "sd15") -> dict[str, Path]:
    """A tiny SD 1.5 (or SDXL, ``family="sdxl"``) folder plus OpenPose and Canny ControlNet folders of
    the same family, as ``--base-model`` etc. take them.

    The tiny VAE's posterior variance is set near zero (logvar = -20): SD's real VAE is nearly
    deterministic, and the seam correction relies on decode(encode(x)) being what the inpainting
    pipeline keeps outside the mask. A random tiny VAE has unit variance otherwise.
    """
    from ..testing.tiny import save_tiny_controlnet, save_tiny_sdxl_controlnet, tiny_sd_pipeline, tiny_sdxl_pipeline

    folder = Path(folder)
    xl = family == "sdxl"
    pipe = (tiny_sdxl_pipeline if xl else tiny_sd_pipeline)(seed)
    with torch.no_grad():
        qc = pipe.vae.quant_conv
        qc.weight[4:] = 0.0
        qc.bias[4:] = -20.0
    base = folder / ("sdxl" if xl else "sd")
    pipe.save_pretrained(base, safe_serialization=True)
    save_controlnet = save_tiny_sdxl_controlnet if xl else save_tiny_controlnet
    save_controlnet(folder / "openpose", seed + 1)
    save_controlnet(folder / "canny", seed + 2)
    return {"base_model": base, "openpose_controlnet": folder / "openpose", "canny_controlnet": folder / "canny"}


def save_tiny_identity(folder: Path | str, name: str, face_photo: Path | str, seed: int = 0,
                       trigger_word: str = "a handsome man", base_model: str = "tiny", family: str = "sd15") -> Identity:
    """An identity folder with a random rank-4 face LoRA for the tiny UNet of ``family`` (SD 1.5 or
    SDXL, recorded in the manifest) and a real template face."""
    from ..testing.tiny import save_tiny_lora, tiny_sdxl_unet, tiny_unet

    folder = Path(folder)
    unet = tiny_sdxl_unet(0) if family == "sdxl" else tiny_unet(0)
    save_tiny_lora(folder, unet, seed=seed, scale=0.1)
    save_png(folder / "template_face.png", load_image(face_photo))
    identity = Identity(name=name, base_model=base_model, trigger_word=trigger_word, path=folder, family=family)
    identity.save()
    return identity


def side_by_side(paths: list[Path | str], height: int = 512, gap: int = 48) -> np.ndarray:
    """A group photo made of real portraits scaled to one height, with a grey gap between them."""
    parts = []
    for i, p in enumerate(paths):
        img = load_image(p)
        w = round(img.shape[1] * height / img.shape[0])
        parts.append(cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA))
        if i < len(paths) - 1:
            parts.append(np.full((height, gap, 3), 128, dtype=np.uint8))
    return np.ascontiguousarray(np.hstack(parts))
