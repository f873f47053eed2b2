"""The perception components ``prepare`` uses, built once from a :class:`PrepareConfig`.

Passed into the pipeline (diffusers style) rather than looked up globally, so tests and users
can swap any of them.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator

from ..perception import FaceAnalyzer, get_analyzer
from ..perception.orientation import DetectorOrientation, OnnxOrientationClassifier, OrientationModel
from ..perception.quality import FaceQualityModel, get_quality_model
from ..perception.retouch import SkinRetoucher, get_retoucher
from ..perception.segmentation import HeadSegmenter, get_head_segmenter
from ..perception.tagging import Tagger, get_tagger
from .config import PrepareConfig


@dataclass
class PrepareComponents:
    analyzer: FaceAnalyzer
    orientation: OrientationModel | None
    segmenter: HeadSegmenter | None
    retoucher: SkinRetoucher | None
    quality: FaceQualityModel
    tagger: Tagger | None

    @classmethod
    def from_config(cls, cfg: PrepareConfig, analyzer: FaceAnalyzer | None = None) -> "PrepareComponents":
        """Build every backend now, so a missing optional model fails before any work is done."""
        analyzer = analyzer or get_analyzer(cfg.detector)
        if cfg.orientation == "detector":
            orientation: OrientationModel | None = DetectorOrientation(analyzer.detector, max_side=cfg.orientation_max_side)
        elif cfg.orientation == "onnx":
            if not cfg.orientation_model:
                from ..errors import ConfigError

                raise ConfigError("orientation 'onnx' needs orientation_model (a .onnx file or folder)")
            orientation = OnnxOrientationClassifier(cfg.orientation_model)
        else:
            orientation = None
        return cls(
            analyzer=analyzer,
            orientation=orientation,
            segmenter=get_head_segmenter(cfg.segmenter),
            retoucher=get_retoucher(cfg.retoucher, cfg.retouch_strength) if cfg.retouch else None,
            quality=get_quality_model(cfg.quality_model),
            tagger=get_tagger(cfg.tagger, cfg.tagger_model, cfg.tag_threshold),
        )


@dataclass
class StepTimer:
    """Seconds spent per pipeline step, summed over photos (for the report and the benchmark)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] += time.perf_counter() - t0

    def as_dict(self) -> dict[str, float]:
        return dict(self.seconds)
