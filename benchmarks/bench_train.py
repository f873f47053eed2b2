"""Benchmark: face-LoRA training speed and memory, facechain's trainer vs diffusers' LoRA recipe.

Builds the full SD 1.5 architecture with random weights from config (UNet 860M parameters, the
full-size VAE and CLIP ViT-L text encoder; no download; the tiny in-memory CLIP tokenizer stands
in for the real vocabulary, text length 77) and times a few LoRA training steps (rank 4 on
to_q/to_k/to_v/to_out.0) for three variants, each in its own subprocess so that peak memory
is measured per variant:

* ``facechain cached``  -- our LoraTrainer, latents + text embeddings cached once (the default);
* ``facechain live``    -- our LoraTrainer with ``cache_latents: false`` (VAE + CLIP every step);
* ``diffusers recipe``  -- the semantics of diffusers' examples/text_to_image/train_text_to_image_lora.py,
  re-implemented here: load + transform the image, VAE encode and text encode every step, no
  caching, torch AdamW.

Usage (heavy; run one at a time)::

    flock /tmp/facechain-heavy.lock python benchmarks/bench_train.py                 # 256 px, CPU
    python benchmarks/bench_train.py --size 512 --device cuda                        # GPU: it/s, peak VRAM

Peak memory: RSS of the variant's process on CPU (models included), torch.cuda.max_memory_allocated
on GPU. "setup" is the one-off work before the first step (latent caching for "cached").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = ("facechain cached", "facechain live", "diffusers recipe")
CAPTION = "a handsome man, smile, suit, white background"


# --- full-size SD 1.5 components, random weights -----------------------------------------------

def build_sd15(seed: int = 0):
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from facechain.testing.tiny import tiny_tokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8,
    )
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
                        block_out_channels=(128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, bos_token_id=0, eos_token_id=1,
        pad_token_id=1))
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, clip_sample=False)
    return unet, vae, text_encoder, tiny_tokenizer(77), scheduler


def write_images(folder: Path, n: int = 4) -> list[Path]:
    """Photo-sized RGB images with captions (content does not matter for timing)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((640, 640), Image.Resampling.BICUBIC)
        p = folder / f"{i:03d}.png"
        img.save(p)
        paths.append(p)
    return paths


# --- one variant, in this process --------------------------------------------------------------

def peak_memory_gb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run_facechain(images: list[Path], args, cached: bool) -> dict:
    from facechain.training.components import SDComponents
    from facechain.training.config import TrainConfig
    from facechain.training.data import TrainingExample
    from facechain.training.trainer import LoraTrainer

    comps = SDComponents(*build_sd15(), reference="random")
    cfg = TrainConfig(base_model="random", resolution=args.size, steps=args.warmup + args.steps, eval_samples=0,
                      cache_latents=cached, device=args.device, gradient_checkpointing=args.gradient_checkpointing)
    t0 = time.perf_counter()
    trainer = LoraTrainer(comps, [TrainingExample(p, CAPTION) for p in images], cfg, progress=False)
    del comps  # like facechain.train: the trainer holds what it still needs (no VAE/CLIP once cached)
    setup = time.perf_counter() - t0

    def one_step() -> None:
        trainer.training_step()
        trainer.state.step += 1

    timing = time_steps(one_step, args)
    return dict(setup_s=setup, **timing, optimizer=trainer.optimizer_name,
                precision=trainer.mixed_precision, peak_gb=peak_memory_gb(args.device))


def run_diffusers_recipe(images: list[Path], args) -> dict:
    """train_text_to_image_lora.py's step: transform image, VAE encode, CLIP encode, UNet, AdamW."""
    import torch
    import torch.nn.functional as F
    from diffusers.optimization import get_scheduler
    from peft import LoraConfig
    from PIL import Image

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    weight_dtype = torch.float16 if cuda else torch.float32  # the example's --mixed_precision fp16 on GPU
    unet, vae, te, tok, sched = build_sd15()
    t0 = time.perf_counter()
    for m in (unet, vae, te):
        m.requires_grad_(False)
        m.to(device, dtype=weight_dtype)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    lr_scheduler = get_scheduler("constant", optimizer=optimizer, num_warmup_steps=0,
                                 num_training_steps=args.warmup + args.steps)
    scaler = torch.amp.GradScaler("cuda") if cuda else None
    input_ids = tok([CAPTION], padding="max_length", max_length=tok.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    setup = time.perf_counter() - t0
    res = args.size
    rng = np.random.default_rng(0)

    def example(i: int) -> torch.Tensor:  # Resize, CenterCrop, RandomHorizontalFlip, ToTensor, Normalize
        img = Image.open(images[i % len(images)]).convert("RGB").resize((res, res), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
        if rng.random() < 0.5:
            arr = arr[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]

    def step(i: int) -> float:
        pixel_values = example(i).to(device, dtype=weight_dtype)
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            latents = vae.encode(pixel_values).latent_dist.sample() * vae.config.scaling_factor
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, sched.config.num_train_timesteps, (latents.shape[0],), device=device).long()
            noisy = sched.add_noise(latents, noise, timesteps)
            states = te(input_ids, return_dict=False)[0]
            pred = unet(noisy, timesteps, states, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad()
        return float(loss.detach())

    counter = iter(range(10**9))
    timing = time_steps(lambda: step(next(counter)), args)
    return dict(setup_s=setup, **timing, optimizer="torch AdamW",
                precision="fp16" if cuda else "no", peak_gb=peak_memory_gb(args.device))


def time_steps(step, args) -> dict:
    """Warm-up steps, then each timed step on its own: mean and best wall time, mean CPU time.

    The best (minimum) step is the figure least disturbed by other work on a shared machine.
    """
    for _ in range(args.warmup):
        step()
    walls, cpus = [], []
    for _ in range(args.steps):
        _sync(args.device)
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        _sync(args.device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return dict(s_per_step=sum(walls) / len(walls), best_s_per_step=min(walls), cpu_s_per_step=sum(cpus) / len(cpus))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_breakdown(images: list[Path], args) -> dict:
    """One process, interleaved rounds: our cached training step vs the VAE and CLIP encodes the
    uncached recipe adds to every step. Robust to other load (all parts see the same conditions)."""
    import torch

    from facechain.training.components import SDComponents
    from facechain.training.config import TrainConfig
    from facechain.training.data import TrainingExample
    from facechain.diffusion.conditioning import PromptEncoder
    from facechain.training.dataset import image_tensor
    from facechain.training.trainer import LoraTrainer

    unet, vae, te, tok, sched = build_sd15()
    examples = [TrainingExample(p, CAPTION) for p in images]
    cfg = TrainConfig(base_model="random", resolution=args.size, steps=10**6, eval_samples=0, device=args.device)
    trainer = LoraTrainer(SDComponents(unet, vae, te, tok, sched), examples, cfg, progress=False)
    pixels = image_tensor(examples[0], args.size, False)[None].to(trainer.device, trainer.weight_dtype)
    ids = PromptEncoder([te], [tok]).tokenize([CAPTION])[:, 0].to(trainer.device)
    vae.to(trainer.device)
    te.to(trainer.device)

    def unet_step() -> None:
        trainer.training_step()
        trainer.state.step += 1

    @torch.no_grad()
    def vae_encode() -> None:
        vae.encode(pixels).latent_dist.sample()

    @torch.no_grad()
    def clip_encode() -> None:
        te(ids)

    parts = {"unet_step": unet_step, "vae_encode": vae_encode, "clip_encode": clip_encode}
    for f in parts.values():
        f()
    best = {k: float("inf") for k in parts}
    for _ in range(args.steps):
        for k, f in parts.items():
            _sync(args.device)
            t0 = time.perf_counter()
            f()
            _sync(args.device)
            best[k] = min(best[k], time.perf_counter() - t0)
    return {f"{k}_s": v for k, v in best.items()}


def run_variant(args) -> dict:
    from facechain.diffusion.loading import quiet_ml_logs

    quiet_ml_logs()
    images = sorted(Path(args.images).glob("*.png"))
    if args.variant == "diffusers recipe":
        out = run_diffusers_recipe(images, args)
    elif args.variant == "breakdown":
        out = run_breakdown(images, args)
    else:
        out = run_facechain(images, args, cached=args.variant == "facechain cached")
    return {"variant": args.variant, **out}


# --- driver: one subprocess per variant, then the table ----------------------------------------

def _child_env() -> dict[str, str]:
    """OpenMP threads that spin while waiting are pathological on a shared machine (a descheduled
    sibling thread stalls every parallel region; we saw 100x slowdowns of small models): wait
    passively unless the caller chose otherwise. Applied to every variant alike."""
    return {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def run_variant_process(cmd: list[str]) -> tuple[dict | None, subprocess.CompletedProcess]:
    """Run one variant in its own process (passive OpenMP waits) and read its ``RESULT`` JSON line."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return (json.loads(lines[-1][len("RESULT "):]) if proc.returncode == 0 and lines else None), proc


def machine(device: str) -> tuple[str, str]:
    """Where the benchmark ran (GPU name, or CPU and its threads) and the name of its memory column."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(), "peak VRAM GiB"
    return f"CPU, {torch.get_num_threads()} threads", "peak RSS GiB"


def parse_driver_args(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """The benchmark's own options plus the internal ones a variant's child process is started with."""
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant and print JSON
    ap.add_argument("--images", help=argparse.SUPPRESS)
    return ap.parse_args()


def early_exit(args, run_variant) -> int | None:
    """0 after running one variant in this (child) process and printing its ``RESULT`` line; 2 for
    ``--device cuda`` without a GPU; None: go on and drive the variants."""
    if args.variant:
        print("RESULT " + json.dumps(run_variant(args)), flush=True)
        return 0
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("--device cuda: no CUDA GPU on this machine", file=sys.stderr)
        return 2
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="training image side in px")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    ap.add_argument("--no-breakdown", action="store_true", help="skip the in-process per-part timing")
    args = parse_driver_args(ap)
    code = early_exit(args, run_variant)
    if code is not None:
        return code
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        write_images(Path(tmp))
        names = [v.strip() for v in args.variants.split(",") if v.strip()] + ([] if args.no_breakdown else ["breakdown"])
        for name in names:
            cmd = [sys.executable, __file__, "--variant", name, "--images", tmp, "--size", str(args.size),
                   "--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup)]
            if args.gradient_checkpointing:
                cmd.append("--gradient-checkpointing")
            print(f"running {name} ...", file=sys.stderr, flush=True)
            result, proc = run_variant_process(cmd)
            if result is None:
                print(f"{name} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                return 1
            results.append(result)

    breakdown = [r for r in results if r["variant"] == "breakdown"]
    results = [r for r in results if r["variant"] != "breakdown"]
    where, mem = machine(args.device)
    print(f"\nLoRA training, full SD 1.5 architecture (random weights), {args.size} px, batch 1, rank 4; "
          f"{where}; {args.warmup} warm-up + {args.steps} timed steps per variant"
          f"{', gradient checkpointing' if args.gradient_checkpointing else ''}; "
          f"OMP_WAIT_POLICY={_child_env()['OMP_WAIT_POLICY']}")
    print(f"{'variant':<18} {'s/step':>8} {'best':>7} {'it/s':>7} {'cpu s/step':>10} {mem:>14} {'setup s':>8}  "
          "optimizer / precision")
    for r in results:
        print(f"{r['variant']:<18} {r['s_per_step']:>8.2f} {r['best_s_per_step']:>7.2f} {1 / r['best_s_per_step']:>7.3f} "
              f"{r['cpu_s_per_step']:>10.2f} {r['peak_gb']:>14.2f} {r['setup_s']:>8.1f}  {r['optimizer']} / "
              f"{'fp32' if r['precision'] == 'no' else r['precision']}")
    by = {r["variant"]: r for r in results}
    base = by.get("diffusers recipe")
    if base:
        for name in ("facechain cached", "facechain live"):
            if name in by:
                r = by[name]
                print(f"{name} vs diffusers recipe: {base['best_s_per_step'] / r['best_s_per_step']:.2f}x the speed "
                      f"(best step), {base['cpu_s_per_step'] / r['cpu_s_per_step']:.2f}x (CPU time), "
                      f"{r['peak_gb'] / base['peak_gb']:.2f}x the peak memory")
    if breakdown:
        b = breakdown[0]
        extra = b["vae_encode_s"] + b["clip_encode_s"]
        print(f"per-part timing in one process (interleaved, best of {args.steps}): cached training step "
              f"{b['unet_step_s']:.2f} s, VAE encode {b['vae_encode_s']:.2f} s, CLIP encode {b['clip_encode_s']:.2f} s "
              f"-> caching removes {extra:.2f} s of {b['unet_step_s'] + extra:.2f} s per step "
              f"({(b['unet_step_s'] + extra) / b['unet_step_s']:.2f}x)")
    if not args.device.startswith("cuda"):
        print("s/step: mean wall time; best: fastest timed step (it/s from it); cpu s/step: process CPU time over all "
              "threads. best and CPU time are the figures least disturbed by other load on a shared machine.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
