"""Resolve model references (local folder, single file, Hugging Face id, ModelScope id).

Reference syntax::

    ./models/my-sd15            a local folder (diffusers layout) or file
    /data/model.safetensors     a single-file checkpoint
    runwayml/stable-diffusion-v1-5          Hugging Face (also "hf:org/name")
    ms:ly261666/cv_portrait_model@v4.0#film/film   ModelScope, revision v4.0, subfolder film/film

Downloads go to ``$FACECHAIN_HOME/models/<hub>/<owner>/<name>/<revision>`` and fetch only the files
the model needs (:mod:`.layouts`); a completion marker written last makes a download count as
present, so an interrupted one never does. In offline mode (``FACECHAIN_OFFLINE=1``,
``HF_HUB_OFFLINE=1`` or ``offline=True``) only files already there are used. Every failure is a
:class:`~facechain.errors.ModelNotFoundError` naming the model and how to get it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from ..errors import ModelNotFoundError, shell_command
from ..paths import models_dir
from . import layouts

log = logging.getLogger(__name__)

Source = Literal["local", "hf", "modelscope"]
_LOCAL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".onnx", ".dat", ".tflite")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference."""

    source: Source
    id: str
    revision: str | None = None
    subfolder: str | None = None

    @classmethod
    def parse(cls, text: str | os.PathLike) -> "ModelRef":
        raw = str(text).strip()
        if not raw:
            raise ValueError("empty model reference")
        lowered = raw.lower()
        for prefix, source in (("hf:", "hf"), ("huggingface:", "hf"), ("ms:", "modelscope"), ("modelscope:", "modelscope")):
            if lowered.startswith(prefix):
                return cls._hub(source, raw[len(prefix):])  # type: ignore[arg-type]
        p = Path(raw).expanduser()
        repo_part = raw.split("#", 1)[0].split("@", 1)[0]  # "org/name@rev#file.safetensors" is a hub file
        looks_local = (
            raw.startswith((".", "/", "~"))
            or p.exists()
            or repo_part.lower().endswith(_LOCAL_SUFFIXES)
            or repo_part.count("/") != 1
            or "\\" in raw
        )
        if looks_local:
            return cls("local", str(p))
        return cls._hub("hf", raw)

    @classmethod
    def _hub(cls, source: Source, rest: str) -> "ModelRef":
        subfolder = None
        if "#" in rest:
            rest, subfolder = rest.split("#", 1)
        revision = None
        if "@" in rest:
            rest, revision = rest.split("@", 1)
        return cls(source, rest.strip("/"), revision or None, subfolder or None)

    def __str__(self) -> str:
        if self.source == "local":
            return self.id
        s = ("ms:" if self.source == "modelscope" else "") + self.id
        if self.revision:
            s += "@" + self.revision
        if self.subfolder:
            s += "#" + self.subfolder
        return s


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a (possibly multi-GB) weights file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _env_offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("FACECHAIN_OFFLINE", "HF_HUB_OFFLINE"))


#: Written into a download folder once every requested file arrived; without it nothing counts as there.
MARKER = ".facechain-complete.json"


def download_command(target: str) -> str:
    """``facechain models download TARGET``, TARGET quoted for a POSIX shell when it needs it."""
    return shell_command("facechain", "models", "download", target)


def download_target(ref: "ModelRef | str") -> str:
    """What to put after ``facechain models download``: the registry name of ``ref``, else ``ref`` itself."""
    from .registry import find_by_reference  # lazy: the registry imports pose.model_files, which imports us

    text = str(ref)
    spec = find_by_reference(text)
    return spec.name if spec is not None else text


class ModelStore:
    """Turns references into local paths; downloads (unless offline) into ``cache_dir``.

    Hub downloads go to ``<cache>/<huggingface|modelscope>/<owner>/<name>/<revision>/`` and fetch
    only the files a model needs (:mod:`.layouts`). A download counts as present only once
    :data:`MARKER` records it complete, so an interrupted one is "missing", never half-loaded.
    """

    def __init__(self, cache_dir: Path | str | None = None, offline: bool | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir else models_dir()
        self.offline = _env_offline() if offline is None else offline

    # -- public -------------------------------------------------------------------------
    def resolve(
        self,
        reference: str | os.PathLike,
        *,
        name: str | None = None,
        allow_patterns: Sequence[str] | None = None,
        kind: str | None = None,
        download: bool = True,
    ) -> Path:
        """Local path for ``reference``; fetches it when allowed and not complete in the cache yet.

        Which files: ``allow_patterns`` if given, else the layout of ``kind``, else the registry's
        entry for this reference, else the file after ``#``, else detected from the repository
        (``model_index.json`` -> pipeline, a ControlNet ``config.json`` -> ControlNet, else all).
        """
        ref = ModelRef.parse(reference)
        label = name or str(ref)
        if ref.source == "local":
            p = Path(ref.id)
            if not p.exists():
                raise ModelNotFoundError(label, str(ref), "check the path, or pass another with the matching --...-model flag", "no such file or folder")
            return p
        request = self._request(ref, allow_patterns, kind)
        path = self._complete(ref, request)
        if path is None and download and not self.offline:
            path = self._download(ref, label, request)
        if path is None:
            why = "offline mode" if self.offline else "not downloaded"
            raise self._not_found(label, ref, why)
        return path / ref.subfolder if ref.subfolder else path

    def is_present(self, reference: str | os.PathLike, allow_patterns: Sequence[str] | None = None,
                   kind: str | None = None) -> bool:
        """Whether ``reference`` is complete locally (a download without its completion marker is not)."""
        ref = ModelRef.parse(reference)
        if ref.source == "local":
            return Path(ref.id).exists()
        return self._complete(ref, self._request(ref, allow_patterns, kind)) is not None

    def download(self, reference: str | os.PathLike, *, name: str | None = None,
                 allow_patterns: Sequence[str] | None = None, kind: str | None = None) -> Path:
        """Fetch ``reference`` now (even if complete: hubs skip files already there), or raise ModelNotFoundError."""
        ref = ModelRef.parse(reference)
        if ref.source == "local":
            return self.resolve(reference, name=name)
        label = name or str(ref)
        if self.offline:
            raise ModelNotFoundError(label, str(ref), "unset FACECHAIN_OFFLINE / HF_HUB_OFFLINE (or drop --offline) to download",
                                     "offline mode")
        path = self._download(ref, label, self._request(ref, allow_patterns, kind))
        return path / ref.subfolder if ref.subfolder else path

    def local_dir(self, reference: "str | ModelRef") -> Path:
        """Where a hub reference is (or would be) downloaded: one folder per repository and revision."""
        ref = reference if isinstance(reference, ModelRef) else ModelRef.parse(reference)
        if ref.source == "local":
            return Path(ref.id)
        hub = "modelscope" if ref.source == "modelscope" else "huggingface"
        revision = (ref.revision or ("master" if ref.source == "modelscope" else "main")).replace("/", "--")
        return self.cache_dir / hub / ref.id / revision

    @staticmethod
    def how_to_get(label: str, ref: ModelRef) -> str:
        """The hint of a missing hub model: a command that fetches exactly ``ref``."""
        hub = "ModelScope" if ref.source == "modelscope" else "Hugging Face"
        return (f"run '{download_command(download_target(ref))}' on a machine that reaches {hub}, "
                f"or download {ref.id} yourself and pass its local folder/file instead")

    # -- internals ----------------------------------------------------------------------
    def _not_found(self, label: str, ref: ModelRef, why: str) -> ModelNotFoundError:
        return ModelNotFoundError(label, str(ref), self.how_to_get(label, ref), why,
                                  command=download_command(download_target(ref)))

    @staticmethod
    def _request(ref: ModelRef, allow_patterns: Sequence[str] | None, kind: str | None) -> tuple[str, ...] | None:
        """The exact patterns to fetch, or None: detect the layout from the repository itself."""
        if allow_patterns:
            return tuple(allow_patterns)
        if kind is not None:
            return layouts.layout_patterns(kind, ref.subfolder)
        from .registry import find_by_reference

        spec = find_by_reference(str(ref))
        if spec is not None and spec.allow_patterns:
            return tuple(spec.allow_patterns)
        if layouts.is_file_subfolder(ref.subfolder):
            return layouts.layout_patterns("file", ref.subfolder)
        return None

    def _read_marker(self, folder: Path) -> dict | None:
        try:
            data = json.loads((folder / MARKER).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _complete(self, ref: ModelRef, request: tuple[str, ...] | None) -> Path | None:
        folder = self.local_dir(ref)
        marker = self._read_marker(folder)
        if marker is None:
            return None
        done = set(marker.get("patterns", []))
        if request is None:
            ok = (ref.subfolder or "") in marker.get("detected", [])
        else:
            ok = all(_covered(p, done) for p in request)
        if not ok:
            return None
        if not all((folder / f).is_file() for f in marker.get("files", {})):
            return None  # a file of a finished download was deleted since
        return folder

    def _download(self, ref: ModelRef, label: str, request: tuple[str, ...] | None) -> Path:
        folder = self.local_dir(ref)
        log.info("downloading %s (%s) into %s", label, ref, folder)
        sub = (ref.subfolder or "").strip("/")
        try:
            if request is None:  # detect the layout from the repository's own config files
                self._fetch(ref, label, folder, layouts._prefixed(("model_index.json", "config.json"), sub))
                kind = _detect_kind(folder / sub if sub else folder)
                patterns = layouts.layout_patterns(kind, sub or None)
            else:
                kind = None
                patterns = request
            self._fetch(ref, label, folder, patterns)
            if kind is None:  # a registry/caller layout: which one, for the safetensors check below
                kind = next((k for k in ("pipeline", "controlnet") if patterns == layouts.layout_patterns(k, sub or None)), "repo")
            fallback = [f"{sub}/{f}" if sub else f for f in layouts.pickle_fallbacks(folder / sub if sub else folder, kind)]
            if fallback:
                log.warning("%s publishes no .safetensors for %s; fetching the pickled weights (loaded with weights_only=True)",
                            ref, ", ".join(fallback))
                self._fetch(ref, label, folder, tuple(fallback))
            missing = _missing_after_download(folder, sub, kind, tuple(patterns))
            if missing:
                raise self._not_found(label, ref, f"the repository has no {missing} (check the reference)")
        except ModelNotFoundError:
            raise
        except Exception as e:  # network errors, missing repos, auth...
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise self._not_found(label, ref, f"download failed: {first[:200]}") from None
        self._mark_complete(folder, ref, tuple(patterns) + tuple(fallback), detected=sub if request is None else None)
        return folder

    def _fetch(self, ref: ModelRef, label: str, folder: Path, patterns: Sequence[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if ref.source == "hf":
            from huggingface_hub import snapshot_download

            snapshot_download(ref.id, revision=ref.revision, local_dir=str(folder), allow_patterns=list(patterns))
            return
        try:
            from modelscope import snapshot_download as ms_snapshot_download  # type: ignore
        except ImportError:
            raise ModelNotFoundError(
                label, str(ref),
                f"install ModelScope support (pip install modelscope) and run '{download_command(download_target(ref))}', "
                "or pass a local folder/file or a Hugging Face id instead",
                "modelscope is not installed",
            ) from None
        ms_snapshot_download(ref.id, revision=ref.revision, local_dir=str(folder), allow_patterns=list(patterns))

    def _mark_complete(self, folder: Path, ref: ModelRef, patterns: tuple[str, ...], detected: str | None) -> None:
        from ..atomic import atomic_write_text

        old = self._read_marker(folder) or {}
        files = {str(f.relative_to(folder)): f.stat().st_size for f in folder.rglob("*")
                 if f.is_file() and f.name != MARKER and ".cache" not in f.relative_to(folder).parts
                 and any(_covered_file(str(f.relative_to(folder)), p) for p in patterns)}
        data = {
            "reference": str(ModelRef(ref.source, ref.id, ref.revision)),
            "patterns": sorted(set(old.get("patterns", [])) | set(patterns)),
            "detected": sorted(set(old.get("detected", [])) | ({detected} if detected is not None else set())),
            "files": {**old.get("files", {}), **files},
        }
        atomic_write_text(folder / MARKER, json.dumps(data, indent=1))


def _covered(pattern: str, done: set[str]) -> bool:
    """Whether a completed download of patterns ``done`` included everything ``pattern`` asks for."""
    if pattern in done:
        return True
    return any(d == "*" or (d.endswith("/*") and pattern.startswith(d[:-1])) for d in done)


def _covered_file(path: str, pattern: str) -> bool:
    return fnmatch.fnmatch(path, pattern)


def _missing_after_download(folder: Path, sub: str, kind: str, patterns: tuple[str, ...]) -> str | None:
    """The first file a finished download still lacks (so a wrong reference is never marked complete)."""
    root = folder / sub if sub else folder
    if kind == "pipeline":
        if not (root / "model_index.json").is_file():
            return "model_index.json"
        listed = json.loads((root / "model_index.json").read_text())
        for comp, names in layouts.WEIGHT_COMPONENTS.items():
            value = listed.get(comp)
            if comp != "controlnet" and isinstance(value, list) and value and value[0]:
                if not any((root / comp / n).is_file() for n in names):
                    return f"{comp} weights"
        return None
    if kind == "controlnet":
        if not (root / "config.json").is_file():
            return "config.json"
        return None if any((root / n).is_file() for n in layouts.WEIGHT_COMPONENTS["controlnet"]) else "ControlNet weights"
    for pattern in patterns:  # explicit files (a style LoRA, the FACT checkpoints): each must be there
        if not any(ch in pattern for ch in "*?[") and not (folder / pattern).is_file():
            return pattern
    return None


def _detect_kind(folder: Path) -> str:
    """``pipeline`` / ``controlnet`` / ``repo`` from the config files fetched first."""
    if (folder / "model_index.json").is_file():
        return "pipeline"
    cfg = folder / "config.json"
    if cfg.is_file():
        try:
            cls = str(json.loads(cfg.read_text()).get("_class_name", ""))
        except (OSError, ValueError, AttributeError):
            cls = ""
        if "ControlNet" in cls:
            return "controlnet"
    return "repo"


_DEFAULT: ModelStore | None = None


def default_store() -> ModelStore:
    """The process-wide store (re-created if FACECHAIN_HOME/offline env changed)."""
    global _DEFAULT
    store = ModelStore()
    if _DEFAULT is None or _DEFAULT.cache_dir != store.cache_dir or _DEFAULT.offline != store.offline:
        _DEFAULT = store
    return _DEFAULT
