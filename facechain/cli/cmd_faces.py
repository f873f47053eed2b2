"""``facechain faces TEMPLATE``: number a template's faces (what ``inpaint --face-index`` refers to)."""

from __future__ import annotations

import argparse
import json


def register(sub, common) -> None:
    p = sub.add_parser(
        "faces", parents=[common], help="list a template photo's faces, numbered left to right",
        description="Detect the faces of a photo, number them left to right (the numbers 'facechain inpaint "
                    "--face-index' takes) and save a numbered preview image.",
    )
    p.add_argument("template", help="the photo")
    p.add_argument("--preview", metavar="PNG", help="where to save the numbered preview (default: ./<name>.faces.png)")
    p.add_argument("--no-preview", action="store_true", help="do not save a preview")
    p.add_argument("--overwrite", action="store_true", help="replace an existing preview file")
    p.add_argument("--min-face-size", type=int, help="faces smaller than this (px) are marked too small (default 48)")
    p.add_argument("--config", dest="config_file", metavar="YAML", help="config file with an 'inpaint:' section")
    p.add_argument("--json", action="store_true", help="print the faces as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inpainting.api import template_faces

    preview = False if args.no_preview else (args.preview or True)
    report = template_faces(args.template, preview=preview, overwrite=args.overwrite,
                            config_file=args.config_file, min_face_size=args.min_face_size)
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
