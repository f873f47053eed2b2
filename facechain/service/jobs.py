"""The job model every door shares: the REST API, the Python client, the web UI and batch runs.

A job is one call of a public facechain function (its *kind*: ``train``, ``generate``, ...) with
JSON parameters named like that function's keywords. It moves through

    queued -> running -> succeeded | failed | cancelled
       ^         |
       +---------+  (re-queued when the process running it died: server restart, lost worker)

and records its progress (0-1 and a message, from :mod:`facechain.progress` events), timestamps,
how many times it was started (``attempts``), the one-line error the CLI would print, and its
result (the files it wrote, plus kind-specific facts such as the identity's name).
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field
from typing import Any


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


def now() -> float:
    """Timestamps are seconds since the epoch (UTC), stored as floats; clients format them."""
    return time.time()


@dataclass
class Job:
    """One unit of work. ``result`` is set when it succeeded: ``{"files": [...], ...}``."""

    id: str
    kind: str
    params: dict[str, Any]
    state: JobState = JobState.QUEUED
    progress: float = 0.0
    message: str = ""
    created: float = field(default_factory=now)
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    error: str | None = None
    result: dict[str, Any] | None = None
    cancel_requested: bool = False
    after: list[str] = field(default_factory=list)  # jobs that must succeed first (generate after train)
    idempotency_key: str | None = None

    @property
    def files(self) -> list[str]:
        return list((self.result or {}).get("files", []))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "params": self.params, "state": self.state.value,
            "progress": round(self.progress, 4), "message": self.message, "created": self.created,
            "started": self.started, "finished": self.finished, "attempts": self.attempts, "error": self.error,
            "result": self.result, "files": self.files, "cancel_requested": self.cancel_requested,
            "after": list(self.after),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Job":
        return cls(id=d["id"], kind=d["kind"], params=dict(d.get("params") or {}), state=JobState(d["state"]),
                   progress=float(d.get("progress") or 0.0), message=d.get("message") or "",
                   created=float(d.get("created") or 0.0), started=d.get("started"), finished=d.get("finished"),
                   attempts=int(d.get("attempts") or 0), error=d.get("error"), result=d.get("result"),
                   cancel_requested=bool(d.get("cancel_requested")), after=list(d.get("after") or []))


@dataclass(frozen=True)
class JobEvent:
    """One stored progress event of a job (what ``GET /v1/jobs/{id}/events`` streams), numbered per job."""

    job_id: str
    seq: int
    time: float
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, **self.data}

    def sse(self) -> str:
        """The event in server-sent-events framing (``id`` lets a client resume with ``Last-Event-ID``)."""
        return f"id: {self.seq}\nevent: {self.data.get('type', 'progress')}\ndata: {json.dumps(self.to_json())}\n\n"
