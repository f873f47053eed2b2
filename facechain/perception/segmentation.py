"""Head segmentation (face + hair) and background whitening, paper section 2.1.

The paper parses the photo with M2FP and keeps face + hair; everything else (neck, clothes,
background) turns white so that the face LoRA learns the person and not the scene.

No face-parsing model ships offline, so the default, :class:`GrabCutHeadSegmenter`, is
classical: OpenCV's GrabCut, seeded from the 68 landmarks of the (already aligned) face.
The landmark hull plus the forehead are certain foreground, an ellipse around the head where
hair can be is "probably foreground", and everything below the chin or far from the head is
certain background; GrabCut's colour models then decide which of the uncertain pixels are hair.
Limits, honestly: hair that falls below the chin is cut at chin height, and hair whose colour
matches the background can be lost or background kept; the face itself is always kept.

:class:`M2FPHeadSegmenter` is the paper's model (ModelScope ``m2fp-parsing``), optional.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..types import Face


@runtime_checkable
class HeadSegmenter(Protocol):
    def segment(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Soft head mask ``(H, W)`` float32 in [0, 1] (1 = face or hair)."""


def whiten_background(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend ``image`` onto white through ``mask`` (soft edges stay soft)."""
    a = np.clip(mask.astype(np.float32), 0.0, 1.0)[..., None]
    return np.clip(image.astype(np.float32) * a + 255.0 * (1.0 - a), 0, 255).round().astype(np.uint8)


def face_geometry(lm: np.ndarray) -> dict[str, float]:
    """Sizes of an upright face from its 68 landmarks (pixels)."""
    brow_y = float(lm[17:27, 1].mean())
    chin_y = float(lm[8, 1])
    return {
        "brow_y": brow_y,
        "chin_y": chin_y,
        "height": max(chin_y - brow_y, 1.0),  # brows to chin
        "width": max(float(lm[16, 0] - lm[0, 0]), 1.0),  # jaw width at the ears
        "cx": float(lm[27:36, 0].mean()),  # nose line
    }


def face_polygon(lm: np.ndarray, forehead: float = 0.35) -> np.ndarray:
    """The face outline: the jaw, closed over the forehead.

    The 68 landmarks stop at the brows; the forehead is added by lifting the brow line by
    ``forehead`` x (brow-to-chin height), which stays below the hairline for most people.
    """
    g = face_geometry(lm)
    lift = forehead * g["height"]
    jaw = lm[0:17]
    brows = lm[17:27][::-1].copy()  # right to left, continuing the jaw contour
    brows[:, 1] -= lift
    return np.vstack([jaw, brows]).astype(np.float32)


class GrabCutHeadSegmenter:
    """Offline default: GrabCut seeded from landmarks (see the module docstring).

    GrabCut runs on a copy of ``work_size`` pixels (its cost grows with pixel count) and the
    mask is upsampled and feathered back to full size.
    """

    def __init__(self, iterations: int = 4, work_size: int = 256, feather: float = 1.5):
        self.iterations = iterations
        self.work_size = work_size
        self.feather = feather

    def seeds(self, shape: tuple[int, ...], lm: np.ndarray) -> np.ndarray:
        """GrabCut's trimap (GC_BGD / GC_PR_BGD / GC_PR_FGD / GC_FGD) for an upright face."""
        h, w = shape[:2]
        g = face_geometry(lm)
        seeds = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
        # The skull (hair or forehead, most likely foreground) is a tight ellipse from the top of
        # the head to the chin; hair volume beyond it is left to GrabCut's colour models
        # (probably background), and far away is certain background.
        top = g["brow_y"] - 0.8 * g["height"]
        centre = (int(round(g["cx"])), int(round((top + g["chin_y"]) / 2)))
        axes = (int(round(0.62 * g["width"])), int(round((g["chin_y"] - top) / 2)))
        outer = np.zeros((h, w), np.uint8)
        cv2.ellipse(outer, centre, (int(axes[0] * 1.5), int(axes[1] * 1.45)), 0, 0, 360, 1, -1)
        seeds[outer == 0] = cv2.GC_BGD
        head = np.zeros((h, w), np.uint8)
        cv2.ellipse(head, centre, axes, 0, 0, 360, 1, -1)
        seeds[head == 1] = cv2.GC_PR_FGD
        # Below the chin is neck and clothes: background (also under the ears).
        below = int(round(g["chin_y"] + 0.04 * g["height"]))
        seeds[max(below, 0):, :] = cv2.GC_BGD
        jaw_line = lm[2:15].astype(np.int32)
        under_jaw = np.vstack([jaw_line, [[jaw_line[-1][0], h], [jaw_line[0][0], h]]])
        cv2.fillPoly(seeds, [under_jaw.reshape(-1, 1, 2)], cv2.GC_PR_BGD)
        seeds[max(below, 0):, :] = cv2.GC_BGD
        # The face itself is certain, and so is a band of hair-or-forehead right above the brows.
        cv2.fillPoly(seeds, [face_polygon(lm, 0.25).astype(np.int32).reshape(-1, 1, 2)], cv2.GC_FGD)
        return seeds

    def segment(self, image: np.ndarray, face: Face) -> np.ndarray:
        if face.landmarks68 is None:
            raise ValueError("head segmentation needs 68 landmarks")
        h, w = image.shape[:2]
        f = min(1.0, self.work_size / max(h, w))
        small = cv2.resize(image, (max(int(w * f), 1), max(int(h * f), 1)), interpolation=cv2.INTER_AREA) if f < 1 else image
        lm = face.landmarks68 * f
        seeds = self.seeds(small.shape, lm)
        mask = seeds.copy()
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        bgr = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2BGR)
        # GrabCut seeds its colour models with k-means on OpenCV's global RNG, whose state advances with
        # every call: without a fixed seed the same photo gets another mask in a long-lived process
        # (a service worker), and a resumed training job another dataset than the first attempt.
        cv2.setRNGSeed(0)
        cv2.grabCut(bgr, mask, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
        fg = _largest_component(fg)
        fg = _fill_holes(fg)
        soft = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        if self.feather > 0:
            soft = cv2.GaussianBlur(soft, (0, 0), self.feather / f if f < 1 else self.feather)
        # The face is never whitened, whatever GrabCut decided.
        face_mask = np.zeros((h, w), np.float32)
        cv2.fillPoly(face_mask, [face_polygon(face.landmarks68, 0.2).astype(np.int32).reshape(-1, 1, 2)], 1.0)
        return np.clip(np.maximum(soft, face_mask), 0.0, 1.0)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 2:
        return mask
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == keep).astype(np.uint8)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background pockets enclosed by the head (e.g. glare on the forehead)."""
    h, w = mask.shape
    flood = np.pad(mask, 1).copy()
    ff = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    out = mask.copy()
    out[holes] = 1
    return out


class M2FPHeadSegmenter:
    """The paper's parser: M2FP multi-human parsing on ModelScope (optional backend).

    Keeps the largest "Face" and "Hair" segments, dilated a little and limited to the person,
    like the paper. Needs ``pip install 'modelscope[framework]'`` plus the model files
    (``facechain models download m2fp-parsing``); without them construction raises
    :class:`~facechain.errors.ModelNotFoundError`.
    """

    MODEL_NAME = "m2fp-parsing"

    def __init__(self, reference: str | None = None, min_score: float = 0.8):
        from ..models.modelscope_pipelines import modelscope_pipeline

        self._pipe, _ = modelscope_pipeline(self.MODEL_NAME, "image_segmentation", reference)
        self.min_score = min_score

    def segment(self, image: np.ndarray, face: Face) -> np.ndarray:
        out = self._pipe(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
        h, w = image.shape[:2]
        best: dict[str, np.ndarray] = {}
        for m, s, label in zip(out["masks"], out["scores"], out["labels"]):
            if s < self.min_score or label not in ("Face", "Hair", "Human"):
                continue
            m = np.asarray(m, dtype=np.float32)
            if label not in best or m.sum() > best[label].sum():
                best[label] = m
        face_m = best.get("Face", np.zeros((h, w), np.float32))
        head = np.clip(face_m + best.get("Hair", np.zeros((h, w), np.float32)), 0, 1)
        k = max(int(np.sqrt(face_m.sum()) / 20), 1)
        head = cv2.dilate(head, np.ones((k, k), np.uint8))
        if "Human" in best:
            head = head * best["Human"]
        head = _fill_holes(_largest_component((head > 0.5).astype(np.uint8))).astype(np.float32)
        return np.clip(head + face_m, 0, 1)


def get_head_segmenter(kind: str, reference: str | None = None) -> HeadSegmenter | None:
    """``grabcut`` (offline default), ``m2fp`` (ModelScope), or ``none``."""
    if kind == "none":
        return None
    if kind == "grabcut":
        return GrabCutHeadSegmenter()
    if kind == "m2fp":
        return M2FPHeadSegmenter(reference)
    raise ValueError(f"unknown segmenter {kind!r} (grabcut, m2fp or none)")
