"""Perception: face detection, landmarks, identity, attributes — returning :class:`~facechain.types.Face`.

``FaceAnalyzer`` is the one object the pipeline talks to (like insightface's FaceAnalysis);
backends sit behind small protocols in :mod:`.base` and are loaded lazily, once per process.
"""

from .analyzer import FaceAnalyzer, get_analyzer

__all__ = ["FaceAnalyzer", "get_analyzer"]
