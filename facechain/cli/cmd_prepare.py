"""``facechain prepare PHOTOS... --output DIR``: personal photos → a training folder.

Only parses, calls :func:`facechain.preprocess.pipeline.prepare` (every flag is one of its
keywords; flags left out are ``None`` so the config file / defaults apply) and prints.
"""

from __future__ import annotations

import argparse
import json

from .. import options

PREPARE_OPTIONS = ("trigger", "retouch", "retoucher", "segmenter", "detector", "orientation", "orientation_model",
                   "quality_model", "tagger", "tagger_model", "size", "min_face_size", "blur_threshold",
                   "identity_threshold")


def register(sub, common) -> None:
    p = options.verb_parser(
        sub, common, "prepare",
        help="turn personal photos into a training folder (upright, aligned, cropped, segmented, captioned)",
        description=(
            "Turn personal photos (files and/or folders) into a training folder: each photo is turned upright, "
            "its face levelled, cropped to 512x512 (face centred, 0.35-0.45 of the side), the head segmented "
            "onto white and the skin retouched; unusable photos are rejected with a reason. Writes images/, "
            "metadata.jsonl, template_face.png and report.json. Exit code 1 when no photo is usable."
        ),
    )
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="image files and/or folders of images")
    options.add(p, options.use("output", required=True, help="folder to write (must be empty or new, unless --overwrite)"),
                "overwrite", options.use("config", help="YAML config file (its 'prepare:' section)"), "quiet", "json")
    options.add(p, "trigger", "retouch", "retoucher", "segmenter", "detector", "orientation", "orientation_model",
                "quality_model", "tagger", "tagger_model",
                options.use("size", square=True, help="side of the training images in px (default: 512)"),
                options.use("min_face_size", help="reject faces smaller than this in the photo, px (default: 80)"),
                "blur_threshold", "identity_threshold", group="preparation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..preprocess.pipeline import prepare

    result = prepare(args.photos, args.output, config=args.config, overwrite=args.overwrite, quiet=args.quiet,
                     **{k: getattr(args, k) for k in PREPARE_OPTIONS})
    print(json.dumps(result.to_json(), indent=2, ensure_ascii=False) if args.json else result.summary())
    return 0
