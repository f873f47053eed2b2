"""``facechain styles``: list the available styles, show one, or download a style's models."""

from __future__ import annotations

import argparse
import json

from .. import options


def register(sub, common) -> None:
    p = options.verb_parser(
        sub, common, "styles", help="list styles (shipped and your own), show one, or download its models",
        description="List the styles: shipped ones (configs/styles) and your own ($FACECHAIN_HOME/styles/*.yaml). "
                    "'show NAME' prints one style; 'download NAME...' fetches a style's base model and LoRA.",
    )
    p.add_argument("action", nargs="?", choices=["list", "show", "download"], default="list")
    p.add_argument("names", nargs="*", metavar="NAME", help="style names or .yaml files (show/download)")
    options.add(p, "quiet", options.use("json", help="machine-readable output"))
    p.set_defaults(func=run)


def _short(ref: str | None, width: int = 52) -> str:
    if ref is None:
        return "-"
    return ref if len(ref) <= width else "…" + ref[-(width - 1):]


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..paths import user_styles_dir
    from ..styles.catalog import styles

    if args.action in ("show", "download") and not args.names:
        raise ConfigError(f"'{args.action}' needs at least one style name")
    rows = styles(args.names or None, download=args.action == "download", quiet=args.quiet)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if args.action == "show":
        for r in rows:
            for k, v in r.items():
                print(f"{k:<16} {v}")
            print()
        return 0
    status = lambda present: "-" if present is None else ("present" if present else "missing")  # noqa: E731
    nw = max(len(r["name"]) for r in rows)
    print(f"{'NAME':<{nw}}  {'TYPE':<11}  {'BASE':<8}  {'LORA':<8}  {'ORIGIN':<7}  BASE MODEL / STYLE LORA")
    for r in rows:
        if r.get("broken"):  # a user style file that cannot be used, with the reason
            print(f"{r['name']:<{nw}}  BROKEN: {r['path']}: {r['broken']}")
            continue
        kind = "prompt-only" if r["style_lora"] is None else f"LoRA {r['style_weight']:g}"
        base = r["base_model"] or "(identity's base model)"
        lora = "" if r["style_lora"] is None else "  +  " + _short(r["style_lora"])
        print(f"{r['name']:<{nw}}  {kind:<11}  {status(r['base_present']):<8}  {status(r['lora_present']):<8}  "
              f"{r['origin']:<7}  {_short(base)}{lora}")
    if args.action == "list":
        print(f"\n{sum(not r.get('broken') for r in rows)} styles; add your own as YAML files in {user_styles_dir()} (see docs/generate.md)")
    return 0
