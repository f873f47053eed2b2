"""A batch plan: people, and what to make for each, read from YAML and checked before anything runs.

::

    name: june-studio                 # optional (default: the file's name); reruns match jobs by it
    output: results                   # optional (default: <plan folder>/<name>-results)
    defaults:                         # options for every job of a kind (the verbs' keywords)
      train: {steps: 400}
      generate: {seed: 1}
    people:
      - name: alice
        photos: photos/alice          # a folder (or a list of files): trained first
        styles: [cyberpunk, business_suit]
        count: 4                      # portraits per style
        templates: [templates/wedding.jpg]   # her face inpainted into each template
      - name: bob                     # no photos: an identity trained earlier
        styles: [film]
      - name: carol
        fact_photos: [carol.jpg]      # train-free (FACT) portraits from these photos, per style
        styles: [{prompt: "{trigger}, studio portrait", label: studio}]

A style is a name, or a mapping of generate options with an optional ``label``. Paths are
relative to the plan file. Mistakes (unknown keys, missing photos, bad names) are one-line
:class:`~facechain.errors.InputError`\\ s naming the plan; a style or option a verb rejects is
reported for that person only, when the batch runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..image_io import IMAGE_SUFFIXES

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # the service's identity-name rule
PLAN_KEYS = {"name", "output", "defaults", "people"}
PERSON_KEYS = {"name", "photos", "styles", "count", "templates", "fact_photos", "train", "generate", "inpaint"}
KINDS = ("train", "generate", "inpaint")


@dataclass(frozen=True)
class Item:
    """One job of the plan: ``kind`` with ``params`` (files as paths; uploaded when it runs)."""

    person: str
    key: str  # unique within the person: "train", "generate:cyberpunk", "fact:cyberpunk", "inpaint:wedding"
    kind: str
    params: dict[str, Any]
    files: dict[str, list[Path]] = field(default_factory=dict)  # param -> local files to upload for it


@dataclass(frozen=True)
class PersonPlan:
    name: str
    photos: list[Path]  # empty: an identity trained earlier (or FACT only)
    items: list[Item]


@dataclass(frozen=True)
class BatchPlan:
    name: str
    source: Path | None
    output: Path
    people: list[PersonPlan]

    @property
    def items(self) -> list[Item]:
        return [item for person in self.people for item in person.items]


def load_plan(path: str | Path) -> BatchPlan:
    """Read and check ``PLAN.yaml`` (``yaml.safe_load``: no code runs from a plan)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no such plan file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(path, f"not a readable YAML plan ({' '.join(str(e).split())[:200]})") from None
    return parse_plan(data, path)


def parse_plan(data: Any, source: Path | None = None, base: Path | None = None) -> BatchPlan:
    where = source or Path("<plan>")
    base = base or (source.parent if source else Path.cwd())

    def fail(reason: str) -> InputError:
        return InputError(where, reason)

    if not isinstance(data, dict):
        raise fail("a plan is a mapping with 'people' (see 'facechain batch --help')")
    _no_unknown(data, PLAN_KEYS, "the plan", fail)
    name = str(data.get("name") or (source.stem if source else "batch"))
    if not NAME_RE.match(name):
        raise fail(f"plan name {name!r}: use letters, digits, '.', '_' or '-'")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise fail("'defaults' must map a kind (train, generate, inpaint) to its options")
    _no_unknown(defaults, set(KINDS), "'defaults'", fail)
    for kind, opts in defaults.items():
        if not isinstance(opts, dict):
            raise fail(f"defaults.{kind} must be a mapping of options")
    people_data = data.get("people")
    if not isinstance(people_data, list) or not people_data:
        raise fail("'people' must be a non-empty list")
    people, seen = [], set()
    for i, entry in enumerate(people_data):
        person = _person(entry, i, defaults, base, fail)
        if person.name in seen:
            raise fail(f"person '{person.name}' is listed twice")
        seen.add(person.name)
        people.append(person)
    output = data.get("output")
    out = (base / str(output)) if output else base / f"{name}-results"
    return BatchPlan(name=name, source=source, output=out, people=people)


def _no_unknown(d: dict, allowed: set[str], what: str, fail) -> None:
    unknown = sorted(set(map(str, d)) - allowed)
    if unknown:
        raise fail(f"unknown key '{unknown[0]}' in {what} (expected: {', '.join(sorted(allowed))})")


def _files(value: Any, base: Path, what: str, fail) -> list[Path]:
    """A folder (its images, sorted) or a list of image files, relative to the plan."""
    entries = value if isinstance(value, list) else [value]
    found: list[Path] = []
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise fail(f"{what}: expected a path or a list of paths, got {entry!r}")
        p = (base / entry).expanduser()
        if p.is_dir():
            images = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise fail(f"{what}: no images in folder {p}")
            found.extend(images)
        elif p.is_file():
            found.append(p)
        else:
            raise fail(f"{what}: {p} does not exist")
    return found


def _options(entry: dict, kind: str, defaults: dict, fail, who: str) -> dict[str, Any]:
    own = entry.get(kind) or {}
    if not isinstance(own, dict):
        raise fail(f"person '{who}': '{kind}' must be a mapping of options")
    return {**(defaults.get(kind) or {}), **own}


def _person(entry: Any, index: int, defaults: dict, base: Path, fail) -> PersonPlan:
    if not isinstance(entry, dict) or "name" not in entry:
        raise fail(f"people[{index}] must be a mapping with a 'name'")
    _no_unknown(entry, PERSON_KEYS, f"people[{index}]", fail)
    name = str(entry["name"])
    if not NAME_RE.match(name):
        raise fail(f"person name {name!r}: use letters, digits, '.', '_' or '-' (it names the identity)")
    count = entry.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise fail(f"person '{name}': 'count' must be a whole number of portraits per style, got {count!r}")
    photos = _files(entry["photos"], base, f"person '{name}' photos", fail) if entry.get("photos") else []
    fact = _files(entry["fact_photos"], base, f"person '{name}' fact_photos", fail) if entry.get("fact_photos") else []
    templates = _files(entry["templates"], base, f"person '{name}' templates", fail) if entry.get("templates") else []
    styles = entry.get("styles") or []
    if not isinstance(styles, list):
        raise fail(f"person '{name}': 'styles' must be a list")
    items: list[Item] = []
    if photos:
        items.append(Item(name, "train", "train", {**_options(entry, "train", defaults, fail, name), "name": name},
                          {"photos": photos}))
    generate = _options(entry, "generate", defaults, fail, name)
    if count is not None:
        generate["num_images"] = count
    trained = bool(photos) or not fact  # an identity (trained now or earlier); else FACT photos only
    labels: set[str] = set()
    for j, style in enumerate(styles):
        label, params = _style(style, j, name, fail)
        if label in labels:
            raise fail(f"person '{name}': style '{label}' is listed twice (give a 'label')")
        labels.add(label)
        if trained:
            items.append(Item(name, f"generate:{label}", "generate", {**generate, **params, "person": name}))
        if fact:
            items.append(Item(name, f"fact:{label}", "generate", {**generate, **params}, {"photo": fact}))
    inpaint = _options(entry, "inpaint", defaults, fail, name)
    for template in templates:
        if trained:
            items.append(Item(name, f"inpaint:{template.stem}", "inpaint", {**inpaint, "person": [name]},
                              {"template": [template]}))
        else:
            items.append(Item(name, f"inpaint:{template.stem}", "inpaint", dict(inpaint),
                              {"template": [template], "photo": fact}))
    if not items:
        raise fail(f"person '{name}': nothing to make (give photos, styles, templates or fact_photos)")
    return PersonPlan(name, photos, items)


def _style(style: Any, index: int, who: str, fail) -> tuple[str, dict[str, Any]]:
    if isinstance(style, str) and style:
        return style, {"style": style}
    if isinstance(style, dict) and style:
        params = dict(style)
        label = params.pop("label", None) or params.get("style") or f"style{index + 1}"
        if not NAME_RE.match(str(label)):
            raise fail(f"person '{who}': style label {label!r}: use letters, digits, '.', '_' or '-'")
        return str(label), params
    raise fail(f"person '{who}': styles[{index}] must be a style name or a mapping of generate options")
