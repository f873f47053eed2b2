"""Test kit for virtual try-on: tiny models of the real architectures, saved as folders.

Random weights, real classes (see :mod:`facechain.testing.tiny`), so the whole try-on runs on CPU
in seconds; nothing here downloads anything.
"""

from __future__ import annotations

from pathlib import Path

import torch


def save_tiny_tryon_models(folder: Path | str, seed: int = 0) -> dict[str, Path]:
    """Folders for every try-on model reference: base SD (4-channel UNet), an SD inpainting model
    (9-channel UNet), OpenPose / Canny / depth ControlNets and a depth estimator (Depth Anything
    layout)."""
    from diffusers import StableDiffusionPipeline

    from ...inpainting.testing import save_tiny_inpaint_models
    from ...testing.tiny import save_tiny_controlnet, tiny_sd_components

    folder = Path(folder)
    paths = save_tiny_inpaint_models(folder, seed)
    inpaint = StableDiffusionPipeline(**tiny_sd_components(seed + 5, unet_in_channels=9), safety_checker=None,
                                      feature_extractor=None, requires_safety_checker=False)
    _near_deterministic_vae(inpaint.vae)
    inpaint.save_pretrained(folder / "sd-inpaint", safe_serialization=True)
    paths["inpaint_model"] = folder / "sd-inpaint"
    paths["depth_controlnet"] = save_tiny_controlnet(folder / "depth", seed + 3)
    paths["depth_estimator"] = save_tiny_depth_estimator(folder / "depth-estimator", seed + 4)
    return paths


def save_tiny_depth_estimator(folder: Path | str, seed: int = 0) -> Path:
    """A ~0.1 M-parameter Depth Anything model (tiny DINOv2 backbone) with its image processor."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    try:  # transformers 5: the PIL processor by name (the default one wants torchvision)
        from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil as Processor
    except ImportError:  # transformers 4
        from transformers import DPTImageProcessor as Processor

    torch.manual_seed(seed)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, patch_size=14)
    folder = Path(folder)
    DepthAnythingForDepthEstimation(config).eval().save_pretrained(folder, safe_serialization=True)
    Processor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


def _near_deterministic_vae(vae) -> None:
    """SD's real VAE is nearly deterministic; a random tiny one is not (see inpainting.testing)."""
    with torch.no_grad():
        vae.quant_conv.weight[4:] = 0.0
        vae.quant_conv.bias[4:] = -20.0
