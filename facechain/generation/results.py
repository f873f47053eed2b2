"""Generated portraits as result objects (ultralytics-style ``.save()`` / ``.show()``).

A saved run is a folder::

    OUT/0001.png ...        best first; generation parameters embedded as PNG text
                            ("parameters": A1111-style line, "facechain": JSON)
    OUT/portraits.json      the run's settings and every portrait's metadata
    OUT/contact_sheet.jpg   all portraits side by side, flagged ones framed red

Folders are written atomically and existing files are never overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from ..atomic import atomic_directory
from ..errors import InputError
from ..image_io import save_jpeg, save_png
from ..postprocess.contact_sheet import make_contact_sheet


def _a1111_parameters(meta: dict[str, Any]) -> str:
    """The one-line parameter format many tools read (prompt, negative prompt, steps, sampler, ...)."""
    tail = (f"Steps: {meta.get('steps')}, Sampler: {meta.get('sampler')}, CFG scale: {meta.get('guidance')}, "
            f"Seed: {meta.get('seed')}, Size: {meta.get('size')}, Model: {meta.get('base_model')}")
    return f"{meta.get('prompt', '')}\nNegative prompt: {meta.get('negative_prompt', '')}\n{tail}"


@dataclass
class Portrait:
    """One generated portrait: the final image, its likeness score and everything that made it."""

    image: Image.Image
    similarity: float | None
    ok: bool
    reason: str | None
    seed: int
    metadata: dict[str, Any] = field(default_factory=dict)
    raw_image: Image.Image | None = None  # before face fusion
    path: Path | None = None

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.image)

    def save(self, path: str | Path) -> Path:
        """Save as PNG with the generation parameters embedded; refuses to overwrite a file."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        if path.exists():
            raise InputError(path, "already exists; facechain never overwrites portraits")
        meta = {k: v for k, v in self.metadata.items() if k != "file"}
        save_png(path, self.image, text={"parameters": _a1111_parameters(meta), "facechain": json.dumps(meta)})
        self.path = path
        return path

    def __repr__(self) -> str:
        sim = "n/a" if self.similarity is None else f"{self.similarity:.3f}"
        flag = "" if self.ok else f", flagged: {self.reason}"
        return f"Portrait(seed={self.seed}, similarity={sim}{flag})"


@dataclass
class PortraitSet:
    """The portraits of one run, best first, with the run's settings, warnings and timings."""

    portraits: list[Portrait]
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None

    def __len__(self) -> int:
        return len(self.portraits)

    def __iter__(self) -> Iterator[Portrait]:
        return iter(self.portraits)

    def __getitem__(self, i: int) -> Portrait:
        return self.portraits[i]

    @property
    def best(self) -> Portrait | None:
        return self.portraits[0] if self.portraits else None

    @property
    def flagged(self) -> list[Portrait]:
        return [p for p in self.portraits if not p.ok]

    def contact_sheet(self, thumb: int = 256) -> Image.Image:
        caps = []
        for i, p in enumerate(self.portraits, 1):
            sim = "no face" if p.similarity is None else f"sim {p.similarity:.3f}"
            caps.append(f"#{i} {sim}{'' if p.ok else ' (flagged)'}")
        return make_contact_sheet([p.image for p in self.portraits], caps, thumb=thumb, flagged=[not p.ok for p in self.portraits])

    def show(self) -> None:
        """Open the contact sheet in the system image viewer."""
        self.contact_sheet().show()

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "warnings": self.warnings, "timings": self.timings,
                "portraits": [p.metadata for p in self.portraits]}

    def save(self, folder: str | Path) -> Path:
        """Write ``NNNN.png`` (best first), ``portraits.json`` and ``contact_sheet.jpg`` into a new folder."""
        folder = Path(folder)
        if folder.exists() and (folder.is_file() or any(folder.iterdir())):
            raise InputError(folder, "already exists and is not empty; facechain never overwrites portraits, choose another --output")
        with atomic_directory(folder, overwrite=True) as tmp:
            for i, p in enumerate(self.portraits, 1):
                name = f"{i:04d}.png"
                p.metadata["file"] = name
                p.metadata["rank"] = i
                p.save(tmp / name)
            (tmp / "portraits.json").write_text(json.dumps(self.to_json(), indent=2))
            if self.portraits:
                save_jpeg(tmp / "contact_sheet.jpg", self.contact_sheet())
        for p in self.portraits:
            p.path = folder / p.metadata["file"]
        self.output_dir = folder
        return folder
