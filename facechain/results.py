"""``Portraits``: the one result type of every verb that makes images (generate, inpaint, try-on, ...).

Ultralytics-style: a list-like of :class:`Portrait`, best first, with ``.best``, ``.save(dir)``,
``.show()``, ``.to_json()`` and a grid in a notebook. Every verb saves the same layout::

    OUT/0001.png ...        best first (rank 1); generation parameters embedded as PNG text
                            ("parameters": the A1111-style line, "facechain": the JSON metadata)
    OUT/portraits.json      the run's settings, warnings, timings and every portrait's metadata
    OUT/contact_sheet.jpg   all portraits side by side, flagged ones framed red
    OUT/intermediates/      with save_intermediates: every stage's images (masks, control images, ...)

Output folders behave the same everywhere: a fresh folder, written atomically; an existing non-empty
folder is refused unless ``overwrite=True``, and then only a folder facechain wrote is replaced.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from .atomic import atomic_directory
from .errors import InputError, OutputExistsError
from .image_io import save_jpeg, save_png
from .outputs import announce, check_writable, guard_inputs

SUMMARY_FILE = "portraits.json"
CONTACT_SHEET = "contact_sheet.jpg"
FORMAT = "facechain-portraits/1"


def default_output_dir(label: str, root: Path | str = "outputs") -> Path:
    """``./outputs/<YYYYmmdd-HHMMSS>-<label>``, with a numeric suffix if that folder exists already."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(label))[:40] or "portraits"
    base = Path(root) / f"{stamp}-{safe}"
    cand, n = base, 2
    while cand.exists():
        cand = base.with_name(f"{base.name}-{n}")
        n += 1
    return cand


def is_portraits_folder(folder: Path) -> bool:
    """A folder facechain saved portraits into (the only kind ``overwrite`` may replace)."""
    try:
        data = json.loads((Path(folder) / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def check_output_folder(folder: Path | str | None, overwrite: bool = False, *, inputs: Iterable[Path | str | None] = (),
                        need_bytes: int = 0) -> Path | None:
    """Fail before any slow work when ``folder`` cannot receive portraits: a file, someone else's folder,
    one of the run's ``inputs`` (or inside / around one), a read-only location, too little free space."""
    if folder is None:
        return None
    folder = Path(folder).expanduser()
    guard_inputs(folder, inputs)
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "--output must be a folder, not a file")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise OutputExistsError(folder)
        if not is_portraits_folder(folder):
            raise InputError(folder, "is not empty and was not written by facechain; --overwrite only replaces "
                                     "portrait folders facechain saved, choose another --output")
    check_writable(folder, need_bytes)
    return folder


def _a1111_parameters(meta: dict[str, Any]) -> str:
    """The one-line parameter format many image tools read (prompt, negative prompt, steps, sampler, ...)."""
    parts = [("Steps", meta.get("steps")), ("Sampler", meta.get("sampler")), ("CFG scale", meta.get("guidance_scale")),
             ("Seed", meta.get("seed")), ("Size", meta.get("size")), ("Model", meta.get("base_model")),
             ("Denoising strength", meta.get("strength")), ("Template", meta.get("template"))]
    fact = meta.get("fact") or {}
    parts += [("FACT adapter", fact.get("fact_adapter")), ("Adapter scale", fact.get("adapter_scale"))]
    tail = ", ".join(f"{k}: {v}" for k, v in parts if v is not None)
    return f"{meta.get('prompt', '')}\nNegative prompt: {meta.get('negative_prompt', '')}\n{tail}"


def _png_bytes(image: Image.Image, max_side: int | None = None) -> bytes:
    img = image.convert("RGB")
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Portrait:
    """One finished image: the final picture, its likeness score, its faces and everything that made it."""

    image: Image.Image
    similarity: float | None = None  # identity similarity to the person's reference face (cosine)
    seed: int | None = None
    ok: bool = True  # False: flagged (no single, reasonably sized face)
    reason: str | None = None  # why it was flagged
    faces: list[dict[str, Any]] = field(default_factory=list)  # per replaced/generated face: box, similarity, ...
    metadata: dict[str, Any] = field(default_factory=dict)  # prompt, seed, style, models, weights, ...
    raw_image: Image.Image | None = None  # before face fusion
    path: Path | None = None  # where it was saved

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.image)

    @property
    def rank(self) -> int | None:
        return self.metadata.get("rank")

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Save as PNG with the parameters embedded; refuses to replace a file unless ``overwrite``."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        if path.exists() and not overwrite:
            raise OutputExistsError(path)
        meta = {k: v for k, v in self.metadata.items() if k != "file"}
        save_png(path, self.image, text={"parameters": _a1111_parameters(meta), "facechain": json.dumps(meta)})
        self.path = path
        return path

    def show(self) -> None:
        self.image.show()

    def to_json(self) -> dict[str, Any]:
        return dict(self.metadata)

    def _repr_png_(self) -> bytes:
        return _png_bytes(self.image)

    def __repr__(self) -> str:
        sim = "n/a" if self.similarity is None else f"{self.similarity:.3f}"
        flag = "" if self.ok else f", flagged: {self.reason}"
        w, h = self.image.size
        return f"Portrait({w}x{h}, seed={self.seed}, similarity={sim}{flag})"


@dataclass
class Portraits(Sequence[Portrait]):
    """The images of one run, best first, with the run's settings, warnings and timings."""

    portraits: list[Portrait] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # verb, identity, style, models, sampler, seeds, ...
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None
    intermediates: dict[str, Any] = field(default_factory=dict, repr=False)  # name -> image, saved in intermediates/
    details: Any = field(default=None, repr=False, compare=False)  # the pipeline's own outcome (every stage's arrays)

    def __post_init__(self) -> None:
        for i, p in enumerate(self.portraits, 1):
            p.metadata["rank"] = i  # 1-based everywhere

    # -- list-like ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.portraits)

    def __iter__(self) -> Iterator[Portrait]:
        return iter(self.portraits)

    def __getitem__(self, i):  # type: ignore[override]
        return self.portraits[i]

    @property
    def best(self) -> Portrait | None:
        return self.portraits[0] if self.portraits else None

    @property
    def flagged(self) -> list[Portrait]:
        return [p for p in self.portraits if not p.ok]

    @property
    def images(self) -> list[Image.Image]:
        return [p.image for p in self.portraits]

    # -- looking at them -----------------------------------------------------------------------
    def contact_sheet(self, thumb: int = 256) -> Image.Image:
        from .postprocess.contact_sheet import make_contact_sheet

        caps = []
        for i, p in enumerate(self.portraits, 1):
            sim = "no face" if p.similarity is None else f"sim {p.similarity:.3f}"
            caps.append(f"#{i} {sim}{'' if p.ok else ' (flagged)'}")
        return make_contact_sheet([p.image for p in self.portraits], caps, thumb=thumb,
                                  flagged=[not p.ok for p in self.portraits])

    def show(self) -> None:
        """Open the contact sheet in the system image viewer."""
        if self.portraits:
            self.contact_sheet().show()

    def _repr_html_(self) -> str:
        cells = []
        for i, p in enumerate(self.portraits, 1):
            data = base64.b64encode(_png_bytes(p.image, max_side=256)).decode("ascii")
            sim = "no face" if p.similarity is None else f"similarity {p.similarity:.3f}"
            note = "" if p.ok else f" — flagged: {html.escape(str(p.reason))}"
            border = "" if p.ok else "border:3px solid #c33;"
            cells.append(f'<figure style="display:inline-block;margin:4px;text-align:center">'
                         f'<img src="data:image/png;base64,{data}" style="max-width:256px;{border}"/>'
                         f'<figcaption>#{i} {sim}, seed {p.seed}{note}</figcaption></figure>')
        return f"<div><b>{html.escape(repr(self))}</b><br/>{''.join(cells)}</div>"

    def __repr__(self) -> str:
        verb = self.settings.get("verb", "")
        label = self.settings.get("style") or self.settings.get("template") or ""
        best = self.best
        sim = "n/a" if best is None or best.similarity is None else f"{best.similarity:.3f}"
        where = f", saved in {self.output_dir}" if self.output_dir else ""
        flagged = f", {len(self.flagged)} flagged" if self.flagged else ""
        what = " ".join(x for x in (verb, str(label)) if x)
        return f"Portraits({len(self)} image{'s' if len(self) != 1 else ''}{', ' + what if what else ''}, best similarity {sim}{flagged}{where})"

    # -- saving and loading --------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "settings": self.settings, "warnings": self.warnings, "timings": self.timings,
                "portraits": [p.to_json() for p in self.portraits]}

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write ``NNNN.png`` (rank order), ``portraits.json`` and ``contact_sheet.jpg`` into a fresh folder."""
        folder = check_output_folder(folder, overwrite)
        assert folder is not None
        if folder.is_dir() and any(folder.iterdir()):  # only a portraits folder gets here (checked above)
            announce(f"replacing the portraits folder {folder} (--overwrite)")
        with atomic_directory(folder, overwrite=True) as tmp:
            for i, p in enumerate(self.portraits, 1):
                name = f"{i:04d}.png"
                p.metadata["file"] = name
                p.metadata["rank"] = i
                p.save(tmp / name)
            (tmp / SUMMARY_FILE).write_text(json.dumps(self.to_json(), indent=2, allow_nan=False), encoding="utf-8")
            if self.portraits:
                save_jpeg(tmp / CONTACT_SHEET, self.contact_sheet())
            for name, image in self.intermediates.items():
                save_png(tmp / "intermediates" / f"{name}.png", image)
        for p in self.portraits:
            p.path = folder / p.metadata["file"]
        self.output_dir = folder
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Portraits":
        """Read a folder written by :meth:`save` (e.g. a service job's results)."""
        folder = Path(folder)
        summary = folder / SUMMARY_FILE
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(folder, f"not a portraits folder (no {SUMMARY_FILE})") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(summary, f"unreadable portraits summary ({type(e).__name__})") from None
        if not isinstance(data, dict) or not isinstance(data.get("portraits"), list):
            raise InputError(summary, "not a facechain portraits summary")
        from .image_io import load_image

        portraits = []
        for meta in data["portraits"]:
            if not isinstance(meta, dict) or "file" not in meta:
                raise InputError(summary, "a portrait entry has no file")
            path = folder / str(meta["file"])
            image = Image.fromarray(load_image(path))
            portraits.append(Portrait(image, meta.get("similarity"), meta.get("seed"), bool(meta.get("ok", True)),
                                      meta.get("reason"), list(meta.get("faces") or []), dict(meta), path=path))
        out = cls(portraits, dict(data.get("settings") or {}), list(data.get("warnings") or []),
                  dict(data.get("timings") or {}))
        out.output_dir = folder
        return out
