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
    add_executor_options(p)
    p.set_defaults(func=run)


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """Where jobs run: here (local worker processes) or on a Ray cluster (also used by 'facechain batch')."""
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="run jobs in local worker processes (default) or on a Ray cluster (pip install 'facechain[ray]')")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="the Ray cluster: 'auto' (one running on this machine), 'ray://HOST:PORT' (Ray Client) or "
                        "HOST:PORT (default: $RAY_ADDRESS, else a new local Ray)")
    p.add_argument("--ray-resources", action="append", default=[], metavar="KIND=JSON",
                   help="Ray resources of the workers for a job kind, e.g. 'generate={\"num_gpus\": 0.5}' "
                        "(default: GPU kinds {\"num_gpus\": 1, \"num_cpus\": 1}, prepare {\"num_cpus\": 1}); repeatable")
    p.add_argument("--ray-workers", type=int, metavar="N",
                   help="warm GPU workers to keep (default: as many as the cluster's resources fit)")
    p.add_argument("--max-attempts", type=int, default=3, metavar="N",
                   help="with --executor ray: a job whose worker died N times ends failed (default 3)")


def executor_settings(args: argparse.Namespace) -> dict:
    """ServiceSettings fields from :func:`add_executor_options`' flags."""
    from ..service.ray_executor import parse_resources

    return {"executor": args.executor, "ray_address": args.ray_address, "ray_resources": parse_resources(args.ray_resources),
            "ray_workers": args.ray_workers, "max_attempts": args.max_attempts}


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
                               cpu_workers=args.cpu_workers, model_roots=args.model_root, **limits,
                               **executor_settings(args))
    settings.check_binding()
    logging.getLogger("facechain").setLevel(logging.INFO)
    app = create_app(settings)
    if settings.executor == "ray":  # connect and check the cluster's storage now: refuse to start with one line
        app.state.service.executor.start()  # (idempotent: the app's start-up finds it running)
    print(f"facechain serve: http://{args.host}:{args.port}/v1 (API docs: /docs), jobs in {settings.root}"
          f"{', token required' if settings.token else ''}{', on Ray' if settings.executor == 'ray' else ''}",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    return 0

