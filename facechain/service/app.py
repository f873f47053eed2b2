"""The REST API of ``facechain serve`` (FastAPI; OpenAPI docs at ``/docs``), versioned under ``/v1``.

Routes only translate HTTP to the job model: validate (:mod:`.kinds`), store (:mod:`.store`), wake
the executor. Every answer that is not a success is ``{"error": "<one line>"}`` with its status
(400, 401, 404, 409, 413, 415, 422; 500 says only "internal error"), never a stack trace.
The web UI (issue 14) mounts on the same app and submits through the same :func:`submit_job`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import re
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

from fastapi import APIRouter, FastAPI, File, Header, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import FacechainError
from .errors import ServiceError
from .executor import Executor, make_executor
from .jobs import Job, JobState
from .kinds import ValidationContext, all_kinds, validate, warm_up
from .schemas import (ErrorOut, HealthOut, IdentitiesOut, JobIn, JobOut, JobsOut, KindOut, KindsOut, ModelsOut, StateName,
                      StylesOut, UploadOut, UploadsOut)
from .security import TOO_LARGE_KEY, RequestGuard
from .settings import ServiceSettings
from .store import JobStore, fingerprint
from .uploads import UploadStore

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
_ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 415, 422)}
_SSE_POLL_S = 0.25
_SSE_KEEPALIVE_S = 15.0


class Service:
    """The parts a route needs (store, uploads, executor, settings), shared by the API and the UI."""

    def __init__(self, settings: ServiceSettings, executor: Executor | None = None):
        self.settings = settings
        self.store = JobStore(settings.root)
        self.uploads = UploadStore(self.store, settings.uploads_dir, max_bytes=settings.max_upload_bytes,
                                   max_pixels=settings.max_upload_pixels)
        self.executor = executor or make_executor(settings, self.store)

    def submit_job(self, kind: str, params: dict[str, Any], idempotency_key: str | None = None) -> tuple[Job, bool]:
        """Validate and queue a job; ``(job, created)`` (False: an earlier request with this key made it)."""
        if idempotency_key is not None and not _KEY_RE.match(idempotency_key):
            raise ServiceError(400, "Idempotency-Key must be 1-200 printable ASCII characters without spaces")
        fp = fingerprint(kind, params)
        if idempotency_key is not None:
            earlier = self.store.find_by_key(idempotency_key, fp)
            if earlier is not None:  # answered before validating: the job's own effects (an identity) exist now
                return earlier, False
        job_kind, sub = validate(kind, params, ValidationContext(self.store, self.uploads, self.settings))
        job, created = self.store.create(job_kind.name, sub.params, idempotency_key=idempotency_key,
                                         request_fingerprint=fp, claim=sub.claim, after=sub.after)
        self.executor.wake()
        return job, created

    def cancel_job(self, job_id: str) -> Job:
        job = self.store.request_cancel(job_id)
        self.executor.cancel(job_id)
        return job

    def job_file(self, job_id: str, name: str) -> Path:
        job = self.store.require(job_id)
        if job.state is not JobState.SUCCEEDED:
            raise ServiceError(409, f"job {job_id} is {job.state.value}: its files are ready once it succeeded")
        if name not in job.files:
            raise ServiceError(404, f"job {job_id} has no file '{name}'")
        folder = Path(job.result["_folder"]).resolve()
        path = (folder / name).resolve()
        if folder not in path.parents or not path.is_file():  # the list is ours, but never trust a name twice
            raise ServiceError(404, f"job {job_id} has no file '{name}'")
        return path


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if not errors:
        return 422, "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return 400, "invalid JSON body"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return 422, _one_line(f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", "invalid"))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(FacechainError)
    async def facechain_error(request: Request, exc: FacechainError) -> JSONResponse:
        return JSONResponse({"error": _one_line(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        limit = request.scope.get(TOO_LARGE_KEY)
        if limit is not None:
            return JSONResponse({"error": f"request body too large (limit {limit:,} bytes)"}, status_code=413)
        return JSONResponse({"error": _one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error (details are in the server log)"}, status_code=500)


#: Hook for apps mounted beside the API (the web UI, :func:`facechain.ui.mount_ui`): called with the app and
#: its :class:`Service` before the request guard is added; returns the path prefix it mounted, which then
#: checks the token and body sizes itself (the guard lets that prefix through).
AppExtension = Callable[[FastAPI, "Service"], str]


def create_app(settings: ServiceSettings | None = None, executor: Executor | None = None,
               extensions: Sequence[AppExtension] = ()) -> FastAPI:
    """The FastAPI app: API routes, error handlers, the request guard, and the executor's lifetime."""
    settings = settings or ServiceSettings()
    service = Service(settings, executor)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=warm_up, name="facechain-warm-up", daemon=True).start()  # first request stays quick
        service.executor.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.executor.stop)

    app = FastAPI(title="facechain", version=__version__, lifespan=lifespan,
                  description="Identity-preserving portraits as a job service: upload photos, submit jobs "
                              "(the library's verbs, same parameter names), watch them, fetch results.")
    app.state.service = service
    _install_error_handlers(app)
    app.include_router(api_router(service))
    delegated = tuple(extend(app, service) for extend in extensions)  # hook: the web UI mounts here
    upload_body = settings.max_upload_files * settings.max_upload_bytes + 2**20  # + multipart framing
    app.add_middleware(RequestGuard, token=settings.token, max_upload_body=upload_body,
                       max_json_body=settings.max_json_bytes, delegated=delegated)
    return app


def connect_executor(app: FastAPI) -> None:
    """With the Ray executor: connect and check every node's storage now, so an unreachable cluster or a node
    without the shared FACECHAIN_HOME stops ``serve`` with one line before it listens (the app's start-up then
    finds the executor running). The local executor starts with the app, as before."""
    service: Service = app.state.service
    if service.settings.executor == "ray":
        service.executor.start()


def api_router(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=_ERRORS)
    store, settings = service.store, service.settings

    @router.post("/uploads", response_model=UploadsOut, status_code=201, tags=["uploads"])
    def upload(files: list[UploadFile] | None = File(None, description="one or more images")) -> UploadsOut:
        """Store images by content (sha256); pass the returned ids in job params (``photos``, ``template``...)."""
        if not files:
            raise ServiceError(400, "no files: send one or more images as multipart form field 'files'")
        if len(files) > settings.max_upload_files:
            raise ServiceError(413, f"too many files ({len(files)}, limit {settings.max_upload_files} per request)")
        records = [service.uploads.save(f.file, f.filename) for f in files]
        return UploadsOut(uploads=[UploadOut(**r.to_json()) for r in records])

    @router.post("/jobs", response_model=JobOut, status_code=202, tags=["jobs"])
    def submit(body: JobIn, response: Response,
               idempotency_key: str | None = Header(None, alias="Idempotency-Key",
                                                    description="retries with the same key get the same job")) -> JobOut:
        """Queue a job; it runs in a worker process. Poll it, or follow ``/events``."""
        job, created = service.submit_job(body.kind, body.params, idempotency_key)
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
        response.headers["Location"] = f"/v1/jobs/{job.id}"
        return JobOut.of(job)

    @router.get("/jobs", response_model=JobsOut, tags=["jobs"])
    def jobs(state: StateName | None = None, kind: str | None = None,
             limit: int = Query(100, ge=1, le=1000)) -> JobsOut:
        """Jobs, newest first (filter by ``state`` and ``kind``)."""
        found = store.list(JobState(state) if state else None, kind, limit)
        return JobsOut(jobs=[JobOut.of(j) for j in found])

    @router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def job(job_id: str) -> JobOut:
        return JobOut.of(store.require(job_id))

    @router.delete("/jobs/{job_id}", response_model=JobOut, status_code=202, tags=["jobs"])
    def cancel(job_id: str) -> JobOut:
        """Cancel: a queued job at once, a running one at its next progress step (409 if already finished)."""
        return JobOut.of(service.cancel_job(job_id))

    @router.get("/jobs/{job_id}/files/{name:path}", tags=["jobs"], response_class=FileResponse,
                responses={200: {"content": {"image/png": {}, "application/json": {}}}})
    def job_file(job_id: str, name: str) -> FileResponse:
        """A result file, byte for byte (PNG parameters intact); 409 while the job has not succeeded."""
        path = service.job_file(job_id, name)
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, filename=path.name)

    @router.get("/jobs/{job_id}/events", tags=["jobs"], response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}}}})
    async def events(job_id: str, request: Request,
                     last_event_id: int | None = Header(None, alias="Last-Event-ID")) -> StreamingResponse:
        """Server-sent events: ``job`` (a snapshot), ``progress`` and ``state`` events, then ``end``."""
        first = await run_in_threadpool(store.require, job_id)
        return StreamingResponse(_event_stream(store, first, request, last_event_id or 0),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/kinds", response_model=KindsOut, tags=["catalog"])
    def kinds() -> KindsOut:
        """Job kinds and their params (the Python keywords of each verb)."""
        out = []
        for k in all_kinds().values():
            params = {n: _type_name(a) for n, a in sorted(k.annotations().items())}
            out.append(KindOut(name=k.name, device=k.device, description=k.description, required=list(k.required),
                               params=params))
        return KindsOut(kinds=out)

    @router.get("/identities", response_model=IdentitiesOut, tags=["catalog"])
    def identities() -> IdentitiesOut:
        from ..identity import list_identities

        rows = [{"name": i.name, "trigger_word": i.trigger_word, "base_model": i.base_model, "created": i.created,
                 "photos": i.dataset.get("photos"), "tags": i.tags} for i in list_identities()]
        return IdentitiesOut(identities=rows)

    @router.get("/styles", response_model=StylesOut, tags=["catalog"])
    def styles() -> StylesOut:
        from ..styles.catalog import style_status

        rows = []
        for status in style_status():
            row = status.to_json()
            row.pop("path", None)  # where the YAML lies on the server is not the client's business
            rows.append(row)
        return StylesOut(styles=rows)

    @router.get("/models", response_model=ModelsOut, tags=["catalog"])
    def models() -> ModelsOut:
        from ..models.api import model_status

        return ModelsOut(models=[{k: v for k, v in row.items() if k != "path"} for row in model_status()])

    @router.get("/health", response_model=HealthOut, tags=["service"])
    def health() -> HealthOut:
        return HealthOut(status="ok", version=__version__, jobs=store.counts(), workers=service.executor.describe(),
                         auth=bool(settings.token))

    return router


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    return text or str(annotation).replace("typing.", "").replace("pathlib.", "")


async def _event_stream(store: JobStore, job: Job, request: Request, last: int) -> AsyncIterator[str]:
    import json

    yield f"event: job\ndata: {json.dumps(JobOut.of(job).model_dump())}\n\n"
    quiet_since = time.monotonic()
    while True:
        batch = await run_in_threadpool(store.events, job.id, last)
        for event in batch:
            last = event.seq
            yield event.sse()
        if batch:
            quiet_since = time.monotonic()
            continue
        current = await run_in_threadpool(store.require, job.id)
        if current.state.finished:
            if not await run_in_threadpool(store.events, job.id, last):
                yield f"event: end\ndata: {json.dumps(JobOut.of(current).model_dump())}\n\n"
                return
            continue
        if await request.is_disconnected():
            return
        if time.monotonic() - quiet_since > _SSE_KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(_SSE_POLL_S)
