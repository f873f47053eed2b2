"""The garment mask: which pixels of the model photo are the clothes the person will wear.

Try-on keeps these pixels exactly and redraws everything else, so the mask must cover the clothes
and must spare the face, the hair and the hands (they become the trained person's).

**Offline method** (:class:`OfflineGarmentSegmenter`; every model in it ships in a pip package)::

    garment = person - head - exposed skin - hands, cleaned

* *person*: selfie segmentation (:mod:`.person`), the connected region that holds the face
  (other people in the photo are background);
* *head*: the face outline from the 68 landmarks (with forehead) plus every person pixel above
  the chin line inside a band as wide as the head, measured along the face's own up/down axis
  (tilted heads work), so hair and ears are out; long hair that falls below the chin is *not*
  recognised as hair (it would be kept as garment);
* *exposed skin*: a colour model learned from the face's own skin (:mod:`.skin`): neck, arms,
  hands, legs;
* *hands*: the 21-point hand keypoints (:mod:`facechain.pose.hands`) as thick bones plus the palm,
  so a hand is spared even where the skin colour model misses it (shadow, motion blur);
* *clean*: an opening (threads, slivers), components smaller than 5 % of the largest dropped,
  and holes smaller than 3 % of the face area filled unless they hold a hand or the head
  (a skin-coloured print on a shirt is kept as garment, a hand in front of the suit is not).

**M2FP backend** (:class:`M2FPGarmentSegmenter`): the paper's human parser (ModelScope
``m2fp-parsing``, optional); the garment is the union of its clothes classes, minus the hand
keypoints. **Given** (:func:`garment_from_file`): a user's black/white mask of the photo's size.

Every mask is checked (:func:`check_garment`): one that covers almost nothing or almost everything
is refused with a one-line reason instead of being used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ...errors import InputError
from ...inpainting.masks import face_region_polygon, rasterize_polygon
from ...types import Face
from .skin import SkinColourModel, drop_small_components

MIN_SHARE = 0.02  # of the photo: below this the mask "covers almost nothing"
MAX_SHARE = 0.90  # above this it "covers almost everything" (nothing would be redrawn)
MIN_PERSON_SHARE = 0.02  # of the photo: less person than this is "no person found"
CHIN = 8


@dataclass
class GarmentMask:
    """The garment (bool, photo size) and the parts it was made from (None where not computed)."""

    mask: np.ndarray
    method: str  # "offline", "m2fp" or "given"
    face_box: np.ndarray | None = None  # (x1, y1, x2, y2) of the face the identity goes into
    person: np.ndarray | None = None
    head: np.ndarray | None = None
    skin: np.ndarray | None = None
    hands: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def share_of_image(self) -> float:
        return float(self.mask.mean())

    @property
    def share_of_person(self) -> float | None:
        if self.person is None or not self.person.any():
            return None
        return float((self.mask & self.person).sum() / self.person.sum())

    @property
    def share_of_face_box(self) -> float | None:
        """How much of the face box the garment covers (should be ~0: the face is redrawn)."""
        if self.face_box is None:
            return None
        h, w = self.mask.shape
        x1, y1, x2, y2 = np.round(self.face_box).astype(int)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        box = self.mask[y1:y2, x1:x2]
        return float(box.mean()) if box.size else None

    def to_json(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(v, 4)  # noqa: E731
        return {"method": self.method, "share_of_image": r(self.share_of_image),
                "share_of_person": r(self.share_of_person), "share_of_face_box": r(self.share_of_face_box),
                "notes": list(self.notes)}

    def preview(self, image: np.ndarray) -> np.ndarray:
        """The photo with the garment green and the spared parts tinted (head red, skin magenta, hands yellow)."""
        out = image.astype(np.float32)
        for part, colour in ((self.head, (255, 40, 40)), (self.skin, (255, 0, 255)), (self.hands, (255, 220, 0)),
                             (self.mask, (40, 220, 40))):
            if part is not None:
                out[part] = 0.45 * out[part] + 0.55 * np.array(colour, np.float32)
        return np.clip(out, 0, 255).astype(np.uint8)


# --- the parts ---------------------------------------------------------------------------------


def person_region(probability: np.ndarray, face: Face) -> np.ndarray:
    """The person mask (p > 0.5) reduced to the connected region that holds the face."""
    person = (probability > 0.5).astype(np.uint8)
    n, labels = cv2.connectedComponents(person, connectivity=8)
    if n <= 2:
        return person > 0
    h, w = person.shape
    x1, y1, x2, y2 = np.round(face.bbox).astype(int)
    box = labels[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
    counts = np.bincount(box.ravel(), minlength=n)
    counts[0] = 0
    if counts.max() == 0:  # the face is not on any person region: keep them all
        return person > 0
    return labels == int(np.argmax(counts))


def head_region(shape: tuple[int, int], lm68: np.ndarray, person: np.ndarray, *, forehead: float = 0.5,
                chin_margin: float = 0.03, width: float = 1.3) -> np.ndarray:
    """Face outline + person pixels above the chin within a band ``width`` x the jaw width wide."""
    lm = np.asarray(lm68, dtype=np.float64)
    face = rasterize_polygon(face_region_polygon(lm, forehead), shape)
    brows = lm[17:27].mean(axis=0)
    down = lm[CHIN] - brows
    length = max(float(np.linalg.norm(down)), 1.0)
    down /= length
    across = np.array([-down[1], down[0]])
    centre = lm[27:36].mean(axis=0)  # nose line
    jaw = max(float(np.linalg.norm(lm[16] - lm[0])), 1.0)
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    along = (xs - centre[0]) * down[0] + (ys - centre[1]) * down[1]
    side = (xs - centre[0]) * across[0] + (ys - centre[1]) * across[1]
    chin_along = float((lm[CHIN] - centre) @ down)
    above_chin = along < chin_along + chin_margin * length
    band = np.abs(side) < width * jaw / 2
    return face | (person & above_chin & band)


def hand_region(shape: tuple[int, int], hands: Sequence[Any], bone_width: float = 0.3) -> np.ndarray:
    """Each hand's 20 bones as lines ``bone_width`` x the palm width thick, plus the filled palm.

    The wrist point is pulled halfway towards the knuckles: on a hand that disappears into a
    sleeve (arms crossed) the model still places the wrist, under the cloth, and the lower palm of
    a visible hand is skin, which the skin model spares anyway.
    """
    canvas = np.zeros(shape, np.uint8)
    from ...pose.draw import HAND_EDGES

    for hand in hands:
        pts = np.asarray(getattr(hand, "points", hand), dtype=np.float64).copy()
        pts[0] = (pts[0] + pts[[5, 9, 13, 17]].mean(axis=0)) / 2
        palm = pts[[0, 1, 5, 9, 13, 17]]
        palm_width = max(float(np.linalg.norm(pts[5] - pts[17])), 4.0)
        thick = max(2, int(round(bone_width * palm_width)))
        cv2.fillConvexPoly(canvas, cv2.convexHull(np.round(palm).astype(np.int32)), 1)
        for a, b in HAND_EDGES:
            pa, pb = np.round(pts[a]).astype(int), np.round(pts[b]).astype(int)
            cv2.line(canvas, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), 1, thickness=thick)
            cv2.circle(canvas, (int(pb[0]), int(pb[1])), thick // 2 + 1, 1, thickness=-1)
    return canvas > 0


def clean_garment(garment: np.ndarray, keep_out: np.ndarray, face_size: float) -> np.ndarray:
    """Opening, small components dropped, small holes filled (unless they hold ``keep_out`` pixels)."""
    k = max(3, int(round(0.03 * face_size)) | 1)
    g = cv2.morphologyEx(garment.astype(np.uint8), cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(g.astype(np.uint8), connectivity=8)
    if n > 1:
        largest = stats[1:, cv2.CC_STAT_AREA].max()
        g = drop_small_components(g, 0.05 * largest)
    holes = ~g
    n, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    h, w = g.shape
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    protected = np.unique(labels[keep_out & holes])
    small = stats[:, cv2.CC_STAT_AREA] < 0.03 * face_size * face_size
    fill = small.copy()
    fill[0] = False
    fill[border] = False
    fill[protected] = False
    return g | fill[labels]


# --- backends ----------------------------------------------------------------------------------


class OfflineGarmentSegmenter:
    """person - head - skin - hands (see the module docstring); components injectable for tests.

    Works on a copy of at most ``max_side`` pixels (the person mask comes from 256 px anyway) and
    brings every mask back to the photo's size.
    """

    def __init__(self, person_segmenter=None, *, skin_distance: float = 9.0, max_side: int = 1024):
        self._person = person_segmenter
        self.skin_distance = skin_distance
        self.max_side = max_side

    @property
    def person_segmenter(self):
        if self._person is None:
            from .person import get_person_segmenter

            self._person = get_person_segmenter()
        return self._person

    def __call__(self, image: np.ndarray, face: Face, hands: Sequence[Any] = (), label: str = "photo") -> GarmentMask:
        if face.landmarks68 is None:
            raise ValueError("the offline garment mask needs the face's 68 landmarks")
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale >= 1.0:
            return self._segment(image, face, hands, label)
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        sx, sy = small.shape[1] / w, small.shape[0] / h
        face_s = Face(bbox=face.bbox * [sx, sy, sx, sy], score=face.score, landmarks68=face.landmarks68 * [sx, sy])
        hands_s = [np.asarray(getattr(hd, "points", hd), dtype=np.float64) * [sx, sy] for hd in hands]
        part = self._segment(small, face_s, hands_s, label)
        up = lambda m: None if m is None else cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5  # noqa: E731
        return GarmentMask(up(part.mask), part.method, face.bbox.copy(), up(part.person), up(part.head), up(part.skin),
                           up(part.hands), part.notes)

    def _segment(self, image: np.ndarray, face: Face, hands: Sequence[Any], label: str) -> GarmentMask:
        shape = image.shape[:2]
        probability = self.person_segmenter(image)
        check_person(probability, label)
        person = person_region(probability, face)
        head = head_region(shape, face.landmarks68, person)
        hand_mask = hand_region(shape, hands) & _dilate(person, face.size * 0.1)
        notes = []
        model = SkinColourModel.from_face(image, face.landmarks68)
        if model is None:
            skin = np.zeros(shape, bool)
            notes.append("too little visible face skin to learn a skin colour; exposed skin not removed")
        else:
            skin = model.mask(image, person & ~head, face.size, self.skin_distance)
        garment = person & ~head & ~skin & ~hand_mask
        garment = clean_garment(garment, head | hand_mask | skin | ~person, face.size)
        return GarmentMask(garment, "offline", face.bbox.copy(), person, head, skin, hand_mask, notes)


class M2FPGarmentSegmenter:
    """The paper's human parser (ModelScope ``m2fp-parsing``): union of its clothes classes, minus hands.

    Needs ``pip install 'modelscope[framework]'`` and ``facechain models download m2fp-parsing``;
    without them construction raises :class:`~facechain.errors.ModelNotFoundError`. ``pipe``
    injects a ready parser (anything returning M2FP's ``{"masks", "labels", "scores"}``).
    """

    MODEL_NAME = "m2fp-parsing"
    GARMENT_CLASSES = ("UpperClothes", "Dress", "Coat", "Pants", "Skirt", "Scarf", "Jumpsuits")

    def __init__(self, reference: str | None = None, *, min_score: float = 0.5, pipe=None,
                 classes: Sequence[str] | None = None):
        if pipe is None:
            from ...models.modelscope_pipelines import modelscope_pipeline

            pipe, _ = modelscope_pipeline(self.MODEL_NAME, "image_segmentation", reference)
        self._pipe = pipe
        self.min_score = min_score
        self.classes = tuple(classes or self.GARMENT_CLASSES)

    def __call__(self, image: np.ndarray, face: Face, hands: Sequence[Any] = (), label: str = "photo") -> GarmentMask:
        out = self._pipe(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
        shape = image.shape[:2]
        garment = np.zeros(shape, bool)
        person = np.zeros(shape, bool)
        for m, score, name in zip(out["masks"], out["scores"], out["labels"]):
            if score < self.min_score:
                continue
            m = np.asarray(m) > 0.5
            if m.shape != shape:
                m = cv2.resize(m.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
            if name == "Human":
                person |= m
            elif name in self.classes:
                garment |= m
        if not person.any():
            person = None
        hand_mask = hand_region(shape, hands)
        return GarmentMask(garment & ~hand_mask, "m2fp", face.bbox.copy(), person, None, None, hand_mask)


def get_garment_segmenter(kind: str = "offline", reference: str | None = None):
    """``offline`` (default, pip-shipped models) or ``m2fp`` (ModelScope)."""
    if kind == "offline":
        return OfflineGarmentSegmenter()
    if kind == "m2fp":
        return M2FPGarmentSegmenter(reference)
    raise InputError("--garment-segmenter", f"unknown garment segmenter {kind!r} (offline or m2fp)")


# --- given masks and checks ----------------------------------------------------------------------


def garment_from_file(path: str | Path, shape: tuple[int, int], face: Face | None = None) -> GarmentMask:
    """A user's mask: white (or opaque) = garment; it must have the photo's size."""
    from PIL import Image

    from ...image_io import load_image

    p = Path(path)
    load_image(p)  # one-line errors for missing / unreadable files
    with Image.open(p) as im:
        size = im.size
        alpha = im.getchannel("A") if "A" in im.getbands() else None
        grey = np.asarray(im.convert("L"))
    if (size[1], size[0]) != tuple(shape):
        raise InputError(p, f"garment mask is {size[0]}x{size[1]} but the photo is {shape[1]}x{shape[0]}; "
                            "the mask must have the photo's size")
    if alpha is not None and np.asarray(alpha).min() < 255:
        mask = np.asarray(alpha) > 127
    else:
        mask = grey > 127
    return GarmentMask(mask, "given", None if face is None else face.bbox.copy())


def check_person(probability: np.ndarray, label: str) -> None:
    share = float((probability > 0.5).mean())
    if share < MIN_PERSON_SHARE:
        raise InputError(label, f"no person found (the person segmentation covers {share:.1%} of the photo); "
                                "use a photo of a person wearing the garment, or pass --garment-mask")


def check_garment(garment: GarmentMask, label: str) -> None:
    """Refuse a garment mask that covers almost nothing or almost everything (one line, with the share)."""
    share = garment.share_of_image
    what = {"given": "the garment mask", "offline": "the garment found", "m2fp": "the garment found by M2FP"}[garment.method]
    if share < MIN_SHARE:
        raise InputError(label, f"{what} covers almost nothing ({share:.1%} of the photo, need at least "
                                f"{MIN_SHARE:.0%}); pass a --garment-mask that covers the clothes")
    if share > MAX_SHARE:
        raise InputError(label, f"{what} covers almost everything ({share:.1%} of the photo, at most "
                                f"{MAX_SHARE:.0%}): nothing would be left to redraw; white = garment, black = redrawn")


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    r = max(1, int(round(radius)))
    return cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
