"""Training examples: (image, caption) pairs read from a prepared dataset or a captioned style folder.

A *prepared* folder is what ``facechain prepare`` writes: ``images/*.png``, ``metadata.jsonl``
(``{"file_name": "images/000.png", "text": "<trigger>, tag, ..."}``) and ``report.json``.
A *style* folder holds images with a same-named ``.txt`` caption each, or a ``metadata.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, NoUsablePhotosError, shell_command
from ..image_io import IMAGE_SUFFIXES, load_image
from ..textfiles import read_json, read_json_lines, read_text

METADATA = "metadata.jsonl"
REPORT = "report.json"


@dataclass(frozen=True)
class TrainingExample:
    """One image and the caption it is trained with."""

    image: Path
    caption: str


@dataclass
class PreparedDataset:
    """A prepared face dataset as the trainer sees it (read from disk, no dependency on prepare's code)."""

    folder: Path
    examples: list[TrainingExample]
    trigger_word: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def template_face(self) -> Path | None:
        name = self.report.get("template_face") or "template_face.png"
        p = self.folder / name
        return p if p.exists() else None

    @property
    def template_embedding(self) -> list[float] | None:
        emb = self.report.get("template_embedding")
        return [float(x) for x in emb] if emb is not None else None

    @property
    def tags(self) -> list[str]:
        return [str(t) for t in self.report.get("tags_frequent") or []]

    def summary(self) -> dict[str, Any]:
        """What the identity manifest records about its training data."""
        rejected = self.report.get("rejected") or []
        accepted = self.report.get("accepted")
        return {
            "path": "dataset",
            "photos": len(self.examples),
            "accepted": accepted if isinstance(accepted, int) else len(self.examples),
            "rejected": len(rejected) if isinstance(rejected, list) else rejected,
            "rejections": rejected if isinstance(rejected, list) else [],
            "trigger_word": self.trigger_word,
        }


def is_prepared_folder(path: Path) -> bool:
    """A folder written by ``facechain prepare`` (``metadata.jsonl`` + ``report.json``)."""
    path = Path(path)
    return path.is_dir() and (path / METADATA).is_file() and (path / REPORT).is_file()


def read_metadata(folder: Path) -> list[TrainingExample]:
    """Parse ``metadata.jsonl`` lines; every named image must exist inside ``folder``."""
    folder = Path(folder)
    meta = folder / METADATA
    examples = []
    for lineno, row in read_json_lines(meta):
        if not isinstance(row, dict) or not isinstance(row.get("file_name"), str) or "text" not in row:
            raise InputError(meta, f"line {lineno}: expected {{\"file_name\": ..., \"text\": ...}}")
        file_name, text = row["file_name"], str(row["text"])
        image = (folder / file_name).resolve()
        if folder.resolve() not in image.parents:
            raise InputError(meta, f"line {lineno}: {file_name} points outside the dataset folder")
        if not image.is_file():
            raise InputError(meta, f"line {lineno}: image {file_name} not found")
        examples.append(TrainingExample(image, text))
    return examples


def read_prepared(folder: Path | str) -> PreparedDataset:
    folder = Path(folder)
    if not is_prepared_folder(folder):
        raise InputError(folder, f"not a prepared dataset (needs {METADATA} and {REPORT}; "
                                f"run '{shell_command('facechain', 'prepare', 'PHOTOS', '--output', folder)}')")
    report = read_json(folder / REPORT, dict, "prepare report")
    examples = read_metadata(folder)
    if not examples:
        raise NoUsablePhotosError(f"{folder}: the prepared dataset has no images (every photo was rejected)")
    trigger = str(report.get("trigger_word") or examples[0].caption.split(",")[0].strip())
    return PreparedDataset(folder, examples, trigger, report)


def read_captioned_folder(folder: Path | str) -> list[TrainingExample]:
    """Style images with captions: ``metadata.jsonl`` if present, else ``<image>.txt`` next to each image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder of style images")
    if (folder / METADATA).is_file():
        examples = read_metadata(folder)
    else:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise InputError(folder, "no images found")
        missing = [p.name for p in images if not p.with_suffix(".txt").is_file()]
        if missing:
            raise InputError(folder / missing[0], f"no caption: write it into {Path(missing[0]).stem}.txt "
                                                  f"({len(missing)} image(s) lack one), or provide {METADATA}")
        examples = [TrainingExample(p, read_text(p.with_suffix(".txt")).strip()) for p in images]
    if not examples:
        raise NoUsablePhotosError(f"{folder}: no captioned images to train on")
    return examples


def square_crop(h: int, w: int) -> tuple[int, int, int]:
    """(top, left, side) of the centred square the trainer crops from an h x w image."""
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side


def load_training_image(path: Path, resolution: int) -> np.ndarray:
    """RGB float32 HWC in [-1, 1]: centre-cropped to a square, resized to ``resolution``."""
    from PIL import Image

    rgb = load_image(path)
    top, left, side = square_crop(*rgb.shape[:2])
    img = Image.fromarray(rgb[top:top + side, left:left + side])
    if side != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 127.5 - 1.0


def crop_conditioning(path: Path, resolution: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """SDXL's view of :func:`load_training_image`: original (h, w), crop top-left, target (h, w).

    As in SDXL's training, the crop offset is given in the image scaled so that its short side is
    ``resolution`` (the same crop as cropping first and resizing after).
    """
    h, w = load_image(path).shape[:2]
    top, left, side = square_crop(h, w)
    scale = resolution / side
    return (h, w), (round(top * scale), round(left * scale)), (resolution, resolution)
