"""``facechain serve``: the REST API and job queue (see docs/service.md)."""

from __future__ import annotations

import argparse
import logging
import sys


def register(sub, common) -> None:
    p = sub.add_parser("serve", parents=[common], help="run the REST API and job queue (FastAPI, OpenAPI at /docs)",
                       description="Serve facechain over HTTP: upload photos, submit jobs (prepare, train, train_style, "
                                   "generate, inpaint) with the same parameters as the Python API, follow their "
                                   "progress, download results. Jobs are stored in $FACECHAIN_HOME/service and survive "
                                   "restarts; they run in worker processes, one GPU job at a time per device.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a token)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (default: $FACECHAIN_API_TOKEN)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes for GPU jobs, one job each at a time (one per GPU; default 1)")
    p.add_argument("--cpu-workers", type=int, default=1, metavar="N",
                   help="worker processes for CPU-only jobs (prepare) beside them (default 1)")
    p.add_argument("--model-root", action="append", default=[], metavar="DIR",
                   help="a local folder jobs may take models from (besides the model cache); repeatable")
    p.add_argument("--max-upload-bytes", type=int, help="largest file accepted (default 25 MiB)")
    p.add_argument("--max-upload-pixels", type=int, help="largest image accepted, in pixels (default 64,000,000)")
    p.add_argument("--max-upload-files", type=int, help="most files in one upload request (default 64)")
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
                               cpu_workers=args.cpu_workers, model_roots=args.model_root, **limits)
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
