"""``facechain train PHOTOS...``: prepare photos (or reuse a prepared folder) and train a face LoRA."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import options

#: The training flags shared by ``train`` and ``train-style`` (each a keyword of both functions).
TRAINING_OPTIONS = ("base_model", "vae", "steps", "epochs", "size", "batch_size", "learning_rate", "lr_scheduler",
                    "rank", "alpha", "train_text_encoder", "seed", "dtype", "gradient_checkpointing", "cache_latents",
                    "flip", "optimizer", "checkpoint_every", "device")


def add_training_options(p: argparse.ArgumentParser, preset: str) -> None:
    """Flags shared by ``train`` and ``train-style``; each maps to a config field of the ``preset`` section."""
    options.add(
        p,
        options.use("base_model", help="SD 1.5 or SDXL model: registry name (e.g. base-sdxl), diffusers folder, "
                                       "single .safetensors file, HF id or ms:owner/name@rev#subfolder "
                                       "(default: base-sd15-portrait, the paper's SD 1.5 portrait model)"),
        "vae",
        options.use("steps", help="training steps (face default: min(200 x photos, 4000), 200 epochs as the reference runs)"),
        "epochs",
        options.use("size", square=True, help="training resolution in px (default: the base model's, 512 on SD 1.5, "
                                              "1024 on SDXL)"),
        options.use("batch_size", help="training batch size (default: the recipe's, 1)"),
        "learning_rate", "lr_scheduler", "rank", "alpha", "train_text_encoder",
        options.use("seed", help="random seed (same seed -> same LoRA on CPU; default: the recipe's, 42)"),
        options.use("dtype", help="training precision: auto (bf16/fp16 on CUDA, fp32 elsewhere), fp32 (no mixed "
                                  "precision), fp16 or bf16"),
        "gradient_checkpointing", "cache_latents", "flip", "optimizer", "checkpoint_every", "device",
        group=f"training options (override the '{preset}' config section; defaults: configs/{preset}.yaml)",
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    options.add(p, "name", options.use("output", help="output folder (default: under FACECHAIN_HOME)"),
                options.use("config", help="YAML config file with train:/train_style:/prepare: sections"),
                options.use("overwrite", help="replace an existing output folder"), "resume", "quiet", "json")


def training_keywords(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in TRAINING_OPTIONS}


def register(sub, common) -> None:
    p = options.verb_parser(sub, common, "train", help="train a face LoRA (an identity) from photos of one person",
                            description="Prepare the photos (or reuse a folder made by 'facechain prepare') and train a "
                                        "face LoRA on the base model. Writes a self-contained identity folder "
                                        "(default $FACECHAIN_HOME/identities/NAME) that 'facechain generate' and plain "
                                        "diffusers can load.")
    p.add_argument("photos", nargs="+", metavar="PHOTOS",
                   help="photos or folders of one person, or one prepared dataset folder")
    add_run_options(p)
    options.add(p, options.use("trigger", help="prepare: trigger word to caption with (default: from gender and age)"),
                options.use("retouch", help="prepare: skip skin retouching"), group="preparation")
    add_training_options(p, "train")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.api import train
    from ..training.trainer import TrainingInterrupted

    try:
        identity = train(args.photos, name=args.name, output=args.output, config=args.config,
                         overwrite=args.overwrite, resume=args.resume, trigger=args.trigger, retouch=args.retouch,
                         quiet=args.quiet, **training_keywords(args))
    except TrainingInterrupted as e:
        print(f"facechain train: {e}", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps({**identity.to_json(), "path": str(identity.path)}, indent=2))
        return 0
    t = identity.training
    print(f"identity:   {identity.name}")
    print(f"folder:     {identity.path}")
    print(f"trigger:    {identity.trigger_word}")
    print(f"base model: {identity.base_model}")
    print(f"photos:     {identity.dataset.get('photos')}")
    print(f"training:   {t.get('steps')} steps, final loss {t.get('final_loss'):.4f}, optimizer {t.get('optimizer')}, "
          f"{t.get('seconds')} s")
    return 0
