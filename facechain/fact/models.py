"""Find and load FACT weights from a model reference, in our format or the published one.

A reference (anything the model store resolves; default: the registry's ``fact-adapter``,
``ms:yucheng1996/FaceChain-FACT``) may be

* a folder with our ``fact_adapter.safetensors`` (+ ``face_encoder.safetensors``), as written by
  ``facechain train-adapter`` or by :func:`convert_published`;
* a folder with the published ``adapter_{film,maj}_….ckpt`` + ``ms1mv2_model_TransFace_S.pt``;
* a single adapter file (``.safetensors`` ours, ``.ckpt``/``.pt`` published), with the face
  encoder given separately (``encoder=``) or lying next to it.

The real published files cannot be downloaded on our CI machines; the loader is tested on state
dicts written in the same layout by tiny modules of the same architecture.

An adapter belongs to one UNet family: its layers sit in that UNet's transformer blocks. The
published checkpoints are SD 1.5 adapters; an SDXL adapter comes from ``facechain train-adapter``
on an SDXL base. Pointing one family's adapter at the other's UNet is a one-line error
(:func:`check_adapter_family`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..diffusion.checkpoints import read_key_shapes
from ..diffusion.family import FAMILY_NAMES, FamilyMismatchError, ModelFamily, family_of_keys, family_of_unet_config
from ..errors import InputError
from ..models.store import ModelStore
from .adapter import FactAdapter
from .checkpoint import (
    MappingReport,
    load_into,
    map_published_adapter,
    map_published_encoder,
    read_ours,
    read_state_dict,
    save_safetensors,
)
from .config import (
    ADAPTER_FILE,
    ENCODER_FILE,
    PUBLISHED_ADAPTER_FILES,
    PUBLISHED_ENCODER_FILE,
    FactConfig,
)
from .encoder import FaceEncoder

log = logging.getLogger(__name__)

DEFAULT_REFERENCE = "fact-adapter"


@dataclass
class FactFiles:
    adapter: Path
    encoder: Path


@dataclass
class FactModel:
    """A face encoder and an adapter built for one UNet, ready for :class:`FactSession`."""

    encoder: FaceEncoder
    adapter: FactAdapter
    source: str
    reports: list[MappingReport] = field(default_factory=list)

    @property
    def config(self) -> FactConfig:
        return self.adapter.config

    def save(self, folder: Path | str, extra: dict[str, str] | None = None) -> Path:
        """Write ``face_encoder.safetensors`` + ``fact_adapter.safetensors`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_safetensors(folder / ENCODER_FILE, self.encoder, self.encoder.config, "encoder")
        save_safetensors(folder / ADAPTER_FILE, self.adapter, self.config, "adapter", extra)
        return folder


def resolve_reference(reference: str | Path, name: str, store: ModelStore | None = None) -> Path:
    """A registry name (``fact-adapter``) or any model-store reference -> local path."""
    from ..models.references import resolve_reference as resolve

    return resolve(reference, store, what=name)[0]


def locate_adapter(reference: str | Path = DEFAULT_REFERENCE, *, variant: str = "film", store: ModelStore | None = None) -> Path:
    """The adapter file a reference means: ours or the published ``variant`` in a folder, or the file itself."""
    path = resolve_reference(reference, "fact-adapter", store)
    if not path.is_dir():
        return path
    adapter = path / ADAPTER_FILE
    if not adapter.is_file():
        published = PUBLISHED_ADAPTER_FILES.get(variant)
        if published is None:
            raise InputError(path, f"unknown FACT variant '{variant}' (known: {', '.join(PUBLISHED_ADAPTER_FILES)})")
        adapter = path / published
    if not adapter.is_file():
        raise InputError(path, f"no FACT adapter here (expected {ADAPTER_FILE} or {PUBLISHED_ADAPTER_FILES[variant]})")
    return adapter


def locate_files(reference: str | Path = DEFAULT_REFERENCE, *, encoder: str | Path | None = None, variant: str = "film",
                 store: ModelStore | None = None) -> FactFiles:
    """Which adapter and encoder files a reference means (see the module docstring)."""
    adapter = locate_adapter(reference, variant=variant, store=store)
    if encoder is not None:
        enc = resolve_reference(encoder, "face encoder", store)
        if enc.is_dir():
            enc = encoder_in_folder(enc)
    else:
        enc = encoder_in_folder(adapter.parent)
    return FactFiles(adapter, enc)


def encoder_in_folder(folder: Path) -> Path:
    """Our ``face_encoder.safetensors``, else the published TransFace ``.pt``."""
    for name in (ENCODER_FILE, PUBLISHED_ENCODER_FILE):
        if (folder / name).is_file():
            return folder / name
    raise InputError(folder, f"no face encoder here (expected {ENCODER_FILE} or {PUBLISHED_ENCODER_FILE}); pass --face-encoder")


def load_encoder(path: Path | str, config: FactConfig | None = None) -> tuple[FaceEncoder, MappingReport]:
    """Our ``face_encoder.safetensors`` (architecture in its metadata) or the published TransFace ``.pt``."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        state, cfg, _ = read_ours(path, "encoder")
        report = MappingReport(str(path))
    else:
        cfg = config or FactConfig()
        raw, _ = read_state_dict(path)
        state, report = map_published_encoder(raw, str(path))
        if report.unmatched:  # the reference loads this file strictly: any unknown key means another model
            raise InputError(path, f"not a TransFace ViT state dict: unknown key '{report.unmatched[0]}' "
                                   f"({len(report.unmatched)} such keys)")
    encoder = FaceEncoder(cfg)
    load_into(encoder, state, report)
    return encoder.eval().requires_grad_(False), report


def _family_of_adapter_keys(keys) -> ModelFamily | None:
    # our layer keys spell block paths with "__" (ModuleDict keys cannot hold dots)
    return family_of_keys({k.replace("__", "."): () for k in keys})


def adapter_family(path: Path | str) -> ModelFamily | None:
    """The UNet family an adapter file was trained for, from its tensor names (header only for ours)."""
    return _family_of_adapter_keys(read_key_shapes(path))


def check_adapter_family(path: Path | str, adapter: ModelFamily | None, base: ModelFamily | None) -> None:
    """One line when an adapter of one family meets a base model of the other."""
    if adapter is None or base is None or adapter == base:
        return
    published = " (the published FACT checkpoints are SD 1.5 only)" if adapter == "sd15" else ""
    raise FamilyMismatchError(path, f"this FACT adapter was trained for {FAMILY_NAMES[adapter]} and cannot run on an "
                                    f"{FAMILY_NAMES[base]} base model{published}; train one for it with "
                                    f"'facechain train-adapter DATASET --base-model <{FAMILY_NAMES[base]} model>'")


def locate_for_family(reference: str | Path, family: ModelFamily, *, variant: str = "film",
                      store: ModelStore | None = None) -> FactFiles:
    """:func:`locate_files`, after a one-line error when the adapter cannot run on a ``family`` base
    model -- before the base model (or anything else) loads. The published checkpoints are known to
    be SD 1.5 without downloading them."""
    from ..models.references import registry_spec

    spec = registry_spec(reference)
    if spec is not None and spec.name == DEFAULT_REFERENCE:
        check_adapter_family(reference, "sd15", family)
    files = locate_files(reference, variant=variant, store=store)
    check_adapter_family(files.adapter, adapter_family(files.adapter), family)
    return files


def load_adapter(path: Path | str, unet: nn.Module, config: FactConfig | None = None) -> tuple[FactAdapter, MappingReport]:
    """Build the adapter for ``unet``'s blocks and fill it from our file or a published checkpoint."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        state, cfg, _ = read_ours(path, "adapter")
        report = MappingReport(str(path))
    else:
        raw, _ = read_state_dict(path)
        state, report = map_published_adapter(raw, str(path))
    check_adapter_family(path, _family_of_adapter_keys(state), family_of_unet_config(unet.config))
    if path.suffix.lower() != ".safetensors":
        cfg = config or FactConfig(output_dim=_cross_dim(unet))
    adapter = FactAdapter.for_unet(unet, cfg)
    load_into(adapter, state, report)
    return adapter, report


def _cross_dim(unet: nn.Module) -> int:
    d = unet.config.cross_attention_dim
    return int(d[0] if isinstance(d, (list, tuple)) else d)


def load_fact(reference: str | Path | FactFiles = DEFAULT_REFERENCE, unet: nn.Module | None = None, *,
              encoder: str | Path | None = None, variant: str = "film", store: ModelStore | None = None,
              config: FactConfig | None = None) -> FactModel:
    """Load encoder + adapter (for ``unet``) from a reference; every key accounted for.

    ``config`` gives the architecture of *published* (pickle) files, which carry none; the
    default is the published one. Our ``.safetensors`` files carry their own.
    """
    if unet is None:
        raise ValueError("load_fact needs the UNet the adapter will run in (its blocks decide the layer sizes)")
    files = reference if isinstance(reference, FactFiles) else locate_files(reference, encoder=encoder, variant=variant, store=store)
    enc, enc_report = load_encoder(files.encoder, config)
    adapter, ad_report = load_adapter(files.adapter, unet, config)
    if enc.config.encoder_width != adapter.config.encoder_width or enc.config.num_face_tokens != adapter.config.num_face_tokens:
        raise InputError(files.encoder, "this face encoder does not match the adapter (token count or width differ)")
    return FactModel(enc, adapter, str(files.adapter), [enc_report, ad_report])


def convert_published(adapter_ckpt: Path | str, encoder_pt: Path | str, output: Path | str, unet: nn.Module | None = None,
                      overwrite: bool = False, config: FactConfig | None = None) -> Path:
    """Convert the published pickles into our ``.safetensors`` folder (no pickle needed afterwards).

    The adapter's layer sizes come from a UNet; without one, an SD 1.5 UNet *layout* (no weights
    loaded) is built from its config, which is what the published adapters were trained for.
    """
    from ..atomic import atomic_directory, check_destination

    check_destination(Path(output), overwrite)  # before reading anything big
    unet = unet if unet is not None else sd15_unet_layout()
    encoder, _ = load_encoder(encoder_pt, config)
    adapter, _ = load_adapter(adapter_ckpt, unet, config)
    with atomic_directory(output, overwrite=overwrite) as tmp:
        FactModel(encoder, adapter, str(adapter_ckpt)).save(tmp, {"converted_from": Path(adapter_ckpt).name})
    return Path(output)


def sd15_unet_layout() -> nn.Module:
    """An SD 1.5-architecture UNet on the meta device (layout only, no memory, no weights)."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel(
            sample_size=64, cross_attention_dim=768, attention_head_dim=8,
            block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        )
