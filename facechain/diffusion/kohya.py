"""LoRA weights in the kohya / A1111 key layout (what A1111, Forge and ComfyUI load).

A kohya LoRA names each adapted layer once, flattened with underscores and prefixed by its model
(``lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q``), with three tensors:
``.lora_down.weight`` (rank x in), ``.lora_up.weight`` (out x rank) and ``.alpha`` (the scale is
alpha / rank). Module paths differ per architecture, so each has a :class:`KohyaLayout` row:
SD 1.x LoRAs use diffusers' UNet paths and transformers 4's ``text_model.…`` text-encoder paths.
SDXL LoRAs (kohya trains SDXL on Stability's own UNet) use its LDM/SGM block names
(``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``, ``middle_block_1``,
``output_blocks_2_1``; :mod:`.ldm_names`) and ``lora_te1_`` / ``lora_te2_`` for the two text
encoders. The SGM numbering depends on the UNet's ``layers_per_block`` (SDXL: 2); readers such as
diffusers' ``load_lora_weights`` map it back with the UNet they load into, so a LoRA of a UNet with
another ``layers_per_block`` must be written with that value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .ldm_names import Prefixes, ldm_path, unet_prefixes

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
    layers_per_block: int | None = None  # set: UNet paths get LDM/SGM block names, numbered for this default


# transformers 5 dropped CLIPTextModel's ``text_model`` level; kohya names keep it (not on the projection).
_TEXT_MODEL = ((r"^(?!text_model\.|text_projection)", "text_model."),)


LAYOUTS: dict[str, KohyaLayout] = {
    "sd15": KohyaLayout(
        "sd15", "sd_v1", {"unet": "lora_unet_", "text_encoder": "lora_te_"}, {"text_encoder": _TEXT_MODEL},
    ),
    "sdxl": KohyaLayout(
        "sdxl", "sdxl_base_v1-0", {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"},
        {"text_encoder": _TEXT_MODEL, "text_encoder_2": _TEXT_MODEL}, layers_per_block=2,
    ),
}


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
             alphas: dict[str, float] | None = None, *, layers_per_block: int | None = None) -> dict[str, torch.Tensor]:
    """Convert a diffusers-format LoRA (``unet.…lora.down.weight``) to kohya keys.

    ``alphas`` maps ``component.module.path`` to the alpha the layer was trained with; by default
    alpha = rank (scale 1), right for facechain's files, whose alpha/rank scale is baked into ``up``.
    ``layers_per_block`` numbers SDXL's SGM blocks (default: the architecture's own, SDXL's 2); give
    the UNet's value when it differs, or the names point at other layers.
    """
    if architecture not in LAYOUTS:
        raise ValueError(f"kohya export of {architecture} LoRAs is not supported yet (supported: {', '.join(LAYOUTS)})")
    layout = LAYOUTS[architecture]
    pairs = _pairs(state_dict)
    ldm_blocks = _ldm_unet_prefixes(pairs, layers_per_block or layout.layers_per_block) if layout.layers_per_block else None
    out: dict[str, torch.Tensor] = {}
    for module, (down, up) in pairs.items():
        component, _, path = module.partition(".")
        if component not in layout.prefixes:
            raise ValueError(f"{module}: no kohya prefix for component '{component}' in the {architecture} layout")
        if component == "unet" and ldm_blocks is not None:
            ldm = ldm_path(path, ldm_blocks)
            if ldm is None:
                raise ValueError(f"{module}: no {architecture} UNet block name for this layer")
            path = ldm
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


def _ldm_unet_prefixes(pairs: dict[str, tuple], layers_per_block: int) -> Prefixes:
    """LDM block names for the UNet layers in ``pairs``, numbered with ``layers_per_block``.

    A LoRA does not say how many blocks its UNet has: enough are numbered for every block it
    names, and up blocks are taken to be SDXL's (cross-attention in every up block that upsamples,
    so the upsampler sits in slot 2).
    """
    blocks = [int(m.group(1)) for m in map(_BLOCK.match, pairs) if m]
    count = max(blocks, default=0) + 2  # one more than named: the last block's down/upsampler slot
    return unet_prefixes(count, layers_per_block, ["CrossAttnUpBlock2D"] * count)


_BLOCK = re.compile(r"unet\.(?:down|up)_blocks\.(\d+)\.")


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
