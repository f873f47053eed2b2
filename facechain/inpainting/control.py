"""Conditioning images of the two stages.

Stage 1: the template's body skeleton (bones only) as an OpenPose image, so the person is drawn in
the template's pose; when no body-pose model is available, the template's face landmarks stand in.
Stage 2: OpenPose face dots on the warped landmarks, and Canny edges of the template *outside* the
face region (inside it the new face must be free to differ).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ModelNotFoundError


def draw_pose(size: int, bodies=(), faces68=(), bones_only: bool = False) -> np.ndarray:
    from ..pose.draw import draw_openpose

    return draw_openpose((size, size), bodies=list(bodies), faces68=list(faces68), bones_only=bones_only)


class BodyPoseSource:
    """Lazily created body-pose estimator; remembers why when its model is missing (the pipeline warns)."""

    def __init__(self, estimator=None):
        self._estimator = estimator
        self.unavailable: str | None = None

    def estimate(self, image: np.ndarray, faces=None) -> list:
        if self.unavailable is not None:
            return []
        try:
            if self._estimator is None:
                from ..pose.estimate import get_body_pose_estimator

                self._estimator = get_body_pose_estimator()
            return list(self._estimator.estimate(image, faces=faces))
        except ModelNotFoundError as e:
            self.unavailable = str(e).splitlines()[0] if str(e) else type(e).__name__
            return []


def stage1_pose_image(size: int, bodies: list, template_lm68: np.ndarray) -> tuple[np.ndarray, str]:
    """Bones-only body skeleton; the template face landmarks when no body was found."""
    if bodies:
        return draw_pose(size, bodies=bodies, bones_only=True), "body"
    return draw_pose(size, faces68=[template_lm68]), "face-landmarks"


def stage2_pose_image(size: int, warped_lm68: np.ndarray) -> np.ndarray:
    return draw_pose(size, faces68=[warped_lm68])


def canny_outside(image: np.ndarray, mask: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges of ``image`` (RGB uint8), blanked where ``mask`` is set; 3-channel uint8."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, low, high)
    edges[mask] = 0
    return np.repeat(edges[:, :, None], 3, axis=2)
