"""``facechain batch PLAN.yaml``: many people, many portraits, as jobs on the local executor or Ray."""

from __future__ import annotations

import argparse
import json
import sys

from .cmd_serve import add_executor_options, executor_settings


def register(sub, common) -> None:
    p = sub.add_parser("batch", parents=[common], help="run a plan of people and portraits (local workers or Ray)",
                       description="Run a YAML plan: people (photo folders, or names of trained identities, or FACT "
                                   "photos) and what to make for each (styles x count, templates). Each person's "
                                   "training runs before their portraits; one person's failure does not stop the "
                                   "others; a rerun finishes only what is missing. Writes summary.json (per person: "
                                   "accepted photos, identity, portraits, best similarity, errors). Plan format: "
                                   "docs/cluster.md.")
    p.add_argument("plan", metavar="PLAN.yaml")
    p.add_argument("-o", "--output", metavar="DIR", help="where portraits and summary.json go "
                                                       "(default: the plan's 'output', else <plan>-results beside it)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="with --executor local: worker processes for GPU jobs (default 1)")
    p.add_argument("--model-root", action="append", default=[], metavar="DIR",
                   help="a local folder jobs may take models from (besides the model cache); repeatable")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_executor_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import progress
    from ..batch import load_plan, run_batch
    from ..service.settings import ServiceSettings

    plan = load_plan(args.plan)
    settings = ServiceSettings(workers=args.workers, model_roots=args.model_root, **executor_settings(args))
    with progress.reporting(quiet=args.quiet):
        summary = run_batch(plan, executor=settings.executor, output=args.output, settings=settings)
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        for person in summary.people:
            best = "" if person.best_similarity is None else f", best similarity {person.best_similarity:.3f}"
            status = "ok" if person.ok else f"{len(person.errors)} error(s)"
            print(f"{person.name}: {len(person.portraits)} portrait(s){best} - {status}")
            for error in person.errors:
                print(f"  {error}")
        print(f"summary: {summary.output / 'summary.json'}")
    if summary.failed:
        print(f"facechain batch: {len(summary.failed)} of {len(summary.people)} people had errors; "
              "fix them and rerun the same plan to finish what is missing", file=sys.stderr)
        return 1
    return 0
