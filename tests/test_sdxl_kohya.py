"""SDXL LoRAs in the kohya / A1111 layout: an SDXL identity's export, and a civitai-style file as a style LoRA.

The kohya names of SDXL number the UNet's blocks the way Stability's UNet does, which depends on
``layers_per_block`` (SDXL 2, the tiny SDXL UNet here 1). diffusers' kohya reader maps the numbers
back with the UNet it loads into, so a file written for the tiny UNet's value must give exactly the
identity's own images in plain ``StableDiffusionXLPipeline.load_lora_weights``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from facechain.diffusion.kohya import kohya_metadata, to_kohya
from facechain.identity import Identity
from tests.cli_helpers import run_cli
from tests.test_export import TE_TARGETS, UNET_TARGETS, _random_lora

PROMPT = "a handsome man, smile"


def _pipe(tiny_sdxl_dir):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl_dir))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _image(pipe) -> np.ndarray:
    return pipe(PROMPT, num_inference_steps=2, height=64, width=64, guidance_scale=5.0,
                generator=torch.Generator().manual_seed(0), output_type="np").images


def _images(tiny_sdxl_dir, lora: Path | None) -> np.ndarray:
    pipe = _pipe(tiny_sdxl_dir)
    if lora is not None:
        pipe.load_lora_weights(str(lora)) if lora.is_dir() else pipe.load_lora_weights(str(lora.parent), weight_name=lora.name)
    return _image(pipe)


@pytest.fixture(scope="module")
def sdxl_identity(tmp_path_factory, tiny_sdxl_dir) -> Path:
    """An SDXL identity as ``facechain train`` writes one: UNet and both text encoders, alpha != rank."""
    from facechain.training.export import diffusers_lora_layers, save_lora_weights

    pipe = _pipe(tiny_sdxl_dir)
    _random_lora(pipe.unet, rank=4, alpha=8, targets=UNET_TARGETS, seed=1)
    _random_lora(pipe.text_encoder, rank=2, alpha=4, targets=TE_TARGETS, seed=2)
    _random_lora(pipe.text_encoder_2, rank=2, alpha=4, targets=TE_TARGETS, seed=3)
    folder = tmp_path_factory.mktemp("identities") / "barack"
    save_lora_weights(folder, {"unet": diffusers_lora_layers(pipe.unet, 4, 8),
                               "text_encoder": diffusers_lora_layers(pipe.text_encoder, 2, 4),
                               "text_encoder_2": diffusers_lora_layers(pipe.text_encoder_2, 2, 4)}, "sdxl")
    Identity(name="barack", base_model=str(tiny_sdxl_dir), trigger_word="a handsome man", path=folder, family="sdxl",
             lora={"rank": 4, "alpha": 8, "alpha_baked_into_weights": True}).save()
    return folder


def test_kohya_export_of_an_sdxl_identity_reproduces_it_in_plain_diffusers(sdxl_identity, tiny_sdxl_dir, tmp_path):
    out = tmp_path / "barack_kohya.safetensors"
    code, stdout, err = run_cli("export", sdxl_identity, "--format", "kohya", "-o", out)
    assert code == 0, err
    assert "sdxl" in stdout and "note:" not in stdout  # the base model is here: its layers_per_block was read
    with safe_open(str(out), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert {k.split("_")[1] for k in keys} == {"unet", "te1", "te2"}
    # the tiny UNet has one layer per block: its first attention is SGM input block 3 (SDXL's would be 4)
    assert "lora_unet_input_blocks_3_1_transformer_blocks_1_attn2_to_k.lora_down.weight" in keys
    assert "lora_unet_middle_block_1_transformer_blocks_0_attn1_to_out_0.alpha" in keys
    assert "lora_unet_output_blocks_1_1_transformer_blocks_1_attn1_to_q.lora_up.weight" in keys
    assert "lora_te2_text_model_encoder_layers_4_self_attn_v_proj.alpha" in keys
    assert not any(p in k for k in keys for p in ("down_blocks", "mid_block", "up_blocks"))
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0" and meta["facechain_unet_layers_per_block"] == "1"

    own = _images(tiny_sdxl_dir, sdxl_identity)
    assert float(np.abs(own - _images(tiny_sdxl_dir, out)).max()) <= 1e-4
    assert float(np.abs(own - _images(tiny_sdxl_dir, None)).max()) > 1e-2  # the LoRA does change the images


def test_without_the_base_model_the_export_numbers_blocks_as_sdxl_and_says_so(sdxl_identity, tmp_path):
    import shutil

    folder = tmp_path / "moved"
    shutil.copytree(sdxl_identity, folder)
    lora = folder / "pytorch_lora_weights.safetensors"  # UNet only, as SDXL training writes by default
    save_file({k: v for k, v in load_file(str(lora)).items() if k.startswith("unet.")}, str(lora))
    manifest = json.loads((folder / "facechain.json").read_text())
    manifest["base_model"] = str(tmp_path / "gone")
    (folder / "facechain.json").write_text(json.dumps(manifest))
    code, stdout, err = run_cli("export", folder, "-o", tmp_path / "x.safetensors", "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["architecture"] == "sdxl" and len(result["notes"]) == 1
    assert "not on this machine" in result["notes"][0] and "layers_per_block=2" in result["notes"][0]
    with safe_open(str(tmp_path / "x.safetensors"), framework="pt") as f:
        assert f.metadata()["facechain_unet_layers_per_block"] == "2"
        # SDXL's numbering: the tiny UNet's down block 1 is SGM input block 4 there
        assert any(k.startswith("lora_unet_input_blocks_4_1_") for k in f.keys())


def test_a_kohya_sdxl_style_lora_loads_through_apply_loras(tiny_sdxl_dir, tmp_path):
    """A user's SDXL LoRA from civitai (kohya layout) given as --style-lora: facechain's loader reads it."""
    from facechain.generation.lora import LoraSpec, apply_loras
    from facechain.testing.tiny import save_tiny_lora

    diffusers_file = save_tiny_lora(tmp_path / "style", _pipe(tiny_sdxl_dir).unet, seed=5)
    weights = load_file(str(diffusers_file))
    kohya = to_kohya(weights, "sdxl", layers_per_block=1)
    civitai = tmp_path / "watercolor_xl.safetensors"
    save_file(kohya, str(civitai), metadata=kohya_metadata("sdxl", kohya))

    base = _image(_pipe(tiny_sdxl_dir))
    results = {}
    for name, path in (("kohya", civitai), ("diffusers", diffusers_file.parent)):
        pipe = _pipe(tiny_sdxl_dir)
        assert apply_loras(pipe, [LoraSpec("style", path, 0.8)]) == ["style"]
        results[name] = _image(pipe)
    assert float(np.abs(results["kohya"] - base).max()) > 1e-2  # the style LoRA changes the output
    assert float(np.abs(results["kohya"] - results["diffusers"]).max()) <= 1e-4  # exactly as its diffusers twin
