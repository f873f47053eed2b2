"""``facechain export NAME``: an identity's face LoRA as one file for A1111, Forge, ComfyUI or diffusers."""

from __future__ import annotations

import argparse
import json

from .. import options


def register(sub, common) -> None:
    p = options.verb_parser(sub, common, "export", help="write an identity's LoRA for other tools (kohya/A1111 layout)",
                            description="Write the face LoRA of a trained identity as one .safetensors file: 'kohya' "
                                        "(lora_unet_... keys with alpha, for A1111, Forge and ComfyUI) or 'diffusers' (a copy).")
    p.add_argument("person", metavar="NAME", help="identity name (in $FACECHAIN_HOME/identities) or folder")
    options.add(p, "format", options.use("output", metavar="FILE", help="output .safetensors file (default: NAME.safetensors here)"),
                options.use("overwrite", help="replace an existing output file"), "quiet", "json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.export import export

    result = export(args.person, args.output, format=args.format, overwrite=args.overwrite, quiet=args.quiet)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.summary())
    return 0
