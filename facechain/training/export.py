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


def save_lora_weights(folder: Path, unet_layers: dict[str, torch.Tensor],
                      text_encoder_layers: dict[str, torch.Tensor] | None = None) -> Path:
    """Save with diffusers' own writer (which adds the ``unet.``/``text_encoder.`` prefixes)."""
    from diffusers import StableDiffusionPipeline

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(save_directory=str(folder), unet_lora_layers=unet_layers,
                                              text_encoder_lora_layers=text_encoder_layers or None,
                                              weight_name=LORA_FILE, safe_serialization=True)
    return folder / LORA_FILE
