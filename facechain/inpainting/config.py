"""Settings of ``facechain inpaint`` (section ``inpaint:`` of a config file, see ``configs/inpaint.yaml``).

Every field is also a keyword of :func:`facechain.inpainting.api.inpaint` and (mostly) a CLI flag;
precedence is flag > config file > these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..fact.config import DEFAULT_SCALE_INPAINT


@dataclass
class InpaintConfig:
    # --- models (None: the registry's for the base model's family / the identity's base model) --
    base_model: str | None = None
    openpose_controlnet: str | None = None
    canny_controlnet: str | None = None
    device: str = "auto"
    dtype: str = "auto"

    # --- sampling ---------------------------------------------------------------------------
    num_images: int = 4  # candidates per face; outputs are ranked by similarity
    seed: int | None = None  # candidate k uses seed + k; None: a random seed (recorded)
    size: int | None = None  # side of the square work crops (multiple of 8); None: the base model's native size
    steps: int = 30
    guidance_scale: float = 7.0
    strength: float = 0.65  # stage 2 starts from the template latent noised to this level (paper: ~0.65)
    face_weight: float = 0.95  # face LoRA weight
    style: str | None = None  # optional style whose prompt to use (facechain styles)
    prompt: str | None = None  # replaces the style's (or the default portrait) prompt; {trigger} marks the person
    negative_prompt: str | None = None
    stage1_pose_scale: float = 1.0  # OpenPose ControlNet scale, stage 1 (body skeleton)
    stage2_pose_scale: float = 0.9  # OpenPose ControlNet scale on the warped face landmarks
    stage2_canny_scale: float = 0.6  # Canny ControlNet scale on the edges outside the face
    fusion: Literal["landmark", "modelscope", "none"] = "landmark"  # face fusion after both stages (paper: yes)

    # --- train-free FACT adapter (used with --photo instead of a face LoRA) --------------------
    adapter: str = "fact-adapter"  # registry name, folder or adapter file
    adapter_scale: float = DEFAULT_SCALE_INPAINT  # the reference's inpainting value (0.55)

    # --- template geometry --------------------------------------------------------------------
    crop_face_share: float = 0.3  # face box side / crop side; the crop shows shoulders for the pose
    min_face_size: int = 48  # px; smaller template faces are refused (too few pixels to redraw)
    min_detection_score: float = 0.3  # drop weak detections (dlib HOG scale: real faces score ~0.8-2)
    detect_max_side: int = 2048  # huge templates are searched for faces at this size
    mask: Literal["head", "landmarks"] = "head"  # head: face + hair (perception's head segmenter) + hull
    mask_dilate: float = 0.12  # mask grown by this share of the face size (room for another face shape)
    mask_feather: float = 0.08  # soft edge width, share of the face size (inside the dilated mask)
    forehead: float = 0.5  # hull extended above the brows by this share of the brow-chin distance
    canny_low: int = 100
    canny_high: int = 200
    seam_correction: bool = True  # add the template crop's VAE/resize round-trip error back
    save_intermediates: bool = False  # write stage images, masks and control images per face
    output: str | None = None  # None (Python): not saved unless .save(); the CLI picks ./outputs/<time>-inpaint
    overwrite: bool = False
