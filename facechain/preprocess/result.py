"""What ``prepare`` hands on: the prepared folder's contents as typed values.

A prepared folder is ``images/*.png`` + ``metadata.jsonl`` (diffusers/HF imagefolder) +
``template_face.png`` + ``report.json``; :meth:`PrepareResult.load` reads one back, so a later
stage (training) can start from a folder prepared earlier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, shell_command
from ..textfiles import read_json
from ..types import Rejection

REPORT = "report.json"
METADATA = "metadata.jsonl"
TEMPLATE_FACE = "template_face.png"
IMAGES = "images"


@dataclass
class AcceptedPhoto:
    """One training image and what was learned about its photo."""

    source: Path
    output: Path
    caption: str
    quality: float
    quality_parts: dict[str, float] = field(default_factory=dict)
    angles: dict[str, float] = field(default_factory=dict)  # orientation (0/90/180/270), tilt, face_rotation, total
    gender: str | None = None
    age: float | None = None
    tags: list[str] = field(default_factory=list)
    face: dict[str, float] = field(default_factory=dict)  # measured on the output: size, center_x, center_y, eye_angle
    source_face_px: float | None = None
    similarity: float | None = None  # identity similarity to the group (None when alone)

    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        out = _rel(self.output, root)
        return {
            "source": str(self.source),
            "output": out,
            "caption": self.caption,
            "quality": round(self.quality, 4),
            "quality_parts": self.quality_parts,
            "angles": {k: round(float(v), 2) for k, v in self.angles.items()},
            "gender": self.gender,
            "age": None if self.age is None else round(float(self.age), 1),
            "tags": self.tags,
            "face": {k: round(float(v), 4) for k, v in self.face.items()},
            "source_face_px": None if self.source_face_px is None else round(float(self.source_face_px), 1),
            "similarity": None if self.similarity is None else round(float(self.similarity), 4),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], root: Path) -> "AcceptedPhoto":
        return cls(
            source=Path(d["source"]),
            output=root / d["output"],
            caption=d.get("caption", ""),
            quality=float(d.get("quality", 0.0)),
            quality_parts=dict(d.get("quality_parts") or {}),
            angles=dict(d.get("angles") or {}),
            gender=d.get("gender"),
            age=d.get("age"),
            tags=list(d.get("tags") or []),
            face=dict(d.get("face") or {}),
            source_face_px=d.get("source_face_px"),
            similarity=d.get("similarity"),
        )


@dataclass
class PrepareResult:
    """The outcome of ``facechain prepare`` (also what ``report.json`` holds)."""

    output_dir: Path
    trigger_word: str
    accepted: list[AcceptedPhoto]
    rejected: list[Rejection]
    template_face: Path
    tags_frequent: list[str] = field(default_factory=list)
    template_embedding: list[float] = field(default_factory=list)
    gender: str | None = None
    age: float | None = None
    template_source: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, summed over photos
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def images(self) -> list[Path]:
        return [a.output for a in self.accepted]

    def to_json(self) -> dict[str, Any]:
        root = self.output_dir
        return {
            "trigger_word": self.trigger_word,
            "gender": self.gender,
            "age": None if self.age is None else round(float(self.age), 1),
            "template_face": _rel(self.template_face, root),
            "template_source": None if self.template_source is None else str(self.template_source),
            "template_embedding": [round(float(v), 6) for v in self.template_embedding],
            "tags_frequent": self.tags_frequent,
            "accepted": [a.to_json(root) for a in self.accepted],
            "rejected": [r.to_json() for r in self.rejected],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "config": self.config,
        }

    @classmethod
    def load(cls, folder: Path | str) -> "PrepareResult":
        """Read a prepared folder back (its ``report.json``)."""
        root = Path(folder)
        path = root / REPORT
        if not path.exists():
            raise InputError(root, f"not a prepared folder (no {REPORT}); "
                                  f"run '{shell_command('facechain', 'prepare', 'PHOTOS', '--output', root)}' first")
        data = read_json(path, dict, "prepare report")
        try:
            return cls(
                output_dir=root,
                trigger_word=data["trigger_word"],
                accepted=[AcceptedPhoto.from_json(a, root) for a in data["accepted"]],
                rejected=[Rejection(Path(r["source"]), r["reason"]) for r in data.get("rejected", [])],
                template_face=root / data.get("template_face", TEMPLATE_FACE),
                tags_frequent=list(data.get("tags_frequent") or []),
                template_embedding=[float(v) for v in data.get("template_embedding") or []],
                gender=data.get("gender"),
                age=data.get("age"),
                template_source=Path(data["template_source"]) if data.get("template_source") else None,
                timings=dict(data.get("timings") or {}),
                config=dict(data.get("config") or {}),
            )
        except KeyError as e:
            raise InputError(path, f"not a valid prepare report: {e} is missing") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise InputError(path, f"not a valid prepare report ({e})") from None

    def summary(self) -> str:
        """A readable account of the run, for people."""
        n = len(self.accepted) + len(self.rejected)
        lines = [f"Prepared {len(self.accepted)} of {n} photos into {self.output_dir}"]
        who = f" ({self.gender}, about {self.age:.0f})" if self.gender and self.age is not None else ""
        lines.append(f"  trigger word: \"{self.trigger_word}\"{who}")
        for a in self.accepted:
            tags = f"; tags: {', '.join(a.tags)}" if a.tags else ""
            lines.append(f"  + {a.source.name} -> {_rel(a.output, self.output_dir)} (quality {a.quality:.2f}{tags})")
        for r in self.rejected:
            lines.append(f"  - {Path(r.source).name}: {r.reason}")
        src = f" (from {self.template_source.name})" if self.template_source else ""
        lines.append(f"  template face: {self.template_face}{src}")
        if self.tags_frequent:
            lines.append(f"  frequent tags: {', '.join(self.tags_frequent)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:  # short: the photos, embedding and timings are in .accepted / .to_json()
        return (f"PrepareResult({str(self.output_dir)!r}, trigger_word={self.trigger_word!r}, "
                f"accepted={len(self.accepted)}, rejected={len(self.rejected)})")


def _rel(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path)
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)
