"""Tiny FACT models with the real layouts (144 face tokens, 16 queries) for tests and demos."""

from __future__ import annotations

import torch
from torch import nn

from .adapter import FactAdapter
from .config import FactConfig
from .encoder import FaceEncoder
from .models import FactModel


def tiny_fact_config(output_dim: int = 32) -> FactConfig:
    return FactConfig(encoder_width=32, encoder_depth=2, encoder_heads=4, num_queries=16, resampler_width=32,
                      resampler_depth=2, resampler_heads=2, resampler_head_dim=16, output_dim=output_dim, adapter_ff_mult=2)


def tiny_fact_model(unet: nn.Module, seed: int = 0, open_gates: float | None = None) -> FactModel:
    """Random tiny encoder + adapter for ``unet``; ``open_gates`` sets every α (0 = as initialised)."""
    torch.manual_seed(seed)
    d = unet.config.cross_attention_dim
    cfg = tiny_fact_config(int(d[0] if isinstance(d, (list, tuple)) else d))
    adapter = FactAdapter.for_unet(unet, cfg)
    if open_gates is not None:
        with torch.no_grad():
            for layer in adapter.layers.values():
                layer.gate_attn.fill_(open_gates)
                layer.gate_ff.fill_(open_gates)
    return FactModel(FaceEncoder(cfg).eval().requires_grad_(False), adapter, f"tiny-random-{seed}")
