"""The FACT adapter layer and how it is hooked into a diffusers UNet.

In every transformer block that cross-attends to text, a gated layer runs *sequentially* between
the block's self-attention and its cross-attention (GLIGEN-style):

    h  = x + s·tanh(α_attn) · SelfAttn(LN([x; W·face]))[:, :len(x)]
    h' = h + s·tanh(α_ff)   · GEGLU-FF(LN(h))
    then the block's own cross-attention attends to the *text tokens only*, on h'.

α starts at 0, so a fresh adapter leaves the UNet exactly as it was; ``s`` is the user's adapter
scale. Blocks are found by walking the UNet (any ``BasicTransformerBlock`` whose ``attn2`` is a
cross-attention), so SD 1.5 and SDXL layouts both work.

Why hooks rather than replacing attention processors: the UNet's modules, state dict and
attention processors stay untouched (LoRA fusing, SDPA/xformers processors and ``from_pipe``
keep working), and removing the adapter is just removing the hooks. The face tokens travel
appended to ``encoder_hidden_states`` (77 text + 16 per photo); a pre-hook on each block splits
them off before anything else in the block sees them, and ControlNets get the same split at
their entry, so no ControlNet ever sees a face token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .config import FactConfig
from .resampler import FaceResampler

_SUPPORTED_NORMS = ("layer_norm", "layer_norm_i2vgen")


# --- the layer ------------------------------------------------------------------------------
class _JointSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width, bias=False)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width, bias=False)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = (p(x).view(b, n, self.heads, c // self.heads).transpose(1, 2) for p in (self.query, self.key, self.value))
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class _GegluFeedForward(nn.Module):
    def __init__(self, width: int, mult: int):
        super().__init__()
        self.geglu = nn.Linear(width, 2 * width * mult)
        self.out = nn.Linear(width * mult, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.geglu(x).chunk(2, dim=-1)
        return self.out(value * F.gelu(gate))


class GatedFaceLayer(nn.Module):
    """One block's adapter: returns the *increment* it adds to the visual tokens."""

    def __init__(self, width: int, face_dim: int, heads: int, ff_mult: int = 4):
        super().__init__()
        self.face_proj = nn.Linear(face_dim, width)
        self.norm_attn = nn.LayerNorm(width)
        self.attn = _JointSelfAttention(width, heads)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = _GegluFeedForward(width, ff_mult)
        self.gate_attn = nn.Parameter(torch.zeros(()))
        self.gate_ff = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, face: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        n = x.shape[1]
        joint = torch.cat([x, self.face_proj(face)], dim=1)
        step1 = scale * torch.tanh(self.gate_attn) * self.attn(self.norm_attn(joint))[:, :n]
        step2 = scale * torch.tanh(self.gate_ff) * self.ff(self.norm_ff(x + step1))
        return step1 + step2


# --- finding the blocks ---------------------------------------------------------------------
@dataclass(frozen=True)
class BlockInfo:
    path: str  # module path in the UNet, e.g. "down_blocks.1.attentions.0.transformer_blocks.0"
    width: int
    heads: int


def cross_attention_blocks(unet: nn.Module) -> list[tuple[BlockInfo, nn.Module]]:
    """Every transformer block of ``unet`` whose second attention attends to the text tokens."""
    from diffusers.models.attention import BasicTransformerBlock

    found = []
    for name, module in unet.named_modules():
        if not isinstance(module, BasicTransformerBlock):
            continue
        attn2 = getattr(module, "attn2", None)
        if attn2 is None or not getattr(attn2, "is_cross_attention", False) or module.only_cross_attention:
            continue
        if module.norm_type not in _SUPPORTED_NORMS:
            raise ConfigError(f"FACT supports LayerNorm transformer blocks (SD 1.x/2.x/XL); {name} uses '{module.norm_type}'")
        found.append((BlockInfo(name, attn2.to_q.in_features, attn2.heads), module))
    if not found:
        raise ConfigError("this UNet has no cross-attention transformer blocks: FACT cannot be applied")
    return found


def _key(path: str) -> str:
    return path.replace(".", "__")  # ModuleDict keys cannot contain dots


class FactAdapter(nn.Module):
    """The trainable part of FACT: the resampler plus one gated layer per cross-attention block."""

    def __init__(self, config: FactConfig, blocks: list[BlockInfo]):
        super().__init__()
        self.config = config
        self.blocks = list(blocks)
        self.resampler = FaceResampler(config)
        self.layers = nn.ModuleDict(
            {_key(b.path): GatedFaceLayer(b.width, config.output_dim, b.heads, config.adapter_ff_mult) for b in blocks}
        )

    @classmethod
    def for_unet(cls, unet: nn.Module, config: FactConfig) -> "FactAdapter":
        cross_dim = getattr(unet.config, "cross_attention_dim", None)
        if isinstance(cross_dim, (list, tuple)):
            cross_dim = cross_dim[0]
        if cross_dim is not None and int(cross_dim) != config.output_dim:
            raise ConfigError(
                f"FACT adapter outputs {config.output_dim}-wide face tokens but the UNet's cross_attention_dim is {cross_dim}"
            )
        return cls(config, [info for info, _ in cross_attention_blocks(unet)])

    def layer(self, path: str) -> GatedFaceLayer:
        return self.layers[_key(path)]  # type: ignore[return-value]

    def face_embeds(self, face_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 144, W) encoder tokens of N photos of one person -> conditional and unconditional
        embeddings, each (1, 16·N, output_dim): the photos' tokens side by side."""
        cond = self.resampler(face_tokens)
        uncond = self.resampler.unconditional(face_tokens.shape[0])
        n, q, d = cond.shape
        return cond.reshape(1, n * q, d), uncond.reshape(1, n * q, d)

    def added_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# --- routing face tokens --------------------------------------------------------------------
@dataclass
class FaceTokenRouting:
    """Shared by all hooks of one installation: how many face tokens trail the text tokens, and
    the adapter scale. ``record`` (training) collects (features, increment) per block for FAIR."""

    text_len: int = 0
    face_len: int = 0
    scale: float = 1.0
    record: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def split(self, states: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(text tokens, face tokens) when ``states`` carries face tokens, else (states, None)."""
        if states is None or self.face_len <= 0 or states.ndim != 3:
            return states, None
        if states.shape[1] != self.text_len + self.face_len:
            return states, None
        return states[:, : self.text_len], states[:, self.text_len :]


def _replace_states(args: tuple, kwargs: dict, index: int, routing: FaceTokenRouting):
    """Split face tokens off the ``encoder_hidden_states`` argument (keyword or positional)."""
    if "encoder_hidden_states" in kwargs:
        text, face = routing.split(kwargs["encoder_hidden_states"])
        if face is not None:
            kwargs = dict(kwargs, encoder_hidden_states=text)
        return args, kwargs, face
    if len(args) > index:
        text, face = routing.split(args[index])
        if face is not None:
            args = args[:index] + (text,) + args[index + 1 :]
        return args, kwargs, face
    return args, kwargs, None


@dataclass
class _Slot:
    face: torch.Tensor | None = None
    delta: torch.Tensor | None = None


@dataclass
class AdapterHooks:
    """Hooks that run a :class:`FactAdapter` inside a UNet (and keep face tokens from ControlNets)."""

    routing: FaceTokenRouting
    handles: list[Any] = field(default_factory=list)
    owners: list[nn.Module] = field(default_factory=list)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        for m in self.owners:
            if getattr(m, "_facechain_fact", None) is self:
                del m._facechain_fact
        self.owners.clear()

    def _claim(self, module: nn.Module) -> None:
        other = getattr(module, "_facechain_fact", None)
        if other is not None and other is not self:
            raise RuntimeError("a FACT adapter is already installed on this model; remove it first")
        module._facechain_fact = self
        self.owners.append(module)


def install_adapter(unet: nn.Module, adapter: FactAdapter, routing: FaceTokenRouting, hooks: AdapterHooks | None = None) -> AdapterHooks:
    """Hook ``adapter`` into ``unet``; returns the hooks (``.remove()`` restores the UNet)."""
    hooks = hooks or AdapterHooks(routing)
    if getattr(unet, "_facechain_fact", None) is hooks:
        return hooks  # already installed by this session (pipelines made with from_pipe share the UNet)
    hooks._claim(unet)
    blocks = dict((info.path, module) for info, module in cross_attention_blocks(unet))
    missing = [p for p in blocks if _key(p) not in adapter.layers]
    if missing:
        hooks.remove()
        raise ConfigError(f"the FACT adapter has no layer for UNet block {missing[0]} (trained for another UNet layout?)")
    for path, block in blocks.items():
        _hook_block(hooks, block, adapter.layer(path), routing)
    return hooks


def _hook_block(hooks: AdapterHooks, block: nn.Module, layer: GatedFaceLayer, routing: FaceTokenRouting) -> None:
    slot = _Slot()

    def take_face_tokens(module, args, kwargs):
        # BasicTransformerBlock.forward(hidden_states, attention_mask, encoder_hidden_states, ...)
        args, kwargs, slot.face = _replace_states(args, kwargs, 2, routing)
        slot.delta = None
        return args, kwargs

    def add_increment_before_norm(module, args):
        if slot.face is None or routing.scale == 0:
            return None
        x = args[0]
        if layer.face_proj.weight.device != x.device:  # follow CPU-offloaded UNets
            layer.to(x.device)
        delta = layer(x, slot.face.to(layer.face_proj.weight.dtype), routing.scale).to(x.dtype)
        slot.delta = delta
        if routing.record is not None:
            routing.record.append((x, delta))
        return (x + delta,) + tuple(args[1:])

    def add_increment_to_residual(module, args, output):
        delta, slot.delta, slot.face = slot.delta, None, None
        return output if delta is None else output + delta

    hooks.handles.append(block.register_forward_pre_hook(take_face_tokens, with_kwargs=True))
    hooks.handles.append(block.norm2.register_forward_pre_hook(add_increment_before_norm))
    hooks.handles.append(block.attn2.register_forward_hook(add_increment_to_residual))


def shield_controlnet(controlnet: nn.Module, hooks: AdapterHooks) -> None:
    """Strip face tokens at the entry of ``controlnet`` (or of each net of a MultiControlNet)."""
    nets = list(getattr(controlnet, "nets", None) or [controlnet])
    for net in nets:
        if getattr(net, "_facechain_fact", None) is hooks:
            continue
        hooks._claim(net)

        def strip(module, args, kwargs):
            # ControlNetModel.forward(sample, timestep, encoder_hidden_states, controlnet_cond, ...)
            args, kwargs, _ = _replace_states(args, kwargs, 2, hooks.routing)
            return args, kwargs

        hooks.handles.append(net.register_forward_pre_hook(strip, with_kwargs=True))
