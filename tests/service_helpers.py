"""Helpers for the job-service tests: image bytes, waiting on jobs (the server process: facechain.testing.server)."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from facechain.testing.server import ServerProcess, free_port  # noqa: F401 - re-exported for the tests

REPO = Path(__file__).resolve().parents[1]


def jpeg_bytes(w: int, h: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def png_header(w: int, h: int) -> bytes:
    """A PNG that declares ``w x h`` pixels but carries almost no data (a decompression-bomb probe)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_job(http, job_id: str, timeout: float = 600.0, states=("succeeded", "failed", "cancelled")) -> dict:
    def done():
        job = http.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in states else None

    return wait_for(done, timeout, 0.2, f"job {job_id} to reach {states}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of a killed server is gone for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
