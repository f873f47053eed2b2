"""The web UI's one door into the job service: uploads, job submission, job state and results.

Everything a button does goes through the running service's own :class:`~facechain.service.app.Service`
(the same ``submit_job`` the REST API calls, the same upload store, the same SQLite job store), so
a UI job is an API job: it shows in ``GET /v1/jobs``, survives a server restart, and nothing of a
pipeline runs in the UI. The desk only turns form values into job params and job records into
typed values the views render.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..errors import FacechainError
from ..service.errors import ServiceError
from ..service.jobs import Job, JobState

if TYPE_CHECKING:
    from ..service.app import Service

#: The UI names its fields with the shared option vocabulary (``facechain.options``, issue 11); a
#: verb that still spells an option the older way gets it under that name. The kind's accepted params
#: (read from the verb's signature by the service) decide, so nothing here guesses a verb's options.
PARAM_SPELLINGS: dict[str, tuple[str, ...]] = {
    "guidance_scale": ("guidance_scale", "guidance"),
    "size": ("size", "resolution"),
    "prompt": ("prompt", "style_prompt"),
}


class UIError(FacechainError):
    """Something a user did that the service refused: the one line the CLI would print."""


@dataclass(frozen=True)
class Uploaded:
    """The outcome of one upload form: ids of the accepted files, and each refused file with its reason."""

    ids: list[str]
    names: list[str]
    refused: list[str] = field(default_factory=list)  # "<file>: <reason>", the service's one line


@dataclass(frozen=True)
class RankedImage:
    """One result image of a job, best first."""

    path: Path
    name: str
    rank: int
    similarity: float | None
    params: dict[str, Any]


@dataclass(frozen=True)
class Person:
    name: str
    trigger_word: str
    base_model: str
    created: str | None
    template_face: Path | None


class JobDesk:
    """What the UI asks of the service. Thread-safe: the store opens one connection per thread."""

    def __init__(self, service: "Service"):
        self.service = service
        self.store = service.store

    # -- uploads -----------------------------------------------------------------------------------
    def upload(self, files: Iterable[str | Path] | None) -> Uploaded:
        """Store each file in the service's upload store; a refused file keeps its one-line reason."""
        ids, names, refused = [], [], []
        for f in files or []:
            path = Path(f)
            try:
                with path.open("rb") as stream:
                    rec = self.service.uploads.save(stream, path.name)
            except ServiceError as e:
                refused.append(e.message)
                continue
            ids.append(rec.id)
            names.append(rec.filename)
        return Uploaded(ids, names, refused)

    def upload_file(self, upload_id: str) -> Path | None:
        rec = self.store.get_upload(upload_id)
        return None if rec is None else self.service.uploads.file(rec)

    def upload_name(self, upload_id: str) -> str:
        rec = self.store.get_upload(upload_id)
        return upload_id[:12] if rec is None else rec.filename

    # -- jobs --------------------------------------------------------------------------------------
    def accepted_params(self, kind: str) -> set[str]:
        from ..service.kinds import get_kind

        return set(get_kind(kind).annotations())

    def job_params(self, kind: str, values: dict[str, Any]) -> dict[str, Any]:
        """Form values -> the kind's params: blanks dropped, shared option names spelled as the verb takes them."""
        accepted = self.accepted_params(kind)
        params: dict[str, Any] = {}
        for name, value in values.items():
            if value is None or value == "" or value == []:
                continue
            spelled = next((s for s in PARAM_SPELLINGS.get(name, (name,)) if s in accepted), name)
            params[spelled] = value
        return params

    def submit(self, kind: str, values: dict[str, Any]) -> Job:
        """Queue a job exactly as ``POST /v1/jobs`` does; :class:`UIError` carries the refusal's one line."""
        try:
            job, _ = self.service.submit_job(kind, self.job_params(kind, values))
        except ServiceError as e:
            raise UIError(e.message) from None
        return job

    def job(self, job_id: str | None) -> Job | None:
        return self.store.get(job_id) if job_id else None

    def jobs(self, limit: int = 200) -> list[Job]:
        return self.store.list(limit=limit)

    def cancel(self, job_id: str) -> Job:
        try:
            return self.service.cancel_job(job_id)
        except ServiceError as e:
            raise UIError(e.message) from None

    def file(self, job: Job, name: str) -> Path:
        """A result file of a succeeded job (the same check as ``GET /v1/jobs/{id}/files/{name}``)."""
        return self.service.job_file(job.id, name)

    def ranked_images(self, job: Job) -> list[RankedImage]:
        """A finished generate/inpaint job's images, most similar first, with their parameters."""
        if job.state is not JobState.SUCCEEDED:
            return []
        meta_by_file: dict[str, dict[str, Any]] = {}
        for summary in ("portraits.json", "inpaint.json"):
            if summary in job.files:
                data = json.loads(self.file(job, summary).read_text())
                rows = data.get("portraits") or [r for run in data.get("runs", []) for r in run.get("images", [])]
                meta_by_file.update({r["file"]: r for r in rows if r.get("file")})
        names = list((job.result or {}).get("portraits") or [n for n in job.files if n.endswith(".png")])
        rows = []
        for name in names:
            if name not in job.files:
                continue
            meta = meta_by_file.get(name, {})
            sim = meta.get("similarity")
            rows.append((self.file(job, name), name, None if sim is None else float(sim), meta))
        rows.sort(key=lambda r: (r[2] is None, -(r[2] or 0.0)))
        return [RankedImage(p, n, i + 1, s, m) for i, (p, n, s, m) in enumerate(rows)]

    # -- catalog -----------------------------------------------------------------------------------
    def people(self) -> list[Person]:
        from ..identity import list_identities

        return [Person(i.name, i.trigger_word, str(i.base_model), i.created,
                       i.template_face_path if i.template_face_path.is_file() else None) for i in list_identities()]

    def styles(self) -> list[dict[str, Any]]:
        """Every style with whether its models are on this server (what ``GET /v1/styles`` shows)."""
        from ..styles.catalog import style_status

        return [s.to_json() for s in style_status()]

    def delete_person(self, name: str) -> None:
        """Remove a trained identity, unless a queued or running job still needs it.

        The job service has no route for this yet; the rule it would need is the one here: never
        pull an identity from under a job, and remove the folder in one rename (nothing half gone).
        """
        from ..identity import MANIFEST
        from ..paths import identities_dir
        from ..service.kinds import check_name

        try:
            check_name("person", name)
        except ServiceError as e:
            raise UIError(e.message) from None
        folder = identities_dir() / name
        if not (folder / MANIFEST).is_file():
            raise UIError(f"no identity named '{name}'")
        for job in self.store.list(JobState.QUEUED) + self.store.list(JobState.RUNNING):
            if name in _named_people(job):
                raise UIError(f"identity '{name}' is used by {job.state.value} job {job.id}; wait for it or cancel it")
        trash = folder.with_name(f".{name}.deleted")
        shutil.rmtree(trash, ignore_errors=True)
        folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)


def _named_people(job: Job) -> Sequence[str]:
    person = job.params.get("person") if job.kind in ("generate", "inpaint") else job.params.get("name")
    if job.kind not in ("generate", "inpaint", "train"):
        return ()
    return [person] if isinstance(person, str) else list(person or ())
