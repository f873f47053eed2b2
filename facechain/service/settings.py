"""What an operator can set for ``facechain serve``; one dataclass shared by the app, executor and workers."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import facechain_home, models_dir
from ..errors import ConfigError

TOKEN_ENV = "FACECHAIN_API_TOKEN"


def service_root() -> Path:
    """``$FACECHAIN_HOME/service``: the job database, uploads and each job's folder."""
    return facechain_home() / "service"


@dataclass
class ServiceSettings:
    root: Path = field(default_factory=service_root)
    host: str = "127.0.0.1"
    port: int = 7860
    token: str | None = None  # None: FACECHAIN_API_TOKEN, else no authentication (loopback only)
    workers: int = 1  # GPU-kind worker processes (one job at a time each; one per device)
    cpu_workers: int = 1  # worker processes for CPU-only kinds (prepare), beside the GPU ones
    max_upload_bytes: int = 25 * 2**20  # per file
    max_upload_pixels: int = 64_000_000  # per image, checked from its header before decoding
    max_upload_files: int = 64  # per request
    max_json_bytes: int = 2**20  # request bodies other than uploads
    model_roots: list[Path] = field(default_factory=list)  # local folders a job's model references may point into
    cancel_grace_s: float = 30.0  # a running job that ignores its cancel this long has its worker killed
    executor: str = "local"  # "local" (worker processes here) or "ray" (a Ray cluster; see ray_executor.py)
    ray_address: str | None = None  # "auto", "ray://host:port", "host:port"; None: RAY_ADDRESS or a local Ray
    ray_resources: dict[str, dict] = field(default_factory=dict)  # kind -> Ray resources of its workers (or KIND=JSONs)
    ray_workers: int | None = None  # warm workers per GPU-kind pool; None: as many as the cluster's resources fit
    ray_routing: bool = True  # give a warm worker the jobs for the base model it holds first
    max_attempts: int = 3  # a job whose worker died this many times ends failed (Ray executor)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.token is None:
            self.token = os.environ.get(TOKEN_ENV) or None
        self.model_roots = [Path(p).expanduser().resolve() for p in self.model_roots]
        if self.cpu_workers < 0:
            raise ConfigError(f"--cpu-workers must not be negative, got {self.cpu_workers}")
        from .. import options  # the executor options' rules are the vocabulary's (serve, batch)

        checked = options.validate({"executor": self.executor, "ray_address": self.ray_address,
                                    "ray_resources": self.ray_resources or {}, "ray_workers": self.ray_workers,
                                    "max_attempts": self.max_attempts})
        for name, value in checked.items():
            setattr(self, name, value)
        for name in ("workers", "max_upload_bytes", "max_upload_pixels", "max_upload_files"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def from_options(cls, *, model_root: list[str] | None = None, max_upload_bytes: int | None = None,
                     max_upload_pixels: int | None = None, max_upload_files: int | None = None,
                     ray_resources: dict | list[str] | None = None, **fields) -> "ServiceSettings":
        """Settings from the verbs' keywords (``facechain serve``/``batch``: ``model_root`` is the repeatable
        ``--model-root``; None keeps a field's default)."""
        limits = {k: v for k, v in dict(max_upload_bytes=max_upload_bytes, max_upload_pixels=max_upload_pixels,
                                        max_upload_files=max_upload_files).items() if v is not None}
        return cls(model_roots=list(model_root or []), ray_resources=ray_resources or {}, **limits, **fields)

    @property
    def allowed_model_roots(self) -> list[Path]:
        """Local model folders/files jobs may use: the model cache plus the operator's ``--model-root``s."""
        return [models_dir().expanduser().resolve(), *self.model_roots]

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def uploads_dir(self) -> Path:
        return self.root / "uploads"

    def check_binding(self) -> None:
        """Refuse to listen beyond this machine without a token (anyone could run jobs and read results)."""
        if not self.token and not is_loopback(self.host):
            raise ConfigError(f"refusing to listen on {self.host} without a token: pass --token or set {TOKEN_ENV} "
                              "(or bind to 127.0.0.1)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
