"""``facechain eval OUT --person NAME``: face-detection rate and likeness of portraits vs the training photos."""

from __future__ import annotations

import argparse
import json

from .. import options


def register(sub, common) -> None:
    p = options.verb_parser(
        sub, common, "eval", help="measure how much portraits look like the person",
        description="Face-detection rate and identity similarity (mean, best, share above a threshold) of the images "
                    "in OUT against the identity's training photos.",
    )
    p.add_argument("outputs", nargs="+", metavar="OUT", help="a portraits folder and/or image files")
    options.add(p, "person", "threshold", "quiet", options.use("json", help="machine-readable output, with per-image scores"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..postprocess.evaluate import evaluate

    outputs = args.outputs[0] if len(args.outputs) == 1 else args.outputs
    report = evaluate(outputs, args.person, threshold=args.threshold, quiet=args.quiet)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.summary())
    return 0
