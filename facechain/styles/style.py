"""A style is data: a small YAML file naming a base model, an optional style LoRA, weights and prompts.

Style files are read with ``yaml.safe_load`` (never code), checked field by field, and unknown
keys are rejected with a message naming the file and the key. Example::

    name: cyberpunk
    title: Cybernetics punk
    description: Neon glasses, white hair, fluorescent colours.
    base_model: ms:ly261666/cv_portrait_model@v2.0#film/film
    style_lora: null                  # or a .safetensors file / hub reference
    style_weight: 0.35
    face_weight: 0.95
    prompt: "{trigger}, white hair, neon glowing glasses, cybernetics, upper_body, raw photo"
    negative_prompt: null             # null: facechain's default negative prompt
    size: null                        # null: the base model's native size (SD 1.5 512, SDXL 1024)
    steps: 40
    guidance_scale: 7.0
    sampler: dpm_singlestep

Where the trigger word goes: ``{trigger}`` in ``prompt`` is replaced by the identity's trigger
word and ``{tags}`` by its frequent tags; without ``{trigger}`` the pipeline puts
"trigger, tags, " in front of the prompt (CLIP reads at most 77 tokens, so the identity comes first).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import read_yaml
from ..errors import ConfigError, InputError

#: facechain's default negative prompt (the reference implementation's, shortened).
DEFAULT_NEGATIVE_PROMPT = (
    "(nsfw:2), paintings, sketches, (worst quality:2), (low quality:2), lowres, normal quality, "
    "((monochrome)), ((grayscale)), logo, word, character, bad hand, tattoo, watermark, signature, "
    "skin spots, acnes, skin blemishes, extra fingers, fewer fingers, strange fingers, ((extra legs)), ((extra hands))"
)
#: Defaults when a style (or an ad-hoc style) leaves a value unset. Face 0.95 / style 0.25 follow the
#: reference implementation; the paper's text says 0.25 / 1.0, see docs/generate.md for why we differ.
DEFAULT_FACE_WEIGHT = 0.95
DEFAULT_STYLE_WEIGHT = 0.25
DEFAULT_STEPS = 40
DEFAULT_GUIDANCE = 7.0
#: ``dpm_singlestep`` (DPMSolverSinglestepScheduler) is what the reference forces for LoRA portraits;
#: ``default`` keeps the base model's own scheduler.
SAMPLERS = ("default", "dpm_singlestep", "ddim", "pndm", "euler", "euler_a", "heun", "lms", "dpm++2m", "dpm++2m_karras",
            "unipc")
DEFAULT_SAMPLER = "dpm_singlestep"
WEIGHT_RANGE = (0.0, 2.0)


def parse_size(value: Any, where: str = "size") -> tuple[int, int]:
    """``512`` / ``"512"`` / ``"768x512"`` (width x height) / ``[768, 512]`` -> (width, height), multiples of 8."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected 512 or WIDTHxHEIGHT, got {value!r}")
    try:
        if isinstance(value, int):
            w = h = value
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            w, h = (int(v) for v in value)
        elif isinstance(value, str):
            parts = value.lower().replace(" ", "").split("x")
            if len(parts) == 1:
                w = h = int(parts[0])
            elif len(parts) == 2:
                w, h = int(parts[0]), int(parts[1])
            else:
                raise ValueError
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected 512 or WIDTHxHEIGHT, got {value!r}") from None
    if w < 64 or h < 64 or w > 4096 or h > 4096:
        raise ConfigError(f"{where}: {w}x{h} is out of range (64..4096 pixels per side)")
    if w % 8 or h % 8:
        raise ConfigError(f"{where}: {w}x{h} must be multiples of 8 (the VAE works on 8x8 blocks)")
    return w, h


@dataclass(frozen=True)
class Style:
    """What a style decides about a portrait. ``None`` means "use facechain's / the identity's default"."""

    name: str
    prompt: str
    title: str | None = None
    description: str = ""
    base_model: str | None = None  # None: the identity's base model
    style_lora: str | None = None  # file, folder or hub reference ("ms:owner/repo@rev#file.safetensors")
    style_weight: float = DEFAULT_STYLE_WEIGHT
    face_weight: float = DEFAULT_FACE_WEIGHT
    negative_prompt: str | None = None
    size: tuple[int, int] | None = None  # (W, H); None: the base model family's native size
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    sampler: str = DEFAULT_SAMPLER
    fact_variant: str | None = None  # FACT adapter for --photo: film | maj; None: chosen from the base model
    source: str | None = None  # provenance of the style's data (e.g. the reference repository's file)
    path: Path | None = None  # the YAML file it came from (None: built in code / ad hoc)
    origin: str = "adhoc"  # builtin | user | file | adhoc

    @property
    def prompt_only(self) -> bool:
        return self.style_lora is None

    @property
    def negative(self) -> str:
        return DEFAULT_NEGATIVE_PROMPT if self.negative_prompt is None else self.negative_prompt

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["size"] = f"{self.size[0]}x{self.size[1]}" if self.size else None
        d["path"] = str(self.path) if self.path else None
        return d


# --- validation ------------------------------------------------------------------------------

_FIELDS = {f.name for f in dataclasses.fields(Style)} - {"path", "origin"}


def _text(data: dict, key: str, where: str, required: bool = False) -> str | None:
    v = data.get(key)
    if v is None:
        if required:
            raise ConfigError(f"{where}: key '{key}' is required")
        return None
    if not isinstance(v, str):
        raise ConfigError(f"{where}: key '{key}' must be text, got {type(v).__name__}")
    return v.strip()


def _number(data: dict, key: str, where: str, lo: float, hi: float, integer: bool = False):
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        raise ConfigError(f"{where}: key '{key}' must be {'an integer' if integer else 'a number'}, got {v!r}")
    if not lo <= v <= hi:
        raise ConfigError(f"{where}: key '{key}' must be between {lo} and {hi}, got {v}")
    return int(v) if integer else float(v)


def style_from_mapping(data: dict[str, Any], where: str, *, default_name: str | None = None,
                       path: Path | None = None, origin: str = "file") -> Style:
    """Validate a style mapping (from YAML or Python) and build a :class:`Style`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a style must be a mapping of keys to values")
    if "guidance" in data:  # the key's name before 0.2 (one vocabulary: guidance_scale everywhere)
        if "guidance_scale" in data:
            raise ConfigError(f"{where}: give 'guidance_scale' only (not also its old name 'guidance')")
        data = {("guidance_scale" if k == "guidance" else k): v for k, v in data.items()}
    for key in data:
        if key not in _FIELDS:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(_FIELDS))})")
    name = _text(data, "name", where) or default_name
    if not name:
        raise ConfigError(f"{where}: key 'name' is required")
    prompt = _text(data, "prompt", where, required=True)
    if not prompt:
        raise ConfigError(f"{where}: key 'prompt' must not be empty")
    for placeholder in _placeholders(prompt, where):
        if placeholder not in ("trigger", "tags"):
            raise ConfigError(f"{where}: unknown placeholder '{{{placeholder}}}' in prompt (use {{trigger}} and {{tags}})")
    kwargs: dict[str, Any] = dict(name=name, prompt=prompt, path=path, origin=origin)
    for key in ("title", "base_model", "style_lora", "negative_prompt", "source"):
        val = _text(data, key, where)
        if val is not None:
            kwargs[key] = val or None
    if data.get("description") is not None:
        kwargs["description"] = _text(data, "description", where) or ""
    for key in ("style_weight", "face_weight"):
        if data.get(key) is not None:
            kwargs[key] = _number(data, key, where, *WEIGHT_RANGE)
    if data.get("steps") is not None:
        kwargs["steps"] = _number(data, "steps", where, 1, 500, integer=True)
    if data.get("guidance_scale") is not None:
        kwargs["guidance_scale"] = _number(data, "guidance_scale", where, 0.0, 50.0)
    if data.get("fact_variant") is not None:
        variant = _text(data, "fact_variant", where)
        if variant not in ("film", "maj"):
            raise ConfigError(f"{where}: key 'fact_variant' must be film or maj, got {variant!r}")
        kwargs["fact_variant"] = variant
    if data.get("size") is not None:
        kwargs["size"] = parse_size(data["size"], f"{where}: key 'size'")
    if data.get("sampler") is not None:
        sampler = _text(data, "sampler", where)
        if sampler not in SAMPLERS:
            raise ConfigError(f"{where}: key 'sampler' must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        kwargs["sampler"] = sampler
    # A relative style LoRA path in a style file is relative to that file.
    lora = kwargs.get("style_lora")
    if lora and path is not None and _is_relative_local(lora):
        kwargs["style_lora"] = str((path.parent / lora).resolve())
    return Style(**kwargs)


def _is_relative_local(reference: str) -> bool:
    from ..models.store import ModelRef

    try:
        ref = ModelRef.parse(reference)
    except ValueError:
        return False
    return ref.source == "local" and not Path(reference).expanduser().is_absolute() and not reference.startswith("~")


def _placeholders(prompt: str, where: str) -> list[str]:
    import string

    try:
        return [f for _, f, _, _ in string.Formatter().parse(prompt) if f is not None]
    except ValueError:
        raise ConfigError(f"{where}: unbalanced braces in prompt {prompt[:60]!r}") from None


def load_style_file(path: Path | str, origin: str = "file") -> Style:
    """Read and validate one style YAML file (data only: ``yaml.safe_load``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "style file not found")
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise InputError(path, "a style file must be YAML (.yaml or .yml)")
    data = read_yaml(path)
    return style_from_mapping(data, str(path), default_name=path.stem, path=path.resolve(), origin=origin)
