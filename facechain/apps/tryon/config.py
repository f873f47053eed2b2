"""Settings of ``facechain tryon`` (section ``tryon:`` of a config file, see ``configs/tryon.yaml``).

Every field is also a keyword of :func:`facechain.apps.tryon.api.tryon` (mostly a CLI flag too);
precedence is flag > config file > these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError


@dataclass
class TryOnConfig:
    # --- models (None: registry defaults / the identity's base model) -------------------------
    base_model: str | None = None  # the identity's base model: the face LoRA was trained on it
    inpaint_model: str | None = None  # an SD inpainting model (9-channel UNet) for the redraw; None: base_model
    openpose_controlnet: str | None = None
    canny_controlnet: str | None = None
    depth_controlnet: str | None = None
    depth_estimator: str | None = None
    depth: bool | None = None  # None: depth on the hands when both depth models are already present
    garment_segmenter: str = "offline"  # offline | m2fp (when no garment mask is given)
    device: str = "auto"
    dtype: str = "auto"

    # --- sampling -----------------------------------------------------------------------------
    num_images: int = 4  # try-on images, ranked by likeness (the shared default)
    seed: int = 0  # image k uses seed + k
    size: int = 768  # long side of the image Stable Diffusion redraws (aspect ratio kept)
    steps: int = 30
    guidance_scale: float = 7.0
    strength: float = 1.0  # the paper's: nothing of the old person's latent survives
    face_weight: float = 0.95  # face LoRA weight (redraw and face stage)
    style: str | None = None
    prompt: str | None = None  # the scene, e.g. "on a beach" (the background comes from the prompt)
    negative_prompt: str | None = None
    pose_scale: float = 1.0  # OpenPose (bones + hands) ControlNet scale
    canny_scale: float = 0.5  # Canny (body edges) ControlNet scale
    depth_scale: float = 0.6  # depth (hands only) ControlNet scale

    # --- garment ------------------------------------------------------------------------------
    garment_erode: float = 0.006  # kept region = garment eroded by this share of the photo's long side
    garment_feather: float = 0.006  # then blended into the redraw over this share (inside the garment)
    canny_low: int = 100
    canny_high: int = 200

    # --- face stage (paper section 2.5 on the redrawn face) ----------------------------------
    face_stage: bool = True
    face_size: int | None = None  # side of the square face crop; None: 512, or ``size`` when that is smaller
    face_strength: float = 0.65
    fuse_faces: bool = True
    min_face_size: int = 48
    save_intermediates: bool = False

    def check(self) -> "TryOnConfig":
        rules = [
            (self.num_images >= 1, "num_images must be at least 1"),
            (self.steps >= 1, "steps must be at least 1"),
            (64 <= self.size <= 2048, "size must be between 64 and 2048"),
            (self.face_size is None or (64 <= self.face_size <= 2048 and self.face_size % 8 == 0),
             "face_size must be a multiple of 8 between 64 and 2048"),
            (0.0 < self.strength <= 1.0, "strength must be in (0, 1]"),
            (0.0 < self.face_strength <= 1.0, "face_strength must be in (0, 1]"),
            (0.0 <= self.garment_feather <= self.garment_erode < 0.1,
             "garment_feather must be between 0 and garment_erode, and garment_erode below 0.1"),
            (self.garment_segmenter in ("offline", "m2fp"), "garment_segmenter must be offline or m2fp"),
            (self.seed >= 0, "seed must not be negative"),
        ]
        for ok, message in rules:
            if not ok:
                raise ConfigError(f"tryon: {message}")
        return self

    @property
    def face_resolution(self) -> int:
        return self.face_size if self.face_size is not None else min(512, self.size // 8 * 8)
