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


def save_tiny_inpaint_models(folder: Path | str, seed: int = 0) -> dict[str, Path]:
    """A tiny SD folder plus OpenPose and Canny ControlNet folders, as ``--base-model`` etc. take them.

    The tiny VAE's posterior variance is set near zero (logvar = -20): SD's real VAE is nearly
    deterministic, and the seam correction relies on decode(encode(x)) being what the inpainting
    pipeline keeps outside the mask. A random tiny VAE has unit variance otherwise.
    """
    from ..testing.tiny import save_tiny_controlnet, tiny_sd_pipeline

    folder = Path(folder)
    pipe = tiny_sd_pipeline(seed)
    with torch.no_grad():
        qc = pipe.vae.quant_conv
        qc.weight[4:] = 0.0
        qc.bias[4:] = -20.0
    pipe.save_pretrained(folder / "sd", safe_serialization=True)
    save_tiny_controlnet(folder / "openpose", seed + 1)
    save_tiny_controlnet(folder / "canny", seed + 2)
    return {"base_model": folder / "sd", "openpose_controlnet": folder / "openpose", "canny_controlnet": folder / "canny"}


def save_tiny_identity(folder: Path | str, name: str, face_photo: Path | str, seed: int = 0,
                       trigger_word: str = "a handsome man", base_model: str = "tiny") -> Identity:
    """An identity folder with a random rank-4 face LoRA for the tiny UNet and a real template face."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from ..testing.tiny import tiny_unet

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet = tiny_unet(0)
    unet.requires_grad_(False)
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # peft's "gaussian" init leaves B at zero; make the LoRA actually change the UNet
        for n, p in unet.named_parameters():
            if "lora_B" in n:
                p.normal_(0.0, 0.05)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(save_directory=folder, unet_lora_layers=layers, safe_serialization=True)
    save_png(folder / "template_face.png", load_image(face_photo))
    identity = Identity(name=name, base_model=base_model, trigger_word=trigger_word, path=folder)
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
