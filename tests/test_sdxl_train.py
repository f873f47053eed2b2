"""Face-LoRA training on SDXL bases (tiny SDXL architecture, random weights, real photos).

What SDXL adds over SD 1.5 -- two text encoders (penultimate states concatenated), the pooled
embedding and the size/crop time ids, a VAE that must not run in fp16 -- goes through the same
trainer and cache; the result loads in plain diffusers' ``StableDiffusionXLPipeline``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facechain.identity import Identity
from facechain.training.config import TrainConfig
from tests.cli_helpers import run_cli
from tests.test_train import RES, write_prepared


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, faces_dir):
    return write_prepared(tmp_path_factory.mktemp("prep-xl") / "obama", faces_dir)


def sdxl_pipe(folder):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_trainer(base, prepared, **kw):
    from facechain.diffusion.loading import load_sd_pipeline
    from facechain.training.components import SDComponents
    from facechain.training.data import read_prepared
    from facechain.training.trainer import LoraTrainer

    cfg = TrainConfig(base_model=str(base), resolution=RES, **{"learning_rate": 1e-2, "eval_samples": 0, **kw})
    comps = SDComponents.from_pipeline(load_sd_pipeline(base), str(base))
    return LoraTrainer(comps, read_prepared(prepared).examples, cfg, progress=False)


@torch.no_grad()
def sdxl_fixed_batch_loss(pipe, dataset_dir, time_ids: list[float], seed: int = 0) -> float:
    """Noise-prediction MSE with fixed noise/timesteps, conditioned the way SDXL pipelines encode prompts
    (computed with diffusers' own ``encode_prompt``, independently of the trainer)."""
    from diffusers import DDPMScheduler

    from facechain.training.data import load_training_image, read_metadata

    examples = read_metadata(dataset_dir)
    pixels = torch.stack([torch.from_numpy(load_training_image(e.image, RES).transpose(2, 0, 1).copy()) for e in examples])
    latents = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
    states, _, pooled, _ = pipe.encode_prompt([e.caption for e in examples], device="cpu", num_images_per_prompt=1,
                                              do_classifier_free_guidance=False)
    ids = torch.tensor([time_ids] * len(examples))
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(latents.shape, generator=g)
    t = torch.randint(0, 1000, (len(examples),), generator=g)
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    pred = pipe.unet(sched.add_noise(latents, noise, t), t, states,
                     added_cond_kwargs={"text_embeds": pooled, "time_ids": ids}).sample
    return float(torch.nn.functional.mse_loss(pred, noise))


def test_cli_trains_an_sdxl_identity_from_photos_that_plain_diffusers_loads(faces_dir, tiny_sdxl_dir, isolated_home):
    """`facechain train ./photos --base-model <SDXL folder>`: no SDXL-only flag; the family does the rest."""
    code, out, err = run_cli("train", faces_dir / "obama", "--base-model", tiny_sdxl_dir, "--size", RES,
                             "--steps", 30, "--learning-rate", 1e-2, "--trigger", "a handsome man", "--no-retouch", "-q")
    assert code == 0, err
    folder = isolated_home / "identities" / "obama"
    ident = Identity.load(folder)
    assert ident.family == "sdxl" and json.loads((folder / "facechain.json").read_text())["family"] == "sdxl"
    assert ident.training["settings"]["resolution"] == RES and ident.lora["text_encoders_trained"] == []
    t = ident.training
    assert t["fixed_batch_loss_after"] < t["fixed_batch_loss_before"]

    from safetensors.torch import load_file

    keys = list(load_file(str(folder / "pytorch_lora_weights.safetensors")))
    assert {k.split(".")[0] for k in keys} == {"unet"}
    assert any(".transformer_blocks.1." in k for k in keys)  # SDXL's second transformer block was trained too

    pipe = sdxl_pipe(tiny_sdxl_dir)
    side = 512  # prepare's crops: SDXL's "original size" condition is what the images were cropped from
    kw = dict(prompt=f"{ident.trigger_word}, smile", num_inference_steps=2, height=RES, width=RES, output_type="np")
    before_img = pipe(**kw, generator=torch.Generator().manual_seed(0)).images
    before = sdxl_fixed_batch_loss(pipe, folder / "dataset", [side, side, 0, 0, RES, RES])
    pipe.load_lora_weights(str(folder))
    after_img = pipe(**kw, generator=torch.Generator().manual_seed(0)).images
    after = sdxl_fixed_batch_loss(pipe, folder / "dataset", [side, side, 0, 0, RES, RES])
    assert after < before - 0.005, (before, after)
    assert float(np.abs(after_img - before_img).mean()) > 1e-3


def test_both_text_encoder_loras_reproduce_the_trained_model_in_plain_diffusers(tiny_sdxl_dir, prepared, tmp_path):
    trainer = make_trainer(tiny_sdxl_dir, prepared, steps=4, train_text_encoder=True, text_encoder_rank=4,
                           text_encoder_alpha=16)
    assert trainer.family == "sdxl" and "SDXL base" in trainer.describe()
    trainer.train()
    trainer.save_lora(tmp_path / "lora")
    from safetensors.torch import load_file

    keys = list(load_file(str(tmp_path / "lora" / "pytorch_lora_weights.safetensors")))
    assert {k.split(".")[0] for k in keys} == {"unet", "text_encoder", "text_encoder_2"}

    pipe = sdxl_pipe(tiny_sdxl_dir)
    g = torch.Generator().manual_seed(0)
    x, ehs = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 64, generator=g)
    added = {"text_embeds": torch.randn(1, 32, generator=g), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    t = torch.tensor([500])
    ids = pipe.tokenizer(["a handsome man, smile"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        before = pipe.unet(x, t, ehs, added_cond_kwargs=added).sample
        pipe.load_lora_weights(str(tmp_path / "lora"))
        after = pipe.unet(x, t, ehs, added_cond_kwargs=added).sample
        trainer.unet.eval()
        assert float((after - before).abs().max()) > 1e-3
        assert torch.allclose(after, trainer.unet(x, t, ehs, added_cond_kwargs=added).sample, atol=1e-5)
        for ours, theirs in zip(trainer.text_encoders, (pipe.text_encoder, pipe.text_encoder_2)):
            ours.eval()
            assert torch.allclose(theirs(ids)[0], ours(ids)[0], atol=1e-5)


def test_cached_sdxl_conditioning_equals_encoding_every_step(tiny_sdxl_dir, prepared):
    cached = make_trainer(tiny_sdxl_dir, prepared, steps=3)
    ds = cached.dataset
    assert ds.text.hidden.shape == (4, 77, 64) and ds.text.pooled.shape == (4, 32)  # both encoders, pooled
    assert ds.time_ids.tolist() == [[RES, RES, 0, 0, RES, RES]] * 4  # the prepared images are RES squares
    cached.train()
    live = make_trainer(tiny_sdxl_dir, prepared, steps=3, cache_latents=False)
    live.train()
    assert np.allclose(cached.state.losses, live.state.losses, rtol=1e-4, atol=1e-5)


def test_text_conditioning_is_what_the_sdxl_pipeline_encodes(tiny_sdxl_dir):
    from facechain.diffusion.conditioning import PromptEncoder

    pipe = sdxl_pipe(tiny_sdxl_dir)
    enc = PromptEncoder([pipe.text_encoder, pipe.text_encoder_2], [pipe.tokenizer, pipe.tokenizer_2])
    with torch.no_grad():
        ours = enc(enc.tokenize(["a handsome man, smile"]))
        states, _, pooled, _ = pipe.encode_prompt("a handsome man, smile", device="cpu", do_classifier_free_guidance=False)
    assert torch.equal(ours.hidden, states) and torch.equal(ours.pooled, pooled)


def test_size_and_crop_ids_follow_sdxl_semantics(tmp_path):
    from PIL import Image

    from facechain.training.data import crop_conditioning

    Image.new("RGB", (60, 100)).save(tmp_path / "tall.png")  # w 60, h 100: a centred 60 px square is cropped
    assert crop_conditioning(tmp_path / "tall.png", 64) == ((100, 60), (21, 0), (64, 64))  # 20 px * 64/60


def test_resolution_follows_the_family_unless_set(tiny_sd_dir, tiny_sdxl_dir):
    from facechain.training.api import _resolve_models

    assert _resolve_models(TrainConfig(base_model=str(tiny_sdxl_dir)))[1].resolution == 1024
    assert _resolve_models(TrainConfig(base_model=str(tiny_sd_dir)))[1].resolution == 512
    base, cfg = _resolve_models(TrainConfig(base_model=str(tiny_sdxl_dir), resolution=768))
    assert (base.family, cfg.resolution) == ("sdxl", 768)


def test_vae_runs_in_fp32_only_where_fp16_would_overflow(tiny_sdxl_dir, tmp_path):
    from facechain.diffusion.vae import vae_dtype
    from facechain.testing.tiny import tiny_vae
    from facechain.training.components import load_components, resolve_base_model

    stock, fixed = tiny_vae(force_upcast=True), tiny_vae(force_upcast=False)
    assert vae_dtype(stock, torch.float16, "sdxl") == torch.float32  # the stock SDXL VAE: NaNs in fp16
    assert vae_dtype(fixed, torch.float16, "sdxl") == torch.float16  # sdxl-vae-fp16-fix clears the flag
    assert vae_dtype(stock, torch.bfloat16, "sdxl") == torch.bfloat16 and vae_dtype(stock, torch.float32, "sdxl") == torch.float32
    # SD 1.5 configs never set the flag and diffusers defaults it to True: only SDXL honours it
    assert vae_dtype(stock, torch.float16, "sd15") == torch.float16

    # --vae replaces the base model's VAE (here a stand-in for the fp16-fixed one, from a folder)
    torch.manual_seed(5)
    fixed.save_pretrained(tmp_path / "vae-fix", safe_serialization=True)
    comps = load_components(resolve_base_model(str(tiny_sdxl_dir)), vae=str(tmp_path / "vae-fix"))
    assert comps.vae.config.force_upcast is False
    assert all(torch.equal(a, b) for a, b in zip(comps.vae.state_dict().values(), fixed.state_dict().values()))

    # or a single VAE file in the original layout (as sdxl_vae.safetensors is published), read offline
    from safetensors.torch import save_file

    from facechain.diffusion.loading import load_vae
    from facechain.testing.ldm_layout import vae_to_ldm

    single = tmp_path / "vae.safetensors"
    save_file({k.removeprefix("first_stage_model."): v.contiguous() for k, v in vae_to_ldm(fixed).items()}, str(single))
    loaded = load_vae(single, config=tiny_sdxl_dir)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), fixed.state_dict().values()))


def test_sdxl_registry_name_offline_is_a_one_line_download_hint(prepared, tmp_path):
    code, _, err = run_cli("train", prepared, "--base-model", "base-sdxl", "--output", tmp_path / "id", "-q")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "facechain models download base-sdxl" in err and "stabilityai/stable-diffusion-xl-base-1.0" in err


def test_style_lora_on_sdxl_records_the_family(tiny_sdxl_dir, prepared, tmp_path):
    from facechain.training.api import STYLE_MANIFEST, train_style

    folder = tmp_path / "style-images"
    folder.mkdir()
    for i, image in enumerate(sorted((prepared / "images").iterdir())[:2]):
        (folder / image.name).write_bytes(image.read_bytes())
        (folder / image.name).with_suffix(".txt").write_text("oil painting, portrait")
    style = train_style(folder, output=tmp_path / "style", base_model=str(tiny_sdxl_dir), size=RES, steps=2,
                        quiet=True)
    manifest = json.loads((style.path / STYLE_MANIFEST).read_text())
    assert manifest["family"] == "sdxl" and manifest["training"]["settings"]["resolution"] == RES
    from facechain.diffusion.family import lora_family

    assert lora_family(style.lora_path)[0] == "sdxl"
