"""Job kinds: each is one public facechain function, and its params are that function's keywords.

A :class:`JobKind` names the function and the config dataclass behind its ``**overrides``; the
accepted params, their types and their defaults all come from those two, so a new option of a
verb is a new job param without touching the service. What the service must not take from a
client (where outputs go, config files on the server, callbacks) is ``reserved``; params that
point at things (uploads, identities, styles, models) are checked so that a job can only use
uploaded files, existing (or pending) identities and styles, and models under the allowed roots.

Validation happens before queueing, so a bad request is a 4xx answer, never a failed job.
Later kinds (try-on, talking head, ...) call :func:`register_kind` the same way as the built-in
ones in :mod:`facechain.service.builtin_kinds`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from ..config import coerce, load_config
from ..errors import ConfigError, FacechainError
from .errors import ServiceError

if TYPE_CHECKING:
    from .settings import ServiceSettings
    from .store import JobStore
    from .uploads import UploadStore

Device = Literal["gpu", "cpu"]
ParamRole = Literal["upload", "uploads", "identity", "identities", "style", "model", "name"]

#: Never from a client: the service decides where outputs go and how a verb reports progress.
RESERVED = frozenset({"output", "overwrite", "resume", "progress", "config_file", "analyzer", "store", "pipeline", "quiet"})
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # identity / style / LoRA names (no path can hide in one)


def _resolve(dotted: str) -> Any:
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass
class Submission:
    """A validated job request: normalised params, the resource it claims, the jobs it waits for."""

    params: dict[str, Any]
    claim: str | None = None  # e.g. "identity:alice": no second unfinished job may make the same thing
    after: list[str] = field(default_factory=list)


@dataclass
class ValidationContext:
    store: "JobStore"
    uploads: "UploadStore"
    settings: "ServiceSettings"


@dataclass(frozen=True)
class JobKind:
    """One kind of job.

    ``function`` / ``config``: ``"module:attr"`` of the public function and of the dataclass whose
    fields its ``**overrides`` take. ``roles`` tells how params that point at things are checked.
    ``phases`` map progress task names to their share of the job (overall progress 0-1).
    ``check`` adds kind-specific rules (name conflicts, prerequisites); ``run`` executes the job in
    a worker process (see :mod:`facechain.service.worker`) and returns its result.
    """

    name: str
    function: str
    config: str | None
    device: Device
    run: Callable[..., dict[str, Any]]
    roles: dict[str, ParamRole] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # service-only params -> annotation (e.g. captions)
    required: tuple[str, ...] = ()
    reserved: frozenset[str] = RESERVED
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)
    check: Callable[[ValidationContext, dict[str, Any], Submission], None] | None = None
    description: str = ""

    def annotations(self) -> dict[str, Any]:
        """Accepted param -> type annotation: the function's keywords, its config's fields, the extras.

        Computed once per kind (importing a verb's module can take seconds: torch).
        """
        key = (self.name, self.function, self.config)
        if key not in _ANNOTATIONS:
            _ANNOTATIONS[key] = self._annotations()
        return _ANNOTATIONS[key]

    def _annotations(self) -> dict[str, Any]:
        fn = _resolve(self.function)
        sig = inspect.signature(fn)
        out: dict[str, Any] = {}
        takes_overrides = False
        for name, p in sig.parameters.items():
            if p.kind is p.VAR_KEYWORD:
                takes_overrides = True
            elif p.kind is not p.VAR_POSITIONAL and name not in self.reserved:
                out[name] = _annotation(fn, p.annotation)
        if self.config is not None and takes_overrides:
            cls = _resolve(self.config)
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if f.init and f.name not in self.reserved:
                    out[f.name] = hints[f.name]
        out.update(self.extra)
        return out


def _annotation(fn: Callable, annotation: Any) -> Any:
    """A parameter's annotation evaluated (``from __future__ import annotations`` leaves strings); Any if unknown."""
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        try:
            return eval(annotation, vars(typing) | fn.__globals__)  # noqa: S307 - our own source's annotations
        except Exception:
            return Any
    return annotation


KINDS: dict[str, JobKind] = {}
_ANNOTATIONS: dict[tuple, dict[str, Any]] = {}


def register_kind(kind: JobKind) -> JobKind:
    KINDS[kind.name] = kind
    return kind


def get_kind(name: object) -> JobKind:
    _load_builtin()
    if not isinstance(name, str) or name not in KINDS:
        raise ServiceError(422, f"unknown job kind {name!r} (known: {', '.join(sorted(KINDS))})"[:300])
    return KINDS[name]


def all_kinds() -> dict[str, JobKind]:
    _load_builtin()
    return dict(KINDS)


def warm_up() -> None:
    """Import every kind's function now (the server does this in the background at start-up)."""
    for kind in all_kinds().values():
        kind.annotations()


def _load_builtin() -> None:
    from . import builtin_kinds  # noqa: F401 - registers prepare, train, train_style, generate, inpaint


# --- validation -------------------------------------------------------------------------------------


def validate(kind_name: object, params: object, ctx: ValidationContext) -> tuple[JobKind, Submission]:
    """Check a request against the kind's function before it is queued (422/409 with one line)."""
    kind = get_kind(kind_name)
    if not isinstance(params, dict):
        raise ServiceError(422, "'params' must be a JSON object")
    known = kind.annotations()
    unknown = sorted(set(params) - set(known))
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(known), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"GET /v1/kinds lists the {len(known)} params"
        raise ServiceError(422, f"unknown param '{unknown[0]}'"[:120] + f" for kind '{kind.name}' ({hint})")
    for name in kind.required:
        if params.get(name) in (None, "", []):
            raise ServiceError(422, f"param '{name}' is required for kind '{kind.name}'")
    sub = Submission({})
    for name, value in params.items():
        if value is None:
            continue
        role = kind.roles.get(name)
        sub.params[name] = _check_role(ctx, kind, name, value, role, sub) if role else _typed(name, value, known[name])
    if kind.config is not None:  # the config's own rules (ranges, choices) on the config fields given
        cls = _resolve(kind.config)
        fields = {f.name for f in dataclasses.fields(cls)}
        try:
            load_config(cls, kind.name, None, {k: v for k, v in sub.params.items() if k in fields})
        except ConfigError as e:
            raise ServiceError(422, str(e)) from None
    if kind.check is not None:
        kind.check(ctx, sub.params, sub)
    return kind, sub


def _typed(name: str, value: Any, annotation: Any) -> Any:
    try:
        value = coerce(value, annotation, f"param '{name}'")
    except ConfigError as e:
        raise ServiceError(422, str(e)) from None
    if isinstance(value, (dict, list, tuple)) or value is None or isinstance(value, (str, int, float, bool)):
        return list(value) if isinstance(value, tuple) else value
    if isinstance(value, Path):
        raise ServiceError(422, f"param '{name}': file paths cannot be given to the service; upload files instead")
    raise ServiceError(422, f"param '{name}': unsupported value {value!r}"[:200])


def _as_list(name: str, value: Any) -> list:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    raise ServiceError(422, f"param '{name}': expected a name or a list of names, got {value!r}"[:200])


def _check_role(ctx: ValidationContext, kind: JobKind, name: str, value: Any, role: ParamRole, sub: Submission) -> Any:
    if role == "upload":
        if not isinstance(value, str):
            raise ServiceError(422, f"param '{name}': expected one upload id, got {value!r}"[:200])
        return ctx.uploads.require(value, name).id
    if role == "uploads":
        ids = _as_list(name, value)
        if not ids:
            raise ServiceError(422, f"param '{name}': give at least one upload id")
        if len(ids) > 1000:
            raise ServiceError(413, f"param '{name}': too many uploads ({len(ids)})")
        return [ctx.uploads.require(i, name).id for i in ids]
    if role == "name":
        return check_name(name, value)
    if role == "identity":
        _require_identity(ctx, name, check_name(name, value), sub)
        return value
    if role == "identities":
        names = [check_name(name, v) for v in _as_list(name, value)]
        for n in names:
            _require_identity(ctx, name, n, sub)
        return names
    if role == "style":
        return _require_style(ctx, name, check_name(name, value), sub)
    if role == "model":
        return check_model_reference(name, value, ctx.settings.allowed_model_roots)
    raise AssertionError(role)


def check_name(param: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ServiceError(422, f"param '{param}': invalid name {value!r}: use letters, digits, '.', '_' or '-' "
                                "(at most 100 characters, no path)"[:300])
    return value


def _require_identity(ctx: ValidationContext, param: str, name: str, sub: Submission) -> None:
    """An identity that exists, or that an unfinished train job is making (then this job waits for it)."""
    from ..identity import MANIFEST
    from ..paths import identities_dir

    if (identities_dir() / name / MANIFEST).is_file():
        return
    pending = ctx.store.pending_claim(f"identity:{name}")
    if pending is None:
        raise ServiceError(422, f"param '{param}': no identity named '{name}' (see GET /v1/identities)")
    if pending not in sub.after:
        sub.after.append(pending)


def _require_style(ctx: ValidationContext, param: str, name: str, sub: Submission) -> str:
    """A shipped or user style by name (never a file path), or one an unfinished train_style job makes."""
    from ..styles import find_style

    pending = ctx.store.pending_claim(f"style:{name}")
    if pending is not None:
        sub.after.append(pending)
        return name
    try:
        find_style(name)
    except FacechainError:
        raise ServiceError(422, f"param '{param}': no style named '{name}' (see GET /v1/styles)") from None
    return name


def check_model_reference(param: str, value: Any, roots: list[Path]) -> str:
    """A hub reference, or a local path inside one of ``roots`` (never anywhere on the server)."""
    from ..models.store import ModelRef

    if not isinstance(value, str) or not value.strip() or len(value) > 500:
        raise ServiceError(422, f"param '{param}': expected a model reference, got {value!r}"[:200])
    try:
        ref = ModelRef.parse(value)
    except ValueError as e:
        raise ServiceError(422, f"param '{param}': {e}") from None
    if ref.source != "local":
        parts = [ref.id, ref.revision or "", ref.subfolder or ""]
        if any(".." in Path(p).parts or p.startswith("/") for p in parts):
            raise ServiceError(422, f"param '{param}': invalid model reference {value!r}"[:200])
        return value
    path = Path(ref.id).expanduser().resolve()
    if not any(path == root or root in path.parents for root in roots):
        raise ServiceError(422, f"param '{param}': local models must lie under the model cache or a --model-root "
                                "of the server")
    if not path.exists():
        raise ServiceError(422, f"param '{param}': model '{value}' not found on the server")
    return str(path)
