"""Device and dtype choice: CUDA > Apple MPS > CPU; fp16 on GPUs, fp32 on CPU (fp16 is ~20x slower there)."""

from __future__ import annotations

import torch

from ..errors import FacechainError


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
        raise FacechainError(f"--device {device}: CUDA is not available on this machine (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FacechainError(f"--device {device}: Apple MPS is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise FacechainError(f"--device {device}: unknown device (auto, cpu, cuda, cuda:N or mps)") from None


def resolve_dtype(device: torch.device, dtype: str | None = None) -> torch.dtype:
    """``auto``: fp16 on CUDA/MPS, fp32 on CPU."""
    name = (dtype or "auto").lower()
    table = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if name not in table:
        raise FacechainError(f"--dtype {dtype}: unknown (auto, fp32, fp16, bf16)")
    return table[name]


def vae_dtype(vae, dtype: torch.dtype) -> torch.dtype:
    """``dtype`` for a VAE, except fp32 where fp16 would overflow (``force_upcast`` in its config:
    the stock SDXL VAE produces NaNs in fp16; the fp16-fixed VAE clears the flag). bf16 has fp32's
    range and stays as it is."""
    if dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
        return torch.float32
    return dtype
