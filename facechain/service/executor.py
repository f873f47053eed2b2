"""Executors take queued jobs from the store and run them; :class:`LocalExecutor` is the default.

The :class:`Executor` protocol is all the app knows, so a cluster executor (Ray, issue 15) can
replace the local one: it must claim jobs through :meth:`JobStore.claim_next` (so a job runs once),
run them with :func:`facechain.service.worker.run_job` where the work happens, and re-queue the jobs
of a worker it lost.

``LocalExecutor`` keeps one *slot* per device: a thread that claims one job at a time and hands it
to its own worker process. GPU-kind jobs (train, generate, ...) therefore run one at a time per
device, while a CPU slot runs CPU-only kinds (prepare) beside them. A worker process that dies
fails its job (crash, out of memory) and is replaced; a job that ignores its cancel for
``cancel_grace_s`` has its worker killed. On a clean stop, running jobs get SIGINT (training saves a
checkpoint) and go back to the queue.

Each server instance holds ``instances/<id>.lock`` (``flock``) while it lives; a running job whose
owner's lock can be taken belongs to a dead server and is re-queued (at start-up and periodically),
which is how a ``kill -9``'d server's training continues from its checkpoint after a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .jobs import Job, JobState
from .kinds import all_kinds
from .settings import ServiceSettings
from .store import JobStore

log = logging.getLogger(__name__)

_POLL_S = 0.5  # how often an idle slot looks for work without being woken
_RECOVER_EVERY_S = 15.0
_STOP_GRACE_S = 15.0


class Executor(Protocol):
    """What the app needs from whatever runs jobs."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wake(self) -> None:
        """A job was queued (or a prerequisite finished): look for work now."""

    def cancel(self, job_id: str) -> None:
        """The store already marks the job; stop it soon (the local executor enforces a deadline)."""

    def describe(self) -> list[dict[str, Any]]:
        """One row per worker for ``GET /v1/health``."""


class InstanceLock:
    """``instances/<id>.lock`` held for this server's life: how other instances tell it is alive."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.id = "srv_" + secrets.token_hex(6)
        self._fd = os.open(self.folder / f"{self.id}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def alive(self, owner: str) -> bool:
        if owner == self.id:
            return True
        path = self.folder / f"{owner}.lock"
        if not owner.startswith("srv_") or not path.exists():
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)  # its owner is gone for good
        return False

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        (self.folder / f"{self.id}.lock").unlink(missing_ok=True)


@dataclass
class _Running:
    job: Job
    since: float
    cancel_seen: float | None = None


class WorkerProcess:
    """One ``python -m facechain.service.worker`` child and its line protocol."""

    def __init__(self, settings: ServiceSettings, env: dict[str, str]):
        limits = {"max_upload_bytes": settings.max_upload_bytes, "max_upload_pixels": settings.max_upload_pixels}
        cmd = [sys.executable, "-m", "facechain.service.worker", "--root", str(settings.root),
               "--parent", str(os.getpid()), "--settings", json.dumps(limits)]
        # its own session: a Ctrl-C in the server's terminal reaches the server only; it stops workers itself
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True)
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message, None on timeout; raises EOFError when the process is gone."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def kill(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        return self.proc.wait()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


def _exit_description(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


class Slot(threading.Thread):
    """One device's queue consumer: claims a job, runs it in its worker process, repeats."""

    def __init__(self, executor: "LocalExecutor", name: str, kinds: set[str], env: dict[str, str]):
        super().__init__(name=f"facechain-slot-{name}", daemon=True)
        self.executor, self.slot_name, self.kinds, self.env = executor, name, kinds, env
        self.worker: WorkerProcess | None = None
        self.running: _Running | None = None
        self.jobs_done = 0

    # the thread that starts a worker must outlive it (PR_SET_PDEATHSIG follows the creating thread)
    def run(self) -> None:
        ex = self.executor
        while not ex.stopping.is_set():
            ex.wakeup.clear()  # before claiming: a wake-up that comes after this is not lost
            job = ex.store.claim_next(ex.lock.id, self.kinds)
            if job is None:
                ex.wakeup.wait(_POLL_S)
                ex.maybe_recover()
                continue
            try:
                self._run(job)
            except Exception:  # never let one job's trouble stop the slot
                log.exception("slot %s: job %s", self.slot_name, job.id)
                ex.store.finish(job.id, JobState.FAILED, error="internal error in the executor (see the server log)")
            self.jobs_done += 1
            ex.wake()  # dependants of this job may be runnable now
        self._shutdown()

    def _ensure_worker(self) -> WorkerProcess:
        if self.worker is None or self.worker.proc.poll() is not None:
            self.worker = WorkerProcess(self.executor.settings, self.env)
            hello = self.worker.receive(timeout=120)
            if not hello or "ready" not in hello:
                raise RuntimeError("worker process did not start")
        return self.worker

    def _run(self, job: Job) -> None:
        ex = self.executor
        self.running = _Running(job, time.monotonic())
        try:
            worker = self._ensure_worker()
            worker.send({"job": job.id})
            while True:
                try:
                    message = worker.receive(timeout=_POLL_S)
                except EOFError:
                    self._worker_died(job)
                    return
                if message is not None and message.get("done") == job.id:
                    return
                if ex.stopping.is_set():
                    self._interrupt(job)
                    return
                if self._enforce_cancel(job):
                    return
        finally:
            self.running = None

    def _worker_died(self, job: Job) -> None:
        assert self.worker is not None
        code = self.worker.kill()
        self.worker = None
        if self.executor.stopping.is_set():
            self.executor.store.requeue(job.id, "re-queued: the server stopped while it ran")
        elif self.executor.store.cancel_requested(job.id):
            self.executor.store.finish(job.id, JobState.CANCELLED)
        else:
            self.executor.store.finish(job.id, JobState.FAILED,
                                       error=f"the worker process running this job died ({_exit_description(code)})")

    def _enforce_cancel(self, job: Job) -> bool:
        """Kill the worker of a job that ignored its cancel too long; True when it did."""
        running = self.running
        if running is None or not self.executor.store.cancel_requested(job.id):
            return False
        t = time.monotonic()
        if running.cancel_seen is None:
            running.cancel_seen = t
        elif t - running.cancel_seen > self.executor.settings.cancel_grace_s and self.worker is not None:
            log.warning("job %s ignored its cancel for %.0f s: killing its worker", job.id, t - running.cancel_seen)
            self.worker.kill()
            self.worker = None
            self.executor.store.finish(job.id, JobState.CANCELLED)
            return True
        return False

    def _interrupt(self, job: Job) -> None:
        """Server stopping: SIGINT lets training save a checkpoint; the job goes back to the queue."""
        worker = self.worker
        if worker is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGINT)
        deadline = time.monotonic() + _STOP_GRACE_S
        with contextlib.suppress(EOFError):
            while time.monotonic() < deadline:
                message = worker.receive(timeout=0.5)
                if message is not None and message.get("done") == job.id:
                    break
        worker.kill()
        self.worker = None
        self.executor.store.requeue(job.id, "re-queued: the server stopped while it ran")

    def _shutdown(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def describe(self) -> dict[str, Any]:
        running = self.running
        return {"slot": self.slot_name, "kinds": sorted(self.kinds), "pid": self.worker.pid if self.worker else None,
                "job": running.job.id if running else None, "jobs_done": self.jobs_done}


class LocalExecutor:
    """Jobs in worker processes on this machine: ``workers`` GPU-kind slots plus ``cpu_workers`` CPU slots."""

    def __init__(self, settings: ServiceSettings, store: JobStore):
        self.settings, self.store = settings, store
        self.stopping = threading.Event()
        self.wakeup = threading.Event()
        self.lock: InstanceLock | None = None
        self.slots: list[Slot] = []
        self._recovered_at = 0.0

    def start(self) -> None:
        self.lock = InstanceLock(self.settings.root / "instances")
        self.maybe_recover(force=True)
        kinds = all_kinds()
        cpu_kinds = {k.name for k in kinds.values() if k.device == "cpu"}
        cpu_slots = self.settings.cpu_workers if cpu_kinds else 0
        gpu_kinds = {k.name for k in kinds.values() if k.device == "gpu" or not cpu_slots}
        devices = _device_list(self.settings.workers)
        for i in range(self.settings.workers):
            env = dict(os.environ)
            if devices is not None:
                env["CUDA_VISIBLE_DEVICES"] = devices[i % len(devices)]
            self.slots.append(Slot(self, f"gpu{i}", gpu_kinds, env))
        for i in range(cpu_slots):
            self.slots.append(Slot(self, f"cpu{i}", cpu_kinds, dict(os.environ, CUDA_VISIBLE_DEVICES="")))
        for slot in self.slots:
            slot.start()

    def maybe_recover(self, force: bool = False) -> None:
        t = time.monotonic()
        if self.lock is None or not (force or t - self._recovered_at > _RECOVER_EVERY_S):
            return
        self._recovered_at = t
        requeued = self.store.recover(self.lock.alive)
        if requeued:
            log.warning("re-queued %d job(s) of a stopped server: %s", len(requeued), ", ".join(requeued))
            self.wake()

    def wake(self) -> None:
        self.wakeup.set()

    def cancel(self, job_id: str) -> None:
        self.wake()  # slots check the store's cancel flag while they wait on their worker

    def stop(self) -> None:
        self.stopping.set()
        self.wake()
        for slot in self.slots:
            slot.join(timeout=_STOP_GRACE_S + 15)
        if self.lock is not None:
            self.lock.release()

    def describe(self) -> list[dict[str, Any]]:
        return [slot.describe() for slot in self.slots]


def _device_list(workers: int) -> list[str] | None:
    """GPU per slot: the i-th of CUDA_VISIBLE_DEVICES (or device i) when there are several slots."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [d.strip() for d in visible.split(",") if d.strip()] or None
    return [str(i) for i in range(workers)] if workers > 1 else None


def make_executor(settings: ServiceSettings, store: JobStore) -> Executor:
    """The executor ``settings.executor`` names: ``local`` (default) or ``ray`` (needs the ray extra)."""
    if settings.executor == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(settings, store)
    return LocalExecutor(settings, store)
