"""Which files of a hub repository a model needs: download those, nothing else.

Hub repositories of diffusion models hold every format at once (SD 1.5's holds pickles, fp16 and
non-EMA variants and single-file checkpoints: ~20 GB), while a diffusers pipeline loads one
``.safetensors`` file per component (~4.3 GB for SD 1.5). A *kind* names a layout; its patterns
are exact file names (``fnmatch`` syntax, as both hubs' ``allow_patterns`` take them), relative
to the repository, under the reference's ``#subfolder`` when it has one.

Kinds: ``pipeline`` (diffusers SD 1.5 / SDXL folder), ``controlnet`` (diffusers ControlNet),
``file`` (the one file named after ``#``), ``repo`` (the whole repository: ModelScope pipelines
of the paper's perception models, whose file lists we do not know).
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["pipeline", "controlnet", "file", "repo"]
KINDS: tuple[str, ...] = ("pipeline", "controlnet", "file", "repo")

#: The components a Stable Diffusion (1.5 or XL) pipeline loads. Patterns of SDXL's second text
#: encoder match nothing in an SD 1.5 repository, which is harmless. No safety checker (facechain
#: never loads it), no feature extractor, no ``.bin``/``.ckpt``, no ``fp16``/``non_ema`` variants.
PIPELINE_FILES: tuple[str, ...] = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.safetensors",
    "text_encoder_2/config.json", "text_encoder_2/model.safetensors",
    "tokenizer/*.json", "tokenizer/*.txt",
    "tokenizer_2/*.json", "tokenizer_2/*.txt",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
)
CONTROLNET_FILES: tuple[str, ...] = ("config.json", "diffusion_pytorch_model.safetensors")

#: Components whose weights a pipeline cannot do without, and the weight file names each may have.
#: The ``.bin`` names are a fallback only for repositories that publish no ``.safetensors`` for a
#: component (see :func:`pickle_fallbacks`); diffusers reads them with ``weights_only=True``.
WEIGHT_COMPONENTS: dict[str, tuple[str, str]] = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "text_encoder": ("model.safetensors", "pytorch_model.bin"),
    "text_encoder_2": ("model.safetensors", "pytorch_model.bin"),
    "controlnet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
}

#: Suffixes that make a ``#subfolder`` a single file rather than a folder.
FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".onnx", ".json", ".yaml", ".txt", ".csv", ".tflite")


def _prefixed(files: tuple[str, ...], subfolder: str | None) -> tuple[str, ...]:
    sub = (subfolder or "").strip("/")
    return tuple(f"{sub}/{f}" if sub else f for f in files)


def layout_patterns(kind: str, subfolder: str | None = None) -> tuple[str, ...]:
    """The exact download patterns of ``kind`` for a reference whose subfolder is ``subfolder``."""
    if kind == "pipeline":
        return _prefixed(PIPELINE_FILES, subfolder)
    if kind == "controlnet":
        return _prefixed(CONTROLNET_FILES, subfolder)
    if kind == "file":
        if not subfolder:
            raise ValueError("a 'file' model needs the file name after '#' in its reference")
        return (subfolder.strip("/"),)
    if kind == "repo":
        return _prefixed(("*",), subfolder)
    raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")


def is_file_subfolder(subfolder: str | None) -> bool:
    return bool(subfolder) and subfolder.lower().endswith(FILE_SUFFIXES)  # type: ignore[union-attr]


def pickle_fallbacks(folder, kind: str) -> list[str]:
    """Relative paths of ``.bin`` weights to fetch for components that came without ``.safetensors``.

    ``folder`` is the downloaded (sub)folder. Only components the pipeline's ``model_index.json``
    lists are checked (a ControlNet has one, the folder itself).
    """
    import json
    from pathlib import Path

    folder = Path(folder)
    if kind == "controlnet":
        safe, pickle = WEIGHT_COMPONENTS["controlnet"]
        return [] if (folder / safe).is_file() else [pickle]
    if kind != "pipeline":
        return []
    index = folder / "model_index.json"
    if not index.is_file():
        return []
    try:
        listed = json.loads(index.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    missing = []
    for comp, (safe, pickle) in WEIGHT_COMPONENTS.items():
        value = listed.get(comp)
        if comp == "controlnet" or not (isinstance(value, list) and value and value[0]):
            continue
        if not (folder / comp / safe).is_file():
            missing.append(f"{comp}/{pickle}")
    return missing
