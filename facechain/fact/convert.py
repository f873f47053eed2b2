"""Convert the published FACT pickles to our ``.safetensors`` folder.

    python -m facechain.fact.convert FACT_FOLDER OUTPUT [--variant film|maj]
    python -m facechain.fact.convert ADAPTER.ckpt OUTPUT --encoder ms1mv2_model_TransFace_S.pt

The pickles are read with ``torch.load(weights_only=True)``; afterwards nothing needs pickle.
Exit code 2 with a one-line message when a file is missing or its keys do not fit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import FacechainError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facechain.fact.convert", description=__doc__.splitlines()[0])
    p.add_argument("source", help="folder with the published files, or the adapter .ckpt itself")
    p.add_argument("output", help="output folder (fact_adapter.safetensors + face_encoder.safetensors)")
    p.add_argument("--encoder", help="the TransFace .pt (default: next to the adapter)")
    p.add_argument("--variant", default="film", choices=["film", "maj"])
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    from .models import convert_published, locate_files

    try:
        files = locate_files(Path(args.source).resolve(), encoder=args.encoder, variant=args.variant)
        out = convert_published(files.adapter, files.encoder, args.output, overwrite=args.overwrite)
    except FacechainError as e:
        print(f"convert: error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"converted {files.adapter.name} + {files.encoder.name} -> {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
