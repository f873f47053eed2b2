"""Write diffusers weights in the original (LDM / A1111 / civitai) single-file key layout.

For tests of single-file loading: a tiny pipeline's state dicts become a checkpoint with exactly
the key names a civitai ``.safetensors`` has (``model.diffusion_model.input_blocks.1.0.in_layers.0``,
``first_stage_model.encoder.down.0.block.0``, ``cond_stage_model.transformer.text_model…``,
``control_model.zero_convs.0.0``), derived from the model's config, so any block layout works.
"""

from __future__ import annotations

from typing import Any

import torch

from ..diffusion.ldm_names import Prefixes, ldm_path, unet_prefixes

_VAE_RESNET = (("conv_shortcut", "nin_shortcut"),)
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _unet_prefixes(config: dict[str, Any], controlnet: bool = False) -> Prefixes:
    """(diffusers module prefix, LDM module prefix, inner renames) for the UNet (or ControlNet) blocks."""
    n, lpb = len(config["block_out_channels"]), config["layers_per_block"]
    out = unet_prefixes(n, lpb, config.get("up_block_types", ()), controlnet)
    if controlnet:
        out += [("controlnet_mid_block", "middle_block_out.0", ()),
                ("controlnet_cond_embedding.conv_in", "input_hint_block.0", ()),
                ("controlnet_cond_embedding.conv_out", "input_hint_block.14", ())]
        out += [(f"controlnet_down_blocks.{k}", f"zero_convs.{k}.0", ()) for k in range(1 + n * (lpb + 1) - 1)]
        out += [(f"controlnet_cond_embedding.blocks.{k}", f"input_hint_block.{2 * (k + 1)}", ()) for k in range(6)]
    return out


def _rename(state_dict: dict[str, torch.Tensor], prefixes: Prefixes, target: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        name = ldm_path(key, prefixes)
        if name is None:
            raise KeyError(f"no LDM name for {key}")
        out[target + name] = value
    return out


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    return _rename(unet.state_dict(), _unet_prefixes(dict(unet.config)), "model.diffusion_model.")


def controlnet_to_ldm(controlnet) -> dict[str, torch.Tensor]:
    return _rename(controlnet.state_dict(), _unet_prefixes(dict(controlnet.config), controlnet=True), "control_model.")


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    n = len(vae.config.block_out_channels)
    prefixes: Prefixes = [
        ("quant_conv", "quant_conv", ()), ("post_quant_conv", "post_quant_conv", ()),
    ]
    for part in ("encoder", "decoder"):
        prefixes += [(f"{part}.conv_in", f"{part}.conv_in", ()), (f"{part}.conv_out", f"{part}.conv_out", ()),
                     (f"{part}.conv_norm_out", f"{part}.norm_out", ()),
                     (f"{part}.mid_block.resnets.0", f"{part}.mid.block_1", _VAE_RESNET),
                     (f"{part}.mid_block.resnets.1", f"{part}.mid.block_2", _VAE_RESNET),
                     (f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1", _VAE_ATTENTION)]
    for i in range(n):
        for j in range(vae.config.layers_per_block + 1):
            prefixes += [(f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}", _VAE_RESNET),
                         (f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{n - 1 - i}.block.{j}", _VAE_RESNET)]
        prefixes += [(f"encoder.down_blocks.{i}.downsamplers.0.conv", f"encoder.down.{i}.downsample.conv", ()),
                     (f"decoder.up_blocks.{i}.upsamplers.0.conv", f"decoder.up.{n - 1 - i}.upsample.conv", ())]
    out = _rename(vae.state_dict(), prefixes, "first_stage_model.")
    for key, value in out.items():  # LDM's attention projections are 1x1 convolutions
        if ".mid.attn_1." in key and key.endswith(".weight") and value.ndim == 2:
            out[key] = value[:, :, None, None]
    return out


def clip_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    """SD 1.5's text encoder keys: transformers 4's ``text_model.…`` names (transformers 5 drops that level)."""
    return {f"cond_stage_model.transformer.{k if k.startswith('text_model.') else 'text_model.' + k}": v
            for k, v in text_encoder.state_dict().items()}


def sd_pipeline_to_ldm(pipe) -> dict[str, torch.Tensor]:
    """A whole SD 1.5-layout pipeline as one original-layout checkpoint state dict."""
    sd = {**unet_to_ldm(pipe.unet), **vae_to_ldm(pipe.vae), **clip_to_ldm(pipe.text_encoder)}
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}
