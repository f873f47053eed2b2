"""Benchmark: SDXL beside SD 1.5 -- face-LoRA training s/step and peak memory, seconds per portrait.

Both full-size architectures are built from config with random weights (no download): SD 1.5 as
in ``bench_train.py`` (UNet 860 M parameters) and SDXL (UNet 2.57 B, CLIP ViT-L + OpenCLIP bigG
text encoders, the SDXL VAE); the tiny in-memory CLIP tokenizer stands in for the real vocabulary
(text length 77). Each variant runs in its own subprocess, so peak memory is its own:

* ``<family> train``    -- facechain's ``LoraTrainer`` (rank 4 on to_q/k/v/out, latents and text
  conditioning cached -- for SDXL both encoders, the pooled embedding and the size/crop ids):
  setup (building the cache) and s/step of warm training steps;
* ``<family> portrait`` -- text-to-image with classifier-free guidance: the prompt and negative
  prompt encoded by the full text encoders (timed), which are then dropped, and a few denoising
  steps (DDIM for both families, one UNet call per step) + VAE decode (timed) -- the order that
  lets SDXL's fp32 UNet and VAE decode fit beside other work in this machine's memory; the same
  for both families.

``--light-text-encoders`` builds the training variants' text encoders with one layer at the real
widths: the cached conditioning has the real shapes, so the training steps (s/step, step memory)
are exactly the family's, while setup time and setup memory are not -- for machines where SDXL's
3.3 GB of text encoders do not fit beside its 10 GB UNet while the cache is built.

Usage (heavy: 10-20 min a pair of variants on a 2-core CPU, 16 GiB free for SDXL training; one at a time)::

    flock /tmp/facechain-heavy.lock python benchmarks/bench_sdxl.py                   # CPU, 512 px, fp32
    python benchmarks/bench_sdxl.py --gradient-checkpointing --light-text-encoders   # what fits in ~13 GiB
    python benchmarks/bench_sdxl.py --device cuda                                    # GPU: each at its native
                                                                                     # size (SD 1.5 512, SDXL 1024)

GPU mode: training in bf16 mixed precision (fp16 where the GPU lacks bf16: the stock SDXL VAE then
encodes in fp32), portraits in fp16 weights (diffusers upcasts the SDXL VAE for decoding), peak
VRAM from ``torch.cuda.max_memory_allocated``. Before each SDXL variant the CPU mode checks that
enough memory is free and skips the variant with a note otherwise (``--force`` runs it anyway).
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import (  # noqa: E402
    CAPTION, _sync, build_sd15, early_exit, machine, parse_driver_args, run_variant_process, time_steps, write_images,
)

FAMILIES = ("sd15", "sdxl")
KINDS = ("train", "portrait")
VARIANTS = tuple(f"{f} {k}" for f in FAMILIES for k in KINDS)
NATIVE = {"sd15": 512, "sdxl": 1024}
# fp32 CPU memory a variant needs (GiB at 512 px: measured peaks + ~1 GiB), checked before it starts
NEEDS_GB = {"sd15 train": 7, "sd15 portrait": 6, "sdxl train": 16.5, "sdxl portrait": 13}
NEEDS_GB_LIGHT = {"sd15 train": 7, "sdxl train": 16.5}  # --light-text-encoders: the steps, not the setup, peak
CHECKPOINTING_SAVES_GB = {"sd15 train": 1.0, "sdxl train": 3.0}


# --- full-size architectures, random weights ----------------------------------------------------------
def sdxl_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    )


def sdxl_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=1024,
                         block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.13025, force_upcast=True)


# (width, MLP width, layers, heads, activation, with projection): CLIP ViT-L (both families), OpenCLIP bigG
_TEXT_ENCODERS = {"sd15": [(768, 3072, 12, 12, "quick_gelu", False)],
                  "sdxl": [(768, 3072, 12, 12, "quick_gelu", False), (1280, 5120, 32, 20, "gelu", True)]}


def text_encoders(family: str, layers: int | None = None) -> list:
    """The family's CLIP text encoders; ``layers`` overrides their depth (same widths, same output shapes)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    out = []
    for width, mlp, depth, heads, act, projection in _TEXT_ENCODERS[family]:
        cfg = CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
                             hidden_size=width, intermediate_size=mlp, num_hidden_layers=layers or depth,
                             num_attention_heads=heads, hidden_act=act, projection_dim=width)
        out.append((CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg))
    return out


def components(family: str, light_text_encoders: bool = False, with_text_encoders: bool = True):
    """SDComponents with random weights. ``light_text_encoders``: one-layer encoders of the real widths
    (the cached conditioning has the real shapes, so training steps are unaffected; setup is not
    the family's then). ``with_text_encoders=False``: none (prompts encoded beforehand)."""
    import torch

    from facechain.testing.tiny import tiny_tokenizer
    from facechain.training.components import SDComponents

    torch.manual_seed(0)
    if family == "sd15":
        unet, vae, _, tok, sched = build_sd15()  # its full text encoder is dropped here
        gc.collect()
    else:
        unet, vae, tok = sdxl_unet(), sdxl_vae(), tiny_tokenizer(77)
        sched = _ddpm()
    encoders = text_encoders(family, 1 if light_text_encoders else None) if with_text_encoders else [None, None]
    second = encoders[1] if family == "sdxl" and len(encoders) > 1 else None
    return SDComponents(unet, vae, encoders[0], tok, sched, reference=f"random {family}", text_encoder_2=second,
                        tokenizer_2=tiny_tokenizer(77) if family == "sdxl" else None)


def _ddpm():
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                         clip_sample=False)


# --- measuring ---------------------------------------------------------------------------------------
def peak_gb(device: str) -> float:
    """Peak since the last :func:`reset_peak`: VRAM allocated on GPU, resident set (VmHWM) on CPU."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    kib = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(kib.group(1)) / 2**20


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: restart the VmHWM high-water mark


def params_m(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


# --- one variant, in this process ----------------------------------------------------------------
def run_train(family: str, images: list[Path], args) -> dict:
    from facechain.training.config import TrainConfig
    from facechain.training.data import TrainingExample
    from facechain.training.trainer import LoraTrainer

    t0 = time.perf_counter()
    comps = components(family, light_text_encoders=args.light_text_encoders)
    unet_m = params_m(comps.unet)
    build = time.perf_counter() - t0
    cfg = TrainConfig(base_model="random", resolution=args.size, steps=args.warmup + args.steps, eval_samples=0,
                      device=args.device, gradient_checkpointing=args.gradient_checkpointing)
    t0 = time.perf_counter()
    trainer = LoraTrainer(comps, [TrainingExample(p, CAPTION) for p in images], cfg, progress=False)
    del comps  # as in facechain.train: with the cache built, the trainer keeps no VAE or text encoder
    gc.collect()
    setup = time.perf_counter() - t0
    setup_peak = peak_gb(args.device)
    reset_peak(args.device)

    def one_step() -> None:
        trainer.training_step()
        trainer.state.step += 1

    timing = time_steps(one_step, args)
    return dict(unet_params_m=unet_m, build_s=build, setup_s=setup, **timing, peak_gb=max(setup_peak, peak_gb(args.device)),
                step_peak_gb=peak_gb(args.device), precision=trainer.mixed_precision)


def run_portrait(family: str, args) -> dict:
    """Encode the prompts with the full text encoders, drop them, then denoise + decode (see module doc)."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    from facechain.diffusion.conditioning import PromptEncoder
    from facechain.testing.tiny import tiny_tokenizer

    gpu = args.device.startswith("cuda")
    dtype = torch.float16 if gpu else torch.float32
    torch.manual_seed(0)
    encoders = [te.to(args.device, dtype) for te in text_encoders(family)]
    prompt_encoder = PromptEncoder(encoders, [tiny_tokenizer(77) for _ in encoders])
    ids = prompt_encoder.tokenize([CAPTION, "blurry, low quality"])
    with torch.no_grad():
        prompt_encoder(ids)  # warm-up
        _sync(args.device)
        t0 = time.perf_counter()
        text = prompt_encoder(ids)
        _sync(args.device)
        encode_s = time.perf_counter() - t0
    embeds = dict(prompt_embeds=text.hidden[:1], negative_prompt_embeds=text.hidden[1:])
    if family == "sdxl":
        embeds.update(pooled_prompt_embeds=text.pooled[:1], negative_pooled_prompt_embeds=text.pooled[1:])
    del encoders, prompt_encoder, text
    gc.collect()

    t0 = time.perf_counter()
    comps = components(family, with_text_encoders=False)
    unet_m = params_m(comps.unet)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    parts = dict(vae=comps.vae, text_encoder=None, tokenizer=comps.tokenizer, unet=comps.unet, scheduler=sched)
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline(**parts, text_encoder_2=None, tokenizer_2=comps.tokenizer_2)
    else:
        pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    del comps
    pipe.to(args.device, dtype)
    pipe.set_progress_bar_config(disable=True)
    build = time.perf_counter() - t0
    walls, cpus = [], []
    for i in range(args.warmup + args.portraits):
        _sync(args.device)
        t0, c0 = time.perf_counter(), time.process_time()
        pipe(**embeds, num_inference_steps=args.denoise_steps, guidance_scale=7.0, height=args.size,
             width=args.size, generator=torch.Generator().manual_seed(0), output_type="np")
        _sync(args.device)
        if i >= args.warmup:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return dict(unet_params_m=unet_m, build_s=build, encode_s=encode_s, s_per_portrait=encode_s + sum(walls) / len(walls),
                best_s_per_portrait=encode_s + min(walls), cpu_s_per_portrait=sum(cpus) / len(cpus),
                peak_gb=peak_gb(args.device), precision="fp16" if gpu else "fp32")


def run_variant(args) -> dict:
    import torch

    from facechain.diffusion.loading import quiet_ml_logs

    quiet_ml_logs()
    torch.set_flush_denormal(True)
    family, kind = args.variant.split()
    if kind == "train":
        out = run_train(family, sorted(Path(args.images).glob("*.png")), args)
    else:
        out = run_portrait(family, args)
    return {"variant": args.variant, "resolution": args.size, **out}


# --- driver --------------------------------------------------------------------------------------------
def available_gb() -> float:
    m = re.search(r"MemAvailable:\s+(\d+)", Path("/proc/meminfo").read_text())
    return int(m.group(1)) / 2**20 if m else float("inf")


def resolution_for(variant: str, args) -> int:
    if args.size:
        return args.size
    return NATIVE[variant.split()[0]] if args.device.startswith("cuda") else 512


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--size", type=int, help="px for every variant (default: 512 on CPU; native sizes on GPU)")
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per variant")
    ap.add_argument("--warmup", type=int, default=1, help="untimed training steps / portraits first")
    ap.add_argument("--portraits", type=int, default=1, help="timed portraits per variant")
    ap.add_argument("--denoise-steps", type=int, default=4, help="denoising steps per portrait")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--light-text-encoders", action="store_true",
                    help="training: one-layer text encoders of the real widths (steps unchanged; less setup memory)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    ap.add_argument("--force", action="store_true", help="run variants even when too little memory looks free")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parse_driver_args(ap)
    code = early_exit(args, run_variant)
    if code is not None:
        return code
    gpu = args.device.startswith("cuda")
    results, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench_sdxl_") as tmp:
        write_images(Path(tmp))
        for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
            if name not in VARIANTS:
                print(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})", file=sys.stderr)
                return 2
            res = resolution_for(name, args)
            need = (NEEDS_GB_LIGHT if args.light_text_encoders else NEEDS_GB).get(name, NEEDS_GB[name])
            need -= CHECKPOINTING_SAVES_GB.get(name, 0.0) if args.gradient_checkpointing else 0.0
            if not gpu and not args.force and available_gb() < need * (res / 512) ** 0.5:
                notes.append(f"{name}: skipped, needs ~{need:g} GiB at 512 px and {available_gb():.1f} GiB is free "
                             "(--gradient-checkpointing and --light-text-encoders need less for training; "
                             "--force runs it anyway)")
                print(notes[-1], file=sys.stderr)
                continue
            cmd = [sys.executable, __file__, "--variant", name, "--images", tmp, "--size", str(res),
                   "--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--portraits", str(args.portraits), "--denoise-steps", str(args.denoise_steps)]
            cmd += [flag for flag, on in (("--gradient-checkpointing", args.gradient_checkpointing),
                                          ("--light-text-encoders", args.light_text_encoders)) if on]
            print(f"running {name} at {res} px ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            result, proc = run_variant_process(cmd)
            if result is None:
                killed = proc.returncode in (-9, 137)
                notes.append(f"{name}: {'killed (out of memory?)' if killed else 'failed'} after "
                             f"{time.perf_counter() - t0:.0f} s: {proc.stderr.strip().splitlines()[-1:] or ''}")
                print(notes[-1], file=sys.stderr)
                continue
            results.append(result)
    print_table(results, notes, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "notes": notes}, indent=1))
    return 0 if results else 1


def print_table(results: list[dict], notes: list[str], args) -> None:
    gpu = args.device.startswith("cuda")
    where, mem = machine(args.device)
    where += "" if gpu else ", fp32"
    print(f"\nSDXL vs SD 1.5, full-size architectures with random weights; {where}; "
          f"{args.warmup} warm-up + {args.steps} timed training steps (batch 1, LoRA rank 4, latents cached"
          f"{', gradient checkpointing' if args.gradient_checkpointing else ''}"
          f"{', one-layer text encoders for the cache' if args.light_text_encoders else ''}); portraits: "
          f"{args.denoise_steps} DDIM steps with CFG + VAE decode")
    print(f"{'variant':<15} {'px':>5} {'UNet M':>7} {'wall s':>8} {'best s':>7} {'cpu s':>8} {mem:>14} "
          f"{'steps GiB':>9} {'setup s':>8}   (train: per step; portrait: per portrait)")
    for r in results:
        train = r["variant"].endswith("train")
        wall, best, cpu = ((r["s_per_step"], r["best_s_per_step"], r["cpu_s_per_step"]) if train else
                           (r["s_per_portrait"], r["best_s_per_portrait"], r["cpu_s_per_portrait"]))
        print(f"{r['variant']:<15} {r['resolution']:>5} {r['unet_params_m']:>7.0f} {wall:>8.2f} {best:>7.2f} {cpu:>8.2f} "
              f"{r['peak_gb']:>14.2f} {(r['step_peak_gb'] if train else float('nan')):>9.2f} "
              f"{(r['setup_s'] if train else r['encode_s']):>8.1f}")
    by = {r["variant"]: r for r in results}
    for kind, key in (("train", "_per_step"), ("portrait", "_per_portrait")):
        a, b = by.get(f"sd15 {kind}"), by.get(f"sdxl {kind}")
        if a and b:
            sizes = "" if a["resolution"] == b["resolution"] else f" (SDXL at {b['resolution']} px, SD 1.5 at {a['resolution']} px)"
            print(f"{kind}: SDXL / SD 1.5 = {b['best_s' + key] / a['best_s' + key]:.2f}x the time (best wall), "
                  f"{b['cpu_s' + key] / a['cpu_s' + key]:.2f}x (CPU time), {b['peak_gb'] / a['peak_gb']:.2f}x the peak "
                  f"memory{sizes}")
    print("best s: fastest timed step/portrait; cpu s: process CPU time over all threads (on a shared machine the "
          "figure least disturbed by other load); setup s: building the latent/text cache (train) or encoding the "
          "prompt (portrait); steps GiB: peak during the training steps alone")
    for n in notes:
        print("note: " + n)


if __name__ == "__main__":
    sys.exit(main())
