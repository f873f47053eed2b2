"""Device and dtype choice: CUDA > Apple MPS > CPU; fp16 on GPUs, fp32 on CPU (fp16 is ~20x slower there).

Training picks bf16 only where the GPU computes it natively (CUDA compute capability 8.0+,
Ampere and later); ``torch.cuda.is_bf16_supported()`` also answers True on a T4 or V100, where
bf16 is emulated and slow, so it is not used to decide.
"""

from __future__ import annotations

import torch

from ..errors import FacechainError
from ..options import spell


def resolve_device(device: str | None = None) -> torch.device:
    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacechainError(f"{spell('device')} {device}: CUDA is not available on this machine (use cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FacechainError(f"{spell('device')} {device}: Apple MPS is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise FacechainError(f"{spell('device')} {device}: unknown device (auto, cpu, cuda, cuda:N or mps)") from None


def resolve_dtype(device: torch.device, dtype: str | None = None) -> torch.dtype:
    """``auto``: fp16 on CUDA/MPS, fp32 on CPU."""
    name = (dtype or "auto").lower()
    table = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if name not in table:
        raise FacechainError(f"{spell('dtype')} {dtype}: unknown (auto, fp32, fp16, bf16)")
    return table[name]


def native_bf16(device: torch.device) -> bool:
    """True on CUDA GPUs with bf16 tensor cores (compute capability >= 8.0: A100, RTX 30xx, H100, ...)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)


def training_dtype(device: torch.device) -> torch.dtype:
    """Compute dtype for training: bf16 on Ampere+, fp16 (with loss scaling) on older GPUs, fp32 elsewhere."""
    if device.type == "cuda":
        return torch.bfloat16 if native_bf16(device) else torch.float16
    return torch.float32
