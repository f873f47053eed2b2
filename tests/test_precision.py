"""Precision choices: bf16 only on GPUs with native bf16, fp16 with loss scaling elsewhere, VAE fp32 fallback.

Device capabilities are mocked (these tests run on CPU); the tests marked ``cuda`` run only where a
GPU is present and check that fp16 training really scales the loss.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from facechain.diffusion import vae as vae_mod
from facechain.diffusion.device import native_bf16, training_dtype
from facechain.diffusion.vae import decode_latents, encode_posterior
from facechain.training.config import TrainConfig
from facechain.training.trainer import resolve_precision

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def fake_gpu(monkeypatch, capability: tuple[int, int]) -> None:
    """Pretend a CUDA GPU of ``capability`` is present; is_bf16_supported says True as torch does via emulation."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


# --- which precision ----------------------------------------------------------------------------

@pytest.mark.parametrize("capability,mode,dtype", [
    ((6, 0), "fp16", torch.float16),   # P100
    ((7, 0), "fp16", torch.float16),   # V100: torch reports bf16 "supported" (emulated)
    ((7, 5), "fp16", torch.float16),   # T4
    ((8, 0), "bf16", torch.bfloat16),  # A100
    ((8, 6), "bf16", torch.bfloat16),  # RTX 30xx
    ((9, 0), "bf16", torch.bfloat16),  # H100/H200
])
def test_auto_precision_follows_compute_capability_not_is_bf16_supported(monkeypatch, capability, mode, dtype):
    fake_gpu(monkeypatch, capability)
    device = torch.device("cuda")
    assert native_bf16(device) is (capability >= (8, 0))
    assert training_dtype(device) == dtype
    assert resolve_precision(TrainConfig(device="cuda"))[1:] == (mode, dtype)


def test_explicit_bf16_on_an_old_gpu_is_kept_but_warned_about(monkeypatch, caplog):
    fake_gpu(monkeypatch, (7, 5))
    with caplog.at_level(logging.WARNING, logger="facechain.training.trainer"):
        assert resolve_precision(TrainConfig(device="cuda", mixed_precision="bf16"))[1] == "bf16"
    assert "emulated" in caplog.text


def test_no_gpu_means_fp32_training(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_dtype(torch.device("cpu")) == torch.float32
    assert training_dtype(torch.device("mps")) == torch.float32
    assert not native_bf16(torch.device("cuda"))  # no CUDA at all
    assert resolve_precision(TrainConfig(device="cpu"))[1:] == ("no", torch.float32)


# --- the VAE fp32 fallback ----------------------------------------------------------------------

def overflowing_vae(part: str, factor: float = 1e4):
    """A tiny VAE whose ``part`` ('encoder' or 'decoder') overflows fp16 but is finite in fp32.

    Its first convolution is scaled by ``factor``: activations pass 65504 (fp16's largest number)
    while the GroupNorms after it bring them back to normal size, so the same weights in fp32 give
    a finite result.
    """
    from facechain.testing.tiny import tiny_vae

    vae = tiny_vae(seed=1)
    conv = getattr(vae, part).conv_in
    with torch.no_grad():
        conv.weight.mul_(factor)
        conv.bias.mul_(factor)
    return vae


def test_fp16_decode_that_overflows_is_redone_in_fp32():
    reference = overflowing_vae("decoder").eval()  # fp32
    vae = overflowing_vae("decoder").eval().to(torch.float16)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    scale = vae.config.scaling_factor
    with torch.no_grad():
        raw = vae.decode((latents / scale).half(), return_dict=False)[0]
        expected = reference.to(torch.float16).to(torch.float32).decode(latents / scale, return_dict=False)[0]
    assert not torch.isfinite(raw).all()  # the plain fp16 decode really overflows
    image = decode_latents(vae, latents)
    assert image.dtype == torch.float32 and image.shape == (2, 3, 16, 16)
    assert torch.isfinite(image).all()
    torch.testing.assert_close(image, expected)  # = an fp32 decode with the same (fp16-rounded) weights
    assert next(vae.parameters()).dtype == torch.float16  # the caller's VAE is left as it was
    twin = vae_mod._FP32_COPIES[vae]
    decode_latents(vae, latents)
    assert vae_mod._FP32_COPIES[vae] is twin  # the fp32 copy is made once


def test_finite_fp16_decode_needs_no_fp32_copy():
    from facechain.testing.tiny import tiny_vae

    vae = tiny_vae(seed=2).eval().to(torch.float16)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    image = decode_latents(vae, latents)
    with torch.no_grad():
        direct = vae.decode((latents / vae.config.scaling_factor).half(), return_dict=False)[0].float()
    assert torch.equal(image, direct) and vae not in vae_mod._FP32_COPIES
    fp32 = tiny_vae(seed=2).eval()
    assert torch.isfinite(decode_latents(fp32, latents)).all() and fp32 not in vae_mod._FP32_COPIES


def test_fp16_encode_that_overflows_is_redone_in_fp32():
    vae = overflowing_vae("encoder", 1e5).eval().to(torch.float16)
    pixels = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        raw = vae.encode(pixels.half()).latent_dist.mean
    assert not torch.isfinite(raw).all()
    mean, std = encode_posterior(vae, pixels)
    assert mean.dtype == std.dtype == torch.float32 and mean.shape == (1, 4, 8, 8)
    assert torch.isfinite(mean).all() and torch.isfinite(std).all()


def test_training_latent_cache_survives_an_overflowing_fp16_vae(tmp_path):
    from PIL import Image

    from facechain.diffusion.conditioning import PromptEncoder
    from facechain.testing.tiny import tiny_text_encoder, tiny_tokenizer
    from facechain.training.data import TrainingExample
    from facechain.training.dataset import CachedDataset

    rng = np.random.default_rng(0)
    examples = []
    for i in range(2):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        examples.append(TrainingExample(path, "a handsome man"))
    vae = overflowing_vae("encoder", 1e5).eval().to(torch.float16)
    data = CachedDataset(examples, vae, PromptEncoder([tiny_text_encoder()], [tiny_tokenizer()]), resolution=16, flip=True,
                         device=torch.device("cpu"))
    batch = data.batch([0, 1], [False, True], torch.Generator().manual_seed(0))
    assert batch.latents.shape == (2, 4, 8, 8) and torch.isfinite(batch.latents).all()


# --- fp16 training really scales the loss (GPU only) -------------------------------------------

def _tiny_examples(folder, n=3):
    from PIL import Image

    from facechain.training.data import TrainingExample

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        out.append(TrainingExample(path, "a handsome man, smile"))
    return out


@cuda
@pytest.mark.parametrize("mixed_precision", ["fp16", "auto"])
def test_gpu_lora_training_precision_and_loss_scaling(tiny_sd_dir, tmp_path, mixed_precision):
    from facechain.diffusion.loading import load_sd_pipeline
    from facechain.training.components import SDComponents
    from facechain.training.trainer import LoraTrainer

    cfg = TrainConfig(base_model=str(tiny_sd_dir), resolution=32, steps=12, learning_rate=1e-3, eval_samples=0,
                      device="cuda", mixed_precision=mixed_precision, optimizer="adamw")
    comps = SDComponents.from_pipeline(load_sd_pipeline(tiny_sd_dir), str(tiny_sd_dir))
    trainer = LoraTrainer(comps, _tiny_examples(tmp_path), cfg, progress=False)
    expected = "fp16" if mixed_precision == "fp16" else ("bf16" if native_bf16(torch.device("cuda")) else "fp16")
    assert trainer.mixed_precision == expected
    before = {k: v.detach().clone() for k, v in trainer.params.items()}
    assert all(p.dtype == torch.float32 for p in trainer.params.values())  # the scaler can unscale their grads
    outcome = trainer.train()
    assert all(np.isfinite(outcome.losses)) and len(outcome.losses) == 12
    assert any(not torch.equal(before[k], v) for k, v in trainer.params.items())
    scaler = trainer.accelerator.scaler
    if expected == "fp16":
        assert scaler is not None and scaler.is_enabled() and scaler.get_scale() > 1.0
        assert "loss scaling" in trainer.describe()
    else:
        assert scaler is None


@cuda
def test_gpu_fp16_vae_fallback_on_cuda():
    vae = overflowing_vae("decoder").eval().to("cuda", torch.float16)
    image = decode_latents(vae, torch.randn(1, 4, 8, 8, device="cuda"))
    assert image.device.type == "cuda" and torch.isfinite(image).all()
