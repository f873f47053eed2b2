"""``facechain eval OUT --person NAME``: face-detection rate and likeness of portraits vs the training photos."""

from __future__ import annotations

import argparse
import json


def register(sub, common) -> None:
    p = sub.add_parser(
        "eval", parents=[common], help="measure how much portraits look like the person",
        description="Face-detection rate and identity similarity (mean, best, share above a threshold) of the images "
                    "in OUT against the identity's training photos.",
    )
    p.add_argument("outputs", nargs="+", metavar="OUT", help="a portraits folder and/or image files")
    p.add_argument("--person", metavar="NAME|DIR", help="identity name or folder (default: the newest identity)")
    p.add_argument("--threshold", type=float, default=None, help="similarity counted as a likeness (default 0.9)")
    p.add_argument("--json", action="store_true", help="machine-readable output, with per-image scores")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..postprocess.evaluate import DEFAULT_THRESHOLD, evaluate

    outputs = args.outputs[0] if len(args.outputs) == 1 else args.outputs
    report = evaluate(outputs, args.person, threshold=DEFAULT_THRESHOLD if args.threshold is None else args.threshold)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.summary())
    return 0
