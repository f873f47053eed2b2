"""Post-processing (paper section 2.4): face fusion, similarity ranking, likeness evaluation.

Public and stable (the inpainting pipeline reuses them): :func:`fuse_face` / :class:`FusionResult`
and :func:`rank_images` / :class:`RankedImage`.
"""

from .fusion import FUSION_BACKENDS, FusionResult, fuse_face, get_fuser
from .ranking import MIN_FACE_FRACTION, RankedImage, rank_images

__all__ = ["FUSION_BACKENDS", "FusionResult", "MIN_FACE_FRACTION", "RankedImage", "fuse_face", "get_fuser", "rank_images"]
