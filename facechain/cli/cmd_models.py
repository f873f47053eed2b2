"""``facechain models``: list every model facechain can use; ``facechain models download [NAME|REFERENCE...]``."""

from __future__ import annotations

import argparse
import json

from .. import options


def register(sub, common) -> None:
    p = options.verb_parser(sub, common, "models", help="list the models the pipeline needs, or download them",
                            description="List every model facechain uses (present or not, its source, licence and size), "
                                        "or download them by registry name or hub reference (org/name, ms:org/name@rev#subfolder).")
    p.add_argument("action", nargs="?", choices=["list", "download"], default="list", help="list (default) or download")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="registry names (or, to download, hub references); default: every model (download: every required hub model)")
    options.add(p, "all", "quiet", options.use("json", help="machine-readable output"))
    p.set_defaults(func=run)


def _size(row: dict) -> str:
    if row["size_bytes"]:
        n = float(row["size_bytes"])
        for unit in ("B", "KB", "MB", "GB"):
            if n < 1024 or unit == "GB":
                return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
            n /= 1024
    if row["approx_size_mb"]:
        mb = row["approx_size_mb"]
        return f"~{mb / 1024:.1f} GB" if mb >= 1024 else f"~{mb:.0f} MB"
    return "?"


def _needed_by(row: dict) -> str:
    """Verbs, with the styles that need a model summed up (a base model serves dozens of them)."""
    styles = [u for u in row["used_by"] if u.startswith("generate --style ")]
    others = [u for u in row["used_by"] if not u.startswith("generate --style ")]
    if len(styles) > 2:
        others.append(f"{len(styles)} styles")
    elif styles:
        others.append("style " + ", ".join(u.rsplit(" ", 1)[1] for u in styles))
    return ", ".join(others) + (" (optional)" if row["optional"] else "")


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
    cols = [("NAME", [r["name"] for r in rows]), ("STATUS", ["present" if r["present"] else "missing" for r in rows]),
            ("SIZE", [_size(r) for r in rows]), ("LICENCE", [r["license"] for r in rows]),
            ("NEEDED BY", [_needed_by(r) for r in rows])]
    widths = [max(len(h), *(len(v) for v in vals)) for h, vals in cols]
    print("  ".join(f"{h:<{w}}" for (h, _), w in zip(cols, widths)) + "  SOURCE")
    for i, r in enumerate(rows):
        print("  ".join(f"{vals[i]:<{w}}" for (_, vals), w in zip(cols, widths)) + f"  {r['reference']}")
    print("\n'~' sizes are approximate downloads; '?' unknown until downloaded. "
          "Download by name or reference: facechain models download NAME|REFERENCE")
    return 0
