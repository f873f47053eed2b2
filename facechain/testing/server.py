"""A real ``facechain serve`` in a subprocess on a free loopback port (service tests and benchmarks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding facechain/ (checkout or site-packages)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m facechain serve`` in a subprocess with its own FACECHAIN_HOME (restartable)."""

    def __init__(self, home: Path, *args: str, token: str | None = None):
        self.home, self.args, self.token = Path(home), [str(a) for a in args], token
        self.proc: subprocess.Popen | None = None
        self.port = free_port()
        self.log = self.home.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def start(self, timeout: float = 120.0) -> "ServerProcess":
        import httpx

        env = dict(os.environ, FACECHAIN_HOME=str(self.home), FACECHAIN_OFFLINE="1", HF_HUB_OFFLINE="1",
                   PYTHONPATH=str(PACKAGE_ROOT), OMP_NUM_THREADS="1")
        env.pop("FACECHAIN_API_TOKEN", None)
        cmd = [sys.executable, "-m", "facechain", "serve", "--port", str(self.port), *self.args]
        if self.token:
            cmd += ["--token", self.token]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home.parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v1/health", headers=self.headers, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not answer within {timeout} s: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill9()
