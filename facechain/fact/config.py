"""Sizes and settings of the FACT face adapter.

:class:`FactConfig` holds the architecture (published FaceChain-FACT defaults: TransFace ViT-S
encoder, a 16-query resampler, SD 1.5's 768-wide text space), so tests build the very same
modules at tiny sizes. :class:`AdapterTrainConfig` is the ``adapter:`` section of a config file
(``facechain train-adapter``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class FactConfig:
    """Architecture of encoder + resampler + adapter layers (defaults = the published model)."""

    # face encoder: TransFace ViT-S on 112 px ArcFace-aligned crops, patch 9 -> 12x12 = 144 tokens
    image_size: int = 112
    encoder_patch: int = 9
    encoder_width: int = 512
    encoder_depth: int = 12
    encoder_heads: int = 8
    encoder_mlp_ratio: float = 4.0
    # resampler: learned queries attend over [face tokens; queries]
    num_queries: int = 16
    resampler_width: int = 1024
    resampler_depth: int = 4
    resampler_heads: int = 12
    resampler_head_dim: int = 64
    resampler_ff_mult: int = 4
    # = the UNet's cross_attention_dim (768 for SD 1.5, 2048 for SDXL)
    output_dim: int = 768
    # adapter layer inside each cross-attention transformer block (GEGLU feed-forward width multiple)
    adapter_ff_mult: int = 4

    @property
    def num_face_tokens(self) -> int:
        """Encoder tokens per photo (144 for the published encoder)."""
        side = (self.image_size - self.encoder_patch) // self.encoder_patch + 1
        return side * side

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "FACT config") -> "FactConfig":
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise ConfigError(f"{source}: unknown FACT config key '{sorted(unknown)[0]}'")
        values = {}
        for k, v in data.items():
            typ = float if names[k].type in ("float", float) else int
            try:
                values[k] = typ(v)
            except (TypeError, ValueError):
                raise ConfigError(f"{source}: FACT config key '{k}' must be a number, got {v!r}") from None
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, source: str = "FACT config") -> "FactConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(f"{source}: FACT config is not valid JSON") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: FACT config must be a JSON object")
        return cls.from_dict(data, source)


#: Names of the published checkpoints in ``ms:yucheng1996/FaceChain-FACT`` (revision v1.0.0).
PUBLISHED_ENCODER_FILE = "ms1mv2_model_TransFace_S.pt"
PUBLISHED_ADAPTER_FILES = {
    "film": "adapter_film_mask_large_new_reg001_faceshuffle_00290001.ckpt",
    "maj": "adapter_maj_mask_large_new_reg001_faceshuffle_00290001.ckpt",
}
#: Our own file names (safetensors; written by training and by conversion).
ADAPTER_FILE = "fact_adapter.safetensors"
ENCODER_FILE = "face_encoder.safetensors"
MANIFEST_FILE = "fact.json"

#: Adapter scale the reference used: 0.5 for text-to-image, 0.55 for inpainting.
DEFAULT_SCALE_GENERATE = 0.5
DEFAULT_SCALE_INPAINT = 0.55
#: The reference's FACT sampling recipe (text-to-image): 50 steps at guidance 5.
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 5.0


def variant_for_base_model(base_model: str | None) -> str:
    """Which published adapter fits a base model: ``maj`` for majicmixRealistic bases, else ``film``.

    The reference trained one adapter per base model family it ships (its film-grain portrait model
    and majicmixRealistic); a style may name its variant explicitly (``fact_variant``).
    """
    return "maj" if base_model and "majicmix" in str(base_model).lower() else "film"


@dataclass
class AdapterTrainConfig:
    """Settings of ``facechain train-adapter`` (the ``adapter:`` section of a config file).

    The reference never published its trainer; the defaults follow the article: FAIR weight
    λ = 0.01 (the ``reg001`` in the published file names), face shuffle, face drop for
    classifier-free guidance; only the adapter layers and the resampler learn.
    """

    base_model: str = "base-sd15-portrait"
    face_encoder: str = "fact-adapter"  # model name / reference / .pt / .safetensors of the face encoder
    adapter_init: str | None = None  # start from these adapter weights (ours or published); None = fresh
    variant: str = "film"  # which published adapter file a folder reference means (film | maj)
    resolution: int = 512
    steps: int = 2000
    batch_size: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    fair_weight: float = 0.01  # λ of the FAIR loss
    shuffle_prob: float = 0.5  # condition photo = another photo of the same person
    drop_prob: float = 0.1  # face tokens dropped (zeros -> unconditional) for CFG
    caption: str = "a photo of a person"
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    dtype: str = "fp32"
    max_photos_per_person: int = 50
    detector: str = "hog"
    head_mask: str = "grabcut"  # grabcut (offline face + hair) | m2fp | landmarks

    def validate(self) -> None:
        for name in ("shuffle_prob", "drop_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"adapter: {name} must be within [0, 1], got {v}")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("adapter: steps and batch_size must be at least 1")
        if self.resolution < 32 or self.resolution % 8:
            raise ConfigError(f"adapter: resolution must be a multiple of 8 and >= 32, got {self.resolution}")
        if self.fair_weight < 0 or self.learning_rate <= 0:
            raise ConfigError("adapter: fair_weight must be >= 0 and learning_rate > 0")
        if self.variant not in PUBLISHED_ADAPTER_FILES:
            raise ConfigError(f"adapter: variant must be one of {', '.join(PUBLISHED_ADAPTER_FILES)}, got {self.variant!r}")
        if self.head_mask not in ("grabcut", "m2fp", "landmarks"):
            raise ConfigError(f"adapter: head_mask must be grabcut, m2fp or landmarks, got {self.head_mask!r}")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1 or self.log_every < 1:
            raise ConfigError("adapter: checkpoint_every, keep_checkpoints and log_every must be at least 1")
