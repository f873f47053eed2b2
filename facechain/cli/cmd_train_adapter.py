"""``facechain train-adapter DATASET``: train the FACT face adapter (one sub-folder per person)."""

from __future__ import annotations

import argparse
import json

from .. import options

ADAPTER_OPTIONS = ("config", "base_model", "face_encoder", "adapter_init", "variant", "size", "steps", "batch_size",
                   "learning_rate", "fair_weight", "shuffle_prob", "drop_prob", "caption", "checkpoint_every", "seed",
                   "device", "dtype", "head_mask", "resume", "overwrite", "quiet")


def register(sub, common) -> None:
    p = options.verb_parser(
        sub, common, "train-adapter", help="train the FACT face adapter on photos of many people",
        description="Train the train-free FACT face adapter (resampler + gated layers; base model and face encoder "
                    "stay frozen) with denoising + FAIR loss, face shuffle and face drop. DATASET holds one "
                    "sub-folder of photos per person. Checkpoints go to OUTPUT.work/ (resume with --resume).",
    )
    p.add_argument("dataset", metavar="DATASET", help="folder with one sub-folder of photos per person")
    options.add(p, options.use("output", help="output folder (default: $FACECHAIN_HOME/adapters/fact-<DATASET name>)"),
                options.use("config", help="YAML config file (section 'adapter:'; see configs/adapter.yaml)"),
                options.use("overwrite", help="replace an existing output folder"),
                options.use("resume", help="continue from the newest checkpoint in OUTPUT.work/"), "quiet", "json")
    options.add(p, "base_model", "face_encoder", "adapter_init", "variant", "caption", "fair_weight", "shuffle_prob",
                "drop_prob", "head_mask", group="adapter training")
    options.add(p, options.use("size", square=True, help="training image size in px (default 512)"),
                options.use("steps", help="optimizer steps (default 2000)"),
                options.use("batch_size", help="training batch size (default 1)"),
                options.use("learning_rate", help="learning rate (default 1e-4)"),
                options.use("checkpoint_every", help="steps between resumable checkpoints (default 500)"),
                options.use("seed", help="random seed (default: the recipe's, 0)"),
                options.use("device"),
                options.use("dtype", help="precision of the frozen parts: auto (the recipe's: fp32), fp32, bf16 or "
                                          "fp16"),
                group="training")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..fact.training import train_adapter

    result = train_adapter(args.dataset, args.output, **{k: getattr(args, k) for k in ADAPTER_OPTIONS})
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    people = ", ".join(f"{k} ({v})" for k, v in sorted(result.people.items()))
    print(f"trained FACT adapter: {result.output} ({result.steps} steps, final loss {result.final_loss:.4f})")
    print(f"people: {people}")
    for r in result.rejections:
        print(f"skipped {r.source}: {r.reason}")
    return 0
