"""Resampler: a fixed number of learned queries summarise the face tokens in the text space.

Each block lets the queries attend over ``[face tokens; queries]`` (so they also see each other),
then a feed-forward; the result is projected to the UNet's cross-attention width. 16 queries give
16 extra "words" per photo, appended after the 77 text tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import FactConfig


class _QueryAttention(nn.Module):
    def __init__(self, width: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        inner = heads * head_dim
        self.norm_tokens = nn.LayerNorm(width)
        self.norm_queries = nn.LayerNorm(width)
        self.to_q = nn.Linear(width, inner, bias=False)
        self.to_kv = nn.Linear(width, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, width, bias=False)

    def forward(self, tokens: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        tokens, queries = self.norm_tokens(tokens), self.norm_queries(queries)
        b, n, _ = queries.shape
        q = self.to_q(queries)
        k, v = self.to_kv(torch.cat([tokens, queries], dim=1)).chunk(2, dim=-1)
        q, k, v = (t.view(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _FeedForward(nn.Module):
    def __init__(self, width: int, mult: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width * mult, bias=False)
        self.fc2 = nn.Linear(width * mult, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class _ResamplerBlock(nn.Module):
    def __init__(self, cfg: FactConfig):
        super().__init__()
        self.attn = _QueryAttention(cfg.resampler_width, cfg.resampler_heads, cfg.resampler_head_dim)
        self.ff = _FeedForward(cfg.resampler_width, cfg.resampler_ff_mult)


class FaceResampler(nn.Module):
    """(B, 144, encoder_width) face tokens -> (B, num_queries, output_dim) face embeddings."""

    def __init__(self, config: FactConfig):
        super().__init__()
        self.config = config
        w = config.resampler_width
        self.queries = nn.Parameter(torch.randn(1, config.num_queries, w) / w**0.5)
        self.proj_in = nn.Linear(config.encoder_width, w)
        self.blocks = nn.ModuleList([_ResamplerBlock(config) for _ in range(config.resampler_depth)])
        self.proj_out = nn.Linear(w, config.output_dim)
        self.norm_out = nn.LayerNorm(config.output_dim)

    def forward(self, face_tokens: torch.Tensor) -> torch.Tensor:
        tokens = self.proj_in(face_tokens)
        q = self.queries.expand(face_tokens.shape[0], -1, -1)
        for block in self.blocks:
            q = q + block.attn(tokens, q)
            q = q + block.ff(q)
        return self.norm_out(self.proj_out(q))

    def unconditional(self, num_photos: int = 1) -> torch.Tensor:
        """The face embedding of "no face": the output for all-zero face tokens (CFG negative)."""
        p = self.proj_in.weight
        zeros = torch.zeros(num_photos, self.config.num_face_tokens, self.config.encoder_width, device=p.device, dtype=p.dtype)
        return self(zeros)
