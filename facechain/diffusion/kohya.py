"""LoRA weights in the kohya / A1111 key layout (what A1111, Forge and ComfyUI load).

A kohya LoRA names each adapted layer once, flattened with underscores and prefixed by its model
(``lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q``), with three tensors:
``.lora_down.weight`` (rank x in), ``.lora_up.weight`` (out x rank) and ``.alpha`` (the scale is
alpha / rank). Module paths differ per architecture, so each has a :class:`KohyaLayout` row:
SD 1.x LoRAs use diffusers' UNet paths and transformers 4's ``text_model.…`` text-encoder paths.
SDXL (``lora_te1_``/``lora_te2_``, LDM block names ``input_blocks_4_1_…``) is a row to add, with
its rewrite rules, when facechain trains SDXL LoRAs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

# Suffixes of a LoRA pair in the formats diffusers and peft write: (down/A suffix, up/B suffix).
_PAIRS = ((".lora.down.weight", ".lora.up.weight"), (".lora_linear_layer.down.weight", ".lora_linear_layer.up.weight"),
          (".lora_A.weight", ".lora_B.weight"))


@dataclass(frozen=True)
class KohyaLayout:
    """How one architecture's diffusers LoRA keys become kohya names."""

    name: str
    base_model_version: str  # kohya's ``ss_base_model_version``
    prefixes: dict[str, str]  # diffusers component -> kohya prefix
    rewrites: dict[str, tuple[tuple[str, str], ...]]  # component -> (regex, replacement) on the dotted module path


LAYOUTS: dict[str, KohyaLayout] = {
    "sd15": KohyaLayout(
        "sd15", "sd_v1", {"unet": "lora_unet_", "text_encoder": "lora_te_"},
        # transformers 5 dropped CLIPTextModel's ``text_model`` level; kohya names keep it.
        {"text_encoder": ((r"^(?!text_model\.)", "text_model."),)},
    ),
}


def lora_architecture(state_dict: dict[str, torch.Tensor]) -> str:
    """``sd15`` or ``sdxl`` from a LoRA state dict (:func:`facechain.diffusion.family.family_of_keys`; SD 1.5 when unsure)."""
    from .family import family_of_keys

    return family_of_keys({k: tuple(v.shape) for k, v in state_dict.items()}) or "sd15"


def _pairs(state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``component.module.path`` -> (down, up) for every LoRA layer of a diffusers/peft state dict."""
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    used = set()
    for key, value in state_dict.items():
        for down, up in _PAIRS:
            if key.endswith(down):
                module = key[: -len(down)]
                up_key = module + up
                if up_key not in state_dict:
                    raise ValueError(f"LoRA weight {key} has no matching {up_key}")
                out[module] = (value, state_dict[up_key])
                used.update((key, up_key))
                break
    left = [k for k in state_dict if k not in used and not k.endswith(".alpha")]
    if left:
        raise ValueError(f"not a LoRA weight: {left[0]}")
    return out


def to_kohya(state_dict: dict[str, torch.Tensor], architecture: str = "sd15",
             alphas: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Convert a diffusers-format LoRA (``unet.…lora.down.weight``) to kohya keys.

    ``alphas`` maps ``component.module.path`` to the alpha the layer was trained with; by default
    alpha = rank (scale 1), right for facechain's files, whose alpha/rank scale is baked into ``up``.
    """
    if architecture not in LAYOUTS:
        raise ValueError(f"kohya export of {architecture} LoRAs is not supported yet (supported: {', '.join(LAYOUTS)})")
    layout = LAYOUTS[architecture]
    out: dict[str, torch.Tensor] = {}
    for module, (down, up) in _pairs(state_dict).items():
        component, _, path = module.partition(".")
        if component not in layout.prefixes:
            raise ValueError(f"{module}: no kohya prefix for component '{component}' in the {architecture} layout")
        for pattern, repl in layout.rewrites.get(component, ()):
            path = re.sub(pattern, repl, path)
        name = layout.prefixes[component] + path.replace(".", "_")
        if name + ".lora_down.weight" in out:
            raise ValueError(f"two LoRA layers map to the kohya name {name}")
        rank = down.shape[0]
        alpha = float(alphas.get(module, rank)) if alphas else float(rank)
        out[name + ".lora_down.weight"] = down.detach().to("cpu").contiguous()
        out[name + ".lora_up.weight"] = up.detach().to("cpu").contiguous()
        out[name + ".alpha"] = torch.tensor(alpha, dtype=torch.float32)
    return out


def kohya_metadata(architecture: str, state_dict: dict[str, torch.Tensor], extra: dict[str, str] | None = None) -> dict[str, str]:
    """The ``ss_*`` header fields UIs read (network type, rank, alpha, base model version)."""
    ranks = sorted({int(v.shape[0]) for k, v in state_dict.items() if k.endswith(".lora_down.weight")})
    alphas = sorted({float(v) for k, v in state_dict.items() if k.endswith(".alpha")})
    meta = {
        "ss_network_module": "networks.lora",
        "ss_base_model_version": LAYOUTS[architecture].base_model_version,
        "ss_network_dim": str(ranks[0]) if len(ranks) == 1 else "Dynamic",
        "ss_network_alpha": f"{alphas[0]:g}" if len(alphas) == 1 else "Dynamic",
    }
    meta.update(extra or {})
    return meta
