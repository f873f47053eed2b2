"""The offline backend: the portrait's own face mesh, animated from the audio and warped per frame.

Runs anywhere facechain runs (CPU, no downloads beyond the mediapipe wheel's TFLite files): the
motion comes from :mod:`.motion`, the rig from :mod:`.animate`, the pixels from :mod:`.render`.
It moves the mouth, jaw, cheeks, lids, brows and head of the *photo*; it does not invent what
the photo never showed (a turned-away cheek, the inside of a mouth beyond painted teeth and
tongue), which is what SadTalker's learned renderer does.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .animate import FramePose, build_rig, pose_points
from .backend import FrameChunk, TalkJob
from .face_mesh import FaceMesh
from .motion import MotionTrack, motion_from_audio
from .render import FrameRenderer


class OfflineBackend:
    """Mesh-warp talking head (see the module docstring)."""

    name = "offline"

    def __init__(self, head_motion: float = 1.0):
        self.head_motion = head_motion

    def motion(self, job: TalkJob) -> MotionTrack:
        return motion_from_audio(job.audio, job.fps, seed=job.seed, head_motion=self.head_motion, num_frames=job.num_frames)

    def frames(self, job: TalkJob, chunk_frames: int) -> Iterator[FrameChunk]:
        h, w = job.image.shape[:2]
        rig = build_rig(job.face, (w, h))
        renderer = FrameRenderer(job.image, rig)
        track = self.motion(job)
        for start in range(0, job.num_frames, chunk_frames):
            part = track.frames(start, min(job.num_frames, start + chunk_frames))
            images, fives = [], []
            for i in range(len(part)):
                pose = FramePose(float(part.mouth_open[i]), float(part.mouth_width[i]), float(part.blink[i]),
                                 float(part.brow[i]), tuple(float(v) for v in part.head[i]))
                points = pose_points(rig, pose)
                images.append(renderer.render(points))
                fives.append(_five_points(job.face, points[:rig.num_mesh]))
            yield FrameChunk(images, np.stack(fives))


def _five_points(face: FaceMesh, mesh_xy: np.ndarray) -> np.ndarray:
    posed = FaceMesh(face.box, face.score, np.column_stack([mesh_xy, face.points[:, 2]]), face.presence)
    return posed.five_points()
