"""What every talking-head backend receives and returns, and how one is chosen by name.

A backend turns one portrait (with its face already found) and one speech clip into frames; the
caller owns everything around it (reading inputs, the face choice, the enhancer, the video file,
progress), so backends stay small and interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from ...errors import ConfigError
from .audio import Audio
from .face_mesh import FaceMesh

BACKENDS = ("offline", "sadtalker")


@dataclass
class TalkJob:
    """One request: the portrait at the output size (RGB uint8, even sides), its face, the speech."""

    image: np.ndarray
    face: FaceMesh
    audio: Audio
    fps: float
    num_frames: int
    seed: int


@dataclass
class FrameChunk:
    """Consecutive frames in order; ``five_points`` (frames, 5, 2) where the backend knows them
    (the enhancer aligns faces with them instead of detecting again)."""

    images: list[np.ndarray]
    five_points: np.ndarray | None = None


@runtime_checkable
class TalkingHeadBackend(Protocol):
    """Yields exactly ``job.num_frames`` frames, in chunks of at most ``chunk_frames``."""

    name: str

    def frames(self, job: TalkJob, chunk_frames: int) -> Iterator[FrameChunk]: ...


def get_backend(name: str, device: str = "auto") -> TalkingHeadBackend:
    """The backend called ``name`` (``offline``: runs anywhere; ``sadtalker``: the paper's, needs its weights)."""
    key = (name or "offline").lower()
    if key == "offline":
        from .offline import OfflineBackend

        return OfflineBackend()
    if key == "sadtalker":
        from .sadtalker import SadTalkerBackend

        return SadTalkerBackend(device=device)
    raise ConfigError(f"unknown talking-head backend '{name}' (known: {', '.join(BACKENDS)})")
