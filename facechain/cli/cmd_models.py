"""``facechain models``: list every model facechain can use; ``facechain models download [NAME]``."""

from __future__ import annotations

import argparse
import json

from .. import options


def register(sub, common) -> None:
    p = options.verb_parser(sub, common, "models", help="list the models the pipeline needs, or download them",
                            description="List every model facechain uses (present or not, and its source), or "
                                        "download them.")
    p.add_argument("action", nargs="?", choices=["list", "download"], default="list", help="list (default) or download")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these models (download default: every required hub model)")
    options.add(p, "all", "quiet", options.use("json", help="machine-readable output"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models.api import models

    rows = models(args.names or None, download=args.action == "download", all=args.all, quiet=args.quiet)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if args.action == "download":
        for r in rows:
            print(f"{r['name']}: {r['path'] or r['reference']}")
        return 0
    needs = [", ".join(r["used_by"]) + (" (optional)" if r["optional"] else "") for r in rows]
    width = max(len(r["name"]) for r in rows)
    nw = max(len(n) for n in needs)
    print(f"{'NAME':<{width}}  {'STATUS':<8}  {'NEEDED BY':<{nw}}  SOURCE")
    for r, need in zip(rows, needs):
        status = "present" if r["present"] else "missing"
        print(f"{r['name']:<{width}}  {status:<8}  {need:<{nw}}  {r['reference']}")
    return 0
