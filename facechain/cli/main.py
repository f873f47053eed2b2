"""Entry point of the ``facechain`` console script.

Each verb lives in ``facechain/cli/cmd_<verb>.py`` and exposes ``register(subparsers, common)``,
which builds its parser from the option vocabulary (:mod:`facechain.options`: one spelling and
default per option in every verb) with ``set_defaults(func=run)``; ``run(args)`` calls the verb's
Python function with the same keywords, prints, and returns the exit code.
User mistakes (:class:`FacechainError`) print one line and exit with their code (2 by default,
1 when there was nothing usable to work on); tracebacks only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import logging
import os
import signal
import sys
import traceback

from .. import __version__, options
from ..errors import FacechainError, translate

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
    "cmd_tryon",
    "cmd_train_adapter",
    "cmd_models",
    "cmd_talk",
    "cmd_export",
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
    options.add(common, "verbose", "offline")
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


def _escape_bytes(err: UnicodeError) -> tuple[str, int]:
    """Show a byte of a non-UTF-8 file name (a surrogate escape) as ``\\xNN``, anything else as ``\\uNNNN``."""
    bad = err.object[err.start:err.end]
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else f"\\u{ord(c):04x}" for c in bad), err.end


def _one_line_streams() -> None:
    """File names that are not UTF-8 print as ``\\xNN`` instead of killing the run with UnicodeEncodeError."""
    codecs.register_error("facechain-escape", _escape_bytes)  # re-registering the same handler is harmless
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="facechain-escape")


def _terminate_as_interrupt(signum, frame) -> None:  # pragma: no cover - signal handler
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    _one_line_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _setup_logging(verbose)
    if getattr(args, "offline", False):
        os.environ["FACECHAIN_OFFLINE"] = "1"
    previous = None
    with contextlib.suppress(ValueError):  # SIGTERM cleans up like Ctrl-C (only possible in the main thread)
        previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        return _run(args, verbose)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, verbose: bool) -> int:
    try:
        with options.cli_door():  # option errors name flags (--guidance-scale), not keywords
            options.validate_args(args)  # bad values fail here, before any model loads
            code = args.func(args)
        return int(code or 0)
    except FacechainError as e:
        return _fail(args.verb, e, verbose)
    except KeyboardInterrupt:
        print(f"facechain {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `facechain list | head`: the reader left; not an error of ours
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:
        known = translate(e)  # a library error we recognise (full disk, corrupt file, ...) that no loader wrapped
        if known is not None:
            return _fail(args.verb, known, verbose)
        if verbose:  # a bug, not a user mistake
            traceback.print_exc()
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"facechain {args.verb}: internal error: {type(e).__name__}: {first} (run with --verbose for details)", file=sys.stderr)
        return 1


def _fail(verb: str, e: FacechainError, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    message = " ".join(str(e).split())  # one line, whatever the message holds
    print(f"facechain {verb}: error: {message}", file=sys.stderr)
    return e.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
