"""Write trained LoRA weights in diffusers' format (``pytorch_lora_weights.safetensors``).

diffusers' format has no place for peft's ``lora_alpha``: a loader that does not read adapter
metadata assumes ``alpha == rank``. We therefore bake the ``alpha / rank`` scale into the ``up``
(lora_B) matrices, so any loader (``pipe.load_lora_weights(folder)`` in plain diffusers, other
UIs) reproduces exactly the model that was trained.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..identity import LORA_FILE


def diffusers_lora_layers(model, rank: int, alpha: float) -> dict[str, torch.Tensor]:
    """peft LoRA weights of ``model`` as diffusers keys (``...to_q.lora.down/up.weight``), scale baked in."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    scale = float(alpha) / float(rank)
    sd = {}
    for key, value in get_peft_model_state_dict(model).items():
        value = value.detach().to("cpu", torch.float32)
        sd[key] = (value * scale if ".lora_B." in key else value).contiguous()
    return convert_state_dict_to_diffusers(sd)


def save_lora_weights(folder: Path, layers: dict[str, dict[str, torch.Tensor]], family: str = "sd15") -> Path:
    """Save with diffusers' own writer for the family (it adds the ``unet.``/``text_encoder(_2).``
    prefixes), so ``StableDiffusion(XL)Pipeline.load_lora_weights(folder)`` reads it as is.

    ``layers``: diffusers-format LoRA weights by component (``unet``, ``text_encoder``, ``text_encoder_2``).
    """
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {f"{name}_lora_layers": sd for name, sd in layers.items() if sd}
    writer = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    if family != "sdxl" and "text_encoder_2_lora_layers" in parts:
        raise ValueError("text_encoder_2 LoRA weights belong to an SDXL model")
    writer.save_lora_weights(save_directory=str(folder), weight_name=LORA_FILE, safe_serialization=True, **parts)
    return folder / LORA_FILE
