"""The paper's talking-head model, SadTalker: its published weights, read and checked key by key.

SadTalker (Zhang et al., CVPR 2023; Apache-2.0) predicts 3DMM motion coefficients from audio
(ExpNet for expression, PoseVAE for head pose) and renders them with a 3D-aware face renderer.
Its V0.0.2 release (Hugging Face ``vinthony/SadTalker``) is one ``.safetensors`` file per
resolution (256/512) holding five sub-networks under a prefix each, plus a pickled mapping
network (``mapping_00229-model.pth.tar``) read here with ``weights_only=True``:

============== ======================== =====================================================
published      ours                     what it is
============== ======================== =====================================================
face_3drecon   face_reconstruction      ResNet-50 regressing the portrait's 3DMM coefficients
audio2exp      expnet                   ExpNet: audio -> expression coefficients
audio2pose     posevae                  PoseVAE: audio -> head pose (CVAE + its discriminator)
kp_extractor   keypoint_detector        renderer: canonical 3-D keypoints of the portrait
generator      face_renderer            renderer: occlusion-aware SPADE generator
mapping (file) mapping_net              renderer: coefficients -> keypoint motion
he_estimator   (not used)               head-pose estimator; SadTalker's safetensors loader skips it
============== ======================== =====================================================

**SadTalker cannot run here**: its networks (and their 3DMM basis files) are not part of
facechain, and no hub is reachable to fetch the weights. What is here is what comes before
running them and what a port would need first: the loader maps every key to its sub-network,
checks names and shapes against the release's layout (``sadtalker_layout.json``, recorded from
SadTalker's module definitions) and fails in one line naming missing, unexpected or mis-shaped
keys. It is tested on state dicts in the published layout. ``backend="sadtalker"`` therefore
resolves and validates the weights, then says plainly that only the offline backend renders.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from ...errors import FacechainError, InputError

#: published prefix -> our sub-network name, for the parts the safetensors file must hold.
PARTS: dict[str, str] = {
    "face_3drecon": "face_reconstruction",
    "audio2exp": "expnet",
    "audio2pose": "posevae",
    "kp_extractor": "keypoint_detector",
    "generator": "face_renderer",
}
MAPPING_PART = ("mapping", "mapping_net")  # a separate pickle, not in the safetensors file
IGNORED_PARTS = ("he_estimator",)  # may be present; SadTalker's safetensors loader never reads it
MODEL_NAME = "sadtalker"
CHECKPOINT = "SadTalker_V0.0.2_{size}.safetensors"
MAPPING_FILE = "mapping_00229-model.pth.tar"
_LAYOUT_FILE = Path(__file__).with_name("sadtalker_layout.json")


@functools.lru_cache(maxsize=1)
def published_layout() -> dict[str, dict[str, tuple[int, ...]]]:
    """``{published part: {key inside the part: shape}}`` of the V0.0.2 release."""
    data = json.loads(_LAYOUT_FILE.read_text(encoding="utf-8"))
    return {part: {k: tuple(v) for k, v in keys.items()} for part, keys in data["parts"].items()}


@dataclass
class SadTalkerWeights:
    """The release's tensors grouped by sub-network (our names), keys as inside each part."""

    parts: dict[str, dict[str, Any]]
    source: str
    ignored: list[str] = field(default_factory=list)

    def num_tensors(self) -> int:
        return sum(len(p) for p in self.parts.values())

    def summary(self) -> str:
        sizes = ", ".join(f"{name} {len(keys)}" for name, keys in self.parts.items())
        return f"{self.source}: {self.num_tensors()} tensors ({sizes}); {len(self.ignored)} ignored"


def _shape(value: Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)
    if shape is None:
        get_shape = getattr(value, "get_shape", None)  # a safetensors slice
        shape = get_shape() if get_shape else ()
    return tuple(int(s) for s in shape)


def _check_part(part: str, keys: Mapping[str, Any], source: str) -> None:
    expected = published_layout()[part]
    missing = [k for k in expected if k not in keys]
    unexpected = [k for k in keys if k not in expected]
    wrong = [f"{part}.{k} {_shape(v)} vs {expected[k]}" for k, v in keys.items() if k in expected and _shape(v) != expected[k]]
    if missing:
        names = ", ".join(f"{part}.{k}" for k in missing[:3])
        raise InputError(source, f"not the SadTalker V0.0.2 layout: {len(missing)} missing keys in '{part}' "
                                 f"({names}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        names = ", ".join(f"{part}.{k}" for k in unexpected[:3])
        raise InputError(source, f"not the SadTalker V0.0.2 layout: {len(unexpected)} unexpected keys in '{part}' "
                                 f"({names}{', ...' if len(unexpected) > 3 else ''})")
    if wrong:
        raise InputError(source, f"not the SadTalker V0.0.2 layout: {len(wrong)} keys with the wrong shape ({wrong[0]})")


def map_published(state: Mapping[str, Any], source: str = "SadTalker weights",
                  parts: tuple[str, ...] | None = None) -> SadTalkerWeights:
    """Group a published state dict (``<part>.<key>``) into our sub-networks, checking every key.

    ``parts`` (published names) limits what is required and kept, as SadTalker's own stages each
    read only theirs from the one file; keys of other known parts are skipped, keys outside every
    known part are an error.
    """
    wanted = tuple(PARTS) if parts is None else tuple(parts)
    unknown = [p for p in wanted if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown SadTalker part(s) {unknown} (known: {', '.join(PARTS)})")
    known = set(PARTS) | set(IGNORED_PARTS)
    grouped: dict[str, dict[str, Any]] = {p: {} for p in wanted}
    ignored: list[str] = []
    strays: list[str] = []
    for key, value in state.items():
        prefix, _, rest = key.partition(".")
        if prefix in grouped and rest:
            grouped[prefix][rest] = value
        elif prefix in known and rest:
            ignored.append(key)
        else:
            strays.append(key)
    if strays:
        raise InputError(source, f"not the SadTalker V0.0.2 layout: {len(strays)} unexpected keys outside its parts "
                                 f"({', '.join(strays[:3])}{', ...' if len(strays) > 3 else ''})")
    for part in wanted:
        _check_part(part, grouped[part], source)
    return SadTalkerWeights({PARTS[p]: grouped[p] for p in wanted}, source, ignored)


def to_published(weights: SadTalkerWeights) -> dict[str, Any]:
    """Back to the release's flat key names (for conversion, and to test the mapping both ways)."""
    ours_to_published = {v: k for k, v in PARTS.items()}
    ours_to_published[MAPPING_PART[1]] = MAPPING_PART[0]
    out: dict[str, Any] = {}
    for name, keys in weights.parts.items():
        prefix = ours_to_published[name]
        out.update({f"{prefix}.{k}": v for k, v in keys.items()})
    return out


def read_safetensors(path: Path | str, parts: tuple[str, ...] | None = None) -> SadTalkerWeights:
    """Check a release file from its header (no tensor read), then load the tensors of ``parts``."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = {k: f.get_slice(k) for k in f.keys()}
            checked = map_published(header, str(path), parts)
            tensors = {name: {k: f.get_tensor(f"{_prefix(name)}.{k}") for k in keys} for name, keys in checked.parts.items()}
    except InputError:
        raise
    except Exception as e:
        raise InputError(path, f"not a readable .safetensors file ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    return SadTalkerWeights(tensors, str(path), checked.ignored)


def _prefix(ours: str) -> str:
    return next(k for k, v in PARTS.items() if v == ours)


def read_mapping(path: Path | str) -> dict[str, Any]:
    """The mapping network's state dict from its pickled training checkpoint (tensors only)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(path, f"cannot read checkpoint as plain weights ({type(e).__name__})") from None
    state = obj.get("mapping") if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise InputError(path, "no 'mapping' state dict in this checkpoint (not a SadTalker mapping file)")
    _check_part(MAPPING_PART[0], state, str(path))
    return dict(state)


def load_sadtalker(folder: Path | str, size: int = 256, parts: tuple[str, ...] | None = None,
                   mapping: bool = True) -> SadTalkerWeights:
    """The release in ``folder`` (as downloaded): checkpoint for ``size`` + mapping network."""
    if size not in (256, 512):
        raise InputError(f"size {size}", "SadTalker was released for 256 and 512 px only")
    folder = Path(folder)
    weights = read_safetensors(folder / CHECKPOINT.format(size=size), parts)
    if mapping:
        weights.parts[MAPPING_PART[1]] = read_mapping(folder / MAPPING_FILE)
    return weights


class SadTalkerBackend:
    """``backend="sadtalker"``: resolves and checks the release, then stops (see the module docstring)."""

    name = "sadtalker"

    def __init__(self, device: str = "auto", folder: Path | str | None = None, size: int = 256):
        if folder is None:
            from ...models.registry import get_model_spec
            from ...models.store import default_store

            spec = get_model_spec(MODEL_NAME)
            folder = default_store().resolve(spec.reference, name=spec.name, allow_patterns=spec.allow_patterns)
        self.weights = load_sadtalker(folder, size)
        raise FacechainError(f"SadTalker weights are valid ({self.weights.num_tensors()} tensors), but its networks are not "
                             "part of this facechain version; use --backend offline")

    def frames(self, job, chunk_frames: int) -> Iterator:  # pragma: no cover - never reached, see __init__
        raise NotImplementedError
