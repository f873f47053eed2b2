"""The durable job queue: one SQLite file in WAL mode under ``$FACECHAIN_HOME/service/``.

Why SQLite: it ships with Python, survives ``kill -9`` (every change is a committed transaction),
and WAL mode lets the server's threads and the worker processes read while one of them writes.
Every state change is a single guarded ``UPDATE`` (``... WHERE state = 'running'``), so a finished
job can never be rewritten, and claiming work happens inside ``BEGIN IMMEDIATE`` so two
executors never take the same job.

Each thread gets its own connection (sqlite3 connections must not be shared across threads).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import ServiceError
from .jobs import Job, JobEvent, JobState, now

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    after TEXT NOT NULL DEFAULT '[]',
    idempotency_key TEXT UNIQUE,
    fingerprint TEXT NOT NULL DEFAULT '',
    claim TEXT,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created);
-- a resource (an identity's name, a style LoRA's name) may be claimed by one unfinished job only
CREATE UNIQUE INDEX IF NOT EXISTS jobs_claim ON jobs(claim) WHERE claim IS NOT NULL AND state IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    format TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created REAL NOT NULL
);
"""

_JOB_COLUMNS = ("id, kind, params, state, progress, message, created, started, finished, attempts, error, result, "
                "cancel_requested, after, idempotency_key")


def fingerprint(kind: str, params: dict[str, Any]) -> str:
    """What a request asked for, to tell a retried submission from a different one with the same key."""
    return hashlib.sha256(json.dumps([kind, params], sort_keys=True).encode()).hexdigest()


def new_job_id() -> str:
    return "job_" + secrets.token_hex(8)


def _row_to_job(row: sqlite3.Row) -> Job:
    return Job(id=row["id"], kind=row["kind"], params=json.loads(row["params"]), state=JobState(row["state"]),
               progress=row["progress"], message=row["message"], created=row["created"], started=row["started"],
               finished=row["finished"], attempts=row["attempts"], error=row["error"],
               result=json.loads(row["result"]) if row["result"] else None,
               cancel_requested=bool(row["cancel_requested"]), after=json.loads(row["after"]),
               idempotency_key=row["idempotency_key"])


@dataclass(frozen=True)
class UploadRecord:
    id: str  # sha256 of the bytes
    filename: str  # the client's name, sanitised; display only, never a path
    format: str
    width: int
    height: int
    bytes: int
    created: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class JobStore:
    """Jobs, their progress events and the upload index, in ``<folder>/jobs.sqlite3``."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "jobs.sqlite3"
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)  # idempotent: every process may open a fresh or existing store

    # -- connections and transactions ---------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a job state acknowledged to a client survives power loss
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock at once (no upgrade deadlocks between processes)."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- jobs --------------------------------------------------------------------------------------
    def create(self, kind: str, params: dict[str, Any], *, idempotency_key: str | None = None,
               request_fingerprint: str | None = None, claim: str | None = None,
               after: Iterable[str] = ()) -> tuple[Job, bool]:
        """Queue a job; returns ``(job, created)``.

        A known ``idempotency_key`` returns its job unchanged (``created`` False) when the request's
        fingerprint (default: of ``kind`` and ``params``) matches, else raises 422 (as the IETF
        Idempotency-Key draft says for a key reused with another payload).
        """
        fp = request_fingerprint or fingerprint(kind, params)
        with self._tx() as db:
            if idempotency_key is not None:
                found = self._by_key(db, idempotency_key, fp)
                if found is not None:
                    return found, False
            if claim is not None:
                other = db.execute("SELECT id FROM jobs WHERE claim = ? AND state IN ('queued', 'running')",
                                   (claim,)).fetchone()
                if other is not None:
                    what, _, name = claim.partition(":")
                    raise ServiceError(409, f"{what} '{name}' is already being made by job {other['id']}")
            job = Job(id=new_job_id(), kind=kind, params=params, after=list(after), idempotency_key=idempotency_key)
            db.execute("INSERT INTO jobs (id, kind, params, state, created, after, idempotency_key, fingerprint, claim) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job.id, kind, json.dumps(params), job.state.value, job.created, json.dumps(job.after),
                        idempotency_key, fp, claim))
        return job, True

    @staticmethod
    def _by_key(db: sqlite3.Connection, key: str, fp: str) -> Job | None:
        row = db.execute(f"SELECT {_JOB_COLUMNS}, fingerprint FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        if row is None:
            return None
        if row["fingerprint"] != fp:
            raise ServiceError(422, f"Idempotency-Key '{key}' was used for a different request (job {row['id']}); "
                                    "use a new key")
        return _row_to_job(row)

    def find_by_key(self, key: str, request_fingerprint: str) -> Job | None:
        """The job an earlier request with this Idempotency-Key created (422 if it asked for something else)."""
        return self._by_key(self._conn(), key, request_fingerprint)

    def get(self, job_id: str) -> Job | None:
        row = self._conn().execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _row_to_job(row)

    def require(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise ServiceError(404, f"no job with id '{job_id}'")
        return job

    def list(self, state: JobState | None = None, kind: str | None = None, limit: int = 100) -> list[Job]:
        where, args = [], []
        if state is not None:
            where.append("state = ?")
            args.append(state.value)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs {'WHERE ' + ' AND '.join(where) if where else ''} " \
              "ORDER BY created DESC LIMIT ?"
        return [_row_to_job(r) for r in self._conn().execute(sql, (*args, limit))]

    def pending_claim(self, claim: str) -> str | None:
        """The unfinished job that claimed ``claim`` (e.g. ``identity:alice``), if any."""
        row = self._conn().execute("SELECT id FROM jobs WHERE claim = ? AND state IN ('queued', 'running')",
                                   (claim,)).fetchone()
        return None if row is None else row["id"]

    def counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {s.value: 0 for s in JobState} | {r["state"]: r["n"] for r in rows}

    def claim_next(self, owner: str, kinds: Iterable[str] | None = None,
                   prefer: Callable[[Job], float] | None = None) -> Job | None:
        """Take the oldest queued job (of ``kinds``) whose prerequisites succeeded; mark it running.

        With ``prefer``, the runnable job it scores highest is taken instead (ties: the oldest; a job
        scored ``-inf`` is left for another claimant); the Ray executor uses it to give a warm worker
        the jobs for the base model it already holds.
        A job whose prerequisite failed or was cancelled fails here, with the reason.
        """
        allowed = None if kinds is None else set(kinds)
        with self._tx() as db:
            rows = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'queued' ORDER BY created LIMIT 200")
            chosen: Job | None = None
            best = float("-inf")
            for job in map(_row_to_job, rows.fetchall()):
                if allowed is not None and job.kind not in allowed:
                    continue
                blocked, broken = False, None
                for dep in job.after:
                    r = db.execute("SELECT state FROM jobs WHERE id = ?", (dep,)).fetchone()
                    dep_state = None if r is None else JobState(r["state"])
                    if dep_state is JobState.SUCCEEDED:
                        continue
                    if dep_state is None or dep_state.finished:
                        broken = f"job {dep} it waits for {'is unknown' if dep_state is None else dep_state.value}"
                        break
                    blocked = True
                if broken is not None:
                    db.execute("UPDATE jobs SET state = 'failed', error = ?, finished = ? WHERE id = ?",
                               (f"not run: {broken}", now(), job.id))
                    continue
                if blocked:
                    continue
                if prefer is None:
                    chosen = job
                    break
                score = prefer(job)
                if score > best:
                    chosen, best = job, score
            if chosen is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, started = ?, owner = ?, "
                       "message = ? WHERE id = ? AND state = 'queued'",
                       (now(), owner, "starting", chosen.id))
            chosen.state, chosen.attempts, chosen.message = JobState.RUNNING, chosen.attempts + 1, "starting"
            return chosen

    def finish(self, job_id: str, state: JobState, *, error: str | None = None,
               result: dict[str, Any] | None = None) -> bool:
        """End a running job; False if it was not running (a finished job is never rewritten)."""
        assert state.finished
        progress = 1.0 if state is JobState.SUCCEEDED else None
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET state = ?, error = ?, result = ?, finished = ?, owner = NULL, "
                             "progress = COALESCE(?, progress), message = ? WHERE id = ? AND state = 'running'",
                             (state.value, error, json.dumps(result) if result is not None else None, now(), progress,
                              state.value if error is None else error, job_id))
            if cur.rowcount:
                self._append_event(db, job_id, {"type": "state", "state": state.value, "error": error})
            return bool(cur.rowcount)

    def requeue(self, job_id: str, reason: str) -> bool:
        """Put a running job back in the queue (its process is gone); a cancel request ends it instead."""
        with self._tx() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ? AND state = 'running'", (job_id,)).fetchone()
            if row is None:
                return False
            if row["cancel_requested"]:
                db.execute("UPDATE jobs SET state = 'cancelled', finished = ?, owner = NULL, message = 'cancelled' "
                           "WHERE id = ?", (now(), job_id))
                self._append_event(db, job_id, {"type": "state", "state": "cancelled", "error": None})
                return False
            db.execute("UPDATE jobs SET state = 'queued', owner = NULL, message = ? WHERE id = ?", (reason, job_id))
            self._append_event(db, job_id, {"type": "state", "state": "queued", "error": None, "message": reason})
            return True

    def recover(self, owner_alive: Callable[[str], bool]) -> list[str]:
        """Re-queue the running jobs whose owner (a server instance) is gone; returns their ids."""
        rows = self._conn().execute("SELECT id, owner FROM jobs WHERE state = 'running'").fetchall()
        return [r["id"] for r in rows if not owner_alive(r["owner"] or "")
                and self.requeue(r["id"], "re-queued: the server running it stopped")]

    def request_cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; ask a running one to stop at its next progress step."""
        with self._tx() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise ServiceError(404, f"no job with id '{job_id}'")
            state = JobState(row["state"])
            if state.finished:
                raise ServiceError(409, f"job {job_id} already {state.value}; nothing to cancel")
            if state is JobState.QUEUED:
                db.execute("UPDATE jobs SET state = 'cancelled', finished = ?, cancel_requested = 1, message = 'cancelled' "
                           "WHERE id = ?", (now(), job_id))
                self._append_event(db, job_id, {"type": "state", "state": "cancelled", "error": None})
            else:
                db.execute("UPDATE jobs SET cancel_requested = 1, message = 'cancelling' WHERE id = ?", (job_id,))
        return self.require(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        row = self._conn().execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    # -- progress events -------------------------------------------------------------------------
    @staticmethod
    def _append_event(db: sqlite3.Connection, job_id: str, data: dict[str, Any]) -> int:
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = ?", (job_id,)).fetchone()[0]
        db.execute("INSERT INTO events (job_id, seq, time, data) VALUES (?, ?, ?, ?)",
                   (job_id, seq, now(), json.dumps(data)))
        return seq

    def add_progress(self, job_id: str, data: dict[str, Any], progress: float | None, message: str) -> None:
        """Store one progress event and the job's overall progress (only while it runs)."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET progress = MAX(progress, COALESCE(?, progress)), message = ? "
                             "WHERE id = ? AND state = 'running'", (progress, message, job_id))
            if cur.rowcount:
                self._append_event(db, job_id, {"type": "progress", **data, "job_progress": progress,
                                                 "job_message": message})

    def add_event(self, job_id: str, data: dict[str, Any], message: str | None = None) -> None:
        """Store an event of the executor about a job (``{"type": "attempt", ...}``), optionally as its message."""
        with self._tx() as db:
            if message is not None:
                db.execute("UPDATE jobs SET message = ? WHERE id = ?", (message, job_id))
            self._append_event(db, job_id, data)

    def events(self, job_id: str, after_seq: int = 0, limit: int = 500) -> list[JobEvent]:
        rows = self._conn().execute("SELECT seq, time, data FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                                    (job_id, after_seq, limit))
        return [JobEvent(job_id, r["seq"], r["time"], json.loads(r["data"])) for r in rows]

    # -- uploads ---------------------------------------------------------------------------------
    def add_upload(self, rec: UploadRecord) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO uploads (id, filename, format, width, height, bytes, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (rec.id, rec.filename, rec.format, rec.width, rec.height, rec.bytes, rec.created))

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = self._conn().execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        return None if row is None else UploadRecord(**{k: row[k] for k in row.keys()})
