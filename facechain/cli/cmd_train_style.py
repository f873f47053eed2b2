"""``facechain train-style DIR``: train a style LoRA from captioned style images (paper's offline preset)."""

from __future__ import annotations

import argparse
import json
import sys

from .. import options
from .cmd_train import add_run_options, add_training_options, training_keywords


def register(sub, common) -> None:
    p = options.verb_parser(sub, common, "train-style", help="train a style LoRA from a folder of captioned images",
                            description="Train a style LoRA with the paper's preset (rank 32, lr 1e-4, cosine with "
                                        "restarts, 20 epochs). Each image needs a caption: a same-named .txt file, or "
                                        "a metadata.jsonl. Writes the LoRA folder (default $FACECHAIN_HOME/loras/NAME) "
                                        "with a ready style.yaml naming it.")
    p.add_argument("folder", metavar="DIR", help="folder of style images with captions")
    add_run_options(p)
    add_training_options(p, "train_style")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.api import train_style
    from ..training.trainer import TrainingInterrupted

    try:
        style = train_style(args.folder, name=args.name, output=args.output, config=args.config,
                            overwrite=args.overwrite, resume=args.resume, quiet=args.quiet, **training_keywords(args))
    except TrainingInterrupted as e:
        print(f"facechain train-style: {e}", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps({"name": style.name, "path": str(style.path), "lora": str(style.lora_path),
                          "style_yaml": str(style.style_yaml), "base_model": style.base_model, "prompt": style.prompt,
                          "training": style.outcome.to_json()}, indent=2))
        return 0
    print(f"style LoRA: {style.name}")
    print(f"folder:     {style.path}")
    print(f"training:   {style.outcome.steps} steps, final loss {style.outcome.final_loss:.4f}, "
          f"optimizer {style.outcome.optimizer}")
    print(f"style definition ({style.style_yaml}):")
    print(style.style_yaml.read_text(), end="")
    return 0
