"""Run a batch plan as service jobs, on the local executor or a Ray cluster, and summarise it.

A plan becomes ordinary jobs in the service's queue (``$FACECHAIN_HOME/service``): each person's
train job first, their portraits after it (the queue's own dependencies), so the same executor,
retries and records serve a batch and the REST API alike. Each job carries an idempotency key
made of the plan's name, the person, the item and a hash of its parameters, so a rerun of the
same plan finds what already succeeded and submits only what is missing or failed; an identity
that already exists is never trained again. One person's failure (no usable photo, an unknown
style) is recorded in their summary and the others go on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import progress
from ..atomic import atomic_write_text
from ..errors import FacechainError
from ..service.errors import ServiceError
from ..service.executor import Executor, make_executor
from ..service.jobs import Job, JobState
from ..service.kinds import ValidationContext, get_kind, validate
from ..service.settings import ServiceSettings
from ..service.store import JobStore, fingerprint
from ..service.uploads import UploadStore
from .plan import BatchPlan, Item, load_plan

SUMMARY = "summary.json"


@dataclass
class ItemOutcome:
    """Where one plan item stands: its job (if any), its state and what it made."""

    person: str
    key: str
    kind: str
    job_id: str | None = None
    state: str = "pending"  # a job state, or "skipped" (already there), "error" (not submitted)
    error: str | None = None
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        shown = {k: v for k, v in (self.result or {}).items() if not k.startswith("_")}
        return {"item": self.key, "kind": self.kind, "job": self.job_id, "state": self.state, "error": self.error,
                "result": shown or None}


@dataclass
class PersonSummary:
    name: str
    identity: str | None = None
    trigger_word: str | None = None
    accepted_photos: int | None = None
    rejected_photos: list[dict[str, Any]] = field(default_factory=list)
    portraits: list[str] = field(default_factory=list)  # files under the batch output folder
    best_similarity: float | None = None
    errors: list[str] = field(default_factory=list)
    items: list[ItemOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "identity": self.identity, "trigger_word": self.trigger_word,
                "accepted_photos": self.accepted_photos, "rejected_photos": self.rejected_photos,
                "portraits": self.portraits, "best_similarity": self.best_similarity, "errors": self.errors,
                "items": [i.to_json() for i in self.items]}


@dataclass
class BatchSummary:
    plan: str
    output: Path
    people: list[PersonSummary]
    seconds: float = 0.0

    @property
    def failed(self) -> list[str]:
        return [p.name for p in self.people if not p.ok]

    def to_json(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for p in self.people:
            for i in p.items:
                states[i.state] = states.get(i.state, 0) + 1
        return {"plan": self.plan, "output": str(self.output), "seconds": round(self.seconds, 1), "jobs": states,
                "failed_people": self.failed, "people": [p.to_json() for p in self.people]}

    def summary(self) -> str:
        """What ``facechain batch`` prints: one line per person (portraits, best similarity, errors)."""
        lines = []
        for person in self.people:
            best = "" if person.best_similarity is None else f", best similarity {person.best_similarity:.3f}"
            status = "ok" if person.ok else f"{len(person.errors)} error(s)"
            lines.append(f"{person.name}: {len(person.portraits)} portrait(s){best} - {status}")
            lines.extend(f"  {error}" for error in person.errors)
        lines.append(f"summary: {self.output / SUMMARY}")
        return "\n".join(lines)


def item_key(plan: BatchPlan, item: Item, params: dict[str, Any]) -> str:
    """The idempotency key of an item: same plan, person, item and parameters -> same key."""
    digest = hashlib.sha256(fingerprint(item.kind, params).encode()).hexdigest()[:12]
    return f"batch:{plan.name}:{item.person}:{item.key}:{digest}"


class BatchRun:
    """Submits a plan's items as jobs, follows them to the end, and writes the summary."""

    def __init__(self, plan: BatchPlan, store: JobStore, uploads: UploadStore, settings: ServiceSettings):
        self.plan, self.store, self.uploads, self.settings = plan, store, uploads, settings
        self.ctx = ValidationContext(store, uploads, settings)
        self.outcomes: list[ItemOutcome] = []

    # -- submission --------------------------------------------------------------------------------
    def submit_all(self) -> list[ItemOutcome]:
        """Queue what is missing; trains first so portraits can wait for them."""
        items = sorted(self.plan.items, key=lambda it: it.kind != "train")
        failed_train: set[str] = set()
        for item in items:
            outcome = ItemOutcome(item.person, item.key, item.kind)
            self.outcomes.append(outcome)
            if item.person in failed_train:
                outcome.state, outcome.error = "error", "not run: this person's training could not be submitted"
                continue
            try:
                self._submit(item, outcome)
            except (ServiceError, FacechainError) as e:
                outcome.state, outcome.error = "error", f"{item.key}: {_message(e)}"
                if item.kind == "train":
                    failed_train.add(item.person)
        order = {id(o): i for i, o in enumerate(self.outcomes)}
        self.outcomes.sort(key=lambda o: (self._person_index(o.person), order[id(o)]))
        return self.outcomes

    def _person_index(self, name: str) -> int:
        return next(i for i, p in enumerate(self.plan.people) if p.name == name)

    def _submit(self, item: Item, outcome: ItemOutcome) -> None:
        from ..identity import MANIFEST
        from ..paths import identities_dir

        params = dict(item.params)
        roles = get_kind(item.kind).roles
        for param, files in item.files.items():
            ids = [self._upload(f) for f in files]
            params[param] = ids[0] if roles.get(param) == "upload" else ids
        key = item_key(self.plan, item, params)
        job = self._latest(key, params, item.kind)
        if job is not None and job.state not in (JobState.FAILED, JobState.CANCELLED):
            outcome.job_id, outcome.state, outcome.result = job.id, job.state.value, job.result
            return
        if item.kind == "train" and (identities_dir() / item.person / MANIFEST).is_file():
            outcome.state = "skipped"  # trained earlier (by this plan or by hand): never again
            outcome.result = {"identity": item.person}
            return
        attempt = 1 if job is None else self._attempt_of(job) + 1
        fresh_key = key if attempt == 1 else f"{key}#{attempt}"
        fp = fingerprint(item.kind, params)
        kind, sub = validate(item.kind, params, self.ctx)
        created, _ = self.store.create(kind.name, sub.params, idempotency_key=fresh_key, request_fingerprint=fp,
                                       claim=sub.claim, after=sub.after)
        outcome.job_id, outcome.state = created.id, created.state.value

    def _latest(self, key: str, params: dict[str, Any], kind: str) -> Job | None:
        """The newest job an earlier run made for this item (keys ``key``, ``key#2``, ...)."""
        fp = fingerprint(kind, params)
        found, n = None, 1
        while True:
            job = self.store.find_by_key(key if n == 1 else f"{key}#{n}", fp)
            if job is None:
                return found
            found, n = job, n + 1

    @staticmethod
    def _attempt_of(job: Job) -> int:
        key = job.idempotency_key or ""
        return int(key.rsplit("#", 1)[1]) if "#" in key else 1

    def _upload(self, path: Path) -> str:
        try:
            with open(path, "rb") as f:
                return self.uploads.save(f, path.name).id
        except ServiceError as e:
            raise FacechainError(f"{path}: {e.message}") from None
        except OSError as e:
            raise FacechainError(f"{path}: cannot read it ({e.strerror or e})") from None

    # -- following -----------------------------------------------------------------------------------
    def wait(self, executor: Executor, poll_s: float = 0.5) -> None:
        """Until every submitted job has finished; overall progress as one task ("batch", jobs)."""
        running = [o for o in self.outcomes if o.job_id is not None]
        done = {o.job_id for o in running if JobState(o.state).finished} if running else set()
        with progress.task("batch", total=len(self.outcomes), unit="job") as bar:
            bar.update(len(self.outcomes) - len(running) + len(done), message="submitted")
            while len(done) < len(running):
                executor.wake()
                for o in running:
                    if o.job_id in done:
                        continue
                    job = self.store.get(o.job_id)
                    if job is None or not job.state.finished:
                        continue
                    done.add(o.job_id)
                    o.state, o.error, o.result = job.state.value, job.error, job.result
                    line = f"{o.person}: {o.key} {job.state.value}" + (f": {job.error}" if job.error else "")
                    bar.update(1, message=line)
                time.sleep(poll_s)
        for o in running:  # the final word for those that were finished before we looked
            job = self.store.get(o.job_id)
            if job is not None:
                o.state, o.error, o.result = job.state.value, job.error, job.result

    # -- summary ---------------------------------------------------------------------------------------
    def summarise(self, seconds: float) -> BatchSummary:
        people = []
        for person in self.plan.people:
            summary = PersonSummary(person.name)
            summary.items = [o for o in self.outcomes if o.person == person.name]
            if any(i.kind == "train" or "person" in i.params for i in person.items):
                self._identity_facts(summary)
            sims = []
            for o in summary.items:
                if o.error:
                    summary.errors.append(o.error if o.error.startswith(o.key) else f"{o.key}: {o.error}")
                elif o.state not in ("succeeded", "skipped"):
                    summary.errors.append(f"{o.key}: {o.state}")
                if o.state == "succeeded" and o.kind in ("generate", "inpaint"):
                    summary.portraits += self._collect(o, person.name)
                    best = (o.result or {}).get("best_similarity")
                    if best is not None:
                        sims.append(float(best))
            summary.best_similarity = max(sims) if sims else None
            people.append(summary)
        return BatchSummary(self.plan.name, self.plan.output, people, seconds)

    def _identity_facts(self, summary: PersonSummary) -> None:
        from ..identity import MANIFEST
        from ..paths import identities_dir

        folder = identities_dir() / summary.name
        if not (folder / MANIFEST).is_file():
            return
        manifest = json.loads((folder / MANIFEST).read_text())
        summary.identity, summary.trigger_word = summary.name, manifest.get("trigger_word")
        report = folder / "dataset" / "report.json"
        if report.is_file():
            data = json.loads(report.read_text())
            summary.accepted_photos = len(data.get("accepted", []))
            summary.rejected_photos = [{"photo": Path(str(r.get("source", ""))).name, "reason": r.get("reason")}
                                       for r in data.get("rejected", [])]

    def _collect(self, outcome: ItemOutcome, person: str) -> list[str]:
        """Link (or copy) a job's images into ``<output>/<person>/<item>/``; their names relative to the output."""
        result = outcome.result or {}
        folder = Path(result.get("_folder", ""))
        names = result.get("portraits") or []
        dest = self.plan.output / person / outcome.key.replace(":", "-")
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for name in names:
            if not name:
                continue
            src, target = folder / name, dest / Path(name).name
            if not src.is_file():
                continue
            if not target.exists():
                try:
                    os.link(src, target)
                except OSError:
                    shutil.copyfile(src, target)
            out.append(target.relative_to(self.plan.output).as_posix())
        return out


def write_summary(summary: BatchSummary) -> Path:
    """``<output>/summary.json`` and one ``<output>/<person>/summary.json`` each (atomic writes)."""
    summary.output.mkdir(parents=True, exist_ok=True)
    for person in summary.people:
        (summary.output / person.name).mkdir(exist_ok=True)
        atomic_write_text(summary.output / person.name / SUMMARY, json.dumps(person.to_json(), indent=2))
    path = summary.output / SUMMARY
    atomic_write_text(path, json.dumps(summary.to_json(), indent=2))
    return path


def run_batch(plan: str | Path | BatchPlan, *, executor: str | Executor = "local", output: str | Path | None = None,
              settings: ServiceSettings | None = None, poll_s: float = 0.5) -> BatchSummary:
    """Run ``plan`` to the end and write its summary; returns it (``summary.failed``: people with errors).

    The engine of :func:`facechain.batch` (which checks its keywords and makes ``settings``).
    ``executor``: ``"local"`` or ``"ray"`` (started from ``settings`` and stopped at the end), or an
    executor already running on the same store (it is then left running).
    """
    the_plan = plan if isinstance(plan, BatchPlan) else load_plan(plan)
    if output is not None:
        the_plan = BatchPlan(the_plan.name, the_plan.source, Path(output), the_plan.people)
    if settings is None:
        settings = ServiceSettings(executor=executor if isinstance(executor, str) else "local")
    store = JobStore(settings.root)
    uploads = UploadStore(store, settings.uploads_dir, max_bytes=settings.max_upload_bytes,
                          max_pixels=settings.max_upload_pixels)
    t0 = time.monotonic()
    run = BatchRun(the_plan, store, uploads, settings)
    own = isinstance(executor, str)
    runner = make_executor(settings, store) if own else executor
    if own:
        runner.start()  # first: an unreachable cluster stops the batch before anything is queued
    try:
        run.submit_all()
        run.wait(runner, poll_s)
    finally:
        if own:
            runner.stop()
    summary = run.summarise(time.monotonic() - t0)
    write_summary(summary)
    return summary


def _message(e: BaseException) -> str:
    return " ".join(str(getattr(e, "message", None) or e).split())
