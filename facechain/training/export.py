"""Write trained LoRA weights in diffusers' format (``pytorch_lora_weights.safetensors``).

diffusers' format has no place for peft's ``lora_alpha``: a loader that does not read adapter
metadata assumes ``alpha == rank``. We therefore bake the ``alpha / rank`` scale into the ``up``
(lora_B) matrices, so any loader (``pipe.load_lora_weights(folder)`` in plain diffusers, other
UIs) reproduces exactly the model that was trained.

:func:`export` (``facechain export``) writes an identity's LoRA for other tools: the kohya / A1111
layout (:mod:`facechain.diffusion.kohya`) or a plain copy of the diffusers file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..identity import LORA_FILE


def diffusers_lora_layers(model, rank: int, alpha: float) -> dict[str, torch.Tensor]:
    """peft LoRA weights of ``model`` as diffusers keys (``...to_q.lora.down/up.weight``), scale baked in."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    scale = float(alpha) / float(rank)
    sd = {}
    for key, value in get_peft_model_state_dict(model).items():
        value = value.detach().to("cpu", torch.float32)
        sd[key] = (value * scale if ".lora_B." in key else value).contiguous()
    return convert_state_dict_to_diffusers(sd)


def save_lora_weights(folder: Path, layers: dict[str, dict[str, torch.Tensor]], family: str = "sd15") -> Path:
    """Save with diffusers' own writer for the family (it adds the ``unet.``/``text_encoder(_2).``
    prefixes), so ``StableDiffusion(XL)Pipeline.load_lora_weights(folder)`` reads it as is.

    ``layers``: diffusers-format LoRA weights by component (``unet``, ``text_encoder``, ``text_encoder_2``).
    """
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {f"{name}_lora_layers": sd for name, sd in layers.items() if sd}
    writer = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    if family != "sdxl" and "text_encoder_2_lora_layers" in parts:
        raise ValueError("text_encoder_2 LoRA weights belong to an SDXL model")
    writer.save_lora_weights(save_directory=str(folder), weight_name=LORA_FILE, safe_serialization=True, **parts)
    return folder / LORA_FILE


# --- `facechain export`: an identity's LoRA for other tools ------------------------------------------

EXPORT_FORMATS = ("kohya", "diffusers")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote."""

    identity: str
    format: str
    path: Path
    architecture: str
    layers: int  # LoRA layers in the file
    notes: tuple[str, ...] = ()  # assumptions the file rests on (e.g. SDXL block numbering without the base model)

    def to_json(self) -> dict:
        return {"identity": self.identity, "format": self.format, "path": str(self.path),
                "architecture": self.architecture, "layers": self.layers, "notes": list(self.notes)}

    def summary(self) -> str:
        line = f"{self.identity}: {self.layers} LoRA layers ({self.architecture}, {self.format} layout) -> {self.path}"
        return "\n".join([line, *(f"note: {n}" for n in self.notes)])


def export(person: str | Path, output: str | Path | None = None, *, format: str = "kohya", overwrite: bool = False,
           quiet: bool = False) -> ExportResult:
    """Write identity ``person``'s face LoRA as one ``.safetensors`` file for other tools.

    ``kohya``: the kohya / A1111 key layout (``lora_unet_…`` with ``.alpha``) that A1111, Forge and
    ComfyUI load; ``diffusers``: a copy of the identity's own file. ``output`` defaults to
    ``<name>.safetensors`` in the current folder; an existing file is replaced only with ``overwrite``,
    and the file appears whole or not at all.
    """
    from safetensors.torch import load_file, save

    from ..atomic import atomic_write_bytes
    from ..diffusion.family import identity_family
    from ..diffusion.kohya import LAYOUTS, kohya_metadata, to_kohya
    from ..errors import ConfigError, InputError, OutputExistsError
    from ..identity import resolve_identity

    if format not in EXPORT_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    ident = resolve_identity(person)
    out = Path(output).expanduser() if output else Path(f"{ident.name}.safetensors")
    if out.suffix.lower() != ".safetensors":
        raise InputError(out, "the output must be a .safetensors file")
    if out.exists() and not overwrite:
        raise OutputExistsError(out)
    if out.is_dir():
        raise InputError(out, "is a folder; give a .safetensors file name")
    try:
        weights = load_file(str(ident.lora_path))
    except Exception as e:
        raise InputError(ident.lora_path, f"cannot read the identity's LoRA ({type(e).__name__})") from None
    architecture = identity_family(ident) or "sd15"  # the manifest's family, else read off the LoRA's keys
    if format == "diffusers":
        atomic_write_bytes(out, ident.lora_path.read_bytes())
        layers = sum(1 for k in weights if k.endswith(("lora.down.weight", "lora_linear_layer.down.weight", "lora_A.weight")))
        return ExportResult(ident.name, format, out, architecture, layers)
    standard = LAYOUTS[architecture].layers_per_block if architecture in LAYOUTS else None
    layers_per_block, notes = _unet_layers_per_block(ident.base_model, standard) if standard else (None, ())
    try:
        kohya = to_kohya(weights, architecture, layers_per_block=layers_per_block)
    except ValueError as e:
        raise InputError(ident.lora_path, str(e)) from None
    extra = {"ss_output_name": ident.name, "facechain_identity": ident.name, "facechain_trigger_word": ident.trigger_word,
             "facechain_base_model": str(ident.base_model)}
    if layers_per_block is not None:
        extra["facechain_unet_layers_per_block"] = str(layers_per_block)
    atomic_write_bytes(out, save(kohya, metadata=kohya_metadata(architecture, kohya, extra)))
    return ExportResult(ident.name, format, out, architecture, sum(1 for k in kohya if k.endswith(".alpha")), notes)


def _unet_layers_per_block(base_model: str, standard: int) -> tuple[int, tuple[str, ...]]:
    """The identity's base UNet's ``layers_per_block`` (SGM block numbers depend on it), and notes.

    Read from ``unet/config.json`` when the base model is on this machine (never downloaded for an
    export); a single-file checkpoint has the architecture's ``standard`` layout. Otherwise the
    standard value too, said in a note.
    """
    from ..errors import FacechainError, InputError
    from ..models.store import default_store
    from ..textfiles import read_json

    assumed = f"its block numbers assume the standard SDXL UNet (layers_per_block={standard})"
    try:
        path = default_store().resolve(base_model, kind="pipeline", download=False)
    except (FacechainError, ValueError):
        return standard, (f"base model {base_model} is not on this machine: {assumed}",)
    config = path / "unet" / "config.json"
    if path.is_file():  # a single-file checkpoint: loaded with the standard layout
        return standard, ()
    if not config.is_file():
        return standard, (f"{config} not found: {assumed}",)
    value = read_json(config, dict, "UNet config").get("layers_per_block", standard)
    values = value if isinstance(value, list) else [value]
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 or v != values[0] for v in values):
        raise InputError(config, f"layers_per_block {value!r}: kohya's SDXL block names need one positive number")
    return values[0], ()
