"""Entry point of the ``facechain`` console script.

Each verb lives in ``facechain/cli/cmd_<verb>.py`` and exposes ``register(subparsers)``, which
adds its parser with ``set_defaults(func=run)``; ``run(args)`` returns the exit code.
User mistakes (:class:`FacechainError`) print one line and exit with their code (2 by default,
1 when there was nothing usable to work on); tracebacks only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from .. import __version__
from ..errors import FacechainError

VERB_MODULES = [
    "cmd_prepare",
    "cmd_train",
    "cmd_train_style",
    "cmd_list",
    "cmd_styles",
    "cmd_generate",
    "cmd_eval",
    "cmd_faces",
    "cmd_inpaint",
    "cmd_train_adapter",
    "cmd_models",
    "cmd_serve",
    "cmd_batch",
]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) that keep the usage hint short."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facechain", description="Identity-preserving portraits from a few personal photos.")
    parser.add_argument("--version", action="version", version=f"facechain {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="show details and tracebacks")
    common.add_argument("--offline", action="store_true", help="never download models; use only local/cached files")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.{name}":
                continue  # verb not built into this version
            raise
        module.register(sub, common)
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _setup_logging(verbose)
    if getattr(args, "offline", False):
        os.environ["FACECHAIN_OFFLINE"] = "1"
    try:
        code = args.func(args)
        return int(code or 0)
    except FacechainError as e:
        if verbose:
            traceback.print_exc()
        print(f"facechain {args.verb}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"facechain {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not a user mistake
        if verbose:
            traceback.print_exc()
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"facechain {args.verb}: internal error: {type(e).__name__}: {first} (run with --verbose for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
