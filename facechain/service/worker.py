"""Runs jobs in a worker process: ``python -m facechain.service.worker --root DIR --parent PID``.

Why a separate process: a crash, an out-of-memory kill or a wedged CUDA context then ends one
job, not the server. A worker runs one job at a time and stays alive between jobs, so the
pipelines the verbs cache (base model, ControlNets) stay warm for the next job.

Protocol (one JSON object per line): the executor writes ``{"job": ID}`` to the worker's stdin;
the worker runs it, stores the outcome in the job store itself, and answers ``{"done": ID}`` on
its original stdout. Anything the libraries print goes to the job's ``log.txt`` instead.

Progress: the worker installs a :mod:`facechain.progress` sink that stores events with the job
and raises :class:`facechain.progress.Cancelled` at the next step once the job is cancelled.
The worker dies with the server (``PR_SET_PDEATHSIG`` on Linux, a parent check at every event
elsewhere), so a restarted server can safely run the job again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .. import progress
from ..errors import FacechainError
from .jobs import Job, JobState
from .kinds import get_kind
from .settings import ServiceSettings
from .store import JobStore
from .uploads import UploadStore

log = logging.getLogger(__name__)
_STORE_EVERY_S = 0.2  # progress events are stored at most this often (plus every task start/end)
_CANCEL_CHECK_S = 0.2


@dataclass
class RunContext:
    """What a kind's runner gets: the job, its folder, and helpers that make re-runs safe."""

    job: Job
    settings: ServiceSettings
    uploads: UploadStore

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    @property
    def attempt(self) -> int:
        return self.job.attempts

    @property
    def job_dir(self) -> Path:
        return self.settings.jobs_dir / self.job.id

    def inputs(self, upload_ids: list[str], name: str) -> list[Path]:
        """The uploads as files in ``input/<name>/`` (made afresh on each attempt)."""
        folder = self.job_dir / "input" / name
        shutil.rmtree(folder, ignore_errors=True)
        return self.uploads.materialize(list(upload_ids), folder)

    def finished_output(self) -> Path | None:
        """``output/`` when an earlier attempt completed it (then the job is not run again)."""
        out = self.job_dir / "output"
        return out if out.is_dir() else None

    def fresh_output(self) -> Path:
        """Where the function writes; leftovers of an interrupted attempt are removed first."""
        for stale in self.job_dir.glob(".output*"):
            shutil.rmtree(stale, ignore_errors=True)
        partial = self.job_dir / ".output.partial"
        shutil.rmtree(partial, ignore_errors=True)
        return partial

    def publish(self, partial: Path) -> Path:
        """Make the finished outputs the job's ``output/`` in one rename: never half there."""
        final = self.job_dir / "output"
        os.replace(partial, final)
        return final


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class JobSink:
    """The progress sink of one job: stores events (throttled) and turns a cancel into ``Cancelled``."""

    def __init__(self, store: JobStore, job: Job, phases: dict[str, tuple[float, float]], parent: int | None = None):
        self.store, self.job, self.phases, self.parent = store, job, phases, parent
        self._stored_at = 0.0
        self._checked_at = 0.0
        self._task: str | None = None
        self._progress = job.progress

    def __call__(self, event: progress.ProgressEvent) -> None:
        if self.parent is not None and os.getppid() != self.parent:
            os._exit(3)  # the server is gone: stop at once, a restarted server re-runs the job
        t = time.monotonic()
        share = self.phases.get(event.task)
        frac = event.fraction
        if share is not None and frac is not None:
            self._progress = max(self._progress, share[0] + frac * (share[1] - share[0]))
        if event.finished or event.task != self._task or t - self._stored_at >= _STORE_EVERY_S:
            self._task, self._stored_at = event.task, t
            total = "" if event.total is None else f" {event.done:g}/{event.total:g} {event.unit}"
            message = f"{event.task}{total}{': ' + event.message if event.message else ''}"
            self.store.add_progress(self.job.id, event.to_json(), self._progress, message)
        if t - self._checked_at >= _CANCEL_CHECK_S:
            self._checked_at = t
            if self.store.cancel_requested(self.job.id):
                raise progress.Cancelled(f"job {self.job.id} was cancelled")


def run_job(store: JobStore, settings: ServiceSettings, job: Job, parent: int | None = None) -> JobState:
    """Run one claimed job to its end state and record it (never raises for the job's own errors)."""
    kind = get_kind(job.kind)
    uploads = UploadStore(store, settings.uploads_dir, max_bytes=settings.max_upload_bytes,
                          max_pixels=settings.max_upload_pixels)
    ctx = RunContext(job, settings, uploads)
    ctx.job_dir.mkdir(parents=True, exist_ok=True)
    log.info("job %s (%s) attempt %d: %s", job.id, job.kind, job.attempts, json.dumps(job.params))
    try:
        with progress.reporting(sink=JobSink(store, job, kind.phases, parent)):
            result = kind.run(ctx)
    except progress.Cancelled:
        store.finish(job.id, JobState.CANCELLED)
        return JobState.CANCELLED
    except KeyboardInterrupt:  # the server is shutting down (training saved a checkpoint first)
        store.requeue(job.id, "re-queued: the server stopped while it ran")
        return JobState.QUEUED
    except FacechainError as e:
        log.info("job %s failed: %s", job.id, one_line(e))
        store.finish(job.id, JobState.FAILED, error=one_line(e))
        return JobState.FAILED
    except Exception as e:  # a bug: the traceback goes to the job's log, one line to the client
        traceback.print_exc()
        store.finish(job.id, JobState.FAILED, error=f"internal error: {type(e).__name__}: {one_line(e)[:300]}")
        return JobState.FAILED
    store.finish(job.id, JobState.SUCCEEDED, result=result)
    return JobState.SUCCEEDED


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send fds 1 and 2 (prints, logs, C libraries) to ``path`` for the duration of a job."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # died before the request took effect
        os._exit(3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="facechain service worker (started by 'facechain serve')")
    ap.add_argument("--root", required=True)
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--settings", default="{}", help="ServiceSettings limits as JSON")
    args = ap.parse_args(argv)
    _die_with_parent(args.parent)
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints must never corrupt the protocol
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    settings = ServiceSettings(root=Path(args.root), **json.loads(args.settings))
    store = JobStore(settings.root)
    protocol.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        job = store.get(request["job"])
        state = None
        if job is not None and job.state is JobState.RUNNING:
            folder = settings.jobs_dir / job.id
            folder.mkdir(parents=True, exist_ok=True)
            with _output_to(folder / "log.txt"):
                state = run_job(store, settings, job, args.parent)
        protocol.write(json.dumps({"done": request["job"], "state": state}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
