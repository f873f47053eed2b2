"""Tiny SD 1.5-architecture components, built in-process with no files and no network.

They have the real classes and layouts (CLIP text encoder + tokenizer, UNet2DConditionModel,
AutoencoderKL, ControlNetModel), just very few channels, so diffusion code can be tested on CPU
in fractions of a second. ``save_tiny_sd`` writes a loadable diffusers folder.
"""

from __future__ import annotations

from pathlib import Path

import torch

TEXT_DIM = 32


def tiny_tokenizer(model_max_length: int = 77):
    from transformers import CLIPTokenizer

    from ..diffusion.checkpoints import byte_characters  # CLIP's byte-level characters

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in byte_characters():
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def tiny_text_encoder(seed: int = 0, hidden_size: int = TEXT_DIM):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(hidden_size=hidden_size, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5,
                         vocab_size=1000, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return CLIPTextModel(cfg).eval()


def tiny_unet(seed: int = 0, in_channels: int = 4, cross_attention_dim: int = TEXT_DIM, sample_size: int = 32):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=sample_size, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim, norm_num_groups=32,
    ).eval()


def tiny_sdxl_unet(seed: int = 0):
    """A tiny UNet with SDXL's layout: transformer depth > 1, added text/time conditioning."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=32,
    ).eval()


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                         up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4,
                         norm_num_groups=32, sample_size=64).eval()


def tiny_controlnet(seed: int = 0, cross_attention_dim: int = TEXT_DIM):
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    return ControlNetModel(block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
                           down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                           cross_attention_dim=cross_attention_dim, conditioning_embedding_out_channels=(16, 32),
                           norm_num_groups=32).eval()


def tiny_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def tiny_sd_components(seed: int = 0, unet_in_channels: int = 4) -> dict:
    return dict(
        unet=tiny_unet(seed, in_channels=unet_in_channels), vae=tiny_vae(seed), text_encoder=tiny_text_encoder(seed),
        tokenizer=tiny_tokenizer(), scheduler=tiny_scheduler(),
    )


def tiny_sd_pipeline(seed: int = 0):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(**tiny_sd_components(seed), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def save_tiny_sd(folder: Path | str, seed: int = 0) -> Path:
    """Write a tiny SD 1.5-architecture diffusers folder (safetensors) and return its path."""
    folder = Path(folder)
    tiny_sd_pipeline(seed).save_pretrained(folder, safe_serialization=True)
    return folder


def save_tiny_controlnet(folder: Path | str, seed: int = 0) -> Path:
    folder = Path(folder)
    tiny_controlnet(seed).save_pretrained(folder, safe_serialization=True)
    return folder
