"""Face rotation + crop (paper section 2.1, steps 3 and 4) as one closed loop.

The face is rotated by the paper's least-squares angle and scaled/moved so that it is centred
horizontally with the target size, all in one resampling of the upright photo. Then the face is
detected again *in the crop* and whatever is left (a residual angle from imprecise landmarks on
a tilted face, the size, the centre) is corrected, re-warping from the photo, until it is within
tolerance (a few rounds at most).

Face size, one definition everywhere (crop step, report, tests): the side of the dlib HOG
detector's box divided by the image side. The detector only reports boxes in discrete steps
(about 20 % apart, from its image pyramid), so the crop *aims* with a continuous estimate of that
box from the 68 landmarks (:func:`landmark_face_size`, calibrated on the test photos) and the box
measured on the output then lands on one of the steps inside 0.35-0.45 (0.365 or 0.4375 at 512 px).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..perception import FaceAnalyzer
from ..perception.alignment import compose, face_rotation_angle, matrix_angle, matrix_scale, similarity_matrix, warp_similarity
from ..perception.dlib_backend import landmarks_to_face
from ..types import Face

#: dlib HOG box side / sqrt(area of the 68-landmark hull); mean 1.16 over the test photos
#: (per-person spread about ±8 %).
HOG_BOX_PER_LANDMARK_HULL = 1.16


def landmark_face_size(lm68: np.ndarray) -> float:
    """Continuous estimate of the HOG box side from 68 landmarks (pixels)."""
    area = cv2.contourArea(cv2.convexHull(np.asarray(lm68, dtype=np.float32)))
    return HOG_BOX_PER_LANDMARK_HULL * float(np.sqrt(max(area, 1.0)))


def detect_near(image: np.ndarray, point: np.ndarray, analyzer: FaceAnalyzer) -> Face | None:
    """The detected face whose centre is nearest ``point``, with 68 landmarks (None if no face)."""
    faces = analyzer.detector.detect(image)
    if not faces:
        return None
    face = min(faces, key=lambda f: float(np.hypot(*(f.center - point))))
    return landmarks_to_face(face, analyzer.landmark_model.landmarks68(image, face.bbox))


@dataclass
class AlignedFace:
    crop: np.ndarray  # resolution x resolution, RGB
    face: Face  # in crop coordinates, with landmarks
    matrix: np.ndarray  # 2x3, upright photo -> crop
    rounds: int

    @property
    def angle(self) -> float:
        """Total face rotation applied (degrees, clockwise positive)."""
        return matrix_angle(self.matrix)

    @property
    def source_face_px(self) -> float:
        """The face's size (HOG-box equivalent) in pixels of the upright photo."""
        return landmark_face_size(self.face.landmarks68) / matrix_scale(self.matrix)


def align_and_crop(
    upright: np.ndarray,
    face: Face,
    analyzer: FaceAnalyzer,
    resolution: int = 512,
    face_size: float = 0.40,
    face_center_y: float = 0.45,
    max_rounds: int = 4,
) -> AlignedFace | None:
    """Level, centre and scale ``face`` (landmarks needed) into a square crop; None if lost."""
    r = resolution
    dst = np.array([r / 2.0, face_center_y * r])
    target = face_size * r
    m = similarity_matrix(face_rotation_angle(face.kps), target / landmark_face_size(face.landmarks68), face.center, dst)
    best: AlignedFace | None = None
    for rounds in range(1, max_rounds + 1):
        crop = warp_similarity(upright, m, (r, r))
        found = detect_near(crop, dst, analyzer)
        if found is None:
            break
        best = AlignedFace(crop, found, m, rounds)
        residual = face_rotation_angle(found.kps)
        scale = target / landmark_face_size(found.landmarks68)
        shift = dst - found.center
        if abs(residual) < 0.5 and abs(scale - 1) < 0.03 and abs(shift[0]) < 0.01 * r and abs(shift[1]) < 0.02 * r:
            break
        m = compose(similarity_matrix(residual, scale, found.center, dst), m)
    return best


def template_crop(upright: np.ndarray, aligned: AlignedFace, min_side: int = 256, max_side: int = 512) -> np.ndarray:
    """Square, level crop with the face about half the side (face fusion's source face).

    The side follows the face's resolution in the photo (no pointless upscaling) within
    ``[min_side, max_side]``; the background is kept as photographed.
    """
    side = int(np.clip(round(2 * aligned.source_face_px), min_side, max(min_side, max_side)))
    size_in_crop = landmark_face_size(aligned.face.landmarks68)
    t = similarity_matrix(0.0, (side / 2) / size_in_crop, aligned.face.center, (side / 2, side / 2))
    return warp_similarity(upright, compose(t, aligned.matrix), (side, side))
