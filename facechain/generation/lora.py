"""Load face/style LoRAs as named adapters with weights, and fuse them for speed.

Shared by ``generate`` and ``inpaint`` (and FACT + style). Uses diffusers' peft-backed LoRA API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, reading
from ..weight_files import check_safetensors


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA to apply: a folder with ``pytorch_lora_weights.safetensors`` or a ``.safetensors`` file."""

    name: str  # adapter name, e.g. "face" / "style"
    path: Path
    weight: float

    def __post_init__(self) -> None:
        # a truncated or corrupt file fails here, in one line, before any model is loaded
        folder, weight_name = _split(Path(self.path))
        check_safetensors(Path(folder) / weight_name)


def _split(path: Path) -> tuple[str, str | None]:
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if (path / "pytorch_lora_weights.safetensors").exists():
            return str(path), "pytorch_lora_weights.safetensors"
        if len(files) == 1:
            return str(path), files[0].name
        if not files:
            raise InputError(path, "no .safetensors LoRA file in this folder")
        raise InputError(path, f"several .safetensors files; pass one of them: {', '.join(f.name for f in files[:5])}")
    if path.suffix.lower() != ".safetensors":
        raise InputError(path, "LoRA weights must be a .safetensors file (pickle formats are not loaded)")
    if not path.exists():
        raise InputError(path, "file not found")
    return str(path.parent), path.name


def apply_loras(pipe, loras: list[LoraSpec], fuse: bool = True, unload: bool = True) -> list[str]:
    """Load ``loras`` as named adapters with their weights; optionally fuse them into the weights.

    Fusing bakes ``sum(weight_i * delta_i)`` into the UNet/text-encoder weights (same outputs as
    the unfused adapters within float error, no per-step LoRA overhead). Returns adapter names.
    With ``unload=False`` the (merged, inactive) adapter layers stay, so :func:`remove_loras` can
    restore the base weights later and a cached pipeline can switch to another LoRA set.
    """
    active = [lo for lo in loras if lo is not None]
    if not active:
        return []
    for lo in active:
        folder, weight_name = _split(Path(lo.path))
        try:
            with reading(Path(folder) / weight_name):
                pipe.load_lora_weights(folder, weight_name=weight_name, adapter_name=lo.name)
        except (ValueError, KeyError, RuntimeError) as e:
            raise InputError(lo.path, f"not a LoRA for this base model ({str(e).splitlines()[0][:160]})") from None
        # diffusers only logs "No LoRA keys associated ..." for a file without matching weights
        loaded = {n for names in pipe.get_list_adapters().values() for n in names}
        if lo.name not in loaded:
            raise InputError(lo.path, "no LoRA weights for this base model's UNet or text encoder in this file")
    names = [lo.name for lo in active]
    pipe.set_adapters(names, adapter_weights=[float(lo.weight) for lo in active])
    if fuse:
        pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
        if unload:
            pipe.unload_lora_weights()
    return names


def remove_loras(pipe, fused: bool = True) -> None:
    """Undo :func:`apply_loras` (``unload=False``): unfuse the adapters if they were fused, then drop them."""
    if fused:
        pipe.unfuse_lora()
    pipe.unload_lora_weights()
