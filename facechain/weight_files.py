"""Weights files, checked before anything slow happens and read without running code.

``check_safetensors`` reads only a ``.safetensors`` file's header (a few KB) and checks that the
data it announces is all there, so a truncated or corrupt LoRA is reported in one line before a
base model is loaded. Pickle files (``.pt``/``.ckpt``) are read with ``torch.load(weights_only=True)``
only; one holding anything but tensors is refused, and the message never suggests loading it unsafely.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from .errors import InputError, reading

_MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit


def check_safetensors(path: Path | str) -> dict[str, Any]:
    """The header of a ``.safetensors`` file (tensor name -> dtype/shape/offsets), or a one-line :class:`InputError`."""
    path = Path(path)
    with reading(path):
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise InputError(path, f"not a valid .safetensors file: truncated ({size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or n > size - 8:
                raise InputError(path, "not a valid .safetensors file: truncated or corrupt (header length "
                                       f"{n} does not fit in {size} bytes)")
            raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(path, "not a valid .safetensors file: corrupt header") from None
    if not isinstance(header, dict):
        raise InputError(path, "not a valid .safetensors file: corrupt header")
    data_size = size - 8 - n
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(v, int) and v >= 0 for v in offsets) or offsets[0] > offsets[1]):
            raise InputError(path, f"not a valid .safetensors file: corrupt entry for '{name}'")
        end = max(end, offsets[1])
    if end > data_size:
        raise InputError(path, f"not a valid .safetensors file: truncated ({data_size} of {end} data bytes present)")
    return header


def load_safetensors(path: Path | str, device: str = "cpu") -> dict[str, Any]:
    """All tensors of a checked ``.safetensors`` file."""
    from safetensors.torch import load_file

    check_safetensors(path)
    with reading(path):
        return load_file(str(path), device=device)


def load_tensor_pickle(path: Path | str) -> Any:
    """A PyTorch pickle holding only tensors and plain containers (``weights_only=True``), else a refusal."""
    import torch

    path = Path(path)
    with reading(path):
        return torch.load(path, map_location="cpu", weights_only=True)
