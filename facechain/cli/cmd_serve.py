"""``facechain serve``: the REST API and job queue (see docs/service.md; on a Ray cluster: docs/cluster.md)."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import options

#: Where jobs run (also 'facechain batch'): here, or on a Ray cluster.
EXECUTOR_OPTIONS = ("executor", "ray_address", options.use("ray_resources", repeat=True), "ray_workers", "max_attempts")


def register(sub, common) -> None:
    p = options.verb_parser(sub, common, "serve", help="run the REST API, job queue and web UI (OpenAPI at /docs, UI at /ui/)",
                            description="Serve facechain over HTTP: upload photos, submit jobs (prepare, train, train_style, "
                                        "generate, inpaint) with the same parameters as the Python API, follow their "
                                        "progress, download results; the web UI at /ui/ (with the ui extra). Jobs are stored "
                                        "in $FACECHAIN_HOME/service and survive restarts; they run in worker processes, one "
                                        "GPU job at a time per device, or on a Ray cluster (--executor ray).")
    options.add(p, "host", "port", "token", "workers", "cpu_workers", options.use("model_root", repeat=True),
                "max_upload_bytes", "max_upload_pixels", "max_upload_files")
    options.add(p, *EXECUTOR_OPTIONS)
    p.set_defaults(func=run)


def executor_keywords(args: argparse.Namespace) -> dict:
    """The executor options' values (the keywords of ``facechain.serve`` and ``facechain.batch``)."""
    return {name: getattr(args, name) for name in ("executor", "ray_address", "ray_resources", "ray_workers",
                                                   "max_attempts")}


def run(args: argparse.Namespace) -> int:
    from ..errors import FacechainError

    try:
        import uvicorn

        from ..service.app import connect_executor, create_app
    except ImportError as e:
        raise FacechainError(f"'facechain serve' needs the serve extra ({e.name} is missing): "
                             "pip install 'facechain[serve]'") from None
    from ..service.settings import ServiceSettings

    settings = ServiceSettings.from_options(
        host=args.host, port=args.port, token=args.token, workers=args.workers, cpu_workers=args.cpu_workers,
        model_root=args.model_root, max_upload_bytes=args.max_upload_bytes, max_upload_pixels=args.max_upload_pixels,
        max_upload_files=args.max_upload_files, **executor_keywords(args))
    settings.check_binding()
    logging.getLogger("facechain").setLevel(logging.INFO)
    from ..ui import ui_extensions  # hook: the web UI at /ui (facechain.ui) when gradio is installed

    extensions = ui_extensions()
    app = create_app(settings, extensions=extensions)
    connect_executor(app)
    print(f"facechain serve: http://{args.host}:{args.port}/v1 (API docs: /docs), jobs in {settings.root}"
          f"{', token required' if settings.token else ''}{', on Ray' if settings.executor == 'ray' else ''}",
          file=sys.stderr, flush=True)
    if extensions:
        print(f"facechain serve: web UI at http://{args.host}:{args.port}/ui/", file=sys.stderr, flush=True)
    if getattr(args, "on_ready", None):
        args.on_ready(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    return 0
