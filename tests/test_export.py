"""``facechain export``: an identity's LoRA in the kohya / A1111 layout round-trips through diffusers.

The identity is written the way ``facechain train`` writes one (``save_lora_weights`` of peft
adapters on the tiny UNet and text encoder, alpha != rank, plus its manifest); the kohya file is
then loaded back with plain diffusers' ``load_lora_weights`` (its kohya converter) and must give
the identity's own images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import facechain
from facechain.diffusion.kohya import LAYOUTS, lora_architecture, to_kohya
from facechain.errors import InputError
from facechain.identity import Identity
from tests.cli_helpers import run_cli

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _random_lora(model, rank: int, alpha: float, targets: list[str], seed: int) -> None:
    """peft adapters with non-zero up matrices (a trained LoRA, not an untrained one)."""
    from peft import LoraConfig

    model.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=targets))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.fixture(scope="module")
def identity_dir(tmp_path_factory, tiny_sd_dir) -> Path:
    from diffusers import StableDiffusionPipeline

    from facechain.training.export import diffusers_lora_layers, save_lora_weights

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd_dir), safety_checker=None, requires_safety_checker=False)
    _random_lora(pipe.unet, rank=4, alpha=8, targets=UNET_TARGETS, seed=1)
    _random_lora(pipe.text_encoder, rank=2, alpha=4, targets=TE_TARGETS, seed=2)
    folder = tmp_path_factory.mktemp("identities") / "alice"
    save_lora_weights(folder, {"unet": diffusers_lora_layers(pipe.unet, 4, 8),
                               "text_encoder": diffusers_lora_layers(pipe.text_encoder, 2, 4)})
    Identity(name="alice", base_model=str(tiny_sd_dir), trigger_word="a beautiful woman", path=folder,
             lora={"rank": 4, "alpha": 8, "alpha_baked_into_weights": True}).save()
    return folder


def _images(tiny_sd_dir, lora: Path | None) -> np.ndarray:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd_dir), safety_checker=None, requires_safety_checker=False)
    if lora is not None:
        if lora.is_dir():
            pipe.load_lora_weights(str(lora))
        else:
            pipe.load_lora_weights(str(lora.parent), weight_name=lora.name)
    return pipe("a beautiful woman, smile", num_inference_steps=2, height=64, width=64, guidance_scale=7.0,
                generator=torch.Generator().manual_seed(0), output_type="np").images


def test_kohya_export_reproduces_the_identity_in_plain_diffusers(identity_dir, tiny_sd_dir, tmp_path):
    out = tmp_path / "alice_kohya.safetensors"
    code, stdout, err = run_cli("export", identity_dir, "--format", "kohya", "-o", out)
    assert code == 0, err
    assert "alice" in stdout and str(out) in stdout
    with safe_open(str(out), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
        alphas = {k: float(f.get_tensor(k)) for k in keys if k.endswith(".alpha")}
    assert keys and all(k.startswith(("lora_unet_", "lora_te_")) for k in keys)
    assert "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in keys
    assert "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_out_0.lora_up.weight" in keys
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha" in keys  # A1111's text-encoder names
    # every layer has down, up and alpha; alpha = rank because the identity's alpha/rank is baked into 'up'
    layers = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in keys}
    assert len(keys) == 3 * len(layers) and set(alphas.values()) == {4.0, 2.0}
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_base_model_version"] == "sd_v1"
    assert meta["facechain_trigger_word"] == "a beautiful woman"

    own = _images(tiny_sd_dir, identity_dir)
    via_kohya = _images(tiny_sd_dir, out)
    assert float(np.abs(own - via_kohya).max()) <= 1e-4
    assert float(np.abs(own - _images(tiny_sd_dir, None)).max()) > 1e-2  # the LoRA does change the images


def test_export_refuses_to_overwrite_and_writes_atomically(identity_dir, tmp_path, monkeypatch):
    out = tmp_path / "mine.safetensors"
    out.write_bytes(b"user data")
    code, _, err = run_cli("export", identity_dir, "-o", out)
    assert code == 2 and "already exists; pass --overwrite" in err and err.count("\n") == 1
    assert out.read_bytes() == b"user data"

    import facechain.diffusion.kohya as kohya

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("safetensors.torch.save", broken)
    code, _, err = run_cli("export", identity_dir, "-o", out, "--overwrite")
    assert code == 1 and out.read_bytes() == b"user data"  # a failed write leaves the old file
    assert [p.name for p in tmp_path.iterdir()] == ["mine.safetensors"]  # and no temporary file behind
    monkeypatch.undo()
    code, _, _ = run_cli("export", identity_dir, "-o", out, "--overwrite")
    assert code == 0 and out.read_bytes()[:8] != b"user dat"
    assert kohya.LAYOUTS  # the module was imported through the CLI path


def test_diffusers_format_is_a_copy_and_python_api_matches(identity_dir, tmp_path):
    res = facechain.export(identity_dir, tmp_path / "copy.safetensors", format="diffusers")
    assert res.path.read_bytes() == (identity_dir / "pytorch_lora_weights.safetensors").read_bytes()
    assert (res.format, res.architecture, res.identity) == ("diffusers", "sd15", "alice") and res.layers > 0
    k = facechain.export(identity_dir, tmp_path / "k.safetensors")
    assert k.format == "kohya" and k.layers == res.layers
    with pytest.raises(InputError, match="must be a .safetensors"):
        facechain.export(identity_dir, tmp_path / "x.ckpt")
    code, _, err = run_cli("export", "nobody")
    assert code == 2 and "no such identity" in err


def test_identity_by_name_and_default_output(identity_dir, isolated_home, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(identity_dir, isolated_home / "identities" / "alice")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("export", "alice")
    assert code == 0, err
    assert (tmp_path / "alice.safetensors").is_file()


def test_key_table_per_architecture():
    assert set(LAYOUTS) == {"sd15"}
    sd = {"unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora.down.weight": torch.zeros(4, 768),
          "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora.up.weight": torch.zeros(1280, 4),
          "text_encoder.text_model.encoder.layers.3.mlp.fc1.lora_linear_layer.down.weight": torch.zeros(2, 768),
          "text_encoder.text_model.encoder.layers.3.mlp.fc1.lora_linear_layer.up.weight": torch.zeros(3072, 2)}
    out = to_kohya(sd, alphas={"unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k": 1.0})
    assert float(out["lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.alpha"]) == 1.0
    assert float(out["lora_te_text_model_encoder_layers_3_mlp_fc1.alpha"]) == 2.0  # default: alpha = rank
    xl = {"unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora.down.weight": torch.zeros(4, 2048),
          "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora.up.weight": torch.zeros(1280, 4)}
    assert lora_architecture(xl) == "sdxl" and lora_architecture(sd) == "sd15"
    with pytest.raises(ValueError, match="sdxl LoRAs is not supported yet"):
        to_kohya(xl, "sdxl")
    with pytest.raises(ValueError, match="has no matching"):
        to_kohya({"unet.a.lora.down.weight": torch.zeros(1, 1)})


def test_sdxl_identity_is_refused_with_one_line(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "xl"
    folder.mkdir()
    save_file({"text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight": torch.zeros(2, 4),
               "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight": torch.zeros(4, 2)},
              str(folder / "pytorch_lora_weights.safetensors"))
    (folder / "facechain.json").write_text(json.dumps({"name": "xl", "base_model": "x", "trigger_word": "a man"}))
    code, _, err = run_cli("export", folder, "-o", tmp_path / "xl.safetensors")
    assert code == 2 and "not supported yet" in err and err.count("\n") == 1
    assert not (tmp_path / "xl.safetensors").exists()
