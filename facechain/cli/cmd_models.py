"""``facechain models``: list every model facechain can use; ``facechain models download [NAME]``."""

from __future__ import annotations

import argparse

from ..models.api import download_models, model_status


def register(sub, common) -> None:
    p = sub.add_parser("models", parents=[common], help="list the models the pipeline needs, or download them",
                       description="List every model facechain uses (present or not, and its source), or download them.")
    p.add_argument("action", nargs="?", choices=["list", "download"], default="list", help="list (default) or download")
    p.add_argument("names", nargs="*", metavar="NAME", help="models to download (default: every required hub model)")
    p.add_argument("--all", action="store_true", help="with download: include optional backends too")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "download":
        for name, path in download_models(args.names or None, include_optional=args.all):
            print(f"{name}: {path}")
        return 0
    rows = model_status()
    needs = [", ".join(r["used_by"]) + (" (optional)" if r["optional"] else "") for r in rows]
    width = max(len(r["name"]) for r in rows)
    nw = max(len(n) for n in needs)
    print(f"{'NAME':<{width}}  {'STATUS':<8}  {'NEEDED BY':<{nw}}  SOURCE")
    for r, need in zip(rows, needs):
        status = "present" if r["present"] else "missing"
        print(f"{r['name']:<{width}}  {status:<8}  {need:<{nw}}  {r['reference']}")
    return 0
