"""``facechain.generate``: portraits of a trained identity in a style (the ``facechain generate`` verb).

    >>> import facechain
    >>> results = facechain.generate("alice", "cyberpunk", num_images=4, seed=1)
    >>> results.best.similarity, results.save("outputs/alice-cyberpunk")

Resolves the identity, the style (+ ad-hoc overrides) and every model reference, builds (or
reuses) the LoRA-fused pipeline, runs :class:`~facechain.generation.portrait.PortraitGenerator`
and wraps the outcome in a :class:`~facechain.generation.results.PortraitSet`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import __version__
from ..config import config_to_dict, load_config
from ..diffusion.device import resolve_device, resolve_dtype
from ..diffusion.family import check_compatible
from ..errors import ConfigError, FacechainError, InputError
from ..identity import Identity, resolve_identity
from ..image_io import load_image
from ..models.registry import DEFAULT_BASE_MODEL, MODELS
from ..models.store import ModelStore, default_store
from ..postprocess.fusion import FUSION_BACKENDS
from ..styles import Style, parse_size, resolve_style, resolve_style_lora
from ..styles.style import WEIGHT_RANGE
from .config import DEFAULT_STYLE, GenerateConfig
from .lora import LoraSpec
from .pipeline_cache import PIPELINES, LoraSet, PipelineKey, dtype_name
from .portrait import GeneratedPortraits, GenerationRequest, PortraitGenerator
from .prompt import PromptPair, build_prompt
from .results import Portrait, PortraitSet
from .samplers import set_sampler

log = logging.getLogger(__name__)


class NoUsablePortraitsError(FacechainError):
    """``--strict`` rejected every portrait: there is nothing to save."""

    exit_code = 1


def default_output_dir(style_name: str, root: Path | str = "outputs") -> Path:
    """``./outputs/<YYYYmmdd-HHMMSS>-<style>``, with a numeric suffix if that folder exists already."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in style_name)[:40] or "style"
    base = Path(root) / f"{stamp}-{safe}"
    cand, n = base, 2
    while cand.exists():
        cand = base.with_name(f"{base.name}-{n}")
        n += 1
    return cand


def _check(cfg: GenerateConfig) -> None:
    if cfg.num_images < 1:
        raise ConfigError(f"--num-images must be at least 1, got {cfg.num_images}")
    if cfg.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    if cfg.fusion not in FUSION_BACKENDS + ("none",):
        raise ConfigError(f"--fusion {cfg.fusion}: unknown (known: {', '.join(FUSION_BACKENDS + ('none',))})")
    if not 0.0 <= cfg.fusion_strength <= 1.0:
        raise ConfigError(f"--fusion-strength must be between 0 and 1, got {cfg.fusion_strength}")
    for name in ("face_weight", "style_weight"):
        v = getattr(cfg, name)
        if v is not None and not WEIGHT_RANGE[0] <= v <= WEIGHT_RANGE[1]:
            raise ConfigError(f"--{name.replace('_', '-')} must be between {WEIGHT_RANGE[0]} and {WEIGHT_RANGE[1]}, got {v}")
    if cfg.steps is not None and cfg.steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {cfg.steps}")
    if cfg.guidance is not None and cfg.guidance < 0:
        raise ConfigError(f"--guidance must not be negative, got {cfg.guidance}")
    if cfg.photo and (cfg.person or cfg.face_lora):
        raise ConfigError("--photo (train-free FACT) replaces --person/--face-lora; give one or the other")
    if cfg.adapter_scale is not None and not 0.0 <= cfg.adapter_scale <= 2.0:
        raise ConfigError(f"--adapter-scale must be between 0 and 2, got {cfg.adapter_scale}")
    if cfg.seed is not None and not 0 <= cfg.seed < 2**63 - cfg.num_images:
        raise ConfigError(f"--seed must be a non-negative integer, got {cfg.seed}")
    out = Path(cfg.output) if cfg.output else None
    if out is not None and out.exists() and (out.is_file() or any(out.iterdir())):
        raise InputError(out, "already exists and is not empty; facechain never overwrites portraits, choose another --output")


def _pose_condition(pose: str | Path | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The OpenPose conditioning image for ``pose`` (a photo, or a skeleton that passes through)."""
    from ..pose.condition import pose_condition_from_image  # lazy: pulls the pose models only when asked

    image = np.asarray(pose, dtype=np.uint8) if isinstance(pose, np.ndarray) else load_image(pose)
    return pose_condition_from_image(image, size=size)


def photo_identity(photos: list[str], analyzer: Any = None) -> Identity:
    """A stand-in identity for train-free (FACT) portraits: no face LoRA; the trigger word comes from
    the first photo's gender and age (the paper's table) and that photo is the template face."""
    from ..perception import get_analyzer
    from ..perception.attributes import combine_attributes

    genders, ages = [], []
    for photo in photos:
        faces = (analyzer or get_analyzer()).analyze(load_image(photo), attributes=True, max_faces=1)
        if not faces:
            raise InputError(photo, "no face found in this photo (FACT needs one clearly visible face)")
        genders.append(faces[0].gender)
        ages.append(faces[0].age)
    first = Path(photos[0])
    return Identity(name=f"photo:{first.stem}", base_model=DEFAULT_BASE_MODEL, path=first.parent, lora_file="",
                    template_face=first.name, trigger_word=combine_attributes(genders, ages).trigger_word)


def _template(identity: Identity) -> np.ndarray | None:
    path = identity.template_face_path
    if not path.is_file():
        return None
    return load_image(path)


@dataclass
class RunPlan:
    """Everything a run resolved from its options, identity and style, before any model is loaded."""

    identity: Identity
    style: Style
    prompts: PromptPair
    width: int
    height: int
    steps: int
    guidance: float
    sampler: str
    base_model: str  # the reference as given
    base_path: Path  # where the model store found it
    face_lora: Path | None  # None: train-free (FACT face tokens instead)
    face_weight: float
    loras: list[LoraSpec]  # what gets fused (weight-0 LoRAs left out)
    seeds: list[int]
    pose: str | np.ndarray | None


def plan_run(cfg: GenerateConfig, identity: Identity, style: Style | None, pose: str | np.ndarray | None,
             store: ModelStore) -> RunPlan:
    """Resolve style, sampling settings and model references (precedence: options > style > defaults)."""
    the_style = resolve_style(style if style is not None else cfg.style, style_prompt=cfg.style_prompt,
                              style_lora=cfg.style_lora, style_weight=cfg.style_weight,
                              default=None if cfg.style_prompt else DEFAULT_STYLE)
    width, height = parse_size(cfg.size, "--size") if cfg.size else the_style.size
    face_weight = the_style.face_weight if cfg.face_weight is None else cfg.face_weight
    base_ref = str(cfg.base_model or the_style.base_model or identity.base_model)
    base_path = store.resolve(base_ref, name="base model")
    if base_ref != str(identity.base_model):
        log.info("face LoRA of '%s' was trained on %s; generating on %s", identity.name, identity.base_model, base_ref)
    loras: list[LoraSpec] = []
    face_lora = None
    if not cfg.photo:  # with --photo the FACT adapter carries the identity
        face_lora = Path(cfg.face_lora).expanduser() if cfg.face_lora else identity.lora_path
        if not face_lora.exists():
            raise InputError(face_lora, "face LoRA not found")
        loras.append(LoraSpec("face", face_lora, face_weight))
    if the_style.style_lora:
        path = resolve_style_lora(the_style.style_lora, store, label=f"style LoRA of '{the_style.name}'")
        loras.append(LoraSpec("style", path, the_style.style_weight))
    # SD 1.5 and SDXL parts never mix: a one-line error here, before any model loads
    check_compatible(base_path, identities=[identity] if face_lora is not None and not cfg.face_lora else [],
                     face_lora=face_lora if cfg.face_lora else None, base_label=base_ref,
                     style_loras=[lo.path for lo in loras if lo.name == "style"])
    first_seed = cfg.seed if cfg.seed is not None else secrets.randbelow(2**31)
    return RunPlan(
        identity=identity, style=the_style,
        prompts=build_prompt(the_style, identity.trigger_word, identity.tags, cfg.negative_prompt),
        width=width, height=height, steps=cfg.steps or the_style.steps,
        guidance=the_style.guidance if cfg.guidance is None else cfg.guidance, sampler=cfg.sampler or the_style.sampler,
        base_model=base_ref, base_path=Path(base_path), face_lora=face_lora, face_weight=face_weight,
        loras=[lo for lo in loras if lo.weight != 0.0],  # weight 0 is the same as not loading it
        seeds=[first_seed + i for i in range(cfg.num_images)], pose=pose,
    )


@dataclass
class Pipelines:
    pipe: Any
    controlnet_pipe: Any = None
    controlnet_ref: str | None = None
    pose_condition: np.ndarray | None = None
    device: str = "cpu"
    dtype: str = "fp32"


def build_pipelines(plan: RunPlan, cfg: GenerateConfig, store: ModelStore) -> Pipelines:
    """The cached base pipeline with this run's LoRAs fused, plus the pose ControlNet pipeline if asked."""
    device = resolve_device(cfg.device)
    dtype = dtype_name(resolve_dtype(device, cfg.dtype))
    key = PipelineKey(str(plan.base_path.resolve()), str(device), dtype, cfg.cpu_offload, cfg.vae_tiling, cfg.vae_slicing)
    pipe = PIPELINES.get(key, LoraSet(tuple(plan.loras), fused=cfg.fuse_lora))
    set_sampler(pipe, plan.sampler)
    out = Pipelines(pipe, device=str(device), dtype=dtype)
    if plan.pose is not None:
        out.pose_condition = _pose_condition(plan.pose, (plan.width, plan.height))
        spec = MODELS["openpose-controlnet"]
        out.controlnet_ref = str(cfg.openpose_controlnet or spec.reference)
        path = store.resolve(out.controlnet_ref, name=spec.name, allow_patterns=spec.allow_patterns)
        out.controlnet_pipe = PIPELINES.controlnet_pipe(pipe, path, key)
        set_sampler(out.controlnet_pipe, plan.sampler)
    return out


def run_settings(plan: RunPlan, cfg: GenerateConfig, pipes: Pipelines) -> dict[str, Any]:
    """The run's parameters as recorded in portraits.json (and, per image, in the PNGs)."""
    style, pose = plan.style, plan.pose
    return {
        "facechain_version": __version__, "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "identity": plan.identity.name, "identity_path": str(plan.identity.path), "trigger_word": plan.identity.trigger_word,
        "style": style.name, "style_origin": style.origin, "style_file": str(style.path) if style.path else None,
        "prompt": plan.prompts.prompt, "negative_prompt": plan.prompts.negative_prompt,
        "base_model": plan.base_model, "face_lora": str(plan.face_lora) if plan.face_lora else None,
        "face_weight": plan.face_weight if plan.face_lora else None,
        "style_lora": style.style_lora, "style_weight": style.style_weight if style.style_lora else None,
        "fused_lora": cfg.fuse_lora, "steps": plan.steps, "guidance": plan.guidance, "sampler": plan.sampler,
        "size": f"{plan.width}x{plan.height}", "batch_size": cfg.batch_size, "seeds": plan.seeds,
        "device": pipes.device, "dtype": pipes.dtype,
        "pose": None if pose is None else ("array" if isinstance(pose, np.ndarray) else str(pose)),
        "openpose_controlnet": pipes.controlnet_ref, "pose_strength": cfg.pose_strength if pose is not None else None,
        "fusion": cfg.fusion, "fusion_strength": cfg.fusion_strength if cfg.fusion != "none" else None, "strict": cfg.strict,
        "min_face_fraction": cfg.min_face_fraction, "config": config_to_dict(cfg),
        "fact": None,
    }


_PER_IMAGE = ("identity", "style", "prompt", "negative_prompt", "base_model", "face_lora", "face_weight", "style_lora",
              "style_weight", "steps", "guidance", "sampler", "size", "pose", "fact")


def to_portraits(out: GeneratedPortraits, settings: dict[str, Any], fusion_strength: float) -> list[Portrait]:
    """Portrait objects in ranking order, each with its own metadata."""
    portraits = []
    for r in out.ranking:
        fusion = out.fusion[r.index]
        meta = {k: settings[k] for k in _PER_IMAGE}
        meta.update(index=r.index, seed=out.seeds[r.index], similarity=None if r.similarity is None else round(float(r.similarity), 4),
                    face_count=r.face_count, ok=r.ok, reason=r.reason,
                    fusion=None if fusion is None else {**fusion.to_json(), "strength": fusion_strength})
        portraits.append(Portrait(Image.fromarray(out.images[r.index]), r.similarity, r.ok, r.reason, out.seeds[r.index], meta,
                                  raw_image=Image.fromarray(out.raw[r.index])))
    return portraits


def generate(
    person: str | Path | Identity | None = None,
    style: str | Path | Style | None = None,
    *,
    config_file: str | Path | None = None,
    analyzer: Any = None,
    store: ModelStore | None = None,
    progress: bool = True,
    **options: Any,
) -> PortraitSet:
    """Generate portraits of ``person`` (default: newest identity) in ``style``.

    ``options`` are :class:`~facechain.generation.config.GenerateConfig` fields (``num_images=4``,
    ``seed=1``, ``size="512x768"``, ``base_model=...``, ``pose=...`` (a path or an RGB array),
    ``output=...`` ...), the same names as the CLI flags. With ``output`` the results are saved
    there. Returns the portraits, best first; those without exactly one reasonably sized face are
    flagged (or dropped with ``strict=True``, which raises :class:`NoUsablePortraitsError` when
    none is left).
    """
    overrides = dict(options)
    if person is not None and not isinstance(person, Identity):
        overrides["person"] = str(person)
    if style is not None and not isinstance(style, Style):
        overrides["style"] = str(style)
    pose = overrides.pop("pose", None)
    if isinstance(pose, (str, Path)):
        overrides["pose"] = pose = str(pose)
    cfg = load_config(GenerateConfig, "generate", config_file, overrides)
    pose = cfg.pose if pose is None else pose
    _check(cfg)
    store = store or default_store()

    # 1. who, which look, which models; 2. the (cached, LoRA-fused) pipelines
    if cfg.photo:
        identity = photo_identity(cfg.photo, analyzer)
    else:
        identity = person if isinstance(person, Identity) else resolve_identity(cfg.person)
    plan = plan_run(cfg, identity, style if isinstance(style, Style) else None, pose, store)
    pipes = build_pipelines(plan, cfg, store)
    fact = None
    if cfg.photo:  # train-free: FACT face tokens from the photos (after the style LoRA was fused)
        from ..fact import FactSession
        from ..fact.config import DEFAULT_SCALE_GENERATE

        scale = DEFAULT_SCALE_GENERATE if cfg.adapter_scale is None else cfg.adapter_scale
        fact = FactSession.from_photos(pipes.pipe, cfg.photo, adapter=cfg.adapter or "fact-adapter", scale=scale,
                                       analyzer=analyzer, store=store)

    # 3. the paper's chain: prompt -> denoise -> fuse face -> rank
    warnings: list[str] = []
    template = _template(identity)
    if template is None:
        warnings.append(f"identity '{identity.name}' has no template face: face fusion skipped, ranking uses its stored embedding only")
    generator = PortraitGenerator(
        pipes.pipe, controlnet_pipe=pipes.controlnet_pipe, template_face=template, template_embedding=identity.embedding,
        analyzer=analyzer, fuser=None if cfg.fusion == "none" else cfg.fusion, fusion_strength=cfg.fusion_strength,
        min_face_fraction=cfg.min_face_fraction, progress=progress, fact=fact,
    )
    request = GenerationRequest(plan.prompts, plan.seeds, plan.width, plan.height, plan.steps, plan.guidance, cfg.batch_size,
                                pipes.pose_condition, cfg.pose_strength)
    out = generator(request)
    warnings.extend(generator.warnings)

    # 4. results, best first, with their metadata; flagged ones kept last or dropped (--strict)
    settings = run_settings(plan, cfg, pipes)
    if fact is not None:
        settings["fact"] = fact.metadata()
    portraits = to_portraits(out, settings, cfg.fusion_strength)
    flagged = [p for p in portraits if not p.ok]
    reasons = "; ".join(sorted({p.reason or "flagged" for p in flagged}))
    if flagged:
        verb = "dropped (--strict)" if cfg.strict else "kept and ranked last"
        warnings.append(f"{len(flagged)} of {len(portraits)} portraits have no single usable face ({reasons}): {verb}")
    if cfg.strict:
        portraits = [p for p in portraits if p.ok]
        if not portraits:
            raise NoUsablePortraitsError(f"--strict rejected all {len(flagged)} portraits ({reasons}); nothing saved. "
                                         "Rerun without --strict to keep them flagged, or with more --num-images")
    for w in warnings:  # also in results.warnings (the CLI prints them)
        log.info(w)
    timings = {"total": out.times.to_json(), "per_image": out.times.per_image(len(plan.seeds)), "pipeline_builds": PIPELINES.builds}
    results = PortraitSet(portraits, settings, warnings, timings)
    if cfg.output:
        results.save(cfg.output)
    return results


__all__ = ["GenerateConfig", "NoUsablePortraitsError", "Portrait", "PortraitSet", "RunPlan", "default_output_dir", "generate", "plan_run"]
