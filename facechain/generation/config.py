"""Settings of ``facechain generate``: every CLI flag is a field here and a keyword of ``generate()``.

Precedence: keyword / CLI flag > the ``generate:`` section of ``--config FILE`` > the style's own
values (steps, guidance scale, size, sampler, weights) > these defaults. ``None`` means "not set
here". With ``photo`` (FACT, train-free) unset ``steps``/``guidance_scale`` follow the reference's
FACT recipe (50 steps, guidance 5) instead of the style's LoRA recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The style used when neither --style nor --prompt is given: the reference's default look.
DEFAULT_STYLE = "business_suit"


@dataclass
class GenerateConfig:
    # who and which look
    person: str | None = None  # identity name or folder; None: the newest identity
    style: str | None = None  # style name or YAML file; None: DEFAULT_STYLE unless prompt
    prompt: str | None = None  # ad hoc style prompt (or replaces the style's prompt)
    style_lora: str | None = None  # ad hoc style LoRA (or replaces the style's LoRA)
    style_weight: float | None = None
    face_weight: float | None = None
    face_lora: str | None = None  # replaces the identity's face LoRA file (e.g. an intermediate checkpoint)
    negative_prompt: str | None = None  # replaces the style's negative prompt
    # train-free identity (FACT face adapter) instead of a trained face LoRA
    photo: list[str] | None = None  # one or more photos of one person (16 face tokens each)
    adapter: str | None = None  # FACT adapter reference (default: the registry's fact-adapter)
    adapter_scale: float | None = None  # fidelity (1) vs freedom (0); default 0.5
    # sampling
    num_images: int = 4
    batch_size: int = 1
    seed: int | None = None  # image i uses seed + i; None: a random seed (recorded)
    steps: int | None = None
    guidance_scale: float | None = None
    size: str | None = None  # "512" or "WIDTHxHEIGHT"
    sampler: str | None = None
    # models (each overridable)
    base_model: str | None = None  # overrides the style's and the identity's base model
    openpose_controlnet: str | None = None  # default: the registry's openpose-controlnet
    fuse_lora: bool = True  # bake the LoRAs into the weights (faster; same output within 1e-4)
    # pose control
    pose: str | None = None  # a photo to copy the pose from, or a ready OpenPose skeleton image
    pose_strength: float = 1.0  # ControlNet conditioning scale
    # post-processing
    fusion: str = "landmark"  # landmark | modelscope | none
    fusion_strength: float = 1.0
    strict: bool = False  # drop portraits without exactly one reasonably sized face
    min_face_fraction: float = 0.15
    # device and memory
    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False
    # output
    output: str | None = None  # None (Python): not saved unless .save(); the CLI picks ./outputs/<time>-<style>
    overwrite: bool = False  # replace an existing portraits folder facechain wrote
