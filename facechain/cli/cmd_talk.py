"""``facechain talk PORTRAIT (--audio FILE | --text "...") -o OUT.mp4``: a portrait that speaks (paper 3.2)."""

from __future__ import annotations

import argparse
import json

from .. import options


def register(sub, common) -> None:
    p = options.verb_parser(
        sub, common, "talk", help="make a video of a portrait speaking an audio clip or a text",
        description="Animate one portrait (a generated one, or any photo with one face) from speech: mouth, jaw "
                    "and cheeks follow the audio, the eyes blink and the head moves a little. Writes an H.264 MP4 "
                    "with the audio, as long as the audio. Give --audio or --text (--text needs espeak-ng offline "
                    "or edge-tts online).",
    )
    p.add_argument("portrait", help="the portrait image (e.g. a PNG from 'facechain generate')")
    options.add(p, "audio", "text", "max_seconds")
    options.add(p, options.use("output", metavar="OUT.mp4", help="the video to write (default: ./<portrait>.talk.mp4)"),
                options.use("overwrite", help="replace an existing output file"), "fps",
                options.use("size", help="output long side N, or exact WxH cropped around the face (default: the "
                                         "portrait's size, at most 512)"),
                "enhance", options.use("face_index", help="which face to animate when there are several (numbered "
                                                          "left to right from 0)"),
                "backend", options.use("seed", help="seed for blinks and head motion (default: random, recorded)"),
                options.use("device", help="auto, cpu, cuda, cuda:N or mps (enhancer, sadtalker)"), "quiet",
                options.use("json", help="print the result as JSON"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..apps.talking_head.api import talk
    if (args.audio is None) == (args.text is None):
        from ..errors import ConfigError

        raise ConfigError("give the speech as --audio FILE or --text TEXT (one of them)")
    result = talk(
        args.portrait, audio=args.audio, text=args.text, output=args.output, fps=args.fps, size=args.size,
        enhance=args.enhance, face_index=args.face_index, backend=args.backend, seed=args.seed,
        max_seconds=args.max_seconds,
        overwrite=args.overwrite, quiet=args.quiet or args.json, device=args.device or "auto",
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        w, h = result.size
        print(f"{result.video}: {result.seconds:.2f} s, {result.frames} frames at {result.fps:g} fps, {w}x{h} "
              f"({result.backend} backend, seed {result.metadata['seed']})")
    return 0
