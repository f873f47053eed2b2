"""``facechain.Client``: the library's verbs, run by a ``facechain serve`` somewhere else.

    >>> client = facechain.Client("http://gpu-box:7860", token="...")
    >>> ident = client.train("~/photos/me", name="me", steps=400)        # uploads, waits with progress
    >>> results = client.generate("me", "cyberpunk", num_images=4, seed=1)
    >>> results.best.similarity, results.output_dir                        # the library's result type

Each verb uploads its files, submits one job (with an ``Idempotency-Key``, so a retried request
after a network error never makes a second job), follows the job's server-sent events into the
usual progress bars, then downloads the results and returns what the library would return.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

from .. import progress
from ..errors import FacechainError
from .jobs import Job, JobState
from .settings import TOKEN_ENV

PathsLike = str | Path | Iterable[str | Path]
_UPLOAD_BATCH = 16
_RETRIES = 3


class ServiceRequestError(FacechainError):
    """The service refused a request; ``status`` is the HTTP status, the message its one-line reason."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(f"{message} (HTTP {status})")


class JobFailedError(FacechainError):
    """A job ended ``failed``; the message is the job's error, the line the CLI would print."""

    def __init__(self, job: Job):
        self.job = job
        super().__init__(job.error or f"job {job.id} failed")


def load_portraits(folder: Path):
    """A saved portraits folder as the library's result type (:class:`facechain.results.Portraits`)."""
    from ..results import Portraits

    return Portraits.load(folder)


class Client:
    """A connection to a facechain service (``url`` is its root, e.g. ``http://127.0.0.1:7860``)."""

    def __init__(self, url: str = "http://127.0.0.1:7860", token: str | None = None, timeout: float = 120.0):
        import httpx

        token = token or os.environ.get(TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/") + "/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any):
        import httpx

        for attempt in range(_RETRIES):
            try:
                response = self._http.request(method, path, **kwargs)
                break
            except httpx.TransportError:
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
        if response.status_code >= 400:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200] or response.reason_phrase
            raise ServiceRequestError(response.status_code, message)
        return response

    def upload(self, photos: PathsLike) -> list[str]:
        """Upload image files (folders: their images); returns the upload ids in order."""
        from ..image_io import list_images

        items = [photos] if isinstance(photos, (str, Path)) else list(photos)
        paths = list_images([Path(p).expanduser() for p in items])
        if not paths:
            raise FacechainError(f"no images found in {', '.join(map(str, items))}")
        ids: list[str] = []
        for start in range(0, len(paths), _UPLOAD_BATCH):
            batch = paths[start:start + _UPLOAD_BATCH]
            files = [("files", (p.name, p.read_bytes())) for p in batch]
            ids += [u["id"] for u in self._request("POST", "/uploads", files=files).json()["uploads"]]
        return ids

    def submit(self, kind: str, idempotency_key: str | None = None, **params: Any) -> Job:
        """Queue a job (retries reuse ``idempotency_key``, so they never make a second job)."""
        key = idempotency_key or uuid.uuid4().hex
        body = {"kind": kind, "params": params}
        return Job.from_json(self._request("POST", "/jobs", json=body, headers={"Idempotency-Key": key}).json())

    def job(self, job_id: str) -> Job:
        return Job.from_json(self._request("GET", f"/jobs/{job_id}").json())

    def jobs(self, state: str | None = None, kind: str | None = None) -> list[Job]:
        params = {k: v for k, v in (("state", state), ("kind", kind)) if v}
        return [Job.from_json(j) for j in self._request("GET", "/jobs", params=params).json()["jobs"]]

    def cancel(self, job_id: str) -> Job:
        return Job.from_json(self._request("DELETE", f"/jobs/{job_id}").json())

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health").json()

    def identities(self) -> list[dict[str, Any]]:
        return self._request("GET", "/identities").json()["identities"]

    def styles(self) -> list[dict[str, Any]]:
        return self._request("GET", "/styles").json()["styles"]

    def _events(self, job_id: str, last: int) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
        """(event, id, data) from the job's server-sent events."""
        with self._http.stream("GET", f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(last)},
                               timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                raise ServiceRequestError(response.status_code, response.json().get("error", "error"))
            name, ident, data = "message", None, []
            for line in response.iter_lines():
                if not line:
                    if data:
                        yield name, ident, json.loads("\n".join(data))
                    name, ident, data = "message", None, []
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("id:"):
                    ident = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())

    def wait(self, job_id: str, quiet: bool = False) -> Job:
        """Follow a job to its end, showing its progress like the CLI; returns the finished job.

        Raises :class:`JobFailedError` (failed) or :class:`facechain.progress.Cancelled` (cancelled).
        """
        import httpx

        last = 0
        with progress.reporting(quiet=quiet) as sink:
            while True:
                try:
                    for name, ident, data in self._events(job_id, last):
                        last = int(ident) if ident else last
                        if name == "progress" and sink is not None:
                            sink(progress.ProgressEvent(data["task"], data["done"], data.get("total"),
                                                        data.get("unit", "it"), data.get("message", ""),
                                                        bool(data.get("finished"))))
                        elif name == "end":
                            job = Job.from_json(data)
                            break
                    else:
                        continue  # the stream ended without "end": reconnect where it stopped
                    break
                except httpx.TransportError:
                    time.sleep(1.0)
        if job.state is JobState.FAILED:
            raise JobFailedError(job)
        if job.state is JobState.CANCELLED:
            raise progress.Cancelled(f"job {job.id} was cancelled")
        return job

    def download(self, job_id: str, name: str, dest: str | Path) -> Path:
        """One result file, byte for byte."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self._request("GET", f"/jobs/{job_id}/files/{name}").content)
        return dest

    def download_all(self, job: Job, folder: str | Path | None = None) -> Path:
        """Every result file of a succeeded job into ``folder`` (default: a new temporary folder)."""
        folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix=f"facechain-{job.id}-"))
        for name in job.files:
            self.download(job.id, name, folder / name)
        return folder

    def run(self, kind: str, quiet: bool = False, **params: Any) -> Job:
        """Submit a job and wait for it."""
        return self.wait(self.submit(kind, **params).id, quiet=quiet)

    # -- the library's verbs ---------------------------------------------------------------------
    def prepare(self, photos: PathsLike, output: str | Path | None = None, *, quiet: bool = False, **params: Any):
        """``facechain.prepare`` on the server; the prepared folder is downloaded to ``output``."""
        from ..preprocess.result import PrepareResult

        job = self.run("prepare", quiet=quiet, photos=self.upload(photos), **params)
        return PrepareResult.load(self.download_all(job, output))

    def train(self, photos: PathsLike, *, name: str, output: str | Path | None = None, quiet: bool = False,
              **params: Any):
        """``facechain.train`` on the server; returns the :class:`~facechain.identity.Identity`, whose
        files (LoRA, manifest, template face) are downloaded to ``output`` (default: a temporary folder)."""
        from ..identity import Identity

        job = self.run("train", quiet=quiet, photos=self.upload(photos), name=name, **params)
        return Identity.load(self.download_all(job, output))

    def generate(self, person: str | None = None, style: str | None = None, *, photo: PathsLike | None = None,
                 pose: str | Path | None = None, output: str | Path | None = None, quiet: bool = False,
                 **params: Any):
        """``facechain.generate`` on the server: the same portraits type, saved in ``output``."""
        if photo is not None:
            params["photo"] = self.upload(photo)
        if pose is not None:
            params["pose"] = self.upload(pose)[0]
        params.update({k: v for k, v in (("person", person), ("style", style)) if v is not None})
        job = self.run("generate", quiet=quiet, **params)
        return load_portraits(self.download_all(job, output))

    def inpaint(self, template: str | Path, person: str | list[str] | None = None, *,
                photo: PathsLike | None = None, output: str | Path | None = None, quiet: bool = False,
                **params: Any) -> list[Path]:
        """``facechain.inpaint`` on the server; returns the downloaded portraits, best first."""
        if photo is not None:
            params["photo"] = self.upload(photo)
        if person is not None:
            params["person"] = person
        job = self.run("inpaint", quiet=quiet, template=self.upload(template)[0], **params)
        folder = self.download_all(job, output)
        return [folder / name for name in job.result.get("portraits", [])]
