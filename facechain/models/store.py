"""Resolve model references (local folder, single file, Hugging Face id, ModelScope id).

Reference syntax::

    ./models/my-sd15            a local folder (diffusers layout) or file
    /data/model.safetensors     a single-file checkpoint
    runwayml/stable-diffusion-v1-5          Hugging Face (also "hf:org/name")
    ms:ly261666/cv_portrait_model@v4.0#film/film   ModelScope, revision v4.0, subfolder film/film

Downloads go to ``$FACECHAIN_HOME/models``. In offline mode (``FACECHAIN_OFFLINE=1``,
``HF_HUB_OFFLINE=1`` or ``offline=True``) only files already there are used. Every failure is a
:class:`~facechain.errors.ModelNotFoundError` naming the model and how to get it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from ..errors import ModelNotFoundError
from ..paths import models_dir

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
        looks_local = (
            raw.startswith((".", "/", "~"))
            or p.exists()
            or raw.lower().endswith(_LOCAL_SUFFIXES)
            or raw.count("/") != 1
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


class ModelStore:
    """Turns references into local paths; downloads (unless offline) into ``cache_dir``."""

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
        download: bool = True,
    ) -> Path:
        """Local path for ``reference``; fetches it when allowed and not cached yet."""
        ref = ModelRef.parse(reference)
        label = name or str(ref)
        if ref.source == "local":
            p = Path(ref.id)
            if not p.exists():
                raise ModelNotFoundError(label, str(ref), "check the path, or pass another with the matching --...-model flag", "no such file or folder")
            return p
        path = self._cached(ref, allow_patterns)
        if path is None and download and not self.offline:
            path = self._download(ref, label, allow_patterns)
        if path is None:
            why = "offline mode" if self.offline else "not downloaded"
            raise ModelNotFoundError(label, str(ref), self.how_to_get(label, ref), why)
        return path / ref.subfolder if ref.subfolder else path

    def is_present(self, reference: str | os.PathLike, allow_patterns: Sequence[str] | None = None) -> bool:
        ref = ModelRef.parse(reference)
        if ref.source == "local":
            return Path(ref.id).exists()
        return self._cached(ref, allow_patterns) is not None

    def download(self, reference: str | os.PathLike, *, name: str | None = None, allow_patterns: Sequence[str] | None = None) -> Path:
        """Fetch ``reference`` now (ignores the cache check), raising ModelNotFoundError on failure."""
        ref = ModelRef.parse(reference)
        if ref.source == "local":
            return self.resolve(reference, name=name)
        if self.offline:
            raise ModelNotFoundError(name or str(ref), str(ref), "unset FACECHAIN_OFFLINE / HF_HUB_OFFLINE to download", "offline mode")
        path = self._download(ref, name or str(ref), allow_patterns)
        if path is None:  # pragma: no cover - _download raises
            raise ModelNotFoundError(name or str(ref), str(ref), self.how_to_get(name or str(ref), ref))
        return path / ref.subfolder if ref.subfolder else path

    @staticmethod
    def how_to_get(label: str, ref: ModelRef) -> str:
        hub = "ModelScope" if ref.source == "modelscope" else "Hugging Face"
        return (
            f"run 'facechain models download {label}' on a machine that reaches {hub}, "
            f"or download {ref.id} yourself and pass its local folder/file instead"
        )

    # -- internals ----------------------------------------------------------------------
    def _hf_dir(self) -> Path:
        return self.cache_dir / "huggingface"

    def _ms_dir(self) -> Path:
        return self.cache_dir / "modelscope"

    def _cached(self, ref: ModelRef, allow_patterns: Sequence[str] | None) -> Path | None:
        if ref.source == "hf":
            from huggingface_hub import snapshot_download

            try:
                return Path(
                    snapshot_download(
                        ref.id, revision=ref.revision, cache_dir=self._hf_dir(), local_files_only=True,
                        allow_patterns=list(allow_patterns) if allow_patterns else None,
                    )
                )
            except Exception:
                return None
        # ModelScope keeps <cache>/<owner>/<name>; a folder with files counts as present.
        d = self._ms_dir() / ref.id
        if ref.revision:
            marker = d / ".facechain_revision"
            if marker.exists() and marker.read_text().strip() != ref.revision:
                return None
        if not (d.is_dir() and any(d.iterdir())):
            return None
        if allow_patterns:  # a repo fetched for one file is not "present" for another
            files = [str(f.relative_to(d)) for f in d.rglob("*") if f.is_file()]
            if not all(any(fnmatch.fnmatch(f, pat) for f in files) for pat in allow_patterns):
                return None
        return d

    def _download(self, ref: ModelRef, label: str, allow_patterns: Sequence[str] | None) -> Path:
        log.info("downloading %s (%s) into %s", label, ref, self.cache_dir)
        try:
            if ref.source == "hf":
                from huggingface_hub import snapshot_download

                return Path(
                    snapshot_download(
                        ref.id, revision=ref.revision, cache_dir=self._hf_dir(),
                        allow_patterns=list(allow_patterns) if allow_patterns else None,
                    )
                )
            try:
                from modelscope import snapshot_download as ms_snapshot_download  # type: ignore
            except ImportError:
                raise ModelNotFoundError(
                    label, str(ref),
                    f"install ModelScope support (pip install 'facechain[modelscope]') and run 'facechain models download {label}', "
                    "or pass a local folder/file or a Hugging Face id instead",
                    "modelscope is not installed",
                ) from None
            path = Path(
                ms_snapshot_download(
                    ref.id, revision=ref.revision, local_dir=str(self._ms_dir() / ref.id),
                    allow_patterns=list(allow_patterns) if allow_patterns else None,
                )
            )
            if ref.revision:
                (path / ".facechain_revision").write_text(ref.revision)
            return path
        except ModelNotFoundError:
            raise
        except Exception as e:  # network errors, missing repos, auth...
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelNotFoundError(label, str(ref), self.how_to_get(label, ref), f"download failed: {first[:200]}") from None


_DEFAULT: ModelStore | None = None


def default_store() -> ModelStore:
    """The process-wide store (re-created if FACECHAIN_HOME/offline env changed)."""
    global _DEFAULT
    store = ModelStore()
    if _DEFAULT is None or _DEFAULT.cache_dir != store.cache_dir or _DEFAULT.offline != store.offline:
        _DEFAULT = store
    return _DEFAULT
