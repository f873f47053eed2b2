"""``PrepareConfig``: every setting of ``facechain prepare`` (the ``prepare:`` section of a config file).

Precedence: CLI flag / keyword argument > config file > the defaults below.
``configs/prepare.yaml`` lists every key with its default and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class PrepareConfig:
    # output images
    resolution: int = 512  # side of the square training images (paper: 512)
    face_size: float = 0.40  # target face size / image side (paper: 0.35-0.45); see docs/prepare.md
    face_center_y: float = 0.45  # vertical place of the face centre (0 = top); leaves room for hair

    # perception backends
    detector: Literal["hog", "cnn"] = "hog"
    orientation: Literal["detector", "onnx", "none"] = "detector"
    orientation_model: str | None = None  # ONNX orientation classifier (orientation: onnx)
    orientation_max_side: int = 640  # the 4-rotation face search runs on a copy this big
    segmenter: Literal["grabcut", "m2fp", "none"] = "grabcut"
    retouch: bool = True
    retoucher: Literal["classical", "abpn"] = "classical"
    retouch_strength: float = 0.7
    quality_model: Literal["classical", "fqa"] = "classical"
    tagger: Literal["landmarks", "wd14", "none"] = "landmarks"
    tagger_model: str | None = None  # default: the registry's wd14-tagger
    tag_threshold: float = 0.35

    # loading
    max_image_side: int = 2048  # larger photos are downscaled right after loading

    # rejection rules
    min_detection_score: float = 0.0  # dlib HOG scores: true faces ~0.5-3, clutter < 0.3
    dominance_ratio: float = 0.5  # reject when a second face is at least this fraction of the largest's size
    min_face_size: int = 80  # px, face side in the original photo
    max_face_outside: float = 0.10  # reject when more of the face box than this lies outside the photo
    blur_threshold: float = 0.25  # minimum sharpness part of the quality score
    identity_threshold: float = 0.92  # minimum cosine similarity (dlib embedding) to the group

    # captions
    trigger: str | None = None  # override the trigger word (e.g. "a handsome man")

    # template face (face fusion's source face)
    template_min_size: int = 256  # px; the face covers about half of it

    def __post_init__(self) -> None:
        """Settings that cannot work are the option's fault, said before any photo is blamed."""
        from ..errors import ConfigError

        ranges = {  # key: (low, high) inclusive
            "resolution": (64, 4096), "orientation_max_side": (64, 16384), "max_image_side": (64, 65536),
            "template_min_size": (32, 4096), "min_face_size": (1, 65536),
            "face_size": (0.05, 0.95), "face_center_y": (0.05, 0.95), "retouch_strength": (0.0, 1.0),
            "tag_threshold": (0.0, 1.0), "dominance_ratio": (0.0, 1.0), "max_face_outside": (0.0, 1.0),
            "blur_threshold": (0.0, 1.0), "identity_threshold": (-1.0, 1.0),
        }
        for key, (lo, hi) in ranges.items():
            value = getattr(self, key)
            if not lo <= value <= hi:  # also false for nan
                raise ConfigError(f"prepare option '{key}' must be between {lo:g} and {hi:g}, got {value}")
        if self.resolution % 8:
            raise ConfigError(f"prepare option 'resolution' must be a multiple of 8, got {self.resolution}")
        if self.trigger is not None and not self.trigger.strip():
            raise ConfigError("prepare option 'trigger' must not be empty")
