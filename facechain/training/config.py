"""Training settings: one dataclass per preset, resolved as defaults < YAML section < keywords/flags.

``TrainConfig`` (section ``train``) carries the reference FaceChain (v3.0.0) face-LoRA recipe: 512 px
(1024 px on SDXL bases: the resolution follows the base model's family unless set), batch 1, lr
1.5e-4 with a cosine schedule and no warm-up, rank 4 with LoRA scale 1 and a gaussian
initialisation on the UNet attention projections, 200 epochs (``min(200 x photos, 4000)`` steps).
docs/train.md and docs/parity.md give the evidence for each value. ``StyleTrainConfig`` (section ``train_style``) is the paper's
style-LoRA preset: rank 32, lr 1e-4, cosine with restarts, 20 epochs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

from ..diffusion.family import NATIVE_RESOLUTION
from ..models.registry import DEFAULT_BASE_MODEL

OptimizerName = Literal["auto", "adamw", "adamw8bit"]
Precision = Literal["auto", "no", "fp16", "bf16"]
LoraInit = Literal["gaussian", "kaiming"]
SchedulerName = Literal["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"]

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


@dataclass
class TrainConfig:
    """Face-LoRA training (``facechain train``); every field is a key of the ``train:`` config section."""

    base_model: str = DEFAULT_BASE_MODEL  # diffusers folder, single .safetensors, HF id or ms:owner/name@rev#sub
    resolution: int | None = None  # px; None: the base model's native size (SD 1.5: 512, SDXL: 1024)
    vae: str | None = None  # replace the base model's VAE (e.g. sdxl-vae-fp16-fix: SDXL's VAE fixed for fp16)
    batch_size: int = 1
    learning_rate: float = 1.5e-4
    lr_scheduler: SchedulerName = "cosine"
    lr_warmup_steps: int = 0
    lr_num_cycles: int = 1  # only for cosine_with_restarts
    rank: int = 4
    alpha: float = 4.0  # LoRA scale = alpha / rank = 1, as the reference trains (see docs/train.md)
    lora_init: LoraInit = "gaussian"  # A ~ N(0, 1/rank^2), B = 0 (reference, diffusers); kaiming: peft's default
    target_modules: list[str] = field(default_factory=lambda: list(UNET_TARGETS))
    train_text_encoder: bool = False
    text_encoder_rank: int = 32
    text_encoder_alpha: float = 32.0
    text_encoder_target_modules: list[str] = field(default_factory=lambda: list(TEXT_ENCODER_TARGETS))
    steps: int | None = None  # None: from epochs, else min(steps_per_photo * photos, max_steps)
    steps_per_photo: int = 200  # the reference's 200 epochs at batch 1
    max_steps: int = 4000  # = 200 epochs of the reference's 20-photo maximum
    epochs: int | None = None
    seed: int = 42
    flip: bool = True  # random horizontal flip augmentation
    cache_latents: bool = True  # encode images/captions once instead of every step
    mixed_precision: Precision = "auto"  # auto: bf16/fp16 on CUDA, fp32 ("no") elsewhere
    gradient_checkpointing: bool = False
    optimizer: OptimizerName = "auto"  # auto: bitsandbytes AdamW8bit on CUDA, torch AdamW elsewhere
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    checkpoint_every: int = 100  # steps between resumable checkpoints (0: only on Ctrl-C)
    keep_checkpoints: int = 2
    eval_samples: int = 4  # fixed-batch loss measured before/after training (0: skip)
    device: str = "auto"

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        positive = dict(batch_size=self.batch_size, rank=self.rank, steps_per_photo=self.steps_per_photo,
                        max_steps=self.max_steps)
        if self.resolution is not None:
            positive["resolution"] = self.resolution
        if self.train_text_encoder:
            positive["text_encoder_rank"] = self.text_encoder_rank
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"train option '{key}' must be at least 1, got {value}")
        if self.resolution is not None and self.resolution % 8:
            raise ConfigError(f"train option 'resolution' must be a multiple of 8, got {self.resolution}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"train option 'steps' must be at least 1, got {self.steps}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"train option 'epochs' must be at least 1, got {self.epochs}")
        if not self.learning_rate > 0:
            raise ConfigError(f"train option 'learning_rate' must be positive, got {self.learning_rate}")
        if not self.target_modules:
            raise ConfigError("train option 'target_modules' must name at least one module")
        if self.lora_init not in ("gaussian", "kaiming"):
            raise ConfigError(f"train option 'lora_init' must be gaussian or kaiming, got {self.lora_init!r}")

    def for_family(self, family: str) -> "TrainConfig":
        """These settings with the family's defaults filled in (resolution: 512 SD 1.5, 1024 SDXL)."""
        if self.resolution is not None:
            return self
        return dataclasses.replace(self, resolution=NATIVE_RESOLUTION[family])

    def total_steps(self, n_images: int) -> int:
        """Explicit ``steps``, else ``epochs`` over the data, else ``min(200 x photos, 4000)`` (the reference's 200 epochs)."""
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return self.epochs * math.ceil(n_images / self.batch_size)
        return min(self.steps_per_photo * n_images, self.max_steps)


@dataclass
class StyleTrainConfig(TrainConfig):
    """Style-LoRA preset (``facechain train-style``, section ``train_style``): the paper's offline recipe."""

    learning_rate: float = 1e-4
    lr_scheduler: SchedulerName = "cosine_with_restarts"
    lr_num_cycles: int = 3
    rank: int = 32
    alpha: float = 32.0
    epochs: int | None = 20


#: Settings that must match for ``--resume`` to continue a run exactly.
RESUME_KEYS = ("base_model", "vae", "resolution", "batch_size", "learning_rate", "lr_scheduler", "lr_warmup_steps",
               "lr_num_cycles", "rank", "alpha", "lora_init", "target_modules", "train_text_encoder", "text_encoder_rank",
               "text_encoder_alpha", "text_encoder_target_modules", "seed", "flip", "optimizer", "adam_beta1",
               "adam_beta2", "adam_weight_decay", "adam_epsilon", "max_grad_norm", "mixed_precision")
