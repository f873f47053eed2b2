"""The job service behind ``facechain serve``: one job model for every door (REST, Python client, web UI).

Layers, bottom up: :mod:`.jobs` (the Job dataclass) -> :mod:`.store` (SQLite queue) and
:mod:`.uploads` (content-addressed images) -> :mod:`.kinds` (job kind = public function) ->
:mod:`.worker` (runs one job in a worker process) -> :mod:`.executor` (local worker processes) and
:mod:`.ray_executor` (a Ray cluster) -> :mod:`.app` (FastAPI) and :mod:`.client` (``facechain.Client``).
The service knows only facechain's public API; nothing below it knows the service.
"""

from __future__ import annotations

from typing import Any


def serve(host: str = "127.0.0.1", port: int = 7860, *, token: str | None = None, workers: int = 1, cpu_workers: int = 1,
          model_root: list[str] | None = None, max_upload_bytes: int | None = None, max_upload_pixels: int | None = None,
          max_upload_files: int | None = None, executor: str = "local", ray_address: str | None = None,
          ray_resources: dict[str, dict] | list[str] | None = None, ray_workers: int | None = None,
          max_attempts: int = 3, **settings: Any) -> None:
    """Run the service in this process until interrupted (what ``facechain serve`` does, without the web UI).

    ``executor="ray"`` runs the jobs on a Ray cluster (``ray_address``: ``"auto"``, ``"ray://HOST:PORT"`` or
    ``"HOST:PORT"``; ``ray_resources``: job kind -> Ray resources of its workers; see docs/cluster.md); it
    connects and checks the nodes' shared ``FACECHAIN_HOME`` before listening.
    """
    from .. import options

    options.validate(dict(port=port, workers=workers, cpu_workers=cpu_workers, max_upload_bytes=max_upload_bytes,
                          max_upload_pixels=max_upload_pixels, max_upload_files=max_upload_files, executor=executor,
                          ray_address=ray_address, ray_resources=ray_resources, ray_workers=ray_workers,
                          max_attempts=max_attempts))
    import uvicorn

    from .app import connect_executor, create_app
    from .settings import ServiceSettings

    config = ServiceSettings.from_options(
        host=host, port=port, token=token, workers=workers, cpu_workers=cpu_workers, model_root=model_root,
        max_upload_bytes=max_upload_bytes, max_upload_pixels=max_upload_pixels, max_upload_files=max_upload_files,
        executor=executor, ray_address=ray_address, ray_resources=ray_resources, ray_workers=ray_workers,
        max_attempts=max_attempts, **settings)
    config.check_binding()
    app = create_app(config)
    connect_executor(app)
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["serve"]
