"""A trained identity: the folder ``facechain train`` writes and ``generate``/``inpaint`` read.

Layout::

    <identity>/pytorch_lora_weights.safetensors   face LoRA, diffusers format (pipe.load_lora_weights(folder))
    <identity>/facechain.json                     manifest (this module)
    <identity>/template_face.png                  best-quality training face (post-processing reference)
    <identity>/dataset/                           the prepared dataset it was trained on

Identities live in ``$FACECHAIN_HOME/identities/<name>`` unless ``--output`` says otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_text
from .errors import FacechainError, InputError
from .paths import identities_dir

MANIFEST = "facechain.json"
LORA_FILE = "pytorch_lora_weights.safetensors"
FORMAT_VERSION = 1


@dataclass
class Identity:
    """What generation needs to know about a trained person."""

    name: str
    base_model: str
    trigger_word: str
    path: Path
    lora_file: str = LORA_FILE
    template_face: str = "template_face.png"
    template_embedding: list[float] | None = None
    tags: list[str] = field(default_factory=list)  # frequent per-identity tags added to prompts
    lora: dict[str, Any] = field(default_factory=dict)  # rank, alpha, target_modules, text_encoder
    training: dict[str, Any] = field(default_factory=dict)  # settings, steps, final_loss, optimizer...
    dataset: dict[str, Any] = field(default_factory=dict)  # path + report summary
    base_model_revision: str | None = None
    base_model_sha256: str | None = None  # sha256 of the base UNet weights the LoRA was trained on
    family: str | None = None  # "sd15" | "sdxl" (facechain.diffusion.family); None: made before it was recorded
    created: str | None = None
    format_version: int = FORMAT_VERSION

    @property
    def lora_path(self) -> Path:
        return self.path / self.lora_file

    @property
    def template_face_path(self) -> Path:
        return self.path / self.template_face

    @property
    def embedding(self) -> np.ndarray | None:
        return None if self.template_embedding is None else np.asarray(self.template_embedding, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "path"}
        return d

    def save(self, folder: Path | None = None) -> Path:
        folder = Path(folder or self.path)
        atomic_write_text(folder / MANIFEST, json.dumps(self.to_json(), indent=2))
        return folder / MANIFEST

    @classmethod
    def load(cls, folder: Path | str) -> "Identity":
        folder = Path(folder)
        manifest = folder / MANIFEST
        if not manifest.exists():
            raise InputError(folder, f"not a facechain identity (no {MANIFEST})")
        try:
            data = json.loads(manifest.read_text())
        except json.JSONDecodeError as e:
            raise InputError(manifest, f"corrupt manifest ({e.msg} at line {e.lineno})") from None
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise InputError(manifest, f"made by a newer facechain (format {data['format_version']}); upgrade facechain")
        known = set(cls.__dataclass_fields__) - {"path"}
        ident = cls(path=folder, **{k: v for k, v in data.items() if k in known})
        if not ident.lora_path.exists():
            raise InputError(folder, f"identity is incomplete: {ident.lora_file} is missing")
        return ident


def list_identities(root: Path | None = None) -> list[Identity]:
    """Identities under ``root`` (default ``$FACECHAIN_HOME/identities``), newest first."""
    root = Path(root or identities_dir())
    found = []
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and not d.name.startswith(".") and (d / MANIFEST).exists():
                try:
                    found.append(Identity.load(d))
                except FacechainError:
                    continue
    found.sort(key=lambda i: ((i.path / MANIFEST).stat().st_mtime, i.name), reverse=True)
    return found


def resolve_identity(person: str | Path | None, root: Path | None = None) -> Identity:
    """``--person``: a folder path, a name under FACECHAIN_HOME, or (None) the newest identity."""
    if person is not None:
        p = Path(person)
        if p.is_dir():
            return Identity.load(p)
        cand = Path(root or identities_dir()) / str(person)
        if cand.is_dir():
            return Identity.load(cand)
        names = [i.name for i in list_identities(root)]
        hint = f"known: {', '.join(names)}" if names else "train one first with 'facechain train PHOTOS --name NAME'"
        raise InputError(person, f"no such identity ({hint})")
    ids = list_identities(root)
    if not ids:
        raise FacechainError("no trained identity found; train one first with 'facechain train PHOTOS --name NAME' or pass --person")
    return ids[0]
