"""The job service behind ``facechain serve``: one job model for every door (REST, Python client, web UI).

Layers, bottom up: :mod:`.jobs` (the Job dataclass) -> :mod:`.store` (SQLite queue) and
:mod:`.uploads` (content-addressed images) -> :mod:`.kinds` (job kind = public function) ->
:mod:`.worker` (runs one job in a worker process) -> :mod:`.executor` (local worker processes;
a Ray executor later) -> :mod:`.app` (FastAPI) and :mod:`.client` (``facechain.Client``).
The service knows only facechain's public API; nothing below it knows the service.
"""

from __future__ import annotations

from typing import Any


def serve(host: str = "127.0.0.1", port: int = 7860, *, token: str | None = None, workers: int = 1, cpu_workers: int = 1,
          model_root: list[str] | None = None, max_upload_bytes: int | None = None, max_upload_pixels: int | None = None,
          max_upload_files: int | None = None, **settings: Any) -> None:
    """Run the service in this process until interrupted (what ``facechain serve`` does, without the web UI)."""
    import uvicorn

    from .app import create_app
    from .settings import ServiceSettings

    limits = {k: v for k, v in dict(max_upload_bytes=max_upload_bytes, max_upload_pixels=max_upload_pixels,
                                    max_upload_files=max_upload_files).items() if v is not None}
    config = ServiceSettings(host=host, port=port, token=token, workers=workers, cpu_workers=cpu_workers,
                             model_roots=list(model_root or []), **limits, **settings)
    config.check_binding()
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")


__all__ = ["serve"]
