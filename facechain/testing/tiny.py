"""Tiny SD 1.5- and SDXL-architecture components, built in-process with no files and no network.

They have the real classes and layouts (CLIP text encoder(s) + tokenizer(s), UNet2DConditionModel,
AutoencoderKL, ControlNetModel), just very few channels, so diffusion code can be tested on CPU
in fractions of a second. ``save_tiny_sd`` / ``save_tiny_sdxl`` write loadable diffusers folders.

The SDXL set keeps SDXL's wiring at tiny widths: two text encoders (the second a
``CLIPTextModelWithProjection``) whose penultimate hidden states are concatenated
(``SDXL_TEXT_DIM`` = 2 x ``TEXT_DIM`` = the UNet's ``cross_attention_dim``), and a ``text_time``
added embedding fed with the second encoder's pooled projection plus six size/crop time ids
(``projection_class_embeddings_input_dim`` = ``SDXL_POOLED_DIM`` + 6 x ``SDXL_TIME_EMBED_DIM``).
"""

from __future__ import annotations

from pathlib import Path

import torch

TEXT_DIM = 32
SDXL_TEXT_DIM = 2 * TEXT_DIM  # both encoders' hidden states side by side
SDXL_POOLED_DIM = 32  # projection_dim of the second text encoder
SDXL_TIME_EMBED_DIM = 8  # per time id: (orig h, orig w, crop top, crop left, target h, target w)


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


def tiny_sdxl_unet(seed: int = 0, in_channels: int = 4, sample_size: int = 32):
    """A tiny UNet with SDXL's layout: transformer depth > 1, added text/time conditioning."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=sample_size, in_channels=in_channels,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **_sdxl_conditioning(),
    ).eval()


def _sdxl_conditioning() -> dict:
    """The UNet/ControlNet arguments that make a tiny network SDXL-shaped (shared by both)."""
    return dict(attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
                addition_time_embed_dim=SDXL_TIME_EMBED_DIM, transformer_layers_per_block=(1, 2),
                projection_class_embeddings_input_dim=SDXL_POOLED_DIM + 6 * SDXL_TIME_EMBED_DIM,
                cross_attention_dim=SDXL_TEXT_DIM, norm_num_groups=32)


def tiny_text_encoder_2(seed: int = 0):
    """SDXL's second text encoder (OpenCLIP bigG's role): CLIP with a pooled text projection."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed + 1)
    cfg = CLIPTextConfig(hidden_size=TEXT_DIM, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5,
                         vocab_size=1000, bos_token_id=0, eos_token_id=1, pad_token_id=1,
                         projection_dim=SDXL_POOLED_DIM)
    return CLIPTextModelWithProjection(cfg).eval()


def tiny_vae(seed: int = 0, **config):
    """``config``: more AutoencoderKL settings (SDXL's: ``scaling_factor=0.13025, force_upcast=True``)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                         up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4,
                         norm_num_groups=32, sample_size=64, **config).eval()


def tiny_controlnet(seed: int = 0, cross_attention_dim: int = TEXT_DIM):
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    return ControlNetModel(block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
                           down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                           cross_attention_dim=cross_attention_dim, conditioning_embedding_out_channels=(16, 32),
                           norm_num_groups=32).eval()


def tiny_sdxl_controlnet(seed: int = 0):
    """A ControlNet-XL: the SDXL UNet's encoder half with the same text/time conditioning."""
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    return ControlNetModel(block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
                           down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                           conditioning_embedding_out_channels=(16, 32), **_sdxl_conditioning()).eval()


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


def _saved(model, folder: Path | str) -> Path:
    """``model.save_pretrained`` (pipeline or model) as safetensors; the folder's path."""
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def save_tiny_sd(folder: Path | str, seed: int = 0) -> Path:
    """Write a tiny SD 1.5-architecture diffusers folder (safetensors) and return its path."""
    return _saved(tiny_sd_pipeline(seed), folder)


def save_tiny_controlnet(folder: Path | str, seed: int = 0) -> Path:
    return _saved(tiny_controlnet(seed), folder)


def tiny_sdxl_components(seed: int = 0, unet_in_channels: int = 4) -> dict:
    """SDXL pipeline parts; the VAE carries SDXL's scaling factor and fp16-upcast flag."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    return dict(
        unet=tiny_sdxl_unet(seed, in_channels=unet_in_channels), vae=tiny_vae(seed, scaling_factor=0.13025, force_upcast=True),
        text_encoder=tiny_text_encoder(seed), text_encoder_2=tiny_text_encoder_2(seed),
        tokenizer=tiny_tokenizer(), tokenizer_2=tiny_tokenizer(), scheduler=scheduler,
    )


def tiny_sdxl_pipeline(seed: int = 0):
    from diffusers import StableDiffusionXLPipeline

    return StableDiffusionXLPipeline(**tiny_sdxl_components(seed))


def save_tiny_sdxl(folder: Path | str, seed: int = 0) -> Path:
    """Write a tiny SDXL-architecture diffusers folder (safetensors) and return its path."""
    return _saved(tiny_sdxl_pipeline(seed), folder)


def save_tiny_sdxl_controlnet(folder: Path | str, seed: int = 0) -> Path:
    return _saved(tiny_sdxl_controlnet(seed), folder)


def save_tiny_lora(folder: Path | str, unet, seed: int = 0, scale: float = 0.2) -> Path:
    """A rank-4 LoRA with random (non-zero) A and B on ``unet``'s attention projections, written in
    diffusers' format by the writer of the UNet's family (SD 1.5 or SDXL). ``unet`` gains the adapter."""
    from peft import LoraConfig

    from ..diffusion.family import family_of_unet_config
    from ..training.export import diffusers_lora_layers, save_lora_weights

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    layers = {"unet": diffusers_lora_layers(unet, 4, 4)}
    return save_lora_weights(Path(folder), layers, family_of_unet_config(unet.config) or "sd15")
