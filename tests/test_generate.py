"""Generation on tiny SD models: CLI, styles with and without a LoRA, LoRA fusing, pose ControlNet, outputs.

Tiny random models draw noise, not faces: post-processing must flag those images, not crash.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facechain.generation.api import generate
from facechain.generation.lora import LoraSpec
from facechain.generation.pipeline_cache import LoraSet, PipelineCache, PipelineKey, default_cache
from facechain.identity import Identity
from tests.cli_helpers import run_cli

TINY = ["--size", "64", "--steps", "2", "--prompt", "{trigger}, studio portrait"]



def _random_lora(folder: Path, seed: int, scale: float = 0.2) -> Path:
    """A LoRA for the tiny UNet with random (non-zero) A and B matrices, saved in diffusers format."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from facechain.testing.tiny import tiny_unet

    unet = tiny_unet(0)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    g = torch.Generator().manual_seed(seed)
    for name, p in unet.named_parameters():
        if "lora_" in name:
            p.data = torch.randn(p.shape, generator=g) * scale
    folder.mkdir(parents=True, exist_ok=True)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(save_directory=folder, unet_lora_layers=layers, safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"


@pytest.fixture(scope="session")
def tiny_identity(tmp_path_factory, tiny_sd_dir, faces_dir) -> Path:
    folder = tmp_path_factory.mktemp("identities") / "alice"
    _random_lora(folder, seed=1)
    shutil.copy(faces_dir / "obama" / "obama_small.jpg", folder / "template_face.png")
    Identity(name="alice", base_model=str(tiny_sd_dir), trigger_word="a handsome man", path=folder, tags=["short hair"]).save()
    return folder


@pytest.fixture(scope="session")
def style_lora_file(tmp_path_factory) -> Path:
    return _random_lora(tmp_path_factory.mktemp("stylelora"), seed=2)


def _png_meta(path: Path) -> dict:
    with Image.open(path) as im:
        return json.loads(im.text["facechain"]) | {"_parameters": im.text["parameters"]}


def test_cli_prompt_only_and_lora_style_write_portraits(tiny_identity, tiny_sd_dir, style_lora_file, tmp_path):
    # a user style file with a relative style-LoRA path (relative to the style file)
    (tmp_path / "styles").mkdir()
    shutil.copy(style_lora_file, tmp_path / "styles" / "neon.safetensors")
    style_file = tmp_path / "styles" / "neon.yaml"
    style_file.write_text(f"name: neon\nbase_model: {tiny_sd_dir}\nstyle_lora: ./neon.safetensors\nstyle_weight: 0.6\n"
                          "prompt: 'neon portrait of {trigger}, glowing'\nsize: 64\nsteps: 2\n")

    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    code, out, err = run_cli("generate", "--person", tiny_identity, "--style-prompt", "{trigger}, oil painting",
                             "--base-model", tiny_sd_dir, "--size", "64", "--steps", "2", "-n", "2", "--seed", "5", "-o", out1)
    assert code == 0, err
    assert sorted(p.name for p in out1.iterdir()) == ["0001.png", "0002.png", "contact_sheet.jpg", "portraits.json"]
    assert "no face found" in err and "kept and ranked last" in err  # noise images are flagged, not fatal
    run = json.loads((out1 / "portraits.json").read_text())
    assert run["settings"]["prompt"].startswith("a handsome man, short hair, oil painting")
    assert run["settings"]["style_lora"] is None
    assert [p["seed"] for p in run["portraits"]] == [5, 6]
    assert all(p["ok"] is False and p["reason"] == "no face found" and p["similarity"] is None for p in run["portraits"])
    meta = _png_meta(out1 / "0001.png")
    assert meta["seed"] == 5 and meta["face_weight"] == 0.95 and "Seed: 5" in meta["_parameters"]
    assert Image.open(out1 / "contact_sheet.jpg").size[0] > 64

    code, out, err = run_cli("infer", "--person", tiny_identity, "--style", style_file, "-n", "1", "--seed", "5", "-o", out2)  # size/steps from the style
    assert code == 0, err
    meta = _png_meta(out2 / "0001.png")
    assert meta["style"] == "neon" and meta["style_weight"] == 0.6
    assert meta["prompt"].startswith("neon portrait of a handsome man, short hair, glowing")
    assert json.loads((out2 / "portraits.json").read_text())["settings"]["style_lora"] == str(tmp_path / "styles" / "neon.safetensors")
    # same seed, different style LoRA and prompt -> a different picture
    a, b = np.asarray(Image.open(out1 / "0001.png")), np.asarray(Image.open(out2 / "0001.png"))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0


def test_existing_output_is_never_overwritten(tiny_identity, tiny_sd_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "0001.png").write_bytes(b"precious")
    code, _, err = run_cli("generate", "--person", tiny_identity, "--base-model", tiny_sd_dir, *TINY, "-n", "1", "-o", out)
    assert code == 2 and "already exists" in err and str(out) in err
    assert (out / "0001.png").read_bytes() == b"precious"


def test_strict_rejecting_everything_is_a_clear_error(tiny_identity, tiny_sd_dir, tmp_path):
    code, _, err = run_cli("generate", "--person", tiny_identity, "--base-model", tiny_sd_dir, *TINY, "-n", "2",
                           "--strict", "-o", tmp_path / "out")
    assert code == 1
    assert "--strict rejected all 2 portraits" in err and "no face found" in err
    assert not (tmp_path / "out").exists()


def test_user_mistakes_are_one_line_errors(tiny_identity, tiny_sd_dir, tmp_path):
    for argv, needle in [
        (["--size", "100"], "multiples of 8"),
        (["--style", "cyberpnk"], "did you mean cyberpunk"),
        (["--fusion-strength", "2"], "between 0 and 1"),
        (["--style-lora", str(tmp_path / "nope.safetensors")], "needs --prompt"),
        (["--style-prompt", "x", "--style-lora", str(tmp_path / "nope.safetensors")], "style LoRA not found"),
    ]:
        code, _, err = run_cli("generate", "--person", tiny_identity, "--base-model", tiny_sd_dir, "-o", tmp_path / "o", *argv)
        assert code == 2 and needle in err and "Traceback" not in err, (argv, err)


def test_fused_loras_equal_unfused_adapters_and_cache_switches_sets(tiny_identity, tiny_sd_dir, style_lora_file):
    cache = PipelineCache()
    key = PipelineKey(str(tiny_sd_dir), "cpu", "fp32")
    loras = (LoraSpec("face", tiny_identity, 0.9), LoraSpec("style", style_lora_file, 0.25))

    def latents(pipe) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return pipe("a photo", num_inference_steps=2, height=64, width=64, generator=g, output_type="latent").images

    base = latents(cache.get(key, LoraSet(())))
    unfused = latents(cache.get(key, LoraSet(loras, fused=False)))
    fused = latents(cache.get(key, LoraSet(loras, fused=True)))
    back = latents(cache.get(key, LoraSet(())))
    assert (fused - unfused).abs().max() < 1e-4
    assert (fused - base).abs().max() > 1e-2  # the LoRAs really act
    assert (back - base).abs().max() < 1e-4  # unfusing restores the base weights
    assert cache.builds == 1  # one base-model load for all four LoRA sets


def test_face_weight_moves_output_monotonically(tiny_identity, tiny_sd_dir):
    kw = dict(base_model=str(tiny_sd_dir), size="64", steps=2, seed=11, num_images=1, fusion="none", quiet=True)
    builds = default_cache().builds
    imgs = [np.asarray(generate(tiny_identity, prompt="{trigger}", face_weight=w, **kw)[0].raw_image, dtype=np.float64)
            for w in (0.0, 0.5, 1.0)]
    d_half, d_full = (np.abs(imgs[i] - imgs[0]).mean() for i in (1, 2))
    assert 0 < d_half < d_full
    assert default_cache().builds - builds <= 1  # LoRA weight changes reuse the loaded base model


def _skeleton(size: int = 64) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    limbs = [((32, 10), (32, 30), (255, 0, 0)), ((32, 30), (16, 40), (255, 255, 0)), ((32, 30), (48, 40), (0, 255, 0)),
             ((32, 30), (24, 58), (0, 255, 255)), ((32, 30), (40, 58), (0, 0, 255)), ((32, 10), (40, 6), (255, 0, 255))]
    for a, b, c in limbs:
        cv2.line(img, a, b, c, 3)
    return img


@pytest.fixture(scope="session")
def live_controlnet_dir(tmp_path_factory) -> Path:
    """A tiny ControlNet whose zero-initialised output convolutions are randomised, so the pose matters."""
    from facechain.testing.tiny import tiny_controlnet

    return save_live_controlnet(tiny_controlnet(0), tmp_path_factory.mktemp("cn") / "live-controlnet")


def save_live_controlnet(cn, folder: Path) -> Path:
    """Randomise a tiny ControlNet's zero-initialised output convolutions (so the condition matters) and save it."""
    g = torch.Generator().manual_seed(7)
    for name, p in cn.named_parameters():
        if name.startswith(("controlnet_down_blocks", "controlnet_mid_block")):
            p.data = torch.randn(p.shape, generator=g) * 0.05
    cn.save_pretrained(folder, safe_serialization=True)
    return folder


def test_pose_conditions_generation_through_controlnet(tiny_identity, tiny_sd_dir, live_controlnet_dir, tmp_path):
    skeleton = tmp_path / "pose.png"
    Image.fromarray(_skeleton()).save(skeleton)
    common = ["--person", tiny_identity, "--base-model", tiny_sd_dir, *TINY, "-n", "1", "--seed", "3", "--no-fusion"]
    code, _, err = run_cli("generate", *common, "--pose", skeleton, "--openpose-controlnet", live_controlnet_dir, "-o", tmp_path / "pose")
    assert code == 0, err
    settings = json.loads((tmp_path / "pose" / "portraits.json").read_text())["settings"]
    assert settings["pose"] == str(skeleton) and settings["openpose_controlnet"] == str(live_controlnet_dir)
    code, _, err = run_cli("generate", *common, "-o", tmp_path / "free")
    assert code == 0, err
    posed, free = (np.asarray(Image.open(tmp_path / d / "0001.png"), dtype=int) for d in ("pose", "free"))
    assert np.abs(posed - free).mean() > 0.5  # the ControlNet changed the picture
    # The Python API takes a ready skeleton array as well.
    res = generate(tiny_identity, prompt="{trigger}, studio portrait", base_model=str(tiny_sd_dir), size="64", steps=2, seed=3,
                   num_images=1, fusion="none", pose=_skeleton(), openpose_controlnet=str(live_controlnet_dir), quiet=True)
    assert res.settings["pose"] == "array"
    assert np.array_equal(res[0].array, posed)


def test_python_results_object(tiny_identity, tiny_sd_dir, tmp_path):
    res = generate(tiny_identity, "cyberpunk", base_model=str(tiny_sd_dir), size="64x96", steps=2, seed=1, num_images=2,
                   sampler="dpm++2m", batch_size=2, quiet=True)
    assert len(res) == 2 and res.best is res[0]
    assert res[0].image.size == (64, 96) and res[0].similarity is None and not res[0].ok
    assert res.settings["sampler"] == "dpm++2m" and res.settings["style"] == "cyberpunk"
    assert set(res.timings["per_image"]) >= {"text_encoding", "denoising", "vae_decode", "fusion", "ranking"}
    folder = res.save(tmp_path / "saved")
    assert (folder / "0002.png").exists() and res[1].path == folder / "0002.png"
    with pytest.raises(Exception, match="already exists"):
        res[0].save(folder / "0001.png")
    # batch of 2 with seeds 1, 2 == one by one (each image has its own generator)
    single = generate(tiny_identity, "cyberpunk", base_model=str(tiny_sd_dir), size="64x96", steps=2, seed=2, num_images=1,
                      sampler="dpm++2m", quiet=True)
    by_seed = {p.seed: p.array for p in res}
    assert np.abs(by_seed[2].astype(int) - single[0].array.astype(int)).max() <= 1


def test_config_file_sits_between_flags_and_style(tiny_identity, tiny_sd_dir, tmp_path):
    from facechain.config import load_config
    from facechain.generation.config import GenerateConfig
    from facechain.paths import builtin_configs_dir

    shipped = load_config(GenerateConfig, "generate", builtin_configs_dir() / "generate.yaml")
    assert shipped == GenerateConfig()  # the documented example spells out the defaults
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(f"generate:\n  base_model: {tiny_sd_dir}\n  prompt: '{{trigger}}, from config'\n  num_images: 1\n"
                   "  steps: 2\n  size: '64'\n  seed: 4\n  fusion: none\n  sampler: euler\n")
    code, out, err = run_cli("generate", "--person", tiny_identity, "--config", cfg, "--seed", "8", "--json", "-o", tmp_path / "o")
    assert code == 0, err
    data = json.loads(out)
    s = data["settings"]
    assert s["seeds"] == [8] and s["steps"] == 2 and s["sampler"] == "euler" and s["fusion"] == "none"
    assert s["prompt"] == "a handsome man, short hair, from config" and data["output"] == str(tmp_path / "o")
    assert data["portraits"][0]["fusion"] is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("generate:\n  num_imagez: 2\n")
    code, _, err = run_cli("generate", "--person", tiny_identity, "--config", bad, "-o", tmp_path / "o2")
    assert code == 2 and "unknown key 'num_imagez'" in err and "bad.yaml" in err


def test_a_broken_lora_is_a_clear_error_and_the_cache_recovers(tiny_identity, tiny_sd_dir, tmp_path):
    bad = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file

    save_file({"not_a_lora.weight": torch.zeros(2, 2)}, str(bad))
    kw = dict(base_model=str(tiny_sd_dir), size="64", steps=2, seed=1, num_images=1, fusion="none", quiet=True)
    with pytest.raises(Exception, match="bad.safetensors") as err:
        generate(tiny_identity, prompt="{trigger}", style_lora=str(bad), **kw)
    assert "Traceback" not in str(err.value)
    assert len(generate(tiny_identity, prompt="{trigger}", **kw)) == 1  # the next run works
