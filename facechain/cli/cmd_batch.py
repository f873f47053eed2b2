"""``facechain batch PLAN.yaml``: many people, many portraits, as jobs on the local executor or Ray."""

from __future__ import annotations

import argparse
import json
import sys

from .. import options
from .cmd_serve import EXECUTOR_OPTIONS, executor_keywords


def register(sub, common) -> None:
    p = options.verb_parser(sub, common, "batch", help="run a plan of people and portraits (local workers or Ray)",
                            description="Run a YAML plan: people (photo folders, or names of trained identities, or "
                                        "FACT photos) and what to make for each (styles x count, templates). Each "
                                        "person's training runs before their portraits; one person's failure does not "
                                        "stop the others; a rerun finishes only what is missing. Writes summary.json "
                                        "(per person: accepted photos, identity, portraits, best similarity, errors). "
                                        "Plan format: docs/cluster.md.")
    p.add_argument("plan", metavar="PLAN.yaml", help="the plan: people and what to make for each")
    options.add(p, options.use("output", help="where portraits and summary.json go (default: the plan's 'output', "
                                              "else <plan>-results beside it); a rerun adds to it"),
                "quiet", options.use("json", help="print the summary as JSON"))
    options.add(p, options.use("workers", help="with --executor local: worker processes for GPU jobs"),
                options.use("model_root", repeat=True), group="service")
    options.add(p, *EXECUTOR_OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..batch.api import batch

    summary = batch(args.plan, output=args.output, workers=args.workers, model_root=args.model_root,
                    quiet=args.quiet, **executor_keywords(args))
    print(json.dumps(summary.to_json(), indent=2) if args.json else summary.summary())
    if summary.failed:
        print(f"facechain batch: {len(summary.failed)} of {len(summary.people)} people had errors; "
              "fix them and rerun the same plan to finish what is missing", file=sys.stderr)
        return 1
    return 0
