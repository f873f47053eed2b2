"""``facechain.generate``: portraits of a trained identity in a style (the ``facechain generate`` verb).

    >>> import facechain
    >>> results = facechain.generate("alice", "cyberpunk", num_images=4, seed=1)
    >>> results.best.similarity, results.save("outputs/alice-cyberpunk")

The story: resolve the identity (or, with ``photo``, a train-free FACT identity), the style
(+ ad-hoc overrides) and every model reference -> check the output folder -> take the cached base
pipeline with this run's LoRAs fused, exclusively (one cache of loaded components per process,
see :mod:`.pipeline_cache`) -> :class:`~facechain.generation.portrait.PortraitGenerator`
(prompt -> denoise -> fuse face -> rank) -> :class:`~facechain.results.Portraits`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import __version__, progress
from ..config import config_to_dict, load_config
from ..diffusion.device import resolve_device, resolve_dtype
from ..diffusion.family import (NATIVE_RESOLUTION, check_compatible, family_name, identity_family,
                                reference_family)
from ..errors import ConfigError, FacechainError, InputError, ModelNotFoundError
from ..identity import Identity, resolve_identity
from ..image_io import check_image, load_image
from ..models.registry import DEFAULT_BASE_MODEL, DEFAULT_CONTROLNETS, MODELS
from ..models.references import resolve_reference
from ..models.store import ModelStore, default_store
from ..postprocess.fusion import FUSION_BACKENDS
from ..results import Portrait, Portraits, check_output_folder
from ..styles import Style, parse_size, resolve_style, resolve_style_lora
from ..styles.style import WEIGHT_RANGE
from .config import DEFAULT_STYLE, GenerateConfig
from .lora import LoraSpec
from .pipeline_cache import LoraSet, PipelineCache, PipelineKey, default_cache, dtype_name
from .portrait import GeneratedPortraits, GenerationRequest, PortraitGenerator
from .prompt import PromptPair, build_prompt
from .samplers import check_sampler, set_sampler

log = logging.getLogger(__name__)

#: The reference merges this realism LoRA into every style that has none of its own (SD 1.5 bases).
REALISM_LORA = "realism-lora"


class NoUsablePortraitsError(FacechainError):
    """``--strict`` rejected every portrait: there is nothing to save."""

    exit_code = 1


def _check(cfg: GenerateConfig) -> None:
    """Everything about the options a user can get wrong, before any model loads."""
    if cfg.num_images < 1:
        raise ConfigError(f"num_images must be at least 1, got {cfg.num_images}")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {cfg.batch_size}")
    if cfg.fusion not in FUSION_BACKENDS + ("none",):
        raise ConfigError(f"fusion '{cfg.fusion}' is unknown (known: {', '.join(FUSION_BACKENDS + ('none',))})")
    for name in ("fusion_strength", "pose_strength", "min_face_fraction", "guidance_scale", "face_weight", "style_weight",
                 "adapter_scale"):
        v = getattr(cfg, name)
        if v is not None and not math.isfinite(v):
            raise ConfigError(f"{name} must be a finite number, got {v}")
    if not 0.0 <= cfg.fusion_strength <= 1.0:
        raise ConfigError(f"fusion_strength must be between 0 and 1, got {cfg.fusion_strength}")
    for name in ("face_weight", "style_weight"):
        v = getattr(cfg, name)
        if v is not None and not WEIGHT_RANGE[0] <= v <= WEIGHT_RANGE[1]:
            raise ConfigError(f"{name} must be between {WEIGHT_RANGE[0]} and {WEIGHT_RANGE[1]}, got {v}")
    if cfg.steps is not None and cfg.steps < 1:
        raise ConfigError(f"steps must be at least 1, got {cfg.steps}")
    if cfg.guidance_scale is not None and cfg.guidance_scale < 0:
        raise ConfigError(f"guidance_scale must not be negative, got {cfg.guidance_scale}")
    if cfg.photo and (cfg.person or cfg.face_lora):
        from ..options import spell

        raise ConfigError(f"{spell('photo')} (train-free FACT) replaces {spell('person')}/{spell('face_lora')}; "
                          "give one or the other")
    if cfg.adapter_scale is not None and not 0.0 <= cfg.adapter_scale <= 2.0:
        raise ConfigError(f"adapter_scale must be between 0 and 2, got {cfg.adapter_scale}")
    if cfg.seed is not None and not 0 <= cfg.seed < 2**63 - cfg.num_images:
        raise ConfigError(f"seed must be a non-negative integer, got {cfg.seed}")
    if cfg.sampler is not None:
        check_sampler(cfg.sampler)
    for image in [cfg.pose, *(cfg.photo or [])]:  # a missing, corrupt or oversized image fails before any model loads
        if isinstance(image, str):
            check_image(image)
    w, h = parse_size(cfg.size, "size") if cfg.size is not None else (512, 512)
    check_output_folder(cfg.output, cfg.overwrite, need_bytes=cfg.num_images * w * h * 3 // 2,  # room for the PNGs
                        inputs=[cfg.person, *(cfg.photo or []), cfg.pose, cfg.face_lora, cfg.style_lora, cfg.style])


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
    guidance_scale: float
    sampler: str
    base_model: str  # the reference as given
    base_path: Path  # where the model store found it
    face_lora: Path | None  # None: train-free (FACT face tokens instead)
    face_weight: float
    loras: list[LoraSpec]  # what gets fused (weight-0 LoRAs left out)
    seeds: list[int]
    pose: str | np.ndarray | None
    fact_variant: str | None = None  # with photos: the FACT adapter variant for this base model
    warnings: list[str] | None = None
    family: str = "sd15"  # of the base model: "sd15" | "sdxl" (facechain.diffusion.family)
    controlnet_ref: str | None = None  # with a pose: the OpenPose ControlNet (the family's default unless given)
    controlnet_path: Path | None = None


def _realism_lora(style: Style, store: ModelStore, warnings: list[str]) -> LoraSpec | None:
    """The reference's default realism LoRA (SD 1.5) for a style without a LoRA of its own, on SD 1.5 bases."""
    if style.style_lora or style.style_weight == 0.0:
        return None
    spec = MODELS.get(REALISM_LORA)
    if spec is None:
        return None
    try:
        path = resolve_style_lora(spec.reference, store, label=REALISM_LORA)
    except (ModelNotFoundError, InputError) as e:
        warnings.append(f"style '{style.name}' has no LoRA and the reference's realism LoRA is not available "
                        f"({str(e).split(';')[0]}); generating without it — 'facechain models download {REALISM_LORA}'")
        return None
    return LoraSpec("style", path, style.style_weight)


def plan_run(cfg: GenerateConfig, identity: Identity, style: Style | None, pose: str | np.ndarray | None,
             store: ModelStore) -> RunPlan:
    """Resolve style, sampling settings and model references (precedence: options > style > defaults).

    The base model decides the family (SD 1.5 or SDXL) and with it the pipelines, the default size
    and the default ControlNet; every other model given is checked against it before anything loads.
    """
    from ..fact import config as fact_config

    warnings: list[str] = []
    the_style = resolve_style(style if style is not None else cfg.style, prompt=cfg.prompt,
                              style_lora=cfg.style_lora, style_weight=cfg.style_weight,
                              default=None if cfg.prompt else DEFAULT_STYLE)
    face_weight = the_style.face_weight if cfg.face_weight is None else cfg.face_weight
    base_ref = str(cfg.base_model or _style_base_model(the_style, identity, cfg, store, warnings) or identity.base_model)
    base_path, _ = resolve_reference(base_ref, store, kind="pipeline")
    if base_ref != str(identity.base_model):
        log.info("face LoRA of '%s' was trained on %s; generating on %s", identity.name, identity.base_model, base_ref)
    loras: list[LoraSpec] = []
    face_lora = None
    if not cfg.photo:  # with photo the FACT adapter carries the identity
        face_lora = Path(cfg.face_lora).expanduser() if cfg.face_lora else identity.lora_path
        if not face_lora.exists():
            raise InputError(face_lora, "face LoRA not found")
        loras.append(LoraSpec("face", face_lora, face_weight))
    if the_style.style_lora:
        path = resolve_style_lora(the_style.style_lora, store, label=f"style LoRA of '{the_style.name}'")
        loras.append(LoraSpec("style", path, the_style.style_weight))
    controlnet_ref, controlnet_path = None, None
    if pose is not None:
        family = reference_family(base_path, store)
        controlnet_ref = str(cfg.openpose_controlnet or DEFAULT_CONTROLNETS[family or "sd15"]["openpose"])
        controlnet_path, _ = resolve_reference(controlnet_ref, store, kind="controlnet")
    # SD 1.5 and SDXL parts never mix: a one-line error here, before any model loads
    family = check_compatible(base_path, identities=[identity] if face_lora is not None and not cfg.face_lora else [],
                              face_lora=face_lora if cfg.face_lora else None, base_label=base_ref,
                              style_loras=[lo.path for lo in loras if lo.name == "style"],
                              controlnets=[controlnet_path] if controlnet_path is not None else [])
    if not the_style.style_lora and family == "sd15":
        realism = _realism_lora(the_style, store, warnings)
        if realism is not None:
            loras.append(realism)
    native = NATIVE_RESOLUTION[family]
    width, height = parse_size(cfg.size, "size") if cfg.size else (the_style.size or (native, native))
    first_seed = cfg.seed if cfg.seed is not None else secrets.randbelow(2**31)
    steps, guidance = the_style.steps, the_style.guidance_scale
    variant = None
    if cfg.photo:  # the reference's FACT recipe unless the user says otherwise
        steps, guidance = fact_config.DEFAULT_STEPS, fact_config.DEFAULT_GUIDANCE
        variant = the_style.fact_variant or fact_config.variant_for_base_model(base_ref)
    return RunPlan(
        identity=identity, style=the_style,
        prompts=build_prompt(the_style, identity.trigger_word, identity.tags, cfg.negative_prompt),
        width=width, height=height, steps=cfg.steps or steps,
        guidance_scale=guidance if cfg.guidance_scale is None else cfg.guidance_scale,
        sampler=cfg.sampler or the_style.sampler,
        base_model=base_ref, base_path=Path(base_path), face_lora=face_lora, face_weight=face_weight,
        loras=[lo for lo in loras if lo.weight != 0.0],  # weight 0 is the same as not loading it
        seeds=[first_seed + i for i in range(cfg.num_images)], pose=pose, fact_variant=variant, warnings=warnings,
        family=family, controlnet_ref=controlnet_ref, controlnet_path=controlnet_path,
    )


def _style_base_model(style: Style, identity: Identity, cfg: GenerateConfig, store: ModelStore,
                      warnings: list[str]) -> str | None:
    """The style's base model, unless it is a prompt-only style made for the other family than the
    identity's: a prompt is just text, so it follows the identity's own base model (with a note)."""
    if not style.base_model or not style.prompt_only or cfg.photo:
        return style.base_model
    want = identity_family(identity)
    got = reference_family(style.base_model, store) if want is not None else None
    if got is None or got == want:
        return style.base_model
    warnings.append(f"style '{style.name}' is prompt-only and made for {family_name(got)}; it follows the identity's "
                    f"{family_name(want)} base model {identity.base_model}")
    return None


def pipeline_key(base_path: Path, cfg: GenerateConfig) -> PipelineKey:
    device = resolve_device(cfg.device)
    dtype = dtype_name(resolve_dtype(device, cfg.dtype))
    return PipelineKey(str(Path(base_path).resolve()), str(device), dtype, cfg.cpu_offload, cfg.vae_tiling, cfg.vae_slicing)


@dataclass
class Pipelines:
    pipe: Any
    controlnet_pipe: Any = None
    controlnet_ref: str | None = None
    pose_condition: np.ndarray | None = None
    device: str = "cpu"
    dtype: str = "fp32"


def build_pipelines(plan: RunPlan, cfg: GenerateConfig, cache: PipelineCache, key: PipelineKey) -> Pipelines:
    """The cached base pipeline with this run's LoRAs fused, plus the pose ControlNet pipeline if asked.

    Call with ``cache.lock`` held: the pipeline is this run's until sampling is done.
    """
    pipe = cache.get(key, LoraSet(tuple(plan.loras), fused=cfg.fuse_lora))
    set_sampler(pipe, plan.sampler)
    out = Pipelines(pipe, device=key.device, dtype=key.dtype)
    if plan.pose is not None:
        out.pose_condition = _pose_condition(plan.pose, (plan.width, plan.height))
        out.controlnet_ref = plan.controlnet_ref
        out.controlnet_pipe = cache.controlnet_pipe(pipe, plan.controlnet_path, key)
        set_sampler(out.controlnet_pipe, plan.sampler)
    return out


def run_settings(plan: RunPlan, cfg: GenerateConfig, pipes: Pipelines) -> dict[str, Any]:
    """The run's parameters as recorded in portraits.json (and, per image, in the PNGs)."""
    style, pose = plan.style, plan.pose
    style_lora = next((str(lo.path) for lo in plan.loras if lo.name == "style"), None)
    style_weight = next((lo.weight for lo in plan.loras if lo.name == "style"), None)
    return {
        "verb": "generate", "facechain_version": __version__, "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "identity": plan.identity.name, "identity_path": str(plan.identity.path), "trigger_word": plan.identity.trigger_word,
        "style": style.name, "style_origin": style.origin, "style_file": str(style.path) if style.path else None,
        "prompt": plan.prompts.prompt, "negative_prompt": plan.prompts.negative_prompt,
        "base_model": plan.base_model, "face_lora": str(plan.face_lora) if plan.face_lora else None,
        "face_weight": plan.face_weight if plan.face_lora else None,
        "style_lora": style_lora, "style_weight": style_weight,
        "fused_lora": cfg.fuse_lora, "steps": plan.steps, "guidance_scale": plan.guidance_scale, "sampler": plan.sampler,
        "size": f"{plan.width}x{plan.height}", "batch_size": cfg.batch_size, "seeds": plan.seeds,
        "device": pipes.device, "dtype": pipes.dtype,
        "pose": None if pose is None else ("array" if isinstance(pose, np.ndarray) else str(pose)),
        "openpose_controlnet": pipes.controlnet_ref, "pose_strength": cfg.pose_strength if pose is not None else None,
        "fusion": cfg.fusion, "fusion_strength": cfg.fusion_strength if cfg.fusion != "none" else None, "strict": cfg.strict,
        "min_face_fraction": cfg.min_face_fraction, "config": config_to_dict(cfg),
        "fact": None,
    }


_PER_IMAGE = ("identity", "style", "prompt", "negative_prompt", "base_model", "face_lora", "face_weight", "style_lora",
              "style_weight", "steps", "guidance_scale", "sampler", "size", "pose", "fact")


def to_portraits(out: GeneratedPortraits, settings: dict[str, Any], fusion_strength: float) -> list[Portrait]:
    """Portrait objects in ranking order, each with its own metadata."""
    portraits = []
    for r in out.ranking:
        fusion = out.fusion[r.index]
        sim = None if r.similarity is None else round(float(r.similarity), 4)
        meta = {k: settings[k] for k in _PER_IMAGE}
        meta.update(verb="generate", index=r.index, seed=out.seeds[r.index], similarity=sim, face_count=r.face_count,
                    ok=r.ok, reason=r.reason,
                    fusion=None if fusion is None else {**fusion.to_json(), "strength": fusion_strength})
        faces = [] if r.face is None else [{"bbox": [round(float(v), 1) for v in r.face.bbox], "similarity": sim}]
        portraits.append(Portrait(Image.fromarray(out.images[r.index]), sim, out.seeds[r.index], r.ok, r.reason, faces,
                                  meta, raw_image=Image.fromarray(out.raw[r.index])))
    return portraits


def generate(
    person: str | Path | Identity | None = None,
    style: str | Path | Style | None = None,
    *,
    photo: str | Path | list[str | Path] | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    style_lora: str | Path | None = None,
    style_weight: float | None = None,
    face_weight: float | None = None,
    face_lora: str | Path | None = None,
    adapter: str | Path | None = None,
    adapter_scale: float | None = None,
    num_images: int = 4,
    batch_size: int = 1,
    seed: int | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    size: int | str | None = None,
    sampler: str | None = None,
    base_model: str | Path | None = None,
    openpose_controlnet: str | Path | None = None,
    fuse_lora: bool = True,
    pose: str | Path | np.ndarray | None = None,
    pose_strength: float = 1.0,
    fusion: str = "landmark",
    fusion_strength: float = 1.0,
    strict: bool = False,
    min_face_fraction: float = 0.15,
    device: str = "auto",
    dtype: str = "auto",
    cpu_offload: bool = False,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
    output: str | Path | None = None,
    overwrite: bool = False,
    config: str | Path | None = None,
    quiet: bool = False,
    analyzer: Any = None,
    store: ModelStore | None = None,
    cache: PipelineCache | None = None,
) -> Portraits:
    """Portraits of ``person`` (default: the newest identity) in ``style`` (default: business_suit).

    ``photo``: one or more photos of one person instead of a trained identity (train-free FACT
    adapter). ``prompt`` replaces the style's prompt (or makes an ad-hoc style); ``{trigger}``
    marks where the person goes. Unset ``steps``/``guidance_scale``/``size``/``sampler`` come from
    the style (the reference's LoRA recipe: DPM singlestep, 40 steps, guidance 7; FACT: 50 steps,
    guidance 5). ``pose``: a photo (or OpenPose image, or RGB array) whose pose to copy.
    ``output``: save there (a fresh folder; an existing one only with ``overwrite=True``).
    Options given here win over ``config`` (a YAML file's ``generate:`` section), which wins over
    the style. Returns :class:`~facechain.results.Portraits`, best first; portraits without exactly
    one reasonably sized face are flagged (or dropped with ``strict=True``, which raises
    :class:`NoUsablePortraitsError` when none is left). ``cache``: the loaded-components cache
    (default: the process-wide one, :func:`~facechain.generation.pipeline_cache.default_cache`).
    """
    from .. import options

    options.validate(dict(style=None if isinstance(style, Style) else style, prompt=prompt, face_weight=face_weight,
                          adapter_scale=adapter_scale, num_images=num_images, seed=seed, steps=steps,
                          guidance_scale=guidance_scale, size=size, sampler=sampler, device=device, dtype=dtype,
                          fusion=fusion))
    given = dict(prompt=prompt, negative_prompt=negative_prompt, style_lora=style_lora, style_weight=style_weight,
                 face_weight=face_weight, face_lora=face_lora, adapter=adapter, adapter_scale=adapter_scale,
                 num_images=num_images, batch_size=batch_size, seed=seed, steps=steps, guidance_scale=guidance_scale,
                 size=size, sampler=sampler, base_model=base_model, openpose_controlnet=openpose_controlnet,
                 fuse_lora=fuse_lora, pose_strength=pose_strength, fusion=fusion, fusion_strength=fusion_strength,
                 strict=strict, min_face_fraction=min_face_fraction, device=device, dtype=dtype, cpu_offload=cpu_offload,
                 vae_tiling=vae_tiling, vae_slicing=vae_slicing, output=output, overwrite=overwrite)
    defaults = GenerateConfig()
    # keyword > config file > default: a keyword left at its default does not hide the config file's value
    overrides = {k: (str(v) if isinstance(v, Path) else v) for k, v in given.items() if v != getattr(defaults, k, None)}
    if photo is not None:
        overrides["photo"] = [str(x) for x in ([photo] if isinstance(photo, (str, Path)) else photo)]
    if person is not None and not isinstance(person, Identity):
        overrides["person"] = str(person)
    if style is not None and not isinstance(style, Style):
        overrides["style"] = str(style)
    if isinstance(pose, (str, Path)):
        overrides["pose"] = pose = str(pose)
    cfg = load_config(GenerateConfig, "generate", config, overrides)
    pose = cfg.pose if pose is None else pose
    _check(cfg)
    with progress.reporting(quiet=quiet):
        return _generate(cfg, person if isinstance(person, Identity) else None, style if isinstance(style, Style) else None,
                         pose, analyzer, store or default_store(), cache or default_cache())


def _generate(cfg: GenerateConfig, identity: Identity | None, style: Style | None, pose, analyzer, store: ModelStore,
              cache: PipelineCache) -> Portraits:
    # 1. who, which look, which models (one-line errors before any model loads)
    if cfg.photo:
        identity = photo_identity(cfg.photo, analyzer)
    elif identity is None:
        identity = resolve_identity(cfg.person)
    plan = plan_run(cfg, identity, style, pose, store)
    fact_files = None
    if cfg.photo:
        from ..fact.models import locate_for_family  # the adapter must fit the base model's family

        fact_files = locate_for_family(cfg.adapter or "fact-adapter", plan.family, variant=plan.fact_variant or "film",
                                       store=store)
    key = pipeline_key(plan.base_path, cfg)

    # 2. the cached, LoRA-fused pipeline, held exclusively while sampling; 3. the paper's chain
    warnings: list[str] = list(plan.warnings or [])
    template = _template(identity)
    if template is None:
        warnings.append(f"identity '{identity.name}' has no template face: face fusion skipped, ranking uses its stored embedding only")
    with cache.lock:
        pipes = build_pipelines(plan, cfg, cache, key)
        fact = None
        if fact_files is not None:  # train-free: FACT face tokens from the photos (after the style LoRA was fused)
            from ..fact import FactSession
            from ..fact.config import DEFAULT_SCALE_GENERATE

            scale = DEFAULT_SCALE_GENERATE if cfg.adapter_scale is None else cfg.adapter_scale
            fact = FactSession.from_photos(pipes.pipe, cfg.photo, adapter=cache.fact_model(fact_files, pipes.pipe.unet),
                                           scale=scale, analyzer=analyzer, store=store)
        generator = PortraitGenerator(
            pipes.pipe, controlnet_pipe=pipes.controlnet_pipe, template_face=template, template_embedding=identity.embedding,
            analyzer=analyzer, fuser=None if cfg.fusion == "none" else cfg.fusion, fusion_strength=cfg.fusion_strength,
            min_face_fraction=cfg.min_face_fraction, fact=fact,
        )
        request = GenerationRequest(plan.prompts, plan.seeds, plan.width, plan.height, plan.steps, plan.guidance_scale,
                                    cfg.batch_size, pipes.pose_condition, cfg.pose_strength)
        out = generator.denoise(request)
    out = generator.finish(out)  # fusion and ranking need no diffusion model: outside the lock
    warnings.extend(generator.warnings)

    # 4. results, best first, with their metadata; flagged ones kept last or dropped (strict)
    settings = run_settings(plan, cfg, pipes)
    if fact is not None:
        settings["fact"] = {**fact.metadata(), "variant": plan.fact_variant}
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
    timings = {"total": out.times.to_json(), "per_image": out.times.per_image(len(plan.seeds)), "pipeline_builds": cache.builds}
    results = Portraits(portraits, settings, warnings, timings)
    if cfg.output:
        results.save(cfg.output, overwrite=cfg.overwrite)
    return results


__all__ = ["GenerateConfig", "NoUsablePortraitsError", "RunPlan", "generate", "plan_run"]
