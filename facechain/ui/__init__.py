"""The web UI (Gradio), mounted at ``/ui`` on the job service's FastAPI app by ``facechain serve``.

Five tabs: train a person, portraits, templates, train a style, jobs and people. Every action is
a job of the service (:mod:`facechain.ui.desk`); the UI adds no pipeline of its own. Needs the
``ui`` extra (``pip install 'facechain[ui]'``); without it ``facechain serve`` serves the API only.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..service.app import AppExtension, Service

log = logging.getLogger(__name__)

PREFIX = "/ui"


def available() -> bool:
    """Whether gradio is installed (the ``ui`` extra)."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        return False
    return True


def ui_secret(root: Path) -> str:
    """The secret that seals the browser's stored job ids: kept in the service folder, so it outlives restarts."""
    path = Path(root) / "ui" / "secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(16))
    return path.read_text().strip()


def mount_ui(app: "FastAPI", service: "Service") -> str:
    """Mount the UI on ``app`` at ``/ui`` behind its own token gate; returns the prefix (the service hook)."""
    import gradio as gr

    from .app import build_ui, preview_dir
    from .desk import JobDesk
    from .gate import UIGate
    from .views import CSS

    settings = service.settings
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves this machine
    workdir = preview_dir(settings.root)
    blocks = build_ui(JobDesk(service), ui_secret(settings.root), workdir)
    blocks.queue(default_concurrency_limit=4)
    gr.mount_gradio_app(app, blocks, path=PREFIX, allowed_paths=[str(settings.jobs_dir), str(workdir)],
                        max_file_size=settings.max_upload_bytes, css=CSS, footer_links=[],
                        run_history=False, ssr_mode=False, show_error=True)
    max_body = settings.max_upload_files * settings.max_upload_bytes + 2**20  # + multipart framing
    app.add_middleware(UIGate, prefix=PREFIX, token=settings.token, max_body=max_body)
    return PREFIX


def ui_extensions() -> list["AppExtension"]:
    """What ``facechain serve`` hands to ``create_app``: the UI when gradio is installed, else nothing."""
    if not available():
        log.warning("web UI off: gradio is not installed (pip install 'facechain[ui]')")
        return []
    return [mount_ui]


__all__ = ["PREFIX", "available", "mount_ui", "ui_extensions", "ui_secret"]
