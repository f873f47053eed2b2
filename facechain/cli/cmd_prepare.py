"""``facechain prepare PHOTOS... --output DIR``: personal photos → a training folder.

Only parses, calls :func:`facechain.preprocess.pipeline.prepare` (every flag is one of its
keywords; flags left out are ``None`` so the config file / defaults apply) and prints.
"""

from __future__ import annotations

import argparse
import sys


def register(sub, common) -> None:
    p = sub.add_parser(
        "prepare",
        parents=[common],
        help="turn personal photos into a training folder (upright, aligned, cropped, segmented, captioned)",
        description=(
            "Turn personal photos (files and/or folders) into a training folder: each photo is turned upright, "
            "its face levelled, cropped to 512x512 (face centred, 0.35-0.45 of the side), the head segmented "
            "onto white and the skin retouched; unusable photos are rejected with a reason. Writes images/, "
            "metadata.jsonl, template_face.png and report.json. Exit code 1 when no photo is usable."
        ),
    )
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="image files and/or folders of images")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write (must be empty or new, unless --overwrite)")
    p.add_argument("-c", "--config", dest="config_file", metavar="FILE", help="YAML config file (its 'prepare:' section)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    p.add_argument("--trigger", metavar="WORDS", help='trigger word instead of the one from gender and age, e.g. "a handsome man"')
    p.add_argument("--no-retouch", dest="retouch", action="store_const", const=False, default=None, help="skip skin retouching")
    p.add_argument("--retoucher", choices=["classical", "abpn"], default=None, help="skin retouching backend (default: classical)")
    p.add_argument("--segmenter", choices=["grabcut", "m2fp", "none"], default=None, help="head segmentation backend; none keeps the background (default: grabcut)")
    p.add_argument("--detector", choices=["hog", "cnn"], default=None, help="dlib face detector (default: hog)")
    p.add_argument("--orientation", choices=["detector", "onnx", "none"], default=None, help="how to find the upright rotation (default: detector)")
    p.add_argument("--orientation-model", metavar="REF", default=None, help="ONNX orientation classifier (with --orientation onnx)")
    p.add_argument("--quality-model", choices=["classical", "fqa"], default=None, help="face quality backend (default: classical)")
    p.add_argument("--tagger", choices=["landmarks", "wd14", "none"], default=None, help="per-image tags (default: landmarks)")
    p.add_argument("--tagger-model", metavar="REF", default=None, help="WD14 tagger folder or hub id (with --tagger wd14)")
    p.add_argument("--resolution", type=int, default=None, metavar="PX", help="side of the training images (default: 512)")
    p.add_argument("--min-face-size", type=int, default=None, metavar="PX", help="reject faces smaller than this in the photo (default: 80)")
    p.add_argument("--blur-threshold", type=float, default=None, metavar="X", help="reject faces less sharp than this, 0..1 (default: 0.25)")
    p.add_argument("--identity-threshold", type=float, default=None, metavar="X", help="reject photos less similar than this to the majority person (default: 0.92)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


_FLAG_KEYS = (
    "retoucher", "segmenter", "detector", "orientation", "orientation_model", "quality_model", "tagger",
    "tagger_model", "resolution", "min_face_size", "blur_threshold", "identity_threshold",
)


def run(args: argparse.Namespace) -> int:
    from ..preprocess.pipeline import prepare

    result = prepare(
        args.photos,
        args.output,
        config_file=args.config_file,
        overwrite=args.overwrite,
        trigger=args.trigger,
        retouch=args.retouch,
        progress=args.progress and sys.stderr.isatty(),
        **{k: getattr(args, k) for k in _FLAG_KEYS},
    )
    print(result.summary())
    return 0
