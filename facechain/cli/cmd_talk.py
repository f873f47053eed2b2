"""``facechain talk PORTRAIT (--audio FILE | --text "...") -o OUT.mp4``: a portrait that speaks (paper 3.2)."""

from __future__ import annotations

import argparse
import json


def register(sub, common) -> None:
    p = sub.add_parser(
        "talk", parents=[common], help="make a video of a portrait speaking an audio clip or a text",
        description="Animate one portrait (a generated one, or any photo with one face) from speech: mouth, jaw "
                    "and cheeks follow the audio, the eyes blink and the head moves a little. Writes an H.264 MP4 "
                    "with the audio, as long as the audio. --text needs espeak-ng (offline) or edge-tts (online).",
    )
    p.add_argument("portrait", help="the portrait image (e.g. a PNG from 'facechain generate')")
    speech = p.add_mutually_exclusive_group(required=True)
    speech.add_argument("--audio", metavar="FILE", help="speech: WAV, MP3, M4A, OGG, FLAC, ...")
    speech.add_argument("--text", metavar="TEXT", help="text to speak (text-to-speech)")
    p.add_argument("-o", "--output", metavar="OUT.mp4", help="the video to write (default: ./<portrait>.talk.mp4)")
    p.add_argument("--fps", type=float, default=25, help="frames per second (default 25)")
    p.add_argument("--size", metavar="N|WxH", help="output long side N, or exact WxH cropped around the face "
                                                     "(default: the portrait's size, at most 512)")
    p.add_argument("--enhance", action="store_true", help="double the resolution, face restored by GFP-GAN "
                                                          "(model 'face-enhancer', downloaded separately)")
    p.add_argument("--face-index", type=int, metavar="I", help="which face to animate when there are several "
                                                               "(numbered left to right from 0)")
    p.add_argument("--backend", choices=["offline", "sadtalker"], default="offline",
                   help="offline: face-mesh animation that runs anywhere (default); sadtalker: the paper's model")
    p.add_argument("--seed", type=int, help="seed for blinks and head motion (default: random)")
    p.add_argument("--max-seconds", type=float, metavar="S", help="refuse longer audio (default 600)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps (enhancer, sadtalker)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..apps.talking_head.api import talk
    from ..apps.talking_head.audio import DEFAULT_MAX_SECONDS

    result = talk(
        args.portrait, audio=args.audio, text=args.text, output=args.output, fps=args.fps, size=args.size,
        enhance=args.enhance, face_index=args.face_index, backend=args.backend, seed=args.seed,
        max_seconds=DEFAULT_MAX_SECONDS if args.max_seconds is None else args.max_seconds,
        overwrite=args.overwrite, quiet=args.quiet or args.json, device=args.device or "auto",
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        w, h = result.size
        print(f"{result.video}: {result.seconds:.2f} s, {result.frames} frames at {result.fps:g} fps, {w}x{h} "
              f"({result.backend} backend, seed {result.metadata['seed']})")
    return 0
