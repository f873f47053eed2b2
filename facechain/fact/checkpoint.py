"""Read and write FACT weights: our ``.safetensors`` files and the published checkpoints.

Published files (ModelScope ``yucheng1996/FaceChain-FACT``, pickles):

* ``ms1mv2_model_TransFace_S.pt`` - the TransFace ViT-S state dict (``patch_embed.proj``,
  ``pos_embed``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``, plus a
  recognition head ``feature.*``/``senet.*``/``mask_token`` that FACT does not use).
* ``adapter_*.ckpt`` - the resampler under ``local_fac_prj.`` (``latents``, ``proj_in``,
  ``layers.N.0`` attention, ``layers.N.1`` feed-forward, ``proj_out``, ``norm_out``) and one gated
  layer per block as UNet attention-processor weights
  ``<block>.attn2.processor.{linear,norm1,attn.to_q/k/v,attn.to_out.0,norm2,ff.net.0.proj,ff.net.2,alpha_attn,alpha_dense}``
  (``processor.ln`` is a copy of the block's own LayerNorm: ignored, the UNet has it).

Every key is mapped by an explicit table onto our modules; the loader counts matched, ignored and
unmatched keys and raises :class:`InputError` naming the file when anything does not line up
(a parameter left unfilled, a shape that differs, an unknown key inside the FACT namespaces).
Pickles are read with ``torch.load(weights_only=True)`` (tensors only, no code).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError, reading
from ..weight_files import check_safetensors, load_tensor_pickle
from .config import FactConfig

log = logging.getLogger(__name__)

FORMAT = "facechain-fact"
FORMAT_VERSION = "1"

# Name tables, published template <-> our template. ``{i}`` is a block index, ``{p}`` weight|bias.
_ENCODER_MAP = [
    ("patch_embed.proj.{p}", "patch_embed.{p}"),
    ("pos_embed", "pos_embed"),
    ("blocks.{i}.norm1.{p}", "blocks.{i}.norm_attn.{p}"),
    ("blocks.{i}.attn.qkv.weight", "blocks.{i}.attn.qkv.weight"),
    ("blocks.{i}.attn.qkv.bias", "blocks.{i}.attn.qkv.bias"),
    ("blocks.{i}.attn.proj.{p}", "blocks.{i}.attn.proj.{p}"),
    ("blocks.{i}.norm2.{p}", "blocks.{i}.norm_mlp.{p}"),
    ("blocks.{i}.mlp.fc1.{p}", "blocks.{i}.mlp.fc1.{p}"),
    ("blocks.{i}.mlp.fc2.{p}", "blocks.{i}.mlp.fc2.{p}"),
    ("norm.{p}", "norm_out.{p}"),
]
_ENCODER_IGNORED = re.compile(r"^(feature\.|senet\.|mask_token$)")  # recognition head: not used by FACT

_RESAMPLER_MAP = [
    ("latents", "queries"),
    ("proj_in.{p}", "proj_in.{p}"),
    ("proj_out.{p}", "proj_out.{p}"),
    ("norm_out.{p}", "norm_out.{p}"),
    ("layers.{i}.0.norm1.{p}", "blocks.{i}.attn.norm_tokens.{p}"),
    ("layers.{i}.0.norm2.{p}", "blocks.{i}.attn.norm_queries.{p}"),
    ("layers.{i}.0.to_q.weight", "blocks.{i}.attn.to_q.weight"),
    ("layers.{i}.0.to_kv.weight", "blocks.{i}.attn.to_kv.weight"),
    ("layers.{i}.0.to_out.weight", "blocks.{i}.attn.to_out.weight"),
    ("layers.{i}.1.0.{p}", "blocks.{i}.ff.norm.{p}"),
    ("layers.{i}.1.1.weight", "blocks.{i}.ff.fc1.weight"),
    ("layers.{i}.1.3.weight", "blocks.{i}.ff.fc2.weight"),
]

_LAYER_MAP = [
    ("linear.{p}", "face_proj.{p}"),
    ("norm1.{p}", "norm_attn.{p}"),
    ("attn.to_q.weight", "attn.query.weight"),
    ("attn.to_k.weight", "attn.key.weight"),
    ("attn.to_v.weight", "attn.value.weight"),
    ("attn.to_out.0.{p}", "attn.out.{p}"),
    ("norm2.{p}", "norm_ff.{p}"),
    ("ff.net.0.proj.{p}", "ff.geglu.{p}"),
    ("ff.net.2.{p}", "ff.out.{p}"),
    ("alpha_attn", "gate_attn"),
    ("alpha_dense", "gate_ff"),
]
_LAYER_IGNORED = re.compile(r"^ln\.(weight|bias)$")
_PROCESSOR = re.compile(r"^(?P<block>.+)\.attn2\.processor\.(?P<rest>.+)$")
_RESAMPLER_PREFIX = "local_fac_prj."
_WRAPPER_PREFIXES = ("module.", "unet.", "model.")
_SLOTS = {"i": r"(?P<i>\d+)", "p": r"(?P<p>weight|bias)"}


def _template_regex(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for name, group in _SLOTS.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), group)
    return re.compile("^" + pattern + "$")


def _translate(key: str, table: list[tuple[str, str]], reverse: bool = False) -> str | None:
    """Rename ``key`` with the first matching row of ``table`` (published -> ours, or back)."""
    for published, ours in table:
        src, dst = (ours, published) if reverse else (published, ours)
        m = _template_regex(src).match(key)
        if m:
            return dst.format(**m.groupdict())
    return None


@dataclass
class MappingReport:
    """What happened to every key of a checkpoint."""

    source: str
    matched: int = 0
    ignored: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # keys outside FACT's namespaces (left alone)
    missing: list[str] = field(default_factory=list)  # our parameters the file did not fill
    bad_shape: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.source}: {self.matched} keys matched, {len(self.ignored)} ignored, "
                f"{len(self.unmatched)} unmatched, {len(self.missing)} missing, {len(self.bad_shape)} wrong shape")

    def raise_on_mismatch(self) -> None:
        if self.missing or self.bad_shape:
            first = (self.missing or self.bad_shape)[0]
            what = "missing" if self.missing else "has the wrong shape"
            raise InputError(self.source, f"FACT weights do not fit: {first} {what} ({self.summary()})")


# --- reading files --------------------------------------------------------------------------
def read_state_dict(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors (+ safetensors metadata) of a ``.safetensors`` or a pickle checkpoint (weights only)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        check_safetensors(path)
        with reading(path), safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    obj = load_tensor_pickle(path)
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(path, "checkpoint is not a state dict of tensors")
    return dict(obj), {}


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _WRAPPER_PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


# --- published -> ours ----------------------------------------------------------------------
def map_published_encoder(state: dict[str, torch.Tensor], source: str = "face encoder") -> tuple[dict[str, torch.Tensor], MappingReport]:
    report = MappingReport(source)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = _strip_wrappers(key)
        ours = _translate(k, _ENCODER_MAP)
        if ours is not None:
            out[ours] = value
        elif _ENCODER_IGNORED.match(k):
            report.ignored.append(key)
        else:
            report.unmatched.append(key)
    return out, report


def map_published_adapter(state: dict[str, torch.Tensor], source: str = "adapter") -> tuple[dict[str, torch.Tensor], MappingReport]:
    """Published adapter checkpoint -> our :class:`FactAdapter` state dict keys."""
    report = MappingReport(source)
    out: dict[str, torch.Tensor] = {}
    bad_namespaced: list[str] = []
    for key, value in state.items():
        k = _strip_wrappers(key)
        if k.startswith(_RESAMPLER_PREFIX):
            ours = _translate(k[len(_RESAMPLER_PREFIX):], _RESAMPLER_MAP)
            if ours is None:
                bad_namespaced.append(key)
            else:
                out["resampler." + ours] = value
            continue
        m = _PROCESSOR.match(k)
        if m:
            rest = m.group("rest")
            if _LAYER_IGNORED.match(rest):
                report.ignored.append(key)
                continue
            ours = _translate(rest, _LAYER_MAP)
            if ours is None:
                bad_namespaced.append(key)
            else:
                out[f"layers.{m.group('block').replace('.', '__')}.{ours}"] = value
            continue
        report.unmatched.append(key)
    if bad_namespaced:
        raise InputError(source, f"unknown FACT key '{bad_namespaced[0]}' ({len(bad_namespaced)} such keys): not the published layout")
    return out, report


# --- ours -> published (for conversion back, and for tests of the mapping) -------------------
def to_published_encoder(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        pub = _translate(k, _ENCODER_MAP, reverse=True)
        if pub is None:
            raise KeyError(f"no published name for encoder key {k}")
        out[pub] = v
    return out


def to_published_adapter(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        if k.startswith("resampler."):
            pub = _translate(k[len("resampler."):], _RESAMPLER_MAP, reverse=True)
            if pub is None:
                raise KeyError(f"no published name for resampler key {k}")
            out[_RESAMPLER_PREFIX + pub] = v
            continue
        m = re.match(r"^layers\.([^.]+)\.(.+)$", k)
        pub = _translate(m.group(2), _LAYER_MAP, reverse=True) if m else None
        if pub is None:
            raise KeyError(f"no published name for adapter key {k}")
        out[f"{m.group(1).replace('__', '.')}.attn2.processor.{pub}"] = v
    return out


# --- loading into modules -------------------------------------------------------------------
def load_into(module: nn.Module, state: dict[str, torch.Tensor], report: MappingReport) -> MappingReport:
    """Copy ``state`` into ``module``: every parameter must be filled, with the same shape."""
    own = module.state_dict()
    extra = [k for k in state if k not in own]
    if extra:
        raise InputError(report.source, f"FACT weights do not fit: '{extra[0]}' has no place in the model "
                                        f"({len(extra)} such keys; trained for another UNet or size?)")
    for k, target in own.items():
        if k not in state:
            report.missing.append(k)
        elif tuple(state[k].shape) != tuple(target.shape):
            report.bad_shape.append(f"{k} {tuple(state[k].shape)} vs {tuple(target.shape)}")
    report.raise_on_mismatch()
    module.load_state_dict({k: state[k].to(own[k].dtype) for k in own}, strict=True)
    report.matched = len(own)
    log.info(report.summary())
    if report.unmatched:
        log.warning("%s: %d keys outside FACT's layout were left alone (first: %s)", report.source, len(report.unmatched), report.unmatched[0])
    return report


# --- our own files --------------------------------------------------------------------------
def save_safetensors(path: Path | str, module_or_state: nn.Module | dict[str, torch.Tensor], config: FactConfig, kind: str,
                     extra: dict[str, str] | None = None) -> Path:
    """Write weights + the architecture (``FactConfig``) as metadata; atomic."""
    from safetensors.torch import save

    from ..atomic import atomic_write_bytes

    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "config": config.to_json()}
    meta.update(extra or {})
    path = Path(path)
    atomic_write_bytes(path, save(tensors, metadata=meta))
    return path


def read_ours(path: Path | str, kind: str) -> tuple[dict[str, torch.Tensor], FactConfig, dict[str, str]]:
    state, meta = read_state_dict(path)
    if meta.get("format") != FORMAT or meta.get("kind") != kind:
        raise InputError(path, f"not a facechain FACT {kind} file (missing metadata); published .pt/.ckpt files are read directly")
    return state, FactConfig.from_json(meta.get("config", "{}"), str(path)), meta


def is_ours(path: Path | str) -> bool:
    p = Path(path)
    if p.suffix.lower() != ".safetensors" or not p.is_file():
        return False
    try:
        return read_state_dict(p)[1].get("format") == FORMAT
    except InputError:
        return False
