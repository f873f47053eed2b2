"""Which base model a job needs, and which queued job a warm worker should take next.

Loading a base model (SD 1.5: ~2 GB of weights, seconds to tens of seconds) costs more than many
jobs themselves, while swapping a face LoRA on a loaded one costs little. So, like Ray Serve's
model multiplexing routes a request to a replica that already holds its model, a worker that
holds base model M is given a queued job for M before older jobs for other models. It is a
preference, not a rule: with no job for its model a worker takes the oldest job, and a job that
waited ``max_wait_s`` goes first whatever it needs (nothing starves).

The key is computed from a job's params the way the verbs choose their base model
(``base_model`` param > the style's > the identity's > the default), without loading anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

from .jobs import Job, now

#: Kinds that load their base model through the process's pipeline cache (what a warm worker keeps).
CACHED_KINDS = frozenset({"generate", "inpaint"})


def normalise_reference(ref: str) -> str:
    """One spelling per model: local paths resolved, hub references as given."""
    text = str(ref).strip()
    if text.startswith(("/", "./", "../", "~")):
        return str(Path(text).expanduser().resolve())
    return text


def base_model_key(job: Job, lookup: Callable[[str], Job | None] | None = None) -> str:
    """The base model ``job`` will load, as a comparable string (never raises: ``default`` if unknown)."""
    from ..models.registry import DEFAULT_BASE_MODEL

    params = job.params
    if params.get("base_model"):
        return normalise_reference(params["base_model"])
    style = params.get("style")
    if style and job.kind in CACHED_KINDS:
        found = _style_base_model(style)
        if found:
            return normalise_reference(found)
    people = params.get("person")
    first = people[0] if isinstance(people, list) and people else people
    if isinstance(first, str) and first:
        found = _identity_base_model(first) or _pending_train_base_model(job, first, lookup)
        if found:
            return normalise_reference(found)
    return normalise_reference(DEFAULT_BASE_MODEL)


def _style_base_model(name: str) -> str | None:
    try:
        from ..styles import find_style

        return find_style(name).base_model
    except Exception:  # an unknown style fails in the job itself, with its message
        return None


def _identity_base_model(name: str) -> str | None:
    from ..identity import MANIFEST
    from ..paths import identities_dir

    try:
        return json.loads((identities_dir() / name / MANIFEST).read_text()).get("base_model")
    except (OSError, ValueError):
        return None


def _pending_train_base_model(job: Job, name: str, lookup: Callable[[str], Job | None] | None) -> str | None:
    """The identity is still being trained by a job this one waits for: its ``base_model`` param."""
    from ..models.registry import DEFAULT_BASE_MODEL

    for dep_id in job.after if lookup is not None else ():
        dep = lookup(dep_id)
        if dep is not None and dep.kind == "train" and dep.params.get("name") == name:
            return dep.params.get("base_model") or DEFAULT_BASE_MODEL
    return None


def rank(held: set[str], key: str) -> float:
    """How well a worker holding ``held`` suits a job for ``key``: warm 2, empty 1, holding another model 0.5."""
    return 2.0 if key in held else 1.0 if not held else 0.5


def warm_preference(held: Iterable[str], key_of: Callable[[Job], str], idle_others: Iterable[Iterable[str]] = (),
                    busy_held: Iterable[str] = (), max_wait_s: float = 120.0,
                    clock: Callable[[], float] = now) -> Callable[[Job], float]:
    """A ``JobStore.claim_next(prefer=...)`` score for an idle worker holding ``held``.

    ``idle_others``: what the other idle workers of the pool hold; a job one of them suits better is
    left to it (score -inf: it claims it in the same round). Otherwise: jobs that waited
    ``max_wait_s`` first (nothing starves), then by :func:`rank` (warm, then an empty worker for a
    new model, so loaded models are not evicted while a worker is free), a little lower when a busy
    worker holds the model (it may be back soon); the oldest first among equals.
    """
    held, busy = set(held), set(busy_held)
    others = [set(o) for o in idle_others]

    def score(job: Job) -> float:
        waited = clock() - job.created
        if waited >= max_wait_s:
            return 10.0 + waited / 1e9
        if job.kind not in CACHED_KINDS:
            r = 1.0
        else:
            key = key_of(job)
            r = rank(held, key)
            if any(rank(o, key) > r for o in others):
                return float("-inf")
            if r < 2.0 and key in busy:
                r -= 0.25
        return r - job.created / 1e12  # among equals, the oldest
    return score
