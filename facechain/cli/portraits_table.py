"""How the CLI prints a :class:`~facechain.results.Portraits` (the result of every image verb), one way for all."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..config import read_yaml


def print_portraits(result: Any, as_json: bool = False) -> None:
    """Warnings on stderr; then the run as JSON, or one line per portrait (rank 1 = best) and where they are."""
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if as_json:
        print(json.dumps({**result.to_json(), "output": str(result.output_dir) if result.output_dir else None},
                         indent=2))
        return
    print(f"{'RANK':>4}  {'FILE':<10} {'SIMILARITY':>10}  {'SEED':>10}  STATUS")
    for rank, p in enumerate(result, 1):
        sim = "-" if p.similarity is None else f"{p.similarity:.3f}"
        status = "ok" if p.ok else f"flagged: {p.reason}"
        name = p.path.name if p.path is not None else p.metadata.get("file", "")
        seed = "-" if p.seed is None else str(p.seed)
        print(f"{rank:>4}  {name:<10} {sim:>10}  {seed:>10}  {status}")
    per = result.timings.get("per_image", {}) if isinstance(result.timings, dict) else {}
    if per:
        print(f"time per image: {per.get('total', 0):.2f} s (denoising {per.get('denoising', 0):.2f} s)")
    print(f"saved {len(result)} portrait(s) to {result.output_dir}")


def config_value(config: str | None, section: str, key: str) -> Any:
    """``key`` of ``section`` in a YAML config file, if it sets one (for the CLI's own defaults, e.g. --output)."""
    if config is None:
        return None
    part = read_yaml(config).get(section) or {}
    return part.get(key) if isinstance(part, dict) else None
