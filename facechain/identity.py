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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_text
from .errors import FacechainError, InputError
from .paths import identities_dir
from .textfiles import read_json
from .weight_files import check_safetensors

MANIFEST = "facechain.json"
LORA_FILE = "pytorch_lora_weights.safetensors"
FORMAT_VERSION = 1


@dataclass
class Identity:
    """What generation needs to know about a trained person."""

    # repr=False: bulky or technical fields stay out of the repr (a 128-float embedding, training logs)
    name: str
    base_model: str
    trigger_word: str
    path: Path
    lora_file: str = field(default=LORA_FILE, repr=False)
    template_face: str = field(default="template_face.png", repr=False)
    template_embedding: list[float] | None = field(default=None, repr=False)
    tags: list[str] = field(default_factory=list)  # frequent per-identity tags added to prompts
    lora: dict[str, Any] = field(default_factory=dict, repr=False)  # rank, alpha, target_modules, text_encoder
    training: dict[str, Any] = field(default_factory=dict, repr=False)  # settings, steps, final_loss, optimizer...
    dataset: dict[str, Any] = field(default_factory=dict, repr=False)  # path + report summary
    base_model_revision: str | None = field(default=None, repr=False)
    base_model_sha256: str | None = field(default=None, repr=False)  # sha256 of the base UNet weights the LoRA was trained on
    family: str | None = None  # "sd15" | "sdxl" (facechain.diffusion.family); None: made before it was recorded
    created: str | None = None
    format_version: int = field(default=FORMAT_VERSION, repr=False)

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
        data = read_json(manifest, dict, "identity manifest")
        version = data.get("format_version", 0)
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise InputError(manifest, f"made by a newer facechain (format {version}); upgrade facechain")
        _check_manifest(data, manifest)
        known = set(cls.__dataclass_fields__) - {"path"}
        ident = cls(path=folder, **{k: v for k, v in data.items() if k in known})
        for key in ("lora_file", "template_face"):  # files named by the manifest stay inside the folder
            inside = (folder / getattr(ident, key)).resolve()
            if folder.resolve() not in inside.parents:
                raise InputError(manifest, f"not a valid identity manifest: '{key}' points outside the identity folder")
        if not ident.lora_path.exists():
            raise InputError(folder, f"identity is incomplete: {ident.lora_file} is missing")
        return ident

    def check_weights(self) -> None:
        """One-line :class:`InputError` when the face LoRA is truncated or corrupt (reads only its header)."""
        check_safetensors(self.lora_path)


#: Manifest keys and the JSON types they must have (``None`` allowed where the field is optional).
_MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "base_model": (str,), "trigger_word": (str,), "lora_file": (str,), "template_face": (str,),
    "template_embedding": (list, type(None)), "tags": (list,), "lora": (dict,), "training": (dict,), "dataset": (dict,),
    "base_model_revision": (str, type(None)), "base_model_sha256": (str, type(None)), "created": (str, type(None)),
    "format_version": (int,),
}
_REQUIRED = ("name", "base_model", "trigger_word")


def _check_manifest(data: dict[str, Any], manifest: Path) -> None:
    for key in _REQUIRED:
        if key not in data:
            raise InputError(manifest, f"not a valid identity manifest: '{key}' is missing")
    for key, kinds in _MANIFEST_TYPES.items():
        if key in data and (not isinstance(data[key], kinds) or isinstance(data[key], bool)):
            raise InputError(manifest, f"not a valid identity manifest: '{key}' has the wrong type "
                                       f"({type(data[key]).__name__})")
    emb = data.get("template_embedding")
    if emb is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in emb):
        raise InputError(manifest, "not a valid identity manifest: 'template_embedding' must be a list of finite numbers")
    if not all(isinstance(t, str) for t in data.get("tags", [])):
        raise InputError(manifest, "not a valid identity manifest: 'tags' must be a list of text")


@dataclass
class BrokenIdentity:
    """A folder under the identities root that looks like an identity but cannot be loaded."""

    name: str
    path: Path
    reason: str


def scan_identities(root: Path | None = None) -> tuple[list[Identity], list[BrokenIdentity]]:
    """Identities under ``root`` (default ``$FACECHAIN_HOME/identities``), newest first, and the broken ones.

    One unreadable manifest never hides the others: it is returned with its reason instead.
    """
    root = Path(root or identities_dir())
    found: list[Identity] = []
    broken: list[BrokenIdentity] = []
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if d.is_dir() and not d.name.startswith(".") and (d / MANIFEST).exists():
                try:
                    found.append(Identity.load(d))
                except FacechainError as e:
                    reason = e.reason if isinstance(e, InputError) else str(e)
                    broken.append(BrokenIdentity(d.name, d, reason))
    found.sort(key=lambda i: (_mtime(i.path / MANIFEST), i.name), reverse=True)
    return found, broken


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def list_identities(root: Path | None = None) -> list[Identity]:
    """Identities under ``root`` (default ``$FACECHAIN_HOME/identities``), newest first (broken ones left out)."""
    return scan_identities(root)[0]


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
    ids, broken = scan_identities(root)
    if not ids:
        also = f" ({len(broken)} broken: see 'facechain list')" if broken else ""
        raise FacechainError(f"no trained identity found{also}; train one first with 'facechain train PHOTOS --name NAME' "
                             "or pass --person")
    return ids[0]
