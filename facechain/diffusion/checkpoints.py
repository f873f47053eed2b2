"""Single-file checkpoints (civitai / A1111 ``.safetensors``): which architecture, and its config.

``from_single_file`` needs a diffusers config folder to map the original (LDM) keys onto; without
one it fetches it from the Hugging Face hub. facechain ships those folders (``single_file/``:
SD 1.5, SDXL base and their ControlNets; see its NOTICE.md) and tells the architecture from the
checkpoint's keys, so a downloaded checkpoint loads with no network at all.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

from ..errors import FamilyMismatchError, InputError, translate
from ..weight_files import check_safetensors

CONFIGS = Path(__file__).resolve().parent / "single_file"
FAMILIES = ("sd15", "sdxl")

# Keys that only one architecture has (original LDM / A1111 layout).
_SDXL_KEYS = ("conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
              "model.diffusion_model.label_emb.0.0.weight")
_SD15_KEYS = ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
              "cond_stage_model.transformer.embeddings.token_embedding.weight")
_SD2_KEY = "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"
_SDXL_REFINER_TEXT = "conditioner.embedders.0.model."  # the refiner's only text encoder is OpenCLIP bigG
_SDXL_BASE_TEXT = "conditioner.embedders.1."
_TRANSFORMER_KEYS = ("joint_blocks.", "double_blocks.", "single_blocks.", "double_layers.")  # SD3, Flux, ...
_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
_CONTROLNET_PREFIXES = ("control_model.", "")
_CONTROLNET_HINT = "input_hint_block.0.weight"
_CONTROLNET_SDXL = "label_emb.0.0.weight"


def read_key_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a checkpoint, without loading its weights when it is safetensors."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            check_safetensors(path)  # a truncated download: one line saying so
            with safe_open(str(path), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        import torch

        sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        for wrapper in ("state_dict", "model", "module"):  # training checkpoints nest the weights
            while isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
                sd = sd[wrapper]
        return {k: tuple(v.shape) for k, v in sd.items() if hasattr(v, "shape")}
    except Exception as e:  # not a checkpoint, truncated, a pickle with code in it...
        known = translate(e, path)  # our reason (never torch's "retry with weights_only=False")
        reason = known.reason if isinstance(known, InputError) else _first_line(e)
        raise InputError(path, f"cannot read checkpoint ({reason})") from None


def pipeline_family(path: Path, shapes: dict[str, tuple[int, ...]] | None = None) -> str:
    """``sd15`` or ``sdxl`` for a single-file pipeline checkpoint; InputError for anything else."""
    shapes = read_key_shapes(path) if shapes is None else shapes
    if any(k.removeprefix("model.diffusion_model.").startswith(_TRANSFORMER_KEYS) for k in shapes):
        raise FamilyMismatchError(path, "not a Stable Diffusion 1.x/2.x or SDXL checkpoint (SD3/Flux-style "
                                        "transformer); facechain runs SD 1.5 and SDXL base models")
    if any(k.startswith(_SDXL_REFINER_TEXT) for k in shapes) and not any(k.startswith(_SDXL_BASE_TEXT) for k in shapes):
        raise FamilyMismatchError(path, "this is the SDXL refiner, not a base model; pass an SDXL base model")
    if any(k in shapes for k in _SDXL_KEYS):
        family = "sdxl"
    elif any(k in shapes for k in _SD15_KEYS):
        family = "sd15"
    elif _SD2_KEY in shapes:
        raise InputError(path, "a Stable Diffusion 2.x checkpoint; facechain supports SD 1.5 and SDXL checkpoints")
    else:
        raise InputError(path, "not a Stable Diffusion 1.5 / SDXL checkpoint (no text encoder or UNet keys in the original layout)")
    unet_in = shapes.get(_UNET_IN)
    if unet_in is not None and len(unet_in) == 4 and unet_in[1] != 4:
        raise InputError(path, f"a UNet with {unet_in[1]} input channels (an inpainting or other special checkpoint); "
                               "facechain loads text-to-image checkpoints (4 channels)")
    return family


def controlnet_family(path: Path, shapes: dict[str, tuple[int, ...]] | None = None) -> str:
    """``sd15`` or ``sdxl`` for a single-file ControlNet; InputError when it is no ControlNet."""
    shapes = read_key_shapes(path) if shapes is None else shapes
    for prefix in _CONTROLNET_PREFIXES:
        if prefix + _CONTROLNET_HINT in shapes:
            return "sdxl" if prefix + _CONTROLNET_SDXL in shapes else "sd15"
    raise InputError(path, "not a ControlNet checkpoint in the original layout (no input_hint_block)")


def clip_vocabulary() -> tuple[dict[str, int], list[str]]:
    """CLIP's BPE vocabulary (49,408 tokens) and merges, from the shipped merges file.

    The vocabulary is the 256 byte characters, the same with the end-of-word mark, one token per
    merge, then ``<|startoftext|>`` and ``<|endoftext|>``: the order CLIP's tokenizer was built in.
    """
    lines = gzip.decompress((CONFIGS / "clip_merges.txt.gz").read_bytes()).decode("utf-8").splitlines()
    merges = [ln for ln in lines[1:] if ln]
    byte_chars = byte_characters()
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def byte_characters() -> list[str]:
    """GPT-2's reversible byte -> printable character table, in CLIP's order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def config_dir(name: str, cache_root: Path) -> Path:
    """A ready config folder for ``name`` (``sd15``, ``sdxl``, ``controlnet-sd15``, ``controlnet-sdxl``).

    The shipped JSON files plus the tokenizer files written from the CLIP merges, materialised once
    under ``cache_root`` (in a folder named after the shipped files' hash, so an upgrade refreshes it).
    """
    src = CONFIGS / name
    if not src.is_dir():
        raise ValueError(f"no shipped config {name!r} (known: {', '.join(sorted(p.name for p in CONFIGS.iterdir() if p.is_dir()))})")
    files = sorted(p for p in src.rglob("*") if p.is_file())
    digest = hashlib.sha256(b"".join(p.relative_to(src).as_posix().encode() + p.read_bytes() for p in files)).hexdigest()[:12]
    dest = Path(cache_root) / "single-file-configs" / f"{name}-{digest}"
    if (dest / ".complete").is_file():
        return dest
    from ..atomic import atomic_directory

    with atomic_directory(dest, overwrite=True) as tmp:
        for p in files:
            target = tmp / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
        tokenizers = [d for d in tmp.iterdir() if d.is_dir() and d.name.startswith("tokenizer")]
        if tokenizers:
            vocab, merges = clip_vocabulary()
            for d in tokenizers:
                (d / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
                (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        (tmp / ".complete").write_text("")
    return dest


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first[:160]}" if first else type(e).__name__
