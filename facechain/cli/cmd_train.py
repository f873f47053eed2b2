"""``facechain train PHOTOS...``: prepare photos (or reuse a prepared folder) and train a face LoRA."""

from __future__ import annotations

import argparse
import sys
from typing import Any

# CLI flag -> TrainConfig field; every one defaults to None ("not given": config file / default wins)
TRAIN_OPTIONS = ["base_model", "vae", "steps", "epochs", "resolution", "batch_size", "learning_rate", "lr_scheduler",
                 "rank", "alpha", "train_text_encoder", "seed", "mixed_precision", "gradient_checkpointing",
                 "cache_latents", "flip", "optimizer", "checkpoint_every", "device"]


def add_training_options(p: argparse.ArgumentParser, preset: str) -> None:
    """Flags shared by ``train`` and ``train-style``; each maps to a config field of the ``preset`` section."""
    g = p.add_argument_group("training options", f"override the '{preset}' config section (defaults: configs/{preset}.yaml)")
    g.add_argument("--base-model", metavar="REF", help="SD 1.5 or SDXL model: diffusers folder, single .safetensors file, "
                   "HF id, ms:owner/name@rev#subfolder or a 'facechain models' name such as base-sdxl "
                   "(default: base-sd15-portrait, the paper's SD 1.5 portrait model)")
    g.add_argument("--vae", metavar="REF", help="replace the base model's VAE (folder, file, hub id or a 'facechain models' "
                   "name, e.g. sdxl-vae-fp16-fix for fp16 training on SDXL)")
    g.add_argument("--steps", type=int, help="training steps (face default: min(200 x photos, 800))")
    g.add_argument("--epochs", type=int, help="train for this many passes over the images instead of --steps")
    g.add_argument("--resolution", type=int, help="training resolution in px (default: 512 on SD 1.5, 1024 on SDXL bases)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float)
    g.add_argument("--lr-scheduler", choices=["constant", "constant_with_warmup", "linear", "cosine",
                                              "cosine_with_restarts", "polynomial"])
    g.add_argument("--rank", type=int, help="LoRA rank on the UNet attention projections")
    g.add_argument("--alpha", type=float, help="LoRA alpha (scale = alpha / rank)")
    g.add_argument("--train-text-encoder", action=argparse.BooleanOptionalAction, default=None,
                   help="also train a LoRA on the CLIP text encoder(s)")
    g.add_argument("--seed", type=int, help="random seed (same seed -> same LoRA on CPU)")
    g.add_argument("--mixed-precision", choices=["auto", "no", "fp16", "bf16"])
    g.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="trade ~30%% speed for less memory")
    g.add_argument("--cache-latents", action=argparse.BooleanOptionalAction, default=None,
                   help="encode images and captions once (default) instead of every step")
    g.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="random horizontal flips")
    g.add_argument("--optimizer", choices=["auto", "adamw", "adamw8bit"],
                   help="auto: bitsandbytes 8-bit AdamW on CUDA, torch AdamW elsewhere")
    g.add_argument("--checkpoint-every", type=int, metavar="N", help="save a resumable checkpoint every N steps")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="name of the result (default: the input folder's name)")
    p.add_argument("--output", metavar="DIR", help="output folder (default: under FACECHAIN_HOME)")
    p.add_argument("--config", dest="config_file", metavar="YAML", help="config file with train:/prepare: sections")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--resume", action="store_true", help="continue an interrupted or failed run from its last checkpoint")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")


def training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k, None) is not None}


def register(sub, common) -> None:
    p = sub.add_parser("train", parents=[common], help="train a face LoRA (an identity) from photos of one person",
                       description="Prepare the photos (or reuse a folder made by 'facechain prepare') and train a face "
                                   "LoRA on the base model. Writes a self-contained identity folder "
                                   "(default $FACECHAIN_HOME/identities/NAME) that 'facechain generate' and plain "
                                   "diffusers can load.")
    p.add_argument("photos", nargs="+", metavar="PHOTOS",
                   help="photos or folders of one person, or one prepared dataset folder")
    add_run_options(p)
    p.add_argument("--trigger", help="prepare: trigger word to caption with (default: from gender and age)")
    p.add_argument("--no-retouch", dest="retouch", action="store_const", const=False, default=None,
                   help="prepare: skip skin retouching")
    add_training_options(p, "train")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.api import train
    from ..training.trainer import TrainingInterrupted

    try:
        identity = train(args.photos, name=args.name, output=args.output, config_file=args.config_file,
                         overwrite=args.overwrite, resume=args.resume, trigger=args.trigger, retouch=args.retouch,
                         progress=not args.quiet, **training_overrides(args))
    except TrainingInterrupted as e:
        print(f"facechain train: {e}", file=sys.stderr)
        return 130
    t = identity.training
    print(f"identity:   {identity.name}")
    print(f"folder:     {identity.path}")
    print(f"trigger:    {identity.trigger_word}")
    print(f"base model: {identity.base_model}")
    print(f"photos:     {identity.dataset.get('photos')}")
    print(f"training:   {t.get('steps')} steps, final loss {t.get('final_loss'):.4f}, optimizer {t.get('optimizer')}, "
          f"{t.get('seconds')} s")
    return 0
