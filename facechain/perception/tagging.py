"""Per-image tags for the training captions, paper section 2.1.

The paper tags each photo with a tagger (DeepDanbooru) and removes *identity-bound* tags: tags
that describe the person's own features (eye colour, lips, nose, ears, skin, gender words...).
Those must stay out of the captions so that the face LoRA binds them to the trigger word
instead of to words that would later have to be repeated in every prompt.

No image tagger ships offline. So:

- :class:`LandmarkTagger` (offline default) only says what our models really measure, and no
  more: ``smile`` (mouth corners lifted above the lip centre and a widened mouth),
  ``open mouth`` (lips apart), ``facing viewer`` (head turned less than ~20 degrees, from the
  nose's place between the jaw's sides; this is head pose, not gaze), ``white background``
  (the border of the processed photo is white) and ``monochrome`` (no colour in the photo). It
  never guesses glasses, hair colour or clothes.
- :class:`WD14Tagger` (optional) runs a WD14 / DeepDanbooru-style ONNX tagger from the model
  store (``wd14-tagger``) and keeps general tags above a threshold.

Every tagger's output goes through :func:`filter_identity_tags`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from ..errors import reading
from ..types import Face
from .quality import frontality

#: Words that make a tag identity-bound (a feature of the person, not of the photo).
IDENTITY_WORDS = frozenset(
    {
        "eye", "eyes", "eyelashes", "eyebrow", "eyebrows", "iris", "pupils", "lip", "lips", "mouth",
        "teeth", "tooth", "fang", "fangs", "nose", "nostrils", "ear", "ears", "face", "head",
        "skin", "freckles", "mole", "cheek", "cheeks", "chin", "forehead", "jaw", "body",
        "male", "female", "man", "woman", "boy", "girl", "1boy", "1girl", "2boys", "2girls",
        "asian", "3d", "realistic", "photorealistic",
    }
)
#: Tags kept although they contain an identity word: expression, gaze and framing describe the
#: photo, not the person.
PHOTO_TAGS = frozenset(
    {"open mouth", "closed mouth", "closed eyes", "looking at viewer", "facing viewer", "one eye closed", "tongue out",
     "upper body", "full body", "head tilt"}
)


def is_identity_bound(tag: str) -> bool:
    t = tag.strip().lower().replace("_", " ")
    if t in PHOTO_TAGS or "eyewear" in t:
        return False
    return any(word in IDENTITY_WORDS for word in t.replace("-", " ").split())


def filter_identity_tags(tags: Sequence[str]) -> list[str]:
    """Tags without identity-bound ones, normalised (spaces, lower case), order kept, no repeats."""
    out: list[str] = []
    for tag in tags:
        t = tag.strip().lower().replace("_", " ")
        if t and not is_identity_bound(t) and t not in out:
            out.append(t)
    return out


@runtime_checkable
class Tagger(Protocol):
    def tag(self, image: np.ndarray, face: Face) -> list[str]:
        """Tags for a processed photo (before identity filtering)."""


def mouth_measures(lm: np.ndarray) -> dict[str, float]:
    """Scale-free mouth shape of an upright face from its 68 landmarks."""
    face_h = max(float(lm[8, 1] - lm[17:27, 1].mean()), 1e-6)
    jaw_w = max(float(lm[16, 0] - lm[0, 0]), 1e-6)
    width = float(np.linalg.norm(lm[54] - lm[48]))
    lip_centre_y = (lm[62, 1] + lm[66, 1]) / 2
    corners_y = (lm[48, 1] + lm[54, 1]) / 2
    return {
        "width": width / jaw_w,  # ~0.36-0.43 relaxed, ~0.48-0.54 smiling
        "corner_lift": float(lip_centre_y - corners_y) / face_h,  # <0.02 relaxed, >0.045 smiling
        "opening": float(np.linalg.norm(lm[66] - lm[62])) / max(width, 1e-6),  # teeth ~0.15, speaking ~0.37
    }


class LandmarkTagger:
    """Offline default: only tags that the landmarks and pixels support (module docstring)."""

    def __init__(self, smile_lift: float = 0.03, smile_width: float = 0.45, open_mouth: float = 0.3, facing: float = 0.6):
        self.smile_lift = smile_lift
        self.smile_width = smile_width
        self.open_mouth = open_mouth
        self.facing = facing

    def tag(self, image: np.ndarray, face: Face) -> list[str]:
        tags: list[str] = []
        if face.landmarks68 is not None:
            m = mouth_measures(face.landmarks68)
            if m["corner_lift"] > self.smile_lift and m["width"] > self.smile_width:
                tags.append("smile")
            if m["opening"] > self.open_mouth:
                tags.append("open mouth")
            if frontality(face.landmarks68) >= self.facing:
                tags.append("facing viewer")
        if _white_border(image):
            tags.append("white background")
        if _colourless(image):
            tags.append("monochrome")
        return tags


def _white_border(image: np.ndarray, width: int = 4, share: float = 0.9) -> bool:
    border = np.concatenate([image[:width].reshape(-1, 3), image[-width:].reshape(-1, 3), image[:, :width].reshape(-1, 3), image[:, -width:].reshape(-1, 3)])
    return bool((border.min(axis=1) >= 245).mean() >= share)


def _colourless(image: np.ndarray) -> bool:
    """No colour anywhere but the (white) background: a black-and-white photo."""
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
    content = image.min(axis=-1) < 245
    if content.mean() < 0.01:
        return False
    return bool(np.percentile(hsv[..., 1][content], 95) < 20)


class WD14Tagger:
    """Optional: a WD14-style ONNX tagger (``wd14-tagger`` in the model store).

    Interface of those models: one input ``(1, S, S, 3)`` float32 BGR in 0..255 (the image
    padded to a white square), one output of per-tag probabilities (logits are passed through a
    sigmoid) in the order of
    ``selected_tags.csv`` (columns ``tag_id,name,category,count``; category 0 = general tags,
    the only ones kept). ``session``/``tag_names`` may be injected (tests, other runtimes).
    """

    MODEL_NAME = "wd14-tagger"

    def __init__(self, reference: str | None = None, threshold: float = 0.35, session=None, tag_names: Sequence[str] | None = None, categories: Sequence[int] | None = None):
        self.threshold = threshold
        if session is None:
            import onnxruntime as ort

            from ..errors import ModelNotFoundError
            from ..models import ModelStore
            from ..models.registry import MODELS

            spec = MODELS.get(self.MODEL_NAME)
            ref = reference or (spec.reference if spec else None)
            if ref is None:
                raise ModelNotFoundError(self.MODEL_NAME, "?", "pass tagger_model=<folder with model.onnx and selected_tags.csv>")
            folder = ModelStore().resolve(ref, name=self.MODEL_NAME, allow_patterns=spec.allow_patterns if spec else None)
            model, tags_csv = folder / "model.onnx", folder / "selected_tags.csv"
            if not model.exists() or not tags_csv.exists():
                raise ModelNotFoundError(self.MODEL_NAME, str(ref), "the folder needs model.onnx and selected_tags.csv", "files missing")
            with reading(model, "not a valid ONNX model"):
                session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
            tag_names, categories = read_tag_table(tags_csv)
        if tag_names is None:
            raise ValueError("an injected session needs tag_names")
        self.session = session
        self.tag_names = list(tag_names)
        self.categories = list(categories) if categories is not None else [0] * len(self.tag_names)

    def tag(self, image: np.ndarray, face: Face) -> list[str]:
        inp = self.session.get_inputs()[0]
        size = int(inp.shape[1]) if isinstance(inp.shape[1], int) else 448
        h, w = image.shape[:2]
        side = max(h, w)
        canvas = np.full((side, side, 3), 255, np.uint8)
        canvas[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = image
        x = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)[..., ::-1].astype(np.float32)[None]
        probs = np.asarray(self.session.run(None, {inp.name: x})[0], dtype=np.float64).reshape(-1)
        if probs.min() < 0.0 or probs.max() > 1.0:  # some exports end in logits, not probabilities
            probs = 1.0 / (1.0 + np.exp(-probs))
        found = [(p, n) for p, n, c in zip(probs, self.tag_names, self.categories) if c == 0 and p >= self.threshold]
        return [n.replace("_", " ") for p, n in sorted(found, key=lambda t: -t[0])]


def read_tag_table(path: Path) -> tuple[list[str], list[int]]:
    """Tag names and categories from a WD14 ``selected_tags.csv``."""
    names, cats = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            names.append(row["name"])
            cats.append(int(row.get("category") or 0))
    return names, cats


def get_tagger(kind: str, reference: str | None = None, threshold: float = 0.35) -> Tagger | None:
    """``landmarks`` (offline default), ``wd14`` (ONNX from the model store) or ``none``."""
    if kind == "none":
        return None
    if kind == "landmarks":
        return LandmarkTagger()
    if kind == "wd14":
        return WD14Tagger(reference, threshold)
    raise ValueError(f"unknown tagger {kind!r} (landmarks, wd14 or none)")
