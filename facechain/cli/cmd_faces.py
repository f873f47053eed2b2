"""``facechain faces TEMPLATE``: number a template's faces (what ``inpaint --face-index`` refers to)."""

from __future__ import annotations

import argparse
import json

from .. import options


def register(sub, common) -> None:
    p = options.verb_parser(
        sub, common, "faces", help="list a template photo's faces, numbered left to right",
        description="Detect the faces of a photo, number them left to right (the numbers 'facechain inpaint "
                    "--face-index' takes) and save a numbered preview image.",
    )
    p.add_argument("template", help="the photo")
    options.add(p, options.use("output", metavar="PNG", help="where to save the numbered preview PNG (default: ./<name>.faces.png)"),
                "preview", options.use("overwrite", help="replace an existing preview file"),
                options.use("min_face_size", help="faces smaller than this (px) are marked too small (default 48)"),
                options.use("config", help="config file with an 'inpaint:' section"), "quiet",
                options.use("json", help="print the faces as JSON"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inpainting.api import template_faces

    report = template_faces(args.template, output=args.output, preview=args.preview, overwrite=args.overwrite,
                            min_face_size=args.min_face_size, config=args.config, quiet=args.quiet)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    w, h = report.size
    print(f"{report.template}: {w}x{h}, {len(report.faces)} face{'s' if len(report.faces) != 1 else ''}")
    if report.faces:
        print(f"{'#':>3}  {'box (x1,y1,x2,y2)':<24}  {'size':>6}  {'score':>5}  note")
    for tf in report.faces:
        box = ",".join(str(int(round(v))) for v in tf.face.bbox)
        note = "" if tf.size >= report.min_face_size else f"too small to redraw (< {report.min_face_size} px)"
        print(f"{tf.index:>3}  {box:<24}  {tf.size:>6.0f}  {tf.face.score:>5.2f}  {note}")
    if report.preview:
        print(f"preview: {report.preview}")
    return 0
