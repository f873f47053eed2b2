"""End to end: `facechain train` on real photos (runs prepare) with a tiny SD model, then plain diffusers."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from facechain.identity import Identity, resolve_identity
from tests.cli_helpers import run_cli

STEPS = 30



@torch.no_grad()
def fixed_batch_loss(pipe, dataset_dir, seed: int = 0) -> float:
    """Noise-prediction MSE on the training images with fixed noise and timesteps (independent of the trainer)."""
    from facechain.training.data import load_training_image, read_metadata

    examples = read_metadata(dataset_dir)
    pixels = torch.stack([torch.from_numpy(load_training_image(e.image, 64).transpose(2, 0, 1).copy()) for e in examples])
    latents = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
    ids = pipe.tokenizer([e.caption for e in examples], padding="max_length", truncation=True,
                         max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
    states = pipe.text_encoder(ids)[0]
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(latents.shape, generator=g)
    t = torch.randint(0, 1000, (len(examples),), generator=g)
    from diffusers import DDPMScheduler

    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    pred = pipe.unet(sched.add_noise(latents, noise, t), t, states).sample
    return float(torch.nn.functional.mse_loss(pred, noise))


def test_train_real_photos_end_to_end(faces_dir, tiny_sd_dir, isolated_home):
    code, out, err = run_cli("train", faces_dir / "obama", "--base-model", tiny_sd_dir, "--size", 64,
                             "--steps", STEPS, "--learning-rate", 1e-2, "--trigger", "a handsome man", "--no-retouch",
                             "-q")
    assert code == 0, err
    folder = isolated_home / "identities" / "obama"  # default name: the photo folder's name
    assert f"folder:     {folder}" in out

    # a self-contained identity folder
    ident = Identity.load(folder)
    for name in ("pytorch_lora_weights.safetensors", "template_face.png", "train_log.jsonl",
                 "dataset/metadata.jsonl", "dataset/report.json"):
        assert (folder / name).is_file(), name
    assert not (isolated_home / "identities" / "obama.work").exists()
    assert [p.name for p in (isolated_home / "identities").iterdir()] == ["obama"]
    report = json.loads((folder / "dataset" / "report.json").read_text())
    assert ident.trigger_word == report["trigger_word"] == "a handsome man"  # --trigger reached prepare
    assert report["config"]["retouch"] is False  # so did --no-retouch
    captions = [json.loads(x)["text"] for x in (folder / "dataset" / "metadata.jsonl").read_text().splitlines()]
    assert all(c.startswith("a handsome man") for c in captions)
    assert ident.embedding is not None and len(ident.embedding) == len(report["template_embedding"]) > 0
    assert ident.tags == report["tags_frequent"]
    assert ident.dataset["photos"] == len(report["accepted"]) >= 3 and ident.dataset["rejected"] == len(report["rejected"])
    unet_file = tiny_sd_dir / "unet" / "diffusion_pytorch_model.safetensors"
    assert ident.base_model_sha256 == hashlib.sha256(unet_file.read_bytes()).hexdigest()
    assert ident.base_model == str(tiny_sd_dir.resolve())
    assert ident.lora["rank"] == 4 and ident.lora["alpha"] == 4 and ident.lora["target_modules"][-1] == "to_out.0"
    assert ident.training["settings"]["lora_init"] == "gaussian"
    t = ident.training
    assert t["steps"] == STEPS and t["optimizer"] == "torch AdamW" and t["mixed_precision"] == "no"
    assert t["settings"]["seed"] == 42 and t["latents_cached"] is True
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, STEPS + 1)) and all(np.isfinite(r["loss"]) for r in log)
    assert t["fixed_batch_loss_after"] < t["fixed_batch_loss_before"] - 0.01  # the trainer's own measurement

    # plain diffusers loads the LoRA, which lowers the loss on a fixed batch and changes the output
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd_dir), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(prompt=f"{ident.trigger_word}, smile", num_inference_steps=2, height=64, width=64, output_type="np")
    before_img = pipe(**kw, generator=torch.Generator().manual_seed(0)).images
    before_loss = fixed_batch_loss(pipe, folder / "dataset")
    pipe.load_lora_weights(str(folder))
    after_img = pipe(**kw, generator=torch.Generator().manual_seed(0)).images
    after_loss = fixed_batch_loss(pipe, folder / "dataset")
    assert after_loss < before_loss - 0.01, (before_loss, after_loss)
    assert float(np.abs(after_img - before_img).mean()) > 1e-3

    # listed, and the newest identity is the default for generate
    code, out, _ = run_cli("list")
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "BASE", "MODEL"]
    assert row.split()[:3] == ["obama", str(tiny_sd_dir.resolve()), str(ident.dataset["photos"])]
    assert resolve_identity(None).name == "obama"
