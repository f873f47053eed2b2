"""``facechain styles``: list the available styles, show one, or download a style's models."""

from __future__ import annotations

import argparse
import json


def register(sub, common) -> None:
    p = sub.add_parser(
        "styles", parents=[common], help="list styles (shipped and your own), show one, or download its models",
        description="List the styles: shipped ones (configs/styles) and your own ($FACECHAIN_HOME/styles/*.yaml). "
                    "'show NAME' prints one style; 'download NAME...' fetches a style's base model and LoRA.",
    )
    p.add_argument("action", nargs="?", choices=["list", "show", "download"], default="list")
    p.add_argument("names", nargs="*", metavar="NAME", help="style names or .yaml files (show/download)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _short(ref: str | None, width: int = 52) -> str:
    if ref is None:
        return "-"
    return ref if len(ref) <= width else "…" + ref[-(width - 1):]


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..paths import user_styles_dir
    from ..styles import download_style_models, find_style, scan_styles, style_status

    if args.action == "download":
        if not args.names:
            raise ConfigError("facechain styles download: name at least one style")
        for label, path in download_style_models(args.names):
            print(f"{label}: {path}")
        return 0
    if args.action == "show":
        if not args.names:
            raise ConfigError("facechain styles show: name a style")
        rows = style_status([find_style(n) for n in args.names])
        if args.json:
            print(json.dumps([r.to_json() for r in rows], indent=2))
            return 0
        for r in rows:
            for k, v in r.to_json().items():
                print(f"{k:<16} {v}")
            print()
        return 0
    rows = style_status()
    broken = scan_styles()[1]  # a broken user style is listed with its reason, never hides the others
    if args.json:
        print(json.dumps([r.to_json() for r in rows] + [{"name": b.name, "path": str(b.path), "origin": "user",
                                                          "broken": b.reason, "ready": False} for b in broken], indent=2))
        return 0
    status = lambda present: "-" if present is None else ("present" if present else "missing")  # noqa: E731
    nw = max(len(r.style.name) for r in rows)
    print(f"{'NAME':<{nw}}  {'TYPE':<11}  {'BASE':<8}  {'LORA':<8}  {'ORIGIN':<7}  BASE MODEL / STYLE LORA")
    for r in rows:
        kind = "prompt-only" if r.style.prompt_only else f"LoRA {r.style.style_weight:g}"
        base = r.style.base_model or "(identity's base model)"
        lora = "" if r.style.prompt_only else "  +  " + _short(r.style.style_lora)
        print(f"{r.style.name:<{nw}}  {kind:<11}  {status(r.base_present):<8}  {status(r.lora_present):<8}  {r.style.origin:<7}  "
              f"{_short(base)}{lora}")
    for b in broken:
        print(f"{b.name:<{nw}}  BROKEN: {b.path}: {b.reason}")
    print(f"\n{len(rows)} styles; add your own as YAML files in {user_styles_dir()} (see docs/generate.md)")
    return 0
