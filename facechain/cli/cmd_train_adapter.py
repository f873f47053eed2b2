"""``facechain train-adapter DATASET``: train the FACT face adapter (one sub-folder per person)."""

from __future__ import annotations

import argparse


def register(sub, common) -> None:
    p = sub.add_parser(
        "train-adapter", parents=[common], help="train the FACT face adapter on photos of many people",
        description="Train the train-free FACT face adapter (resampler + gated layers; base model and face encoder "
                    "stay frozen) with denoising + FAIR loss, face shuffle and face drop. DATASET holds one "
                    "sub-folder of photos per person. Checkpoints go to OUTPUT.work/ (resume with --resume).",
    )
    p.add_argument("dataset", metavar="DATASET", help="folder with one sub-folder of photos per person")
    p.add_argument("-o", "--output", help="output folder (default: $FACECHAIN_HOME/adapters/fact-<DATASET name>)")
    p.add_argument("--config", help="YAML config file (section 'adapter:'; see configs/adapter.yaml)")
    p.add_argument("--base-model", help="base SD model (registry name, folder, .safetensors or hub id)")
    p.add_argument("--face-encoder", help="face encoder: FACT folder, our face_encoder.safetensors or the published TransFace .pt")
    p.add_argument("--adapter-init", help="start from these adapter weights (ours or a published .ckpt)")
    p.add_argument("--variant", choices=["film", "maj"], help="published adapter a folder reference means (default film)")
    p.add_argument("--resolution", type=int, help="training image size in px (default 512)")
    p.add_argument("--steps", type=int, help="optimizer steps (default 2000)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", dest="learning_rate", type=float, help="learning rate (default 1e-4)")
    p.add_argument("--fair-weight", type=float, help="λ of the FAIR loss (default 0.01)")
    p.add_argument("--shuffle-prob", type=float, help="probability that the condition is another photo of the person (default 0.5)")
    p.add_argument("--drop-prob", type=float, help="probability of dropping the face tokens, for CFG (default 0.1)")
    p.add_argument("--caption", help="training caption (default 'a photo of a person')")
    p.add_argument("--checkpoint-every", type=int, help="steps between resumable checkpoints (default 500)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--dtype", help="fp32 (default), bf16, fp16: precision of the frozen parts")
    p.add_argument("--head-mask", choices=["grabcut", "m2fp", "landmarks"],
                   help="head mask of the photos: grabcut (offline face + hair, default), m2fp (ModelScope), landmarks")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUTPUT.work/")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..fact.training import train_adapter

    result = train_adapter(
        args.dataset, args.output, config=args.config, base_model=args.base_model, face_encoder=args.face_encoder,
        adapter_init=args.adapter_init, variant=args.variant, resolution=args.resolution, steps=args.steps,
        batch_size=args.batch_size, learning_rate=args.learning_rate, fair_weight=args.fair_weight,
        shuffle_prob=args.shuffle_prob, drop_prob=args.drop_prob, caption=args.caption,
        checkpoint_every=args.checkpoint_every, seed=args.seed, device=args.device, dtype=args.dtype, head_mask=args.head_mask,
        resume=args.resume, overwrite=args.overwrite, progress=args.progress,
    )
    people = ", ".join(f"{k} ({v})" for k, v in sorted(result.people.items()))
    print(f"trained FACT adapter: {result.output} ({result.steps} steps, final loss {result.final_loss:.4f})")
    print(f"people: {people}")
    for r in result.rejections:
        print(f"skipped {r.source}: {r.reason}")
    return 0
