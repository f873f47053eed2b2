"""``FaceAnalyzer``: detect faces and fill in landmarks, identity and attributes on request."""

from __future__ import annotations

import functools

import numpy as np

from ..types import Face
from .base import AttributeModel, FaceDetector, IdentityEmbedder, LandmarkModel


class FaceAnalyzer:
    """Runs the face models; backends are created lazily on first use and then reused.

    Faces come back sorted by size, largest first.
    """

    def __init__(
        self,
        detector: FaceDetector | None = None,
        landmarks: LandmarkModel | None = None,
        embedder: IdentityEmbedder | None = None,
        attributes: AttributeModel | None = None,
        detector_kind: str = "hog",
    ):
        self._detector = detector
        self._landmarks = landmarks
        self._embedder = embedder
        self._attributes = attributes
        self.detector_kind = detector_kind

    # lazily-built default backends -------------------------------------------------------
    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            from .dlib_backend import DlibDetector

            self._detector = DlibDetector(self.detector_kind)
        return self._detector

    @property
    def landmark_model(self) -> LandmarkModel:
        if self._landmarks is None:
            from .dlib_backend import DlibLandmarks

            self._landmarks = DlibLandmarks()
        return self._landmarks

    @property
    def embedder(self) -> IdentityEmbedder:
        if self._embedder is None:
            from .dlib_backend import DlibEmbedder

            self._embedder = DlibEmbedder()
        return self._embedder

    @property
    def attribute_model(self) -> AttributeModel:
        if self._attributes is None:
            from .dlib_backend import AgeGenderModel

            self._attributes = AgeGenderModel()
        return self._attributes

    # the one call ------------------------------------------------------------------------
    def analyze(
        self,
        image: np.ndarray,
        *,
        landmarks: bool = True,
        embedding: bool = False,
        attributes: bool = False,
        max_faces: int | None = None,
    ) -> list[Face]:
        """Detect faces in an RGB uint8 image and add the requested information."""
        from .dlib_backend import landmarks_to_face

        faces = sorted(self.detector.detect(image), key=lambda f: f.size, reverse=True)
        if max_faces is not None:
            faces = faces[:max_faces]
        for f in faces:
            if landmarks or embedding:
                landmarks_to_face(f, self.landmark_model.landmarks68(image, f.bbox))
            if embedding:
                f.embedding = self.embedder.embed(image, f)
            if attributes:
                f.gender, f.age = self.attribute_model.predict(image, f)
        return faces

    def largest_face(self, image: np.ndarray, **kw) -> Face | None:
        faces = self.analyze(image, **kw)
        return faces[0] if faces else None


@functools.lru_cache(maxsize=4)
def get_analyzer(detector_kind: str = "hog") -> FaceAnalyzer:
    """The process-wide analyzer for a detector kind (models load once)."""
    return FaceAnalyzer(detector_kind=detector_kind)
