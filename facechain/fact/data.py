"""Training data for the adapter: several photos per person, one sub-folder per person.

Every photo is analysed once: the training target (a square crop around the face, at the
training resolution), its head mask (for the FAIR loss) and the frozen encoder's face tokens of
its aligned face (the condition). Face shuffle draws the condition from *another* photo of the
same person, so the adapter learns identity rather than copying pose, light and expression.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import FacechainError, InputError, NoUsablePhotosError
from ..image_io import IMAGE_SUFFIXES, list_images, load_image
from ..progress import task as progress_task
from ..types import Rejection
from .encoder import FaceEncoder
from .preprocess import MaskFn, prepare_face_photo

log = logging.getLogger(__name__)


@dataclass
class TrainingPhoto:
    person: str
    source: str
    pixels: torch.Tensor  # (3, R, R) in [-1, 1]: the image the UNet learns to denoise
    mask: torch.Tensor  # (1, R, R) head mask of that image, 1 = face
    face_tokens: torch.Tensor  # (144, W): frozen encoder tokens of the aligned face (the condition)


@dataclass
class Draw:
    target: TrainingPhoto
    condition: TrainingPhoto
    shuffled: bool  # condition is a different photo of the same person
    dropped: bool  # face tokens replaced by zeros (unconditional, for CFG)


@dataclass
class AdapterDataset:
    people: dict[str, list[TrainingPhoto]]
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def photos(self) -> list[TrainingPhoto]:
        return [p for ps in self.people.values() for p in ps]

    def draw(self, rng: random.Random, shuffle_prob: float, drop_prob: float) -> Draw:
        person = rng.choice(sorted(self.people))
        photos = self.people[person]
        target = rng.choice(photos)
        condition, shuffled = target, False
        if len(photos) > 1 and rng.random() < shuffle_prob:
            condition, shuffled = rng.choice([p for p in photos if p is not target]), True
        return Draw(target, condition, shuffled, rng.random() < drop_prob)


def person_folders(root: Path) -> dict[str, list[Path]]:
    """{person: photos}: one sub-folder per person; a folder of loose photos is one person."""
    root = Path(root)
    if not root.exists():
        raise InputError(root, "not found")
    if not root.is_dir():
        raise InputError(root, "not a folder (expected one sub-folder of photos per person)")
    people = {d.name: list_images([d]) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    people = {k: v for k, v in people.items() if v}
    if not people:
        loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if loose:
            people = {root.name: sorted(loose)}
    if not people:
        raise NoUsablePhotosError(f"{root}: no photos found (expected one sub-folder of photos per person)")
    return people


def _square_crop(image: np.ndarray, center: np.ndarray, face_size: float, face_fraction: float) -> tuple[int, int, int]:
    """(x0, y0, side) of a square with the face about ``face_fraction`` of its side, inside the image."""
    h, w = image.shape[:2]
    side = int(min(max(face_size / face_fraction, 32), h, w))
    x0 = int(np.clip(round(center[0] - side / 2), 0, w - side))
    y0 = int(np.clip(round(center[1] - side / 2), 0, h - side))
    return x0, y0, side


@torch.no_grad()
def build_dataset(root: Path, encoder: FaceEncoder, resolution: int, *, analyzer=None, mask_fn: MaskFn | None = None,
                  max_per_person: int = 50, face_fraction: float = 0.4, progress: bool = True) -> AdapterDataset:
    """Analyse every photo once; unusable ones become rejections with a reason, never a crash."""
    if analyzer is None:
        from ..perception import get_analyzer

        analyzer = get_analyzer()
    folders = person_folders(root)
    people: dict[str, list[TrainingPhoto]] = {}
    rejections: list[Rejection] = []
    device = next(encoder.parameters()).device
    dtype = next(encoder.parameters()).dtype
    jobs = [(person, p) for person, paths in folders.items() for p in paths[:max_per_person]]
    bar = progress_task("analysing photos", total=len(jobs), unit="photo") if progress else None
    for n, (person, path) in enumerate(jobs):
        if bar is not None and n:
            bar.update(1)
        try:
            image = load_image(path, max_side=max(640, 2 * resolution))  # enough pixels for the crop, fast detection
            photo = prepare_face_photo(image, analyzer=analyzer, mask_fn=mask_fn, name=str(path))
        except FacechainError as e:
            rejections.append(Rejection(Path(path), getattr(e, "reason", str(e))))
            continue
        x0, y0, side = _square_crop(image, photo.face.center, photo.face.size, face_fraction)
        crop = cv2.resize(image[y0:y0 + side, x0:x0 + side], (resolution, resolution), interpolation=cv2.INTER_AREA)
        # the same head mask that blacked out the encoder's input is FAIR's "face" region
        mask = cv2.resize(photo.mask[y0:y0 + side, x0:x0 + side], (resolution, resolution), interpolation=cv2.INTER_AREA)
        tokens = encoder(photo.tensor()[None].to(device, dtype))[0].float().cpu()
        people.setdefault(person, []).append(TrainingPhoto(
            person=person, source=str(path),
            pixels=torch.from_numpy(crop).permute(2, 0, 1).float() / 127.5 - 1.0,
            mask=torch.from_numpy(mask)[None].float(),
            face_tokens=tokens,
        ))
    if bar is not None:
        bar.update(1 if jobs else 0)
        bar.close()
    if not people:
        first = rejections[0] if rejections else None
        why = f" (e.g. {first.source.name}: {first.reason})" if first else ""
        raise NoUsablePhotosError(f"{root}: no usable face photos{why}")
    for r in rejections:
        log.warning("skipped %s: %s", r.source, r.reason)
    return AdapterDataset(people, rejections)
