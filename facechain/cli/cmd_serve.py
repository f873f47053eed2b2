"""``facechain serve``: the REST API and job queue (see docs/service.md)."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import options


def register(sub, common) -> None:
    p = options.verb_parser(sub, common, "serve", help="run the REST API, job queue and web UI (OpenAPI at /docs, UI at /ui/)",
                            description="Serve facechain over HTTP: upload photos, submit jobs (prepare, train, train_style, "
                                        "generate, inpaint) with the same parameters as the Python API, follow their "
                                        "progress, download results; the web UI at /ui/ (with the ui extra). Jobs are stored "
                                        "in $FACECHAIN_HOME/service and survive restarts; they run in worker processes, one "
                                        "GPU job at a time per device.")
    options.add(p, "host", "port", "token", "workers", "cpu_workers", options.use("model_root", repeat=True),
                "max_upload_bytes", "max_upload_pixels", "max_upload_files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import FacechainError

    try:
        import uvicorn

        from ..service.app import create_app
    except ImportError as e:
        raise FacechainError(f"'facechain serve' needs the serve extra ({e.name} is missing): "
                             "pip install 'facechain[serve]'") from None
    from ..service.settings import ServiceSettings

    limits = {k: getattr(args, k) for k in ("max_upload_bytes", "max_upload_pixels", "max_upload_files")
              if getattr(args, k) is not None}
    settings = ServiceSettings(host=args.host, port=args.port, token=args.token, workers=args.workers,
                               cpu_workers=args.cpu_workers, model_roots=args.model_root or [], **limits)
    settings.check_binding()
    logging.getLogger("facechain").setLevel(logging.INFO)
    from ..ui import ui_extensions  # hook: the web UI at /ui (facechain.ui) when gradio is installed

    extensions = ui_extensions()
    print(f"facechain serve: http://{args.host}:{args.port}/v1 (API docs: /docs), jobs in {settings.root}"
          f"{', token required' if settings.token else ''}", file=sys.stderr, flush=True)
    if extensions:
        print(f"facechain serve: web UI at http://{args.host}:{args.port}/ui/", file=sys.stderr, flush=True)
    if getattr(args, "on_ready", None):
        args.on_ready(settings)
    uvicorn.run(create_app(settings, extensions=extensions), host=args.host, port=args.port,
                log_level="info" if args.verbose else "warning")
    return 0
