"""The frozen face encoder: a TransFace-style ViT face-recognition transformer.

Input: ArcFace-aligned 112x112 RGB crops scaled to [-1, 1] (see :mod:`facechain.fact.preprocess`).
Output: the final-LayerNorm patch tokens ``(B, 144, 512)`` — not the pooled identity vector —
because the resampler wants spatially resolved face detail. The recognition head of the
published checkpoint (``feature.*``, ``senet.*``) is not needed for that and is not built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import FactConfig


class _SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)  # TransFace: no qkv bias
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu6(self.fc1(x)))  # TransFace uses ReLU6


class _EncoderBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm_attn = nn.LayerNorm(width)
        self.attn = _SelfAttention(width, heads)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = _Mlp(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_attn(x))
        return x + self.mlp(self.norm_mlp(x))


class FaceEncoder(nn.Module):
    """ViT over 9x9 patches of a 112 px aligned face, learned position embedding, no class token."""

    def __init__(self, config: FactConfig):
        super().__init__()
        self.config = config
        w = config.encoder_width
        self.patch_embed = nn.Conv2d(3, w, kernel_size=config.encoder_patch, stride=config.encoder_patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_face_tokens, w))
        self.blocks = nn.ModuleList(
            [_EncoderBlock(w, config.encoder_heads, config.encoder_mlp_ratio) for _ in range(config.encoder_depth)]
        )
        self.norm_out = nn.LayerNorm(w)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """``faces``: (B, 3, 112, 112) in [-1, 1] -> tokens (B, 144, width)."""
        size = self.config.image_size
        if faces.shape[-2:] != (size, size):
            raise ValueError(f"face encoder expects {size}x{size} aligned crops, got {tuple(faces.shape[-2:])}")
        x = self.patch_embed(faces).flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm_out(x)
