"""Single-file checkpoints (original LDM / A1111 key layout) load with the network disabled.

The tiny checkpoints are a tiny diffusers pipeline / ControlNet written in the original layout
(facechain.testing.ldm_layout); their local config is the tiny model's own diffusers folder
without weights. The shipped SD 1.5 / SDXL configs are checked by building the full-size
architectures on the meta device (no memory, no weights) against the published parameter counts.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from facechain.diffusion import checkpoints
from facechain.diffusion.loading import load_controlnet, load_sd_pipeline
from facechain.errors import InputError
from facechain.models.store import ModelStore
from facechain.testing.ldm_layout import controlnet_to_ldm, sd_pipeline_to_ldm
from facechain.testing.tiny import tiny_controlnet, tiny_sd_pipeline


@pytest.fixture
def no_network(monkeypatch):
    """HF_HUB_OFFLINE is set by conftest; on top of it, any socket connection raises."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """(original-layout checkpoint, its local config folder, the pipeline it was written from)."""
    d = tmp_path_factory.mktemp("single-file")
    pipe = tiny_sd_pipeline(seed=3)
    save_file(sd_pipeline_to_ldm(pipe), str(d / "tinyMix_v1.safetensors"))
    pipe.save_pretrained(d / "config", safe_serialization=True)
    for weights in (d / "config").rglob("*.safetensors"):
        weights.unlink()  # a config folder: JSON and tokenizer files only
    return d / "tinyMix_v1.safetensors", d / "config", pipe


def _images(pipe) -> np.ndarray:
    return pipe("a handsome man, smile", num_inference_steps=2, height=64, width=64, guidance_scale=7.0,
                generator=torch.Generator().manual_seed(0), output_type="np").images


def test_checkpoint_keys_are_the_original_layout(tiny_checkpoint):
    path, _, _ = tiny_checkpoint
    keys = set(checkpoints.read_key_shapes(path))
    assert "model.diffusion_model.input_blocks.1.0.in_layers.0.weight" in keys
    assert "model.diffusion_model.output_blocks.1.2.conv.weight" in keys  # upsampler after resnet + attention
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in keys and "first_stage_model.decoder.up.0.block.0.conv1.weight" in keys
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in keys
    assert not any(k.startswith(("unet.", "down_blocks", "vae.")) for k in keys)
    assert checkpoints.pipeline_family(path) == "sd15"


def test_tiny_original_layout_checkpoint_loads_with_network_disabled(tiny_checkpoint, tmp_path, no_network):
    path, config, original = tiny_checkpoint
    store = ModelStore(cache_dir=tmp_path / "models", offline=True)
    pipe = load_sd_pipeline(path, config=config, store=store)
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(original, name).state_dict(), getattr(pipe, name).state_dict()
        assert set(a) == set(b)
        assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0
    assert np.abs(_images(pipe) - _images(original)).max() <= 1e-6


def test_shipped_config_is_used_by_default_and_mismatches_are_one_line(tiny_checkpoint, tmp_path, no_network):
    path, _, _ = tiny_checkpoint
    store = ModelStore(cache_dir=tmp_path / "models", offline=True)
    with pytest.raises(InputError) as e:  # detected as SD 1.5, so the full-size SD 1.5 config: shapes differ
        load_sd_pipeline(path, store=store)
    msg = str(e.value)
    assert msg.startswith(f"{path}: cannot load this SD15 checkpoint (") and "\n" not in msg
    assert (tmp_path / "models" / "single-file-configs").is_dir()  # the shipped config was materialised, offline


def test_bad_single_files_are_one_line_errors(tmp_path, no_network):
    store = ModelStore(cache_dir=tmp_path, offline=True)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    for loader in (load_sd_pipeline, load_controlnet):
        with pytest.raises(InputError, match="cannot read checkpoint") as e:
            loader(junk, store=store)
        assert "\n" not in str(e.value)
    sd2 = tmp_path / "sd21.safetensors"
    save_file({checkpoints._SD2_KEY: torch.zeros(3, 1)}, str(sd2))
    with pytest.raises(InputError, match="Stable Diffusion 2.x"):
        load_sd_pipeline(sd2, store=store)
    inpaint = tmp_path / "inpaint.safetensors"
    save_file({checkpoints._SD15_KEYS[0]: torch.zeros(2, 2), checkpoints._UNET_IN: torch.zeros(32, 9, 3, 3)}, str(inpaint))
    with pytest.raises(InputError, match="9 input channels"):
        load_sd_pipeline(inpaint, store=store)
    with pytest.raises(InputError, match="not a ControlNet"):
        load_controlnet(inpaint, store=store)


def test_sd15_and_sdxl_are_told_apart_by_their_keys():
    sd15 = {checkpoints._SD15_KEYS[0]: (49408, 768), checkpoints._UNET_IN: (320, 4, 3, 3)}
    sdxl = {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
            checkpoints._SDXL_KEYS[0]: (3840, 1280), checkpoints._SDXL_KEYS[1]: (1280, 2816), checkpoints._UNET_IN: (320, 4, 3, 3)}
    assert checkpoints.pipeline_family(Path("x"), sd15) == "sd15"
    assert checkpoints.pipeline_family(Path("x"), sdxl) == "sdxl"
    assert checkpoints.controlnet_family(Path("x"), {"control_model.input_hint_block.0.weight": (16, 3, 3, 3)}) == "sd15"
    assert checkpoints.controlnet_family(Path("x"), {"control_model.input_hint_block.0.weight": (16, 3, 3, 3),
                                                    "control_model.label_emb.0.0.weight": (1280, 2816)}) == "sdxl"
    assert checkpoints.controlnet_family(Path("x"), {"input_hint_block.0.weight": (16, 3, 3, 3)}) == "sd15"  # unprefixed files


def test_sdxl_checkpoint_refused_by_an_sd15_only_step(tmp_path, no_network):
    from diffusers import StableDiffusionControlNetPipeline

    f = tmp_path / "xl.safetensors"
    save_file({checkpoints._SDXL_KEYS[1]: torch.zeros(2, 2)}, str(f))
    with pytest.raises(InputError, match="an SDXL checkpoint; this step needs an SD 1.5 model"):
        load_sd_pipeline(f, StableDiffusionControlNetPipeline, store=ModelStore(cache_dir=tmp_path, offline=True))


def test_single_file_controlnet_loads_with_network_disabled(tmp_path, no_network):
    cn = tiny_controlnet(seed=5)
    path = tmp_path / "control_tiny_openpose.safetensors"
    save_file({k: v.contiguous() for k, v in controlnet_to_ldm(cn).items()}, str(path))
    cn.save_pretrained(tmp_path / "cn-config", safe_serialization=True)
    (tmp_path / "cn-config" / "diffusion_pytorch_model.safetensors").unlink()
    assert checkpoints.controlnet_family(path) == "sd15"
    loaded = load_controlnet(path, config=tmp_path / "cn-config", store=ModelStore(cache_dir=tmp_path, offline=True))
    a, b = cn.state_dict(), loaded.state_dict()
    assert set(a) == set(b) and max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0
    with pytest.raises(InputError) as e:  # the shipped full-size SD 1.5 ControlNet config does not fit a tiny one
        load_controlnet(path, store=ModelStore(cache_dir=tmp_path, offline=True))
    assert "cannot load this SD15 ControlNet checkpoint" in str(e.value) and "\n" not in str(e.value)


# --- the shipped configs ---------------------------------------------------------------------------

def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family,unet,text2", [("sd15", 859_520_964, None), ("sdxl", 2_567_463_684, 694_659_840)])
def test_shipped_configs_build_the_published_architectures(family, unet, text2, tmp_path):
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    d = checkpoints.config_dir(family, tmp_path)
    index = json.loads((d / "model_index.json").read_text())
    with torch.device("meta"):
        u = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(d / "unet"))
        assert _params(u) == unet
        assert _params(AutoencoderKL.from_config(AutoencoderKL.load_config(d / "vae"))) == 83_653_863
        assert _params(CLIPTextModel(CLIPTextConfig.from_pretrained(d / "text_encoder"))) == 123_060_480  # CLIP ViT-L/14
        if text2:
            assert _params(CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(d / "text_encoder_2"))) == text2
        # the shipped ControlNet config is exactly what diffusers derives from this UNet
        derived = ControlNetModel.from_unet(u, load_weights_from_unet=False)
        shipped = ControlNetModel.from_config(ControlNetModel.load_config(checkpoints.config_dir(f"controlnet-{family}", tmp_path)))
    def plain(cfg):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items() if not k.startswith("_")}

    assert plain(shipped.config) == plain(derived.config)
    assert set(index) >= {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}


def test_shipped_tokenizer_is_clips(tmp_path):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(checkpoints.config_dir("sd15", tmp_path) / "tokenizer")
    assert len(tok) == 49408
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]  # CLIP's published ids
    tok2 = CLIPTokenizer.from_pretrained(checkpoints.config_dir("sdxl", tmp_path) / "tokenizer_2")
    assert (tok2.pad_token, tok2.pad_token_id) == ("!", 0)  # SDXL's second tokenizer pads with "!"
