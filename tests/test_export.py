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
from facechain.diffusion.kohya import LAYOUTS, to_kohya
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
    assert set(LAYOUTS) == {"sd15", "sdxl"}
    sd = {"unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora.down.weight": torch.zeros(4, 768),
          "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora.up.weight": torch.zeros(1280, 4),
          "text_encoder.text_model.encoder.layers.3.mlp.fc1.lora_linear_layer.down.weight": torch.zeros(2, 768),
          "text_encoder.text_model.encoder.layers.3.mlp.fc1.lora_linear_layer.up.weight": torch.zeros(3072, 2)}
    out = to_kohya(sd, alphas={"unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k": 1.0})
    assert float(out["lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.alpha"]) == 1.0
    assert float(out["lora_te_text_model_encoder_layers_3_mlp_fc1.alpha"]) == 2.0  # default: alpha = rank
    with pytest.raises(ValueError, match="flux LoRAs is not supported yet"):
        to_kohya(sd, "flux")
    with pytest.raises(ValueError, match="has no matching"):
        to_kohya({"unet.a.lora.down.weight": torch.zeros(1, 1)})


def _lora_names(modules: list[str]) -> dict[str, torch.Tensor]:
    return {f"{m}.lora.{d}.weight": torch.zeros(1, 1) for m in modules for d in ("down", "up")}


def test_sdxl_names_are_sgm_blocks_and_depend_on_layers_per_block():
    modules = ["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
               "unet.down_blocks.2.attentions.1.transformer_blocks.9.ff.net.2",
               "unet.mid_block.attentions.0.transformer_blocks.3.attn2.to_k",
               "unet.up_blocks.0.attentions.2.proj_out", "unet.up_blocks.1.upsamplers.0.conv",
               "unet.down_blocks.0.resnets.1.time_emb_proj", "unet.down_blocks.1.downsamplers.0.conv",
               "unet.add_embedding.linear_1", "text_encoder.encoder.layers.0.self_attn.q_proj",
               "text_encoder_2.text_model.encoder.layers.31.mlp.fc1", "text_encoder_2.text_projection"]
    names = {k.split(".")[0] for k in to_kohya(_lora_names(modules), "sdxl")}  # SDXL: layers_per_block = 2
    assert names == {"lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
                     "lora_unet_input_blocks_8_1_transformer_blocks_9_ff_net_2",
                     "lora_unet_middle_block_1_transformer_blocks_3_attn2_to_k",
                     "lora_unet_output_blocks_2_1_proj_out", "lora_unet_output_blocks_5_2_conv",
                     "lora_unet_input_blocks_2_0_emb_layers_1", "lora_unet_input_blocks_6_0_op",
                     "lora_unet_label_emb_0_0", "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
                     "lora_te2_text_model_encoder_layers_31_mlp_fc1", "lora_te2_text_projection"}
    tiny = {k.split(".")[0] for k in to_kohya(_lora_names(modules[:1]), "sdxl", layers_per_block=1)}
    assert tiny == {"lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q"}
    with pytest.raises(ValueError, match="no sdxl UNet block name"):
        to_kohya(_lora_names(["unet.encoder_hid_proj"]), "sdxl")
    with pytest.raises(ValueError, match="no kohya prefix for component 'text_encoder_2'"):
        to_kohya(_lora_names(["text_encoder_2.text_projection"]), "sd15")


def test_every_layer_of_the_full_sdxl_unet_maps_back_in_diffusers():
    """All 794 Linear/Conv layers of the real SDXL UNet (shipped config, no weights) survive
    diffusers' own kohya reader (``lora_state_dict`` with the UNet config) under their own names."""
    from accelerate import init_empty_weights
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_unet_state_dict_to_peft

    import facechain.diffusion as diffusion_pkg

    config = json.loads((Path(diffusion_pkg.__file__).parent / "single_file/sdxl/unet/config.json").read_text())
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    modules = [n for n, m in unet.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    kohya = to_kohya(_lora_names([f"unet.{m}" for m in modules]), "sdxl")
    assert not any(p in k for k in kohya for p in ("down_blocks", "mid_block", "up_blocks"))  # all SGM names
    back, _ = StableDiffusionXLPipeline.lora_state_dict(kohya, unet_config=unet.config)
    peft = convert_unet_state_dict_to_peft({k.removeprefix("unet."): v for k, v in back.items()})
    assert len(modules) > 700 and {k.rsplit(".lora_", 1)[0] for k in peft} == set(modules)
