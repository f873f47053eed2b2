"""One option vocabulary for every verb, in the shell and in Python.

Each option is declared once in :data:`OPTIONS` (its keyword, flags, CLI parser, default, help and
the checks its values must pass). Every verb's argparse parser is built from these declarations
(:func:`add`), and every public function checks its keywords against the same declarations
(:func:`validate`), so ``--guidance-scale`` / ``guidance_scale=`` means the same thing, with the
same default and spelling, in every verb -- and a value a user can get wrong (a sampler, a size, a
style name, a device) is refused before any model loads, with "did you mean".

Errors name an option the way its caller spelled it: ``guidance_scale must be ...`` in Python,
``--guidance-scale must be ...`` on the command line (the CLI runs verbs inside :func:`cli_door`).

Old spellings stay for one release as hidden :class:`Alias` flags that parse as before and print a
one-line deprecation warning (``--guidance`` -> ``--guidance-scale``).
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import difflib
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, NoReturn

from .errors import FacechainError

__all__ = ["Option", "Alias", "Shorthand", "Use", "OPTIONS", "OptionError", "RAY_RESOURCE_KEYS", "add", "cli_door",
           "spell", "spell_value", "use", "validate", "validate_args", "verb_parser"]

_NOTHING = object()


class OptionError(FacechainError):
    """An option got a value it cannot take (exit code 2); the message names the option as the caller spelled it."""


# --- which door: keywords (Python) or flags (CLI) --------------------------------------------------

_DOOR: contextvars.ContextVar[str] = contextvars.ContextVar("facechain_option_door", default="python")


@contextlib.contextmanager
def cli_door() -> Iterator[None]:
    """Inside this context, option errors name flags (``--guidance-scale``) instead of keywords."""
    token = _DOOR.set("cli")
    try:
        yield
    finally:
        _DOOR.reset(token)


@contextlib.contextmanager
def python_door() -> Iterator[None]:
    """Inside this context, option errors name keywords (``guidance_scale``): the Python API and HTTP params."""
    token = _DOOR.set("python")
    try:
        yield
    finally:
        _DOOR.reset(token)


def spell(name: str) -> str:
    """How the current caller spells option ``name``: ``guidance_scale`` in Python, ``--guidance-scale`` in the CLI."""
    if _DOOR.get() != "cli":
        return name
    option = OPTIONS.get(name)
    return option.long_flag if option is not None else "--" + name.replace("_", "-")


def spell_value(name: str, value: Any = True) -> str:
    """An option with a value, as the caller would write it: ``--dtype fp32`` / ``dtype='fp32'``, ``--overwrite`` /
    ``overwrite=True`` (for hints in messages)."""
    spelled = spell(name)
    if not spelled.startswith("-"):
        return f"{spelled}={value!r}"
    return spelled if value is True else f"{spelled} {value}"


def _fail(name: str, message: str) -> NoReturn:
    raise OptionError(f"{spell(name)} {message}")


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """``did you mean X? `` + the known values, for an unknown ``value``."""
    known = list(known)
    close = difflib.get_close_matches(str(value), known, n=3, cutoff=0.5)
    if not close:
        return f"known: {', '.join(known)}"
    guess = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f"did you mean {guess}? known: {', '.join(known)}"


# --- declarations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alias:
    """An old spelling, kept hidden for one release: parses as before and prints a deprecation warning.

    ``value``: the old flag takes no argument and sets this value (``--no-progress`` -> quiet=True);
    ``convert``: maps the old argument to the new vocabulary (``--mixed-precision no`` -> dtype fp32);
    ``verbs``: only these verbs had the old spelling (empty: every verb using the option).
    """

    flag: str
    value: Any = _NOTHING
    convert: Callable[[str], Any] | None = None
    verbs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shorthand:
    """A documented second flag that sets a fixed value (``--no-fusion`` = ``--fusion none``)."""

    flag: str
    value: Any
    help: str


@dataclass(frozen=True)
class Option:
    """One option: the Python keyword ``name`` and the CLI ``flags`` that set it, declared once.

    ``type``: how the CLI parses the text (``int``, ``float``, ``str``; None for a switch, see
    ``action``); ``choices``: the allowed values (or a function returning them, resolved when a
    parser is built); ``low``/``high``: inclusive bounds (``low_open``: the lower bound is
    exclusive); ``check(name, value, square)``: a further check that returns the normalised value.
    """

    name: str
    flags: tuple[str, ...]
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = str
    metavar: str | None = None
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    action: str | None = None  # store_true | store_false | store_const | bool (--x/--no-x)
    const: Any = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    check: Callable[[str, Any, bool], Any] | None = None
    aliases: tuple[Alias, ...] = ()
    shorthands: tuple[Shorthand, ...] = ()
    group: str | None = None  # help section

    @property
    def long_flag(self) -> str:
        return next((f for f in self.flags if f.startswith("--")), self.flags[0])

    @property
    def cli_flags(self) -> tuple[str, ...]:
        """The flags a parser shows (a ``bool`` option also gets ``--no-...``)."""
        if self.action != "bool":
            return self.flags
        return self.flags + tuple("--no-" + f[2:] for f in self.flags if f.startswith("--"))

    def _range(self) -> str:
        if self.low is not None and self.high is not None and not self.low_open:
            return f"between {self.low:g} and {self.high:g}"
        low = "" if self.low is None else (f"greater than {self.low:g}" if self.low_open else f"at least {self.low:g}")
        high = "" if self.high is None else f"at most {self.high:g}"
        return " and ".join(x for x in (low, high) if x)

    def known_choices(self) -> tuple[str, ...]:
        return tuple(self.choices()) if callable(self.choices) else tuple(self.choices)

    def validate(self, value: Any, *, square: bool = False) -> Any:
        """The checked, normalised value (None stays None: "not given")."""
        if value is None:
            return None
        if isinstance(value, (list, tuple)) and self.type in (int, str) and self.name in REPEATABLE:
            return [self._one(v, square) for v in value]
        return self._one(value, square)

    def _one(self, value: Any, square: bool) -> Any:
        name = self.name
        if self.type is int:
            value = _as_int(name, value)
        elif self.type is float:
            value = _as_float(name, value)
        too_low = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        if too_low or (self.high is not None and value > self.high):
            _fail(name, f"must be {self._range()}, got {value}")
        choices = self.known_choices()
        if choices and value not in choices:
            _fail(name, f"{value!r} is not a choice ({did_you_mean(str(value), choices)})")
        if self.check is not None:
            value = self.check(name, value, square)
        return value


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        _fail(name, f"must be a whole number, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            _fail(name, f"must be a whole number, got {value!r}")
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        _fail(name, f"must be a whole number, got {value!r}")


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        _fail(name, f"must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        _fail(name, f"must be a number, got {value!r}")
    if not math.isfinite(number):
        _fail(name, f"must be a finite number, got {value!r}")
    return number


# --- value checks that need more than a type and a range ------------------------------------------


def _check_size(name: str, value: Any, square: bool) -> int | str:
    """``512``, ``"512"``, ``"768x512"`` (width x height) or ``(768, 512)`` -> ``512`` or ``"768x512"``.

    Only what every verb needs (whole pixels, multiples of 8 for the VAE, at most 8192); a recipe may
    ask for more (styles: at least 64 px).
    """
    w = h = None
    if isinstance(value, int) and not isinstance(value, bool):
        w = h = value
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        w, h = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*([xX]\s*\d+\s*)?", value):
        parts = [int(p) for p in re.split(r"[xX]", value)]
        w, h = (parts * 2)[:2]
    if w is None or h is None:
        _fail(name, f"must be N or WIDTHxHEIGHT (e.g. 512 or 768x512), got {value!r}")
    if not (8 <= w <= 8192 and 8 <= h <= 8192) or w % 8 or h % 8:
        _fail(name, f"must be multiples of 8 between 8 and 8192 px (the VAE works on 8x8 blocks), got {w}x{h}")
    if square and w != h:
        _fail(name, f"must be one number here (this verb works on square images, e.g. {min(w, h)}), got {w}x{h}")
    return w if w == h else f"{w}x{h}"


def _samplers() -> tuple[str, ...]:
    from .styles.style import SAMPLERS

    return tuple(SAMPLERS)


def _check_style(name: str, value: Any, square: bool) -> Any:
    """A style name must exist (user or shipped, with "did you mean"); a .yaml path must be a readable style."""
    if not isinstance(value, (str, Path)):
        return value  # a Style object
    from .errors import InputError
    from .styles.catalog import find_style

    try:
        find_style(value)
    except InputError as e:
        if Path(e.path) == Path(str(value)):
            _fail(name, f"{value}: {e.reason}")
        raise
    return value


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _check_device(name: str, value: Any, square: bool) -> str:
    text = str(value).strip().lower()
    if not _DEVICE.match(text):
        _fail(name, f"{value!r} is not a device ({did_you_mean(text, ('auto', 'cpu', 'cuda', 'mps'))}, cuda:N)")
    return text


#: What a Ray worker may ask for (the keywords of Ray's ``.options()`` that size a worker).
RAY_RESOURCE_KEYS = frozenset({"num_gpus", "num_cpus", "memory", "resources", "accelerator_type"})
_RAY_ADDRESS = re.compile(r"^(auto|local|(ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5})$")


def _check_ray_address(name: str, value: Any, square: bool) -> str:
    text = str(value).strip()
    if not _RAY_ADDRESS.match(text):
        _fail(name, f"must be auto, HOST:PORT or ray://HOST:PORT, got {value!r}")
    return text


def _check_ray_resources(name: str, value: Any, square: bool) -> dict[str, dict[str, Any]]:
    """``["generate={\"num_gpus\": 0.5}", ...]`` (the CLI's repeated KIND=JSON) or ``{"generate": {...}}``
    -> job kind -> Ray resources of its workers."""
    import json

    example = 'e.g. \'generate={"num_gpus": 0.5}\''
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)):
        pairs = []
        for item in value:
            kind, sep, text = str(item).partition("=")
            try:
                parsed = json.loads(text) if sep else None
            except ValueError:
                parsed = None
            if not kind.strip() or not isinstance(parsed, dict):
                _fail(name, f"must be KIND=JSON, {example}, got {item!r}")
            pairs.append((kind.strip(), parsed))
    else:
        _fail(name, f"must map a job kind to its Ray resources, {example}, got {value!r}")
    out: dict[str, dict[str, Any]] = {}
    for kind, resources in pairs:
        if not isinstance(resources, Mapping):
            _fail(name, f"{kind}: expected a mapping of Ray resources, got {resources!r}")
        unknown = sorted(set(map(str, resources)) - RAY_RESOURCE_KEYS)
        if unknown:
            _fail(name, f"{kind}: unknown key {unknown[0]!r} ({did_you_mean(unknown[0], sorted(RAY_RESOURCE_KEYS))})")
        out[str(kind)] = dict(resources)
    return out


def _mixed_precision_to_dtype(old: str) -> str:
    return {"no": "fp32"}.get(old, old)


# --- the vocabulary ------------------------------------------------------------------------------

_DTYPES = ("auto", "fp32", "fp16", "bf16")
_SQUARE_VERBS = ("prepare", "train", "train-style", "inpaint", "train-adapter")

_DECLARED: list[Option] = [
    # every verb
    Option("verbose", ("-v", "--verbose"), "show details and tracebacks", False, None, action="store_true",
           group="general"),
    Option("offline", ("--offline",), "never download models; use only local/cached files", False, None,
           action="store_true", group="general"),
    Option("quiet", ("-q", "--quiet"), "no progress bars or messages (results are still printed)", False, None,
           action="store_true", aliases=(Alias("--no-progress", value=True),), group="general"),
    Option("json", ("--json",), "print the result as JSON (machine-readable)", False, None, action="store_true",
           group="general"),
    # where things go
    Option("output", ("-o", "--output"), "output folder (default: a new folder; an existing non-empty one is "
           "refused without --overwrite)", metavar="DIR", aliases=(Alias("--preview", verbs=("faces",)),),
           group="output"),
    Option("overwrite", ("--overwrite",), "replace an existing output (only one facechain wrote)", False, None,
           action="store_true", group="output"),
    Option("config", ("-c", "--config"), "YAML config file: its section for this verb sets defaults (flags win)",
           metavar="FILE", group="output"),
    Option("name", ("--name",), "name of the result (default: the input folder's name)", group="output"),
    Option("resume", ("--resume",), "continue an interrupted or failed run from its last checkpoint", False, None,
           action="store_true", group="output"),
    # who and which look
    Option("person", ("--person",), "trained identity: name or folder (default: the newest identity)",
           metavar="NAME|DIR", group="who and which look"),
    Option("photo", ("--photo",), "a photo of the person, no training needed (instead of --person); repeat for "
           "several photos of one person", metavar="IMAGE", group="who and which look"),
    Option("style", ("--style",), "style name (see 'facechain styles') or a style .yaml file", metavar="NAME|FILE",
           check=_check_style, group="who and which look"),
    Option("prompt", ("--prompt",), "prompt text (with --style: replaces its prompt); {trigger} marks where the "
           "identity's trigger word goes (default: in front)", metavar="TEXT",
           aliases=(Alias("--style-prompt", verbs=("generate",)),), group="who and which look"),
    Option("negative_prompt", ("--negative-prompt",), "negative prompt (default: the style's, else facechain's)",
           metavar="TEXT", group="who and which look"),
    Option("style_lora", ("--style-lora",), "style LoRA .safetensors (ad hoc with --prompt, or replaces the "
           "--style's LoRA)", metavar="FILE", group="who and which look"),
    Option("style_weight", ("--style-weight",), "style LoRA weight (default: the style's, else 0.25)", type=float,
           metavar="W", low=0.0, high=2.0, group="who and which look"),
    Option("face_weight", ("--face-weight",), "face LoRA weight (default: the style's, else 0.95)", type=float,
           metavar="W", low=0.0, high=2.0, group="who and which look"),
    Option("face_lora", ("--face-lora",), "use this face LoRA .safetensors instead of the identity's",
           metavar="FILE", group="who and which look"),
    Option("adapter", ("--adapter",), "FACT adapter for --photo: registry name, folder or file (default: "
           "fact-adapter)", metavar="REF", group="who and which look"),
    Option("adapter_scale", ("--adapter-scale",), "FACT identity strength for --photo: fidelity (1) vs freedom "
           "(0) (default: the recipe's, 0.5 for generate, 0.55 for inpaint)", type=float, metavar="S", low=0.0,
           high=2.0, group="who and which look"),
    # sampling
    Option("num_images", ("-n", "--num-images"), "images to make, best first", 4, int, "N", low=1,
           group="sampling"),
    Option("batch_size", ("--batch-size",), "images per batch (default: the recipe's, 1)", type=int, metavar="N",
           low=1, group="sampling"),
    Option("seed", ("--seed",), "random seed; image i uses seed+i (default: random for images, recorded; the "
           "recipe's for training)", type=int, metavar="N", low=0, group="sampling"),
    Option("steps", ("--steps",), "denoising steps (default: the recipe's)", type=int, metavar="N", low=1,
           group="sampling"),
    Option("guidance_scale", ("--guidance-scale",), "classifier-free guidance scale (default: the recipe's, 7)",
           type=float, metavar="S", low=0.0, aliases=(Alias("--guidance", verbs=("generate",)),), group="sampling"),
    Option("size", ("--size",), "image size in px: N or WIDTHxHEIGHT, multiples of 8 (default: the recipe's)",
           metavar="N|WxH", check=_check_size,
           aliases=(Alias("--resolution", verbs=("inpaint", "prepare", "train", "train-style", "train-adapter")),),
           group="sampling"),
    Option("sampler", ("--sampler",), "sampler (default: the style's)", metavar="NAME", choices=_samplers,
           group="sampling"),
    Option("strength", ("--strength",), "denoising strength from the template latent (default: the recipe's, "
           "0.65)", type=float, metavar="S", low=0.0, high=1.0, low_open=True, group="sampling"),
    # models
    Option("base_model", ("--base-model",), "base model: registry name, diffusers folder, .safetensors file, HF "
           "id or ms:owner/name@rev#subfolder (default: the recipe's)", metavar="REF", group="models"),
    Option("vae", ("--vae",), "replace the base model's VAE: registry name, folder, file or hub id (e.g. "
           "sdxl-vae-fp16-fix, SDXL's VAE fixed for fp16; default: the base model's own)", metavar="REF",
           group="models"),
    Option("openpose_controlnet", ("--openpose-controlnet",), "OpenPose ControlNet: folder or hub id, of the base "
           "model's family (default: the registry's openpose-controlnet, openpose-controlnet-sdxl on SDXL)",
           metavar="REF", group="models"),
    Option("canny_controlnet", ("--canny-controlnet",), "Canny ControlNet: folder or hub id, of the base model's "
           "family (default: the registry's canny-controlnet, canny-controlnet-sdxl on SDXL)", metavar="REF",
           group="models"),
    Option("fuse_lora", ("--no-fuse-lora",), "keep LoRAs as live adapters instead of fusing them into the weights "
           "(slower, same output)", True, None, action="store_false", group="models"),
    Option("pose", ("--pose",), "copy the pose of this photo (or use this OpenPose skeleton) via ControlNet",
           metavar="IMAGE", group="models"),
    Option("pose_strength", ("--pose-strength",), "pose ControlNet conditioning scale", 1.0, float, "S", low=0.0,
           group="models"),
    # post-processing
    Option("fusion", ("--fusion",), "face fusion backend (landmark: offline)", "landmark", metavar="NAME",
           choices=("landmark", "modelscope", "none"),
           shorthands=(Shorthand("--no-fusion", "none", "skip face fusion (= --fusion none)"),),
           group="post-processing"),
    Option("fusion_strength", ("--fusion-strength",), "face fusion strength", 1.0, float, "S", low=0.0, high=1.0,
           group="post-processing"),
    Option("strict", ("--strict",), "drop portraits without exactly one reasonably sized face (error if none is "
           "left)", False, None, action="store_true", group="post-processing"),
    Option("min_face_fraction", ("--min-face-fraction",), "smallest face, as a share of the image side", 0.15,
           float, "F", low=0.0, high=1.0, low_open=True, group="post-processing"),
    # device and memory
    Option("device", ("--device",), "auto (the config file's, else CUDA, then MPS, then CPU), cpu, cuda, cuda:N "
           "or mps", "auto", metavar="DEVICE", check=_check_device, group="device and memory"),
    Option("dtype", ("--dtype",), "precision: auto (the recipe's: fp16 on GPU and fp32 on CPU for images), fp32, "
           "fp16 or bf16", "auto", metavar="DTYPE", choices=_DTYPES,
           aliases=(Alias("--mixed-precision", convert=_mixed_precision_to_dtype, verbs=("train", "train-style")),),
           group="device and memory"),
    Option("cpu_offload", ("--cpu-offload",), "keep models on the CPU until used (small GPUs)", False, None,
           action="store_true", group="device and memory"),
    Option("vae_tiling", ("--vae-tiling",), "decode large images tile by tile (less memory)", False, None,
           action="store_true", group="device and memory"),
    Option("vae_slicing", ("--vae-slicing",), "decode a batch one image at a time (less memory)", False, None,
           action="store_true", group="device and memory"),
    # template photos (inpaint, faces)
    Option("face_index", ("--face-index",), "template face to replace (left-to-right number, see 'facechain "
           "faces'); repeat, one per --person, in the same order", type=int, metavar="I", low=0, group="template"),
    Option("min_face_size", ("--min-face-size",), "smallest usable face, px (default: the recipe's)", type=int,
           metavar="PX", low=1, group="template"),
    Option("mask", ("--mask",), "region to redraw: head (face + hair, default) or landmarks (face hull + forehead; "
           "keeps the hair)", metavar="NAME", choices=("head", "landmarks"), group="template"),
    Option("seam_correction", ("--no-seam-correction",), "do not add the VAE round-trip error back when pasting "
           "(for comparison)", None, None, action="store_const", const=False, group="template"),
    Option("save_intermediates", ("--save-intermediates",), "also write every stage's images (crops, masks, "
           "control images, candidates)", False, None, action="store_true", group="template"),
    Option("preview", ("--no-preview",), "do not save the numbered preview image", True, None,
           action="store_false", group="output"),
    # photo preparation
    Option("trigger", ("--trigger",), 'trigger word instead of the one from gender and age, e.g. "a handsome man"',
           metavar="WORDS", group="preparation"),
    Option("retouch", ("--no-retouch",), "skip skin retouching", None, None, action="store_const", const=False,
           group="preparation"),
    Option("retoucher", ("--retoucher",), "skin retouching backend (default: classical)", metavar="NAME",
           choices=("classical", "abpn"), group="preparation"),
    Option("segmenter", ("--segmenter",), "head segmentation backend; none keeps the background (default: "
           "grabcut)", metavar="NAME", choices=("grabcut", "m2fp", "none"), group="preparation"),
    Option("detector", ("--detector",), "dlib face detector (default: hog)", metavar="NAME", choices=("hog", "cnn"),
           group="preparation"),
    Option("orientation", ("--orientation",), "how to find the upright rotation (default: detector)",
           metavar="NAME", choices=("detector", "onnx", "none"), group="preparation"),
    Option("orientation_model", ("--orientation-model",), "ONNX orientation classifier (with --orientation onnx)",
           metavar="REF", group="preparation"),
    Option("quality_model", ("--quality-model",), "face quality backend (default: classical)", metavar="NAME",
           choices=("classical", "fqa"), group="preparation"),
    Option("tagger", ("--tagger",), "per-image tags (default: landmarks)", metavar="NAME",
           choices=("landmarks", "wd14", "none"), group="preparation"),
    Option("tagger_model", ("--tagger-model",), "WD14 tagger folder or hub id (with --tagger wd14)", metavar="REF",
           group="preparation"),
    Option("blur_threshold", ("--blur-threshold",), "reject faces less sharp than this, 0..1 (default: 0.25)",
           type=float, metavar="X", low=0.0, high=1.0, group="preparation"),
    Option("identity_threshold", ("--identity-threshold",), "reject photos less similar than this to the majority "
           "person (default: 0.92)", type=float, metavar="X", low=-1.0, high=1.0, group="preparation"),
    # training
    Option("epochs", ("--epochs",), "train for this many passes over the images instead of --steps", type=int,
           metavar="N", low=1, group="training"),
    Option("learning_rate", ("--learning-rate",), "learning rate (default: the recipe's)", type=float, metavar="LR",
           low=0.0, low_open=True, aliases=(Alias("--lr"),), group="training"),
    Option("lr_scheduler", ("--lr-scheduler",), "learning-rate schedule (default: the recipe's)", metavar="NAME",
           choices=("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"),
           group="training"),
    Option("rank", ("--rank",), "LoRA rank on the UNet attention projections", type=int, metavar="R", low=1,
           group="training"),
    Option("alpha", ("--alpha",), "LoRA alpha (scale = alpha / rank)", type=float, metavar="A", low=0.0,
           low_open=True, group="training"),
    Option("train_text_encoder", ("--train-text-encoder",), "also train a LoRA on the CLIP text encoder(s)", None,
           None, action="bool", group="training"),
    Option("gradient_checkpointing", ("--gradient-checkpointing",), "trade ~30%% speed for less memory", None, None,
           action="bool", group="training"),
    Option("cache_latents", ("--cache-latents",), "encode images and captions once (default) instead of every step",
           None, None, action="bool", group="training"),
    Option("flip", ("--flip",), "random horizontal flips", None, None, action="bool", group="training"),
    Option("optimizer", ("--optimizer",), "auto: bitsandbytes 8-bit AdamW on CUDA, torch AdamW elsewhere",
           metavar="NAME", choices=("auto", "adamw", "adamw8bit"), group="training"),
    Option("checkpoint_every", ("--checkpoint-every",), "save a resumable checkpoint every N steps (default: the "
           "recipe's)", type=int, metavar="N", low=0, group="training"),
    # FACT adapter training
    Option("face_encoder", ("--face-encoder",), "face encoder: FACT folder, our face_encoder.safetensors or the "
           "published TransFace .pt (default: fact-adapter's)", metavar="REF", group="adapter training"),
    Option("adapter_init", ("--adapter-init",), "start from these adapter weights (ours or a published .ckpt)",
           metavar="REF", group="adapter training"),
    Option("variant", ("--variant",), "published adapter a folder reference means (default film)", metavar="NAME",
           choices=("film", "maj"), group="adapter training"),
    Option("fair_weight", ("--fair-weight",), "weight of the FAIR loss (default 0.01)", type=float, metavar="W",
           low=0.0, group="adapter training"),
    Option("shuffle_prob", ("--shuffle-prob",), "probability that the condition is another photo of the person "
           "(default 0.5)", type=float, metavar="P", low=0.0, high=1.0, group="adapter training"),
    Option("drop_prob", ("--drop-prob",), "probability of dropping the face tokens, for CFG (default 0.1)",
           type=float, metavar="P", low=0.0, high=1.0, group="adapter training"),
    Option("caption", ("--caption",), "training caption (default 'a photo of a person')", metavar="TEXT",
           group="adapter training"),
    Option("head_mask", ("--head-mask",), "head mask of the photos: grabcut (offline face + hair, default), m2fp "
           "(ModelScope), landmarks", metavar="NAME", choices=("grabcut", "m2fp", "landmarks"),
           group="adapter training"),
    # evaluation, listings
    Option("threshold", ("--threshold",), "similarity counted as a likeness", 0.9, float, "X", low=0.0, high=1.0,
           group="evaluation"),
    Option("all", ("--all",), "with download: include optional backends too", False, None, action="store_true",
           group="general"),
    # the job service
    Option("host", ("--host",), "address to bind (another than loopback needs a token)", "127.0.0.1", metavar="ADDR",
           group="service"),
    Option("port", ("--port",), "port to listen on", 7860, int, "N", low=1, high=65535, group="service"),
    Option("token", ("--token",), "require 'Authorization: Bearer TOKEN' (default: $FACECHAIN_API_TOKEN)",
           metavar="TOKEN", group="service"),
    Option("workers", ("--workers",), "worker processes for GPU jobs, one job each at a time (one per GPU)", 1, int,
           "N", low=1, group="service"),
    Option("cpu_workers", ("--cpu-workers",), "worker processes for CPU-only jobs (prepare) beside them", 1, int, "N",
           low=0, group="service"),
    Option("model_root", ("--model-root",), "a local folder jobs may take models from (besides the model cache); "
           "repeatable", metavar="DIR", group="service"),
    Option("max_upload_bytes", ("--max-upload-bytes",), "largest file accepted (default 25 MiB)", type=int,
           metavar="N", low=1, group="service"),
    Option("max_upload_pixels", ("--max-upload-pixels",), "largest image accepted, in pixels (default 64,000,000)",
           type=int, metavar="N", low=1, group="service"),
    Option("max_upload_files", ("--max-upload-files",), "most files in one upload request (default 64)", type=int,
           metavar="N", low=1, group="service"),
    # where jobs run (serve, batch)
    Option("executor", ("--executor",), "run jobs in local worker processes or on a Ray cluster (pip install "
           "'facechain[ray]')", "local", metavar="NAME", choices=("local", "ray"), group="executor"),
    Option("ray_address", ("--ray-address",), "the Ray cluster: auto (one running on this machine), "
           "ray://HOST:PORT (Ray Client) or HOST:PORT (default: $RAY_ADDRESS, else a new local Ray)", metavar="ADDR",
           check=_check_ray_address, group="executor"),
    Option("ray_resources", ("--ray-resources",), "Ray resources of the workers for a job kind, e.g. "
           "'generate={\"num_gpus\": 0.5}' (default: GPU kinds {\"num_gpus\": 1, \"num_cpus\": 1}, prepare "
           "{\"num_cpus\": 1}); repeatable", metavar="KIND=JSON", check=_check_ray_resources, group="executor"),
    Option("ray_workers", ("--ray-workers",), "warm GPU workers to keep on Ray (default: as many as the cluster's "
           "resources fit)", type=int, metavar="N", low=1, group="executor"),
    Option("max_attempts", ("--max-attempts",), "with --executor ray: a job whose worker died N times ends failed",
           3, int, "N", low=1, group="executor"),
    # virtual try-on
    Option("garment_mask", ("--garment-mask",), "black/white image of the photo's size, white = garment to keep "
           "(default: found offline: person - head - skin - hands)", metavar="MASK", group="garment"),
    Option("garment_segmenter", ("--garment-segmenter",), "how to find the garment without --garment-mask "
           "(default offline; m2fp: the paper's parser, ModelScope)", metavar="NAME", choices=("offline", "m2fp"),
           group="garment"),
    Option("face_stage", ("--no-face-stage",), "skip the face stage (two-stage template inpainting on the redrawn "
           "face)", None, None, action="store_const", const=False, group="garment"),
    Option("inpaint_model", ("--inpaint-model",), "an SD inpainting model (9-channel UNet) for the redraw (registry: "
           "sd15-inpainting; default: the base model)", metavar="REF", group="models"),
    Option("depth_controlnet", ("--depth-controlnet",), "depth ControlNet (registry: depth-controlnet)", metavar="REF",
           group="models"),
    Option("depth_estimator", ("--depth-estimator",), "depth estimator (registry: depth-estimator)", metavar="REF",
           group="models"),
    Option("depth", ("--depth",), "depth on the hands: --depth requires it (downloads its models), --no-depth turns "
           "it off (default: only when already present)", None, None, action="bool", group="models"),
    # export
    Option("format", ("--format",), "key layout of the exported LoRA: kohya (A1111, Forge, ComfyUI) or diffusers",
           "kohya", metavar="NAME", choices=("kohya", "diffusers"), group="output"),
    # talking head
    Option("audio", ("--audio",), "speech: WAV, MP3, M4A, OGG, FLAC, ...", metavar="FILE", group="speech"),
    Option("text", ("--text",), "text to speak (text-to-speech: espeak-ng offline, edge-tts online)", metavar="TEXT",
           group="speech"),
    Option("fps", ("--fps",), "video frames per second", 25.0, float, "FPS", low=1.0, high=60.0, group="video"),
    Option("enhance", ("--enhance",), "double the resolution, the face restored by GFP-GAN (model 'face-enhancer')",
           False, None, action="store_true", group="video"),
    Option("backend", ("--backend",), "talking-head backend: offline (face-mesh animation, runs anywhere) or "
           "sadtalker (the paper's model)", "offline", metavar="NAME", choices=("offline", "sadtalker"), group="video"),
    Option("max_seconds", ("--max-seconds",), "refuse longer audio", 600.0, float, "S", low=0.0, low_open=True,
           group="speech"),
]

#: Every option by its Python keyword.
OPTIONS: dict[str, Option] = {o.name: o for o in _DECLARED}
assert len(OPTIONS) == len(_DECLARED), "an option is declared twice"

#: Options a verb may take several times (``--person a --person b``); Python takes a list.
REPEATABLE = frozenset({"person", "photo", "face_index", "model_root"})

#: Options that only shape the CLI's own output or environment (no Python keyword).
CLI_ONLY = frozenset({"verbose", "offline", "json"})


# --- building parsers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Use:
    """How one verb uses an option: a verb-specific ``help``/``metavar`` (never another flag or default),
    ``required``, ``repeat`` (may be given several times), ``square`` (``size`` must be one number)."""

    name: str
    help: str | None = None
    required: bool = False
    repeat: bool = False
    square: bool = False
    metavar: str | None = None


def use(name: str, **how: Any) -> Use:
    if name not in OPTIONS:
        raise KeyError(f"undeclared option {name!r}")
    return Use(name, **how)


class _Deprecated(argparse.Action):
    """A hidden old flag: stores into the new option's dest and warns once per use on stderr."""

    def __init__(self, option_strings, dest, *, new_flag: str, value: Any = _NOTHING,
                 convert: Callable[[str], Any] | None = None, repeat: bool = False, type=None):
        super().__init__(option_strings, dest, nargs=0 if value is not _NOTHING else None, type=type,
                         default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        self.new_flag, self.value, self.convert, self.repeat = new_flag, value, convert, repeat

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed; use {self.new_flag}",
              file=sys.stderr)
        value = self.value if self.value is not _NOTHING else (self.convert(values) if self.convert else values)
        if self.repeat:
            value = [*(getattr(namespace, self.dest, None) or []), value]
        setattr(namespace, self.dest, value)


def verb_parser(sub, common: argparse.ArgumentParser, verb: str, **kwargs: Any) -> argparse.ArgumentParser:
    """The subparser of ``verb`` (with the ``common`` options); :func:`add` then adds its options."""
    parser = sub.add_parser(verb, parents=[common], **kwargs)
    parser.set_defaults(_verb=verb, _uses=[])
    return parser


def add(parser: argparse.ArgumentParser, *uses: str | Use, group: str | None = None) -> None:
    """Add declared options to a verb's ``parser`` (made by :func:`verb_parser`), in help section ``group``."""
    verb = parser.get_default("_verb")
    registry = parser.get_default("_uses")
    if registry is None:  # the shared parent parser of every verb
        registry = []
    for u in uses:
        u = use(u) if isinstance(u, str) else u
        option = OPTIONS[u.name]
        _add_one(_section(parser, group or option.group), option, u, verb)
        registry.append(u)


def _section(parser: argparse.ArgumentParser, title: str | None):
    """The parser's help section ``title`` (one per title, also across the parent parser's sections)."""
    if title is None:
        return parser
    for existing in parser._action_groups:
        if existing.title == title:
            return existing
    return parser.add_argument_group(title)


def _add_one(target, option: Option, u: Use, verb: str | None) -> None:
    help_text = u.help or option.help
    shown_default = not (option.default is None or isinstance(option.default, bool))
    if shown_default and "default" not in help_text:
        help_text += f" (default: {option.default})"
    kwargs: dict[str, Any] = dict(dest=option.name, default=option.default, help=help_text)
    if option.action == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
    elif option.action is not None:
        kwargs["action"] = option.action
        if option.action == "store_const":
            kwargs["const"] = option.const
    else:
        kwargs.update(type=option.type, metavar=u.metavar or ("N" if u.square else option.metavar))
        choices = option.known_choices()
        if choices:
            kwargs["metavar"] = "{" + ",".join(choices) + "}"
        if u.repeat:
            kwargs["action"] = "append"
        if u.required:
            kwargs["required"] = True
    target.add_argument(*option.flags, **kwargs)
    for short in option.shorthands:
        target.add_argument(short.flag, dest=option.name, action="store_const", const=short.value, help=short.help)
    for alias in option.aliases:
        if alias.verbs and verb not in alias.verbs:
            continue
        target.add_argument(alias.flag, dest=option.name, action=_Deprecated, new_flag=_new_spelling(option, alias),
                            value=alias.value, convert=alias.convert, repeat=u.repeat,
                            type=None if alias.value is not _NOTHING else option.type)


def _new_spelling(option: Option, alias: Alias) -> str:
    if alias.value is _NOTHING:
        return option.long_flag
    return option.long_flag if option.action in ("store_true", "store_false", "store_const") else \
        f"{option.long_flag} {alias.value}"


def validate_args(args: argparse.Namespace) -> argparse.Namespace:
    """Check the parsed options of a verb (before the verb runs: before any model loads); errors name flags."""
    with cli_door():
        for u in getattr(args, "_uses", None) or []:
            if hasattr(args, u.name):
                setattr(args, u.name, OPTIONS[u.name].validate(getattr(args, u.name), square=u.square))
    return args


# --- the Python door -------------------------------------------------------------------------------


def validate(values: Mapping[str, Any], *, square_size: bool = False) -> dict[str, Any]:
    """Check and normalise a function's keyword values against the declarations (unknown names pass through).

    Call this first thing in every public function: a bad value fails here, in one line naming the keyword
    (or the flag, under :func:`cli_door`), before anything slow. ``square_size``: ``size`` must be one number.
    """
    out = dict(values)
    for key, value in values.items():
        option = OPTIONS.get(key)
        if option is not None and value is not None:
            out[key] = option.validate(value, square=square_size)
    return out
