"""``facechain ui``: ``facechain serve`` with the web UI, opened in the browser once the server answers."""

from __future__ import annotations

import argparse
import sys
import threading
import time
import urllib.parse
import urllib.request


def register(sub, common) -> None:
    from . import cmd_serve

    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    cmd_serve.register(scratch, common)  # the very same options as 'facechain serve'
    p = sub.add_parser("ui", parents=[scratch.choices["serve"]], add_help=False, conflict_handler="resolve",
                       help="run 'facechain serve' and open its web UI in the browser",
                       description="Start the job service with its web UI (train a person, portraits, templates, "
                                   "train a style, jobs) and open http://HOST:PORT/ui/ in your browser.")
    p.add_argument("--no-browser", action="store_true", help="only print the address; do not open a browser")
    p.set_defaults(func=run)


def ui_url(host: str, port: int, token: str | None) -> str:
    """The address to open (with ``?token=``, which the UI swaps for a cookie and drops from the address)."""
    shown = f"[{host}]" if ":" in host else host
    query = f"?{urllib.parse.urlencode({'token': token})}" if token else ""
    return f"http://{shown}:{port}/ui/{query}"


def _open_when_up(url: str, health: str, token: str | None, timeout: float = 300.0) -> None:
    import webbrowser

    request = urllib.request.Request(health, headers={"Authorization": f"Bearer {token}"} if token else {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2):
                break
        except OSError:
            time.sleep(0.3)
    else:
        return
    if not webbrowser.open(url):
        print(f"facechain ui: open {url} in a browser", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from ..errors import FacechainError
    from ..ui import available
    from . import cmd_serve

    if not available():
        raise FacechainError("'facechain ui' needs the ui extra (gradio is missing): pip install 'facechain[ui]'")

    def on_ready(settings) -> None:
        url = ui_url(args.host, args.port, settings.token)
        print(f"facechain ui: {ui_url(args.host, args.port, None)}", file=sys.stderr, flush=True)
        if not args.no_browser:
            health = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/v1/health"
            threading.Thread(target=_open_when_up, args=(url, health, settings.token), daemon=True).start()

    args.on_ready = on_ready
    return cmd_serve.run(args)
