"""Which Stable Diffusion family a model belongs to, and refusing mixtures before anything loads.

An SD 1.5 LoRA, identity or ControlNet does not fit an SDXL UNet (other block layout, 2048-wide
text conditioning instead of 768, added size/time conditioning), and the reverse is just as
wrong; diffusers then fails deep inside loading with a shape error, or silently skips keys. So
every artifact is classified cheaply and up front, from what describes it without reading its
weights:

* a diffusers folder: ``model_index.json`` and ``unet/config.json`` (``addition_embed_type:
  text_time`` is SDXL's added text/time embedding);
* a single-file checkpoint or ControlNet: its key layout (:mod:`.checkpoints`, the same check
  the single-file loader makes: SGM's ``conditioner.embedders`` vs ``cond_stage_model``);
* a LoRA or FACT adapter: the tensor names and shapes in its header (kohya's
  ``lora_te1_``/``lora_te2_`` vs ``lora_te_``; diffusers' ``text_encoder_2.``; more than one
  transformer block per attention (SD 1.x/2.x have exactly one); 2048-wide cross-attention keys);
* a ControlNet folder: its ``config.json``.

``"sd15"`` means the SD 1.x/2.x UNet layout (one text encoder, no added conditioning); within it,
an SD 2.x LoRA on an SD 1.x base is told apart by the cross-attention width. :func:`check_compatible`
raises :class:`FamilyMismatchError` (one line, naming the file) for every mixture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

from ..errors import FacechainError, FamilyMismatchError, InputError
from ..textfiles import read_json
from . import checkpoints
from .checkpoints import read_key_shapes

__all__ = ["FamilyMismatchError", "ModelFamily", "base_model_family", "check_compatible", "controlnet_family",
           "family_of_keys", "family_of_pipeline", "family_of_unet_config", "identity_family", "lora_family"]

ModelFamily = Literal["sd15", "sdxl"]
FAMILIES: tuple[ModelFamily, ...] = ("sd15", "sdxl")
FAMILY_NAMES: dict[str, str] = {"sd15": "SD 1.5", "sdxl": "SDXL"}
#: Training and generation size each family was trained at.
NATIVE_RESOLUTION: dict[str, int] = {"sd15": 512, "sdxl": 1024}

_LORA_FILE = "pytorch_lora_weights.safetensors"
_OTHER_PIPELINES = ("StableDiffusion3", "Flux", "Kandinsky", "PixArt", "Sana", "AuraFlow", "Kolors", "HunyuanDiT",
                    "Lumina", "StableCascade", "Wuerstchen", "IF", "LatentConsistencyModel")
_BLOCK_INDEX = re.compile(r"transformer_blocks[._](\d+)[._]")
_CROSS_ATTN_DOWN = re.compile(r"attn2[._](processor[._])?to_k(_lora)?[._].*(lora_down|lora_A|lora[._]down|down)\.weight$")


def family_name(family: str | None) -> str:
    return FAMILY_NAMES.get(str(family), "an unknown family")


# --- classification ----------------------------------------------------------------------------
def family_of_unet_config(config: Mapping[str, Any]) -> ModelFamily | None:
    """A UNet's or ControlNet's config: SDXL's added ``text_time`` embedding, or none (SD 1.x/2.x)."""
    kind = config.get("addition_embed_type")
    if kind == "text_time":
        return "sdxl"
    if kind is None:
        return "sd15"
    return None


def family_of_pipeline(pipe: Any) -> ModelFamily:
    """The family of a loaded diffusion pipeline, from its UNet's config ("sd15" for a stand-in without one)."""
    unet = getattr(pipe, "unet", None)
    return (family_of_unet_config(unet.config) if unet is not None else None) or "sd15"


def cross_attention_width(config: Mapping[str, Any]) -> int | None:
    d = config.get("cross_attention_dim")
    if isinstance(d, (list, tuple)):
        d = d[0] if d else None
    return int(d) if isinstance(d, (int, float)) else None


def family_of_keys(shapes: Mapping[str, Sequence[int]]) -> ModelFamily | None:
    """SD 1.x/2.x vs SDXL from the tensor names (and a few shapes) of a LoRA or FACT adapter in any
    naming (diffusers, peft, kohya, SGM); single-file checkpoints go through :mod:`.checkpoints`."""
    keys = list(shapes)
    if any(k.startswith(("conditioner.embedders.", "text_encoder_2.", "lora_te2_", "lora_te1_", "te2.")) for k in keys):
        return "sdxl"
    if any("add_embedding." in k or "label_emb." in k or "label_emb_" in k for k in keys):
        return "sdxl"
    if any(int(m.group(1)) > 0 for k in keys if (m := _BLOCK_INDEX.search(k))):
        return "sdxl"  # SD 1.x/2.x have exactly one transformer block per attention; SDXL 2 or 10
    width = lora_cross_attention_width(shapes)
    if width == 2048:
        return "sdxl"
    if any(k.startswith(("cond_stage_model.", "lora_te_")) for k in keys) or width in (768, 1024):
        return "sd15"
    if any(_BLOCK_INDEX.search(k) for k in keys) or any(k.startswith(("control_model.", "model.diffusion_model."))
                                                          for k in keys):
        return "sd15"  # a UNet/ControlNet layout with no SDXL signature at all
    return None


def lora_cross_attention_width(shapes: Mapping[str, Sequence[int]]) -> int | None:
    """Input width of the cross-attention key projection a LoRA (or checkpoint) was made for."""
    for k, shape in shapes.items():
        if _CROSS_ATTN_DOWN.search(k) and len(shape) >= 2:
            return int(shape[-1])
        if (k.endswith(("attn2.to_k.weight", "attn2_to_k.weight")) and len(shape) == 2):
            return int(shape[1])
    return None


@dataclass(frozen=True)
class BaseModelFamily:
    """The family of a base model, and its text-conditioning width when known."""

    family: ModelFamily
    cross_attention_dim: int | None = None


def base_model_family(path: Path | str) -> BaseModelFamily:
    """Family of a base model: diffusers folder (configs) or single-file checkpoint (key layout).

    Raises :class:`FamilyMismatchError` for models that are neither SD 1.x/2.x nor an SDXL base
    (SD3, Flux, the SDXL refiner, ...), :class:`InputError` for unreadable ones (and, as the
    single-file loader refuses them, SD 2.x and inpainting checkpoints).
    """
    path = Path(path)
    if path.is_file():
        shapes = read_key_shapes(path)
        family = checkpoints.pipeline_family(path, shapes)
        width = next((s[1] for k, s in shapes.items()
                      if k.startswith("model.diffusion_model.") and k.endswith("attn2.to_k.weight") and len(s) == 2), None)
        return BaseModelFamily(family, width)
    index_file, unet_file = path / "model_index.json", path / "unet" / "config.json"
    if not index_file.is_file():
        raise InputError(path, "not a diffusers model folder (no model_index.json)")
    index = read_json(index_file, dict, "diffusers model_index.json")
    cls = str(index.get("_class_name", ""))
    if cls.startswith(_OTHER_PIPELINES):
        raise FamilyMismatchError(path, f"a {cls} model; facechain runs SD 1.5 and SDXL base models")
    has_te2 = bool(index.get("text_encoder_2")) and (index.get("text_encoder_2") or [None])[0] is not None
    has_te1 = bool(index.get("text_encoder")) and (index.get("text_encoder") or [None])[0] is not None
    if has_te2 and not has_te1:
        raise FamilyMismatchError(path, "this is the SDXL refiner, not a base model; pass an SDXL base model")
    if not unet_file.is_file():
        raise InputError(path, "diffusers folder without unet/config.json")
    unet = read_json(unet_file, dict, "diffusers unet/config.json")
    family = family_of_unet_config(unet)
    if family is None:
        raise FamilyMismatchError(path, f"UNet with '{unet.get('addition_embed_type')}' conditioning is neither "
                                        "SD 1.x/2.x nor SDXL")
    if (family == "sdxl") != has_te2:
        raise FamilyMismatchError(path, "inconsistent model: the UNet and the text encoders in model_index.json "
                                        "belong to different families")
    return BaseModelFamily(family, cross_attention_width(unet))


def lora_file(path: Path | str) -> Path:
    """A LoRA given as a file, or a folder holding diffusers' ``pytorch_lora_weights.safetensors``."""
    path = Path(path)
    if path.is_dir():
        found = path / _LORA_FILE
        if not found.is_file():
            candidates = sorted(path.glob("*.safetensors"))
            if len(candidates) != 1:
                raise InputError(path, f"LoRA folder without {_LORA_FILE}")
            found = candidates[0]
        return found
    return path


def lora_family(path: Path | str) -> tuple[ModelFamily | None, int | None]:
    """(family, cross-attention width) of a LoRA file in diffusers, peft, kohya or SGM naming."""
    shapes = read_key_shapes(lora_file(path))
    return family_of_keys(shapes), lora_cross_attention_width(shapes)


def controlnet_family(path: Path | str) -> tuple[ModelFamily | None, int | None]:
    """(family, cross-attention width) of a ControlNet folder (``config.json``) or single file."""
    path = Path(path)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise InputError(path, "not a diffusers ControlNet folder (no config.json)")
        cfg = read_json(config, dict, "diffusers ControlNet config.json")
        return family_of_unet_config(cfg), cross_attention_width(cfg)
    shapes = read_key_shapes(path)
    return checkpoints.controlnet_family(path, shapes), lora_cross_attention_width(shapes)


def identity_family(identity: Any) -> ModelFamily | None:
    """An identity's family: recorded in its manifest since SDXL support, else read off its LoRA."""
    recorded = getattr(identity, "family", None)
    if recorded in FAMILIES:
        return recorded
    lora = getattr(identity, "lora_path", None)
    if lora is None or not Path(lora).is_file():
        return None
    return lora_family(lora)[0]


# --- the check -------------------------------------------------------------------------------------
def check_compatible(
    base: Path | str,
    *,
    identities: Iterable[Any] = (),
    face_lora: Path | str | None = None,
    style_loras: Iterable[Path | str] = (),
    controlnets: Iterable[Path | str] = (),
    base_label: str | None = None,
) -> ModelFamily:
    """The base model's family, after checking that every other model given belongs to it.

    ``base``: the resolved local path of the base model (folder or file); ``identities``: trained
    identities (objects with ``name``, ``path``, ``lora_path`` and, when recorded, ``family``);
    ``face_lora``/``style_loras``: LoRA files or folders; ``controlnets``: ControlNet folders/files.
    Only configs and safetensors headers are read. Raises :class:`FamilyMismatchError`.
    """
    info = base_model_family(base)
    shown = base_label or str(base)
    want = info.family
    check_identities(identities, want, shown)
    loras = ([("face LoRA", face_lora)] if face_lora is not None else []) + [("style LoRA", s) for s in style_loras]
    for role, lora in loras:
        got, width = lora_family(lora)
        _refuse(lora, role, got, width, info, shown)
    for cn in controlnets:
        got, width = controlnet_family(cn)
        _refuse(cn, "ControlNet", got, width, info, shown)
    return want


def check_identities(identities: Iterable[Any], family: ModelFamily, shown: str) -> None:
    """One line for the first identity trained on the other family than the base model ``shown``."""
    for ident in identities:
        got = identity_family(ident)
        if got is not None and got != family:
            raise FamilyMismatchError(
                getattr(ident, "path", ident),
                f"identity '{getattr(ident, 'name', ident)}' was trained on an {family_name(got)} base model and cannot "
                f"be used with the {family_name(family)} base model {shown}; pass an {family_name(got)} --base-model, "
                f"or train it again with --base-model {shown}")


def _refuse(path, role: str, got: ModelFamily | None, width: int | None, base: BaseModelFamily, shown: str) -> None:
    if got is not None and got != base.family:
        raise FamilyMismatchError(path, f"an {family_name(got)} {role} cannot be used with the {family_name(base.family)} "
                                        f"base model {shown}; use an {family_name(base.family)} {role} or an "
                                        f"{family_name(got)} base model")
    if width is not None and base.cross_attention_dim is not None and width != base.cross_attention_dim:
        raise FamilyMismatchError(path, f"this {role} was made for {width}-wide text conditioning but the base model "
                                        f"{shown} has {base.cross_attention_dim} (SD 2.x vs SD 1.x?)")


def reference_family(reference: str | Path, store: Any = None) -> ModelFamily | None:
    """The family of a base-model reference *without downloading it*: a local folder or file is read,
    a registry entry knows its family, a model already in the store is read; else None (unknown)."""
    from ..models.references import registry_spec
    from ..models.store import default_store

    path = Path(str(reference)).expanduser()
    if path.exists():
        return base_model_family(path).family
    spec = registry_spec(reference)
    if spec is not None and spec.family in FAMILIES:
        return spec.family  # type: ignore[return-value]
    try:
        local = (store or default_store()).resolve(spec.reference if spec else str(reference), download=False)
        return base_model_family(local).family
    except (FacechainError, ValueError):
        return None
