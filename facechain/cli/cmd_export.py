"""``facechain export NAME``: an identity's face LoRA as one file for A1111, Forge, ComfyUI or diffusers."""

from __future__ import annotations

import argparse


def register(sub, common) -> None:
    p = sub.add_parser("export", parents=[common], help="write an identity's LoRA for other tools (kohya/A1111 layout)",
                       description="Write the face LoRA of a trained identity as one .safetensors file: 'kohya' "
                                   "(lora_unet_... keys with alpha, for A1111, Forge and ComfyUI) or 'diffusers' (a copy).")
    p.add_argument("person", metavar="NAME", help="identity name (in $FACECHAIN_HOME/identities) or folder")
    p.add_argument("--format", choices=["kohya", "diffusers"], default="kohya", help="key layout (default: kohya)")
    p.add_argument("-o", "--output", metavar="FILE", help="output .safetensors file (default: NAME.safetensors here)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.export import export

    result = export(args.person, args.output, format=args.format, overwrite=args.overwrite)
    print(result.summary())
    return 0
