"""The warm worker of the Ray executor: a Ray actor that runs jobs one at a time and stays loaded.

A :class:`WarmWorker` lives in one Ray worker process on some node. Between jobs it keeps that
process's component cache (the base pipeline, ControlNets, FACT encoder/adapters; see
:mod:`facechain.generation.pipeline_cache`), so the next job on the same base model only swaps its
LoRAs. It reports which base models it holds and how often it loaded one, which the executor uses
to route jobs (:mod:`.routing`).

Only the server touches the job database. SQLite's WAL mode needs every process on one host
(shared memory), so a worker on another node must not open it: :class:`JobRecorder` stands in
for the store inside the worker, keeps the job's progress events and outcome in memory, and the
server drains them (:meth:`WarmWorker.drain`) and writes them itself. Cancelling and stopping go
the other way, as flags the job's progress sink sees at its next step. Files go through the
shared ``FACECHAIN_HOME`` (checked by :mod:`.shared_storage`).

The class is plain Python (the executor wraps it with ``ray.remote``), so it is tested without Ray.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from .jobs import Job, JobState
from .routing import CACHED_KINDS
from .settings import ServiceSettings
from .shared_storage import Marker, check_marker
from .store import UploadRecord

log = logging.getLogger(__name__)


def process_cache() -> Any:
    """This process's pipeline cache (``default_cache()``; ``PIPELINES`` before it had that name)."""
    from ..generation import pipeline_cache

    getter = getattr(pipeline_cache, "default_cache", None)
    return getter() if getter is not None else pipeline_cache.PIPELINES


def loaded_base_model(cache: Any) -> str | None:
    """The base model the cache holds now (its resolved path), None when empty."""
    key = getattr(cache, "_key", None)  # the cache has no public accessor for its key
    return None if key is None else str(key.base_model)


class JobRecorder:
    """The part of :class:`~facechain.service.store.JobStore` that running a job uses, in memory.

    ``run_job`` and its progress sink call ``add_progress``, ``cancel_requested``, ``finish``,
    ``requeue`` and (for uploads) ``get_upload``; the server collects what they recorded.
    """

    def __init__(self, job: Job, uploads: dict[str, UploadRecord]):
        self.job = job
        self._uploads = uploads
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self.cancel = False
        self.interrupt = False
        self.outcome: dict[str, Any] | None = None

    def add_progress(self, job_id: str, data: dict[str, Any], progress: float | None, message: str) -> None:
        with self._lock:
            self._events.append({"data": data, "progress": progress, "message": message})

    def drain(self) -> list[dict[str, Any]]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def cancel_requested(self, job_id: str) -> bool:
        if self.interrupt:  # the server is stopping: like Ctrl-C, the job is re-queued (run_job's handler)
            raise KeyboardInterrupt
        return self.cancel

    def finish(self, job_id: str, state: JobState, *, error: str | None = None,
               result: dict[str, Any] | None = None) -> bool:
        self.outcome = {"state": state.value, "error": error, "result": result}
        return True

    def requeue(self, job_id: str, reason: str) -> bool:
        self.outcome = {"state": JobState.QUEUED.value, "error": None, "result": None, "reason": reason}
        return True

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        return self._uploads.get(upload_id)


class WarmWorker:
    """One job at a time in this process, keeping its loaded models; see the module docstring."""

    def __init__(self, settings: dict[str, Any], marker: dict[str, str] | None = None, name: str = "worker"):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.name = name
        self.settings = ServiceSettings(**settings)
        if marker is not None:
            problem = check_marker(Marker.from_json(marker))
            if problem:
                raise RuntimeError(f"worker {name} on {socket.gethostname()} does not see the service's folder: {problem}")
        self.current: JobRecorder | None = None
        self.jobs_done = 0
        self.held: set[str] = set()  # base-model keys (as the server spells them) loaded in this process
        self._lock = threading.Lock()
        from .kinds import warm_up

        warm_up()  # import the verbs now, not in the first job

    def hello(self) -> dict[str, Any]:
        """Where this worker runs, and what it holds."""
        node_id = ip = None
        gpus: list = []
        try:
            import ray

            if not ray.is_initialized():  # not in a Ray worker (unit tests): never start a Ray here
                raise RuntimeError("not in Ray")
            ctx = ray.get_runtime_context()
            node_id, ip = ctx.get_node_id(), ray.util.get_node_ip_address()
            gpus = [str(g) for g in ray.get_gpu_ids()]
        except Exception:  # not in Ray (unit tests)
            pass
        return {"name": self.name, "pid": os.getpid(), "host": socket.gethostname(), "node_id": node_id, "ip": ip,
                "gpus": gpus, "held": sorted(self.held), "builds": int(getattr(process_cache(), "builds", 0)),
                "jobs_done": self.jobs_done}

    def run(self, job: dict[str, Any], uploads: dict[str, dict[str, Any]], model_key: str | None = None) -> dict[str, Any]:
        """Run one claimed job (as JSON) to its end; returns the outcome the server records."""
        from .worker import _output_to, run_job

        the_job = Job.from_json(job)
        recorder = JobRecorder(the_job, {k: UploadRecord(**v) for k, v in uploads.items()})
        with self._lock:
            self.current = recorder
        cache = process_cache()
        before, builds_before = loaded_base_model(cache), getattr(cache, "builds", 0)
        folder = self.settings.jobs_dir / the_job.id
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        try:
            with _output_to(folder / "log.txt"):
                run_job(recorder, self.settings, the_job)  # type: ignore[arg-type] - the recorder is its store here
        finally:
            with self._lock:
                self.current = None
        self.jobs_done += 1
        after = loaded_base_model(cache)
        if after is None:
            self.held.clear()
        elif after != before or getattr(cache, "builds", 0) != builds_before:
            self.held = {after} | ({model_key} if model_key else set())  # a new model: the old one is gone
        elif model_key and the_job.kind in CACHED_KINDS and recorder.outcome and recorder.outcome["state"] == "succeeded":
            self.held.add(model_key)  # the same model under the name this job gave it
        outcome = dict(recorder.outcome or {"state": JobState.FAILED.value, "error": "internal error: no outcome"})
        outcome.update(events=recorder.drain(), seconds=time.monotonic() - t0, held=sorted(self.held),
                       builds=int(getattr(cache, "builds", 0)), loaded=after)
        return outcome

    def drain(self) -> list[dict[str, Any]]:
        """Progress events stored since the last call (the server writes them to the job database)."""
        with self._lock:
            current = self.current
        return current.drain() if current is not None else []

    def cancel(self, job_id: str) -> bool:
        return self._flag(job_id, "cancel")

    def interrupt(self, job_id: str) -> bool:
        """The server is stopping: end the job at its next step and hand it back (re-queued)."""
        return self._flag(job_id, "interrupt")

    def _flag(self, job_id: str, name: str) -> bool:
        with self._lock:
            current = self.current
        if current is None or current.job.id != job_id:
            return False
        setattr(current, name, True)
        return True

