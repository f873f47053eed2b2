"""``facechain list``: the trained identities in FACECHAIN_HOME, newest first."""

from __future__ import annotations

import argparse
import json

from .. import options


def register(sub, common) -> None:
    p = options.verb_parser(sub, common, "list", help="list trained identities",
                            description="List the identities in $FACECHAIN_HOME/identities (newest first): name, "
                                        "base model, number of training photos, trigger word, date.")
    options.add(p, options.use("json", help="print one JSON object per identity"))
    p.set_defaults(func=run)


def identity_rows() -> list[dict]:
    """One row per identity, newest first; broken ones last, with ``broken`` saying why."""
    from ..identity import scan_identities

    found, broken = scan_identities()
    rows = []
    for ident in found:
        rows.append(dict(name=ident.name, base_model=ident.base_model, photos=ident.dataset.get("photos"),
                         trigger=ident.trigger_word, created=(ident.created or "")[:16].replace("T", " "),
                         path=str(ident.path)))
    for b in broken:
        rows.append(dict(name=b.name, base_model=None, photos=None, trigger=None, created=None, path=str(b.path),
                         broken=b.reason))
    return rows


def run(args: argparse.Namespace) -> int:
    from ..paths import identities_dir

    rows = identity_rows()
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    if not rows:
        print(f"no identities in {identities_dir()}; train one with 'facechain train PHOTOS --name NAME'")
        return 0
    cols = [("NAME", "name"), ("BASE MODEL", "base_model"), ("PHOTOS", "photos"), ("TRIGGER", "trigger"),
            ("CREATED", "created")]
    widths = [max(len(h), *(len(str(r[k] if r[k] is not None else "-")) for r in rows)) for h, k in cols]
    print("  ".join(h.ljust(w) for (h, _), w in zip(cols, widths)).rstrip())
    for r in rows:
        if r.get("broken"):
            print(f"{r['name'].ljust(widths[0])}  BROKEN: {r['broken']}")
            continue
        print("  ".join(str(r[k] if r[k] is not None else "-").ljust(w) for (_, k), w in zip(cols, widths)).rstrip())
    return 0
