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
        if not unload:  # removable later: keep the exact base weights of every layer the fusing changes
            pipe._facechain_base_weights = _snapshot_base_weights(pipe)
        pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
        if unload:
            pipe.unload_lora_weights()
    return names


def remove_loras(pipe, fused: bool = True) -> None:
    """Undo :func:`apply_loras` (``unload=False``): drop the adapters and give the base weights back.

    Fused weights are restored from the exact copy taken before fusing (unfusing subtracts the delta
    again, which leaves float rounding behind: after many switches between LoRA sets the base model
    would drift, and the same request would no longer give the same image).
    """
    snapshot = getattr(pipe, "_facechain_base_weights", None)
    if fused and snapshot is None:
        pipe.unfuse_lora()
    pipe.unload_lora_weights()
    if snapshot is not None:
        _restore_base_weights(pipe, snapshot)
        pipe._facechain_base_weights = None


_COMPONENTS = ("unet", "text_encoder", "text_encoder_2", "transformer")


def _snapshot_base_weights(pipe) -> dict[tuple[str, str], dict]:
    """Copies of the base weights of every layer a loaded LoRA wraps (only those change when fusing)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    snap = {}
    for comp in _COMPONENTS:
        module = getattr(pipe, comp, None)
        if module is None or not hasattr(module, "named_modules"):
            continue
        for name, layer in module.named_modules():
            if isinstance(layer, BaseTunerLayer):
                base = layer.get_base_layer()
                snap[(comp, name)] = {k: v.detach().clone() for k, v in base.state_dict().items()}
    return snap


def _restore_base_weights(pipe, snapshot: dict[tuple[str, str], dict]) -> None:
    import torch

    with torch.no_grad():
        for (comp, name), tensors in snapshot.items():
            layer = getattr(pipe, comp).get_submodule(name)
            base = layer.get_base_layer() if hasattr(layer, "get_base_layer") else layer
            for key, value in tensors.items():
                base.get_parameter(key).copy_(value) if key in dict(base.named_parameters()) else base.get_buffer(key).copy_(value)
