"""Benchmark: how the LoRA parametrisation (alpha/rank, initialisation, lr) sets the size of what a face LoRA learns.

Why: the reference FaceChain (v3.0.0) trains its face LoRA with diffusers' old ``LoRAAttnProcessor``:
rank 4, no alpha (LoRA scale 1), A ~ N(0, 1/rank^2), B = 0; its ``--lora_alpha=32`` is only read by
the ``--use_peft`` branch, which it does not use. facechain used rank 4 / alpha 32 (scale 8) with
peft's kaiming initialisation. This script trains facechain's own :class:`LoraTrainer` with each
parametrisation on the same data and reports, at several steps:

* ``dW/W``   -- ||sum of LoRA deltas|| / ||adapted base weights|| (Frobenius, over all adapted layers);
* ``out``    -- relative change of the UNet's noise prediction on the training inputs
  (fixed noise and timesteps, LoRA on vs off);
* ``loss``   -- fixed-batch loss relative to the loss before training (how far it fitted the data).

The base is the full SD 1.5 architecture with random weights (no download: 860M-parameter UNet,
full VAE and CLIP; the tiny tokenizer stands in for CLIP's vocabulary). Random weights give other
gradients than a trained portrait model, but Adam normalises gradient size, so how far a LoRA
moves per step is set mostly by its parametrisation, which is what is compared here. The
training data are photo-like random images with one caption, as many as ``--photos``; every
variant trains ``--steps`` steps (default 200 x photos, the reference's 200 epochs), batch 1,
lr 1.5e-4 cosine, torch AdamW, on identical batches.

Usage::

    python benchmarks/bench_lora_recipe.py --device cuda                      # full size, 256 px (GPU: ~4 min)
    python benchmarks/bench_lora_recipe.py --tiny --steps 40 --photos 2      # tiny model: a smoke run on CPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS: dict[str, dict] = {
    "reference: r4, scale 1, gaussian": dict(rank=4, alpha=4.0, lora_init="gaussian"),
    "old default: r4, alpha 32, kaiming": dict(rank=4, alpha=32.0, lora_init="kaiming"),
    "r4, alpha 32 (scale 8), gaussian": dict(rank=4, alpha=32.0, lora_init="gaussian"),
    "r4, scale 1, kaiming": dict(rank=4, alpha=4.0, lora_init="kaiming"),
    "reference with lr x8": dict(rank=4, alpha=4.0, lora_init="gaussian", learning_rate=1.2e-3),
}


def components(tiny: bool, seed: int = 0):
    from facechain.training.components import SDComponents

    if tiny:
        from diffusers import DDPMScheduler

        from facechain.testing.tiny import tiny_sd_components

        parts = tiny_sd_components(seed)
        return SDComponents(parts["unet"], parts["vae"], parts["text_encoder"], parts["tokenizer"],
                            DDPMScheduler.from_config(parts["scheduler"].config), reference="tiny")
    from bench_train import build_sd15

    return SDComponents(*build_sd15(seed), reference="random")


def lora_update(unet) -> float:
    """||all LoRA deltas|| / ||their base weights||, Frobenius over every adapted layer."""
    import torch

    num = den = 0.0
    for module in unet.modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            with torch.no_grad():
                delta = module.get_delta_weight("default").float()
                base = module.get_base_layer().weight.float()
            num += float(delta.pow(2).sum())
            den += float(base.pow(2).sum())
    return (num / den) ** 0.5


def output_change(trainer, n: int) -> float:
    """Relative change of the noise prediction on the first ``n`` training inputs, LoRA on vs off."""
    import torch

    g = torch.Generator().manual_seed(1234)
    batch, latents, noise, timesteps = trainer._draw(list(range(n)), g, allow_flip=False)
    noisy = trainer.noise_scheduler.add_noise(latents, noise, timesteps).to(trainer.weight_dtype)
    states = batch.text.hidden.to(trainer.device, trainer.weight_dtype)  # SD 1.5 (cached text conditioning)
    unet = trainer.unet
    with torch.no_grad(), trainer.accelerator.autocast():
        on = unet(noisy, timesteps, states).sample.float()
        unet.disable_adapters()
        try:
            off = unet(noisy, timesteps, states).sample.float()
        finally:
            unet.enable_adapters()
    return float((on - off).flatten(1).norm(dim=1).mean() / off.flatten(1).norm(dim=1).mean())


def run_variant(comps, examples, args, overrides: dict) -> list[dict]:
    from facechain.training.config import TrainConfig
    from facechain.training.trainer import LoraTrainer

    settings = dict(base_model=comps.reference, resolution=args.resolution, steps=args.steps, eval_samples=len(examples),
                    device=args.device, optimizer="adamw", learning_rate=1.5e-4, lr_scheduler="cosine", seed=args.seed,
                    mixed_precision=args.mixed_precision)
    trainer = LoraTrainer(comps, examples, TrainConfig(**{**settings, **overrides}), progress=False)
    try:
        marks = sorted({m for m in (args.steps // 16, args.steps // 8, args.steps // 4, args.steps // 2, args.steps) if m})
        loss0 = trainer.fixed_batch_loss()
        rows = []
        started = time.perf_counter()
        for step in range(1, args.steps + 1):
            trainer.training_step()
            trainer.state.step = step
            if step in marks:
                rows.append(dict(step=step, dW=lora_update(trainer.unet), out=output_change(trainer, len(examples)),
                                 loss=trainer.fixed_batch_loss() / loss0,
                                 s_per_step=(time.perf_counter() - started) / step))
        return rows
    finally:
        trainer.unet.delete_adapters("default")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None, help="default: 200 x photos")
    ap.add_argument("--mixed-precision", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="tiny UNet instead of the full SD 1.5 architecture")
    ap.add_argument("--variants", default="all", help="comma-separated indices into the variant list (0-based)")
    ap.add_argument("--max-seconds", type=float, default=None, help="skip the remaining variants after this long")
    args = ap.parse_args(argv)
    args.steps = args.steps or 200 * args.photos

    import torch

    from bench_train import write_images
    from facechain.training.data import TrainingExample

    names = list(VARIANTS) if args.variants == "all" else [list(VARIANTS)[int(i)] for i in args.variants.split(",")]
    comps = components(args.tiny, args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        examples = [TrainingExample(p, "a handsome man") for p in write_images(Path(tmp), args.photos)]
        results = {}
        for name in names:
            if args.max_seconds and time.perf_counter() - started > args.max_seconds:
                print(f"(skipped '{name}': --max-seconds reached)")
                continue
            results[name] = run_variant(comps, examples, args, VARIANTS[name])
            cells = " | ".join(f"{r['dW']:.2e}, {r['out']:.3f}, {r['loss']:.3f}" for r in results[name])
            print(f"done ({results[name][-1]['s_per_step']:.3f} s/step): | {name} | {cells} |", flush=True)

    model = "tiny UNet" if args.tiny else "SD 1.5 UNet (random weights)"
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    print(f"\nLoRA parametrisation vs update size: {model}, {args.resolution} px, {args.photos} photos, "
          f"{args.steps} steps, lr 1.5e-4 cosine (unless stated), AdamW, batch 1, device {device}\n")
    steps = [r["step"] for r in next(iter(results.values()))]
    header = f"| variant | {' | '.join(f'step {s}: dW/W, out, loss' for s in steps)} |"
    print(header)
    print("|" + "---|" * (len(steps) + 1))
    for name, rows in results.items():
        cells = " | ".join(f"{r['dW']:.2e}, {r['out']:.3f}, {r['loss']:.3f}" for r in rows)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
