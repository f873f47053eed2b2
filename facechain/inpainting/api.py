"""``facechain.inpaint``: put trained people into a template photo (paper section 2.5).

``facechain inpaint TEMPLATE.jpg --person NAME [--person NAME2 ...] [--face-index i ...] --output DIR``
is :func:`inpaint`; ``--photo face.jpg [--photo face2.jpg]`` puts one person given by photos into
one face with the train-free FACT adapter instead of a trained face LoRA; ``facechain faces TEMPLATE.jpg`` is :func:`template_faces`. Every user mistake
(no face, a face index out of range, more people than faces, a face too small, a photo without a
face, a FACT adapter that is not there, an SD 1.5 identity, ControlNet or FACT adapter with an SDXL
base model or the reverse) is found before any diffusion model is loaded and raised as a one-line
:class:`~facechain.errors.FacechainError`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from .. import __version__, options, progress
from ..config import config_to_dict, load_config
from ..diffusion.family import NATIVE_RESOLUTION
from ..errors import ConfigError, FacechainError, InputError, OutputExistsError
from ..identity import Identity, resolve_identity
from ..image_io import load_image, save_png
from ..outputs import check_file_output
from ..results import Portrait, Portraits, check_output_folder
from ..models.registry import DEFAULT_CONTROLNETS
from .config import InpaintConfig
from .template_faces import TemplateFace, draw_numbered_faces, find_template_faces

log = logging.getLogger(__name__)

PREVIEW_MARKER = "facechain-faces-preview"
#: The prompt of a template portrait when no style is given (the person's trigger word goes first).
DEFAULT_PROMPT = "portrait photo, detailed face, natural skin texture, best quality, photorealistic"


# --- results ---------------------------------------------------------------------------------


@dataclass
class TemplateFacesReport:
    template: Path
    size: tuple[int, int]  # (W, H)
    faces: list[TemplateFace]
    min_face_size: int
    preview: Path | None

    def __repr__(self) -> str:  # the faces (landmarks, embeddings) stay out: see .faces / .to_json()
        sizes = ", ".join(f"#{tf.index} {tf.size:.0f}px" for tf in self.faces)
        return (f"TemplateFacesReport({str(self.template)!r}, {self.size[0]}x{self.size[1]}, {len(self.faces)} "
                f"face{'s' if len(self.faces) != 1 else ''}{': ' + sizes if sizes else ''}, preview={self.preview})")

    def to_json(self) -> dict[str, Any]:
        return {
            "template": str(self.template), "width": self.size[0], "height": self.size[1],
            "preview": str(self.preview) if self.preview else None,
            "faces": [dict(tf.to_json(), redrawable=tf.size >= self.min_face_size) for tf in self.faces],
        }


# --- `facechain faces` -----------------------------------------------------------------------


def template_faces(
    template: str | Path,
    *,
    output: str | Path | None = None,
    preview: bool = True,
    overwrite: bool = False,
    min_face_size: int | None = None,
    config: str | Path | None = None,
    quiet: bool = False,
    analyzer=None,
) -> TemplateFacesReport:
    """Number the template's faces left to right (what ``face_index`` means); save a numbered preview.

    The preview goes to ``output`` (default ``./<stem>.faces.png``, replacing only an earlier facechain
    preview unless ``overwrite``); ``preview=False`` writes nothing. ``min_face_size`` (px): smaller faces
    are marked too small to redraw (default: the ``inpaint:`` section of ``config``, else 48).
    """
    given = options.validate({"min_face_size": min_face_size})
    cfg = _config(config, given)
    path = Path(template)
    out = (Path(output) if output is not None else Path(f"{path.stem}.faces.png")) if preview else None
    if out is not None:
        _check_preview_destination(out, overwrite)  # before the work
        check_file_output(out, inputs=[path, config])  # not on the photo; its folder writable
    with progress.reporting(quiet=quiet):
        image = load_image(path)
        progress.say(f"finding the faces of {path.name}")
        faces = _find_faces(image, cfg, analyzer)
        if out is not None:
            save_png(out, draw_numbered_faces(image, faces, cfg.min_face_size), text={PREVIEW_MARKER: str(path)})
    return TemplateFacesReport(path, (image.shape[1], image.shape[0]), faces, cfg.min_face_size, out)


def _check_preview_destination(out: Path, overwrite: bool) -> None:
    if not out.exists() or overwrite:
        return
    try:
        from PIL import Image

        with Image.open(out) as im:
            ours = PREVIEW_MARKER in getattr(im, "text", {})
    except Exception:
        ours = False
    if not ours:
        raise OutputExistsError(out)


# --- `facechain inpaint` ---------------------------------------------------------------------


def inpaint(
    template: str | Path,
    person: str | Path | Identity | Sequence[str | Path | Identity] | None = None,
    *,
    photo: str | Path | Sequence[str | Path] | None = None,
    face_index: int | Sequence[int] | None = None,
    adapter: str | Path | None = None,
    adapter_scale: float | None = None,
    style: str | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    num_images: int = 4,
    seed: int | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    size: int | str | None = None,
    strength: float | None = None,
    face_weight: float | None = None,
    base_model: str | Path | None = None,
    openpose_controlnet: str | Path | None = None,
    canny_controlnet: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    min_face_size: int | None = None,
    mask: str | None = None,
    seam_correction: bool | None = None,
    fusion: str = "landmark",
    save_intermediates: bool = False,
    output: str | Path | None = None,
    overwrite: bool = False,
    config: str | Path | None = None,
    quiet: bool = False,
    pipeline=None,
    analyzer=None,
    store=None,
    cache=None,
) -> Portraits:
    """Replace faces of ``template`` by trained people (paper section 2.5); ranked :class:`Portraits`.

    ``person``: identity names, folders or :class:`Identity` objects, one per face (default: the
    newest identity). ``photo``: instead, one or more photos of one person for one face (train-free
    FACT adapter ``adapter``, default registry ``fact-adapter``, the variant that fits the base
    model; ``adapter_scale`` default 0.55). ``face_index``: which faces (left-to-right numbers, see
    :func:`faces`), one per person; default: the N largest faces, assigned left to right.
    ``prompt`` replaces the style's prompt (``{trigger}`` marks the person). Unset values come from
    ``config`` (a YAML file's ``inpaint:`` section), then the recipe (30 steps, guidance 7, strength
    0.65, work crops at the base model's native size: 512 px SD 1.5, 1024 px SDXL). The base model
    (``base_model``, else the person's) decides the family: SDXL bases get SDXL pipelines and, unless
    ``openpose_controlnet``/``canny_controlnet`` are given, the registry's SDXL ControlNets; people,
    ControlNets or a FACT adapter of the other family are a one-line error before any model loads.
    ``output``: save there (``NNNN.png`` best first, ``portraits.json``, contact sheet,
    ``intermediates/`` with ``save_intermediates``); a fresh folder, an existing one only with
    ``overwrite=True``. ``pipeline``: a ready :class:`TemplatePortraitPipeline`;
    ``cache``: the loaded-components cache shared with ``generate`` (default: the process-wide one).
    """
    options.validate(dict(style=style, prompt=prompt, adapter_scale=adapter_scale, num_images=num_images, seed=seed,
                          steps=steps, guidance_scale=guidance_scale, size=size, face_weight=face_weight, device=device,
                          dtype=dtype, fusion=fusion), square_size=True)
    given = dict(num_images=num_images, seed=seed, size=_square_size(size), steps=steps, guidance_scale=guidance_scale,
                 strength=strength, face_weight=face_weight, style=style, prompt=prompt, negative_prompt=negative_prompt,
                 base_model=None if base_model is None else str(base_model),
                 openpose_controlnet=None if openpose_controlnet is None else str(openpose_controlnet),
                 canny_controlnet=None if canny_controlnet is None else str(canny_controlnet),
                 device=device, dtype=dtype, min_face_size=min_face_size, mask=mask, seam_correction=seam_correction,
                 fusion=fusion, save_intermediates=save_intermediates, adapter=None if adapter is None else str(adapter),
                 adapter_scale=adapter_scale, output=None if output is None else str(output), overwrite=overwrite)
    defaults = InpaintConfig()
    overrides = {k: v for k, v in given.items() if v is not None and v != getattr(defaults, k)}
    cfg = _config(config, overrides, base=None if pipeline is None else pipeline.config)
    if cfg.seed is None:
        cfg = dataclasses.replace(cfg, seed=secrets.randbelow(2**31))
    check_output_folder(cfg.output, cfg.overwrite)
    with progress.reporting(quiet=quiet):
        return _inpaint(Path(template), person, photo, face_index, cfg, pipeline, analyzer, store, cache)


def _square_size(size) -> int | None:
    """``size`` of a square work crop: 512 or "512" (a WxH with W != H is refused)."""
    if size is None:
        return None
    from ..styles import parse_size

    w, h = parse_size(size, "size")
    if w != h:
        raise ConfigError(f"size must be square for inpaint (the work crop around each face), got {w}x{h}")
    return w


def _inpaint(template_path: Path, person, photo, face_index, cfg: InpaintConfig, pipeline, analyzer, store,
             cache) -> Portraits:
    # 1. everything a user can get wrong, before any model is loaded
    photos = [Path(p) for p in _as_list(photo) or []]
    indices = _as_list(face_index)
    if photos and _as_list(person):
        raise FacechainError("--photo and --person both given: give either trained identities (--person) "
                             "or photos of one person (--photo), not both")
    if photos and indices and len(indices) > 1:
        raise FacechainError(f"--face-index given {len(indices)} times with --photo: --photo puts one person "
                             "into one face; give one --face-index (or use --person for several faces)")
    identities = [] if photos else _resolve_people(person)
    image = load_image(template_path)
    check_output_folder(cfg.output, cfg.overwrite, inputs=[template_path, *photos, *(i.path for i in identities)],
                        need_bytes=(cfg.num_images + 2) * image.nbytes // 2)  # before the sampling: not on an input, room
    base = str(cfg.base_model or (identities[0].base_model if identities else _default_base_model()))
    plan = plan_models(cfg, base, identities, pipeline, store)  # SD 1.5 or SDXL, never mixed
    if cfg.size is None:  # the work crop at the base model's native resolution
        cfg = dataclasses.replace(cfg, size=NATIVE_RESOLUTION[plan.family])
    if pipeline is not None and cfg != pipeline.config:
        pipeline = pipeline.with_config(cfg)
    analyzer = analyzer or (pipeline.analyzer if pipeline is not None else None) or _default_analyzer()
    faces = _find_faces(image, cfg, analyzer)
    targets = assign_faces(faces, len(identities) or 1, indices, cfg.min_face_size, template_path)
    if photos:
        jobs = [_photo_job(targets[0], photos, cfg, analyzer)]
        _check_adapter(cfg, base, plan.family, store)
    else:
        jobs = [_person_job(tf, ident, cfg, analyzer) for tf, ident in zip(targets, identities)]

    # 2. the models (shared with generate through the cache), then the two-stage story per face
    warnings: list[str] = []
    if pipeline is None:
        outcome = _run_with_cached_models(cfg, base, plan, identities, analyzer, warnings, image, jobs, store, cache)
    else:
        outcome = pipeline(image, jobs, num_images=cfg.num_images, seed=cfg.seed)
    warnings = list(dict.fromkeys(warnings + outcome.warnings))

    # 3. one result type, saved in one layout
    result = _to_portraits(template_path, image, jobs, targets, cfg, base, outcome, warnings)
    if cfg.output:
        result.save(cfg.output, overwrite=cfg.overwrite)
    return result


@dataclass
class ModelPlan:
    """The models of an inpaint run, checked to be of one family (before any of them is loaded)."""

    family: str  # "sd15" | "sdxl"
    base_path: Path | None = None  # local path; None: a ready pipeline was given
    controlnets: dict[str, str | Path] = field(default_factory=dict)  # "openpose"/"canny" -> given ref or registry name


def plan_models(cfg: InpaintConfig, base: str, identities: list[Identity], pipeline=None, store=None) -> ModelPlan:
    """The base model's family and its ControlNets (the registry's for that family unless given), after
    checking that the people and the given ControlNets belong to it: one line before any model loads
    (only configs and safetensors headers are read). With a ready ``pipeline``: its UNet's family."""
    from ..diffusion.family import check_compatible, check_identities
    from ..models.references import resolve_reference

    if pipeline is not None:  # its ControlNets were checked when it was built (stage_pipelines)
        family = pipeline.family
        check_identities(identities, family, getattr(pipeline.text2img, "name_or_path", None)
                         or "<the pipeline's base model>")
        return ModelPlan(family)
    base_path = resolve_reference(base, store, what="base model", kind="pipeline")[0]
    given = {role: resolve_reference(ref, store, what=f"{role} ControlNet", kind="controlnet")[0]
             for role, ref in (("openpose", cfg.openpose_controlnet), ("canny", cfg.canny_controlnet)) if ref}
    family = check_compatible(base_path, identities=identities, controlnets=list(given.values()), base_label=base)
    return ModelPlan(family, base_path, {**DEFAULT_CONTROLNETS[family], **given})


def _run_with_cached_models(cfg: InpaintConfig, base: str, plan: ModelPlan, identities: list[Identity], analyzer,
                            warnings: list[str], image: np.ndarray, jobs, store, cache):
    """Both stages on the process's cached base model (no LoRA fused: each person's is applied per face)."""
    from ..fact.config import variant_for_base_model
    from ..generation.pipeline_cache import LoraSet, PipelineKey, default_cache, dtype_name
    from ..diffusion.device import resolve_device, resolve_dtype
    from ..models.references import resolve_reference
    from ..models.store import default_store
    from .pipeline import TemplatePortraitPipeline

    if identities and cfg.base_model is None and len({i.base_model for i in identities}) > 1:
        msg = (f"the people were trained on different base models; using {identities[0].name}'s "
               f"({identities[0].base_model}); pass --base-model to choose")
        log.warning(msg)
        warnings.append(msg)
    store = store or default_store()
    cache = cache or default_cache()
    paths = {role: resolve_reference(ref, store, what=f"{role} ControlNet", kind="controlnet")[0]
             for role, ref in plan.controlnets.items()}  # a registry default not downloaded: its one-line hint
    device = resolve_device(cfg.device)
    key = PipelineKey(str(Path(plan.base_path).resolve()), str(device), dtype_name(resolve_dtype(device, cfg.dtype)))
    with cache.lock:
        base_pipe = cache.get(key, LoraSet(()))
        openpose = cache.controlnet(paths["openpose"], key, name="openpose-controlnet")
        canny = cache.controlnet(paths["canny"], key, name="canny-controlnet")
        pipeline = TemplatePortraitPipeline.from_pipe(base_pipe, openpose, canny, analyzer=analyzer, config=cfg, store=store)
        pipeline.fact_variant = variant_for_base_model(base)
        pipeline.fact_loader = cache.fact_model
        return pipeline(image, jobs, num_images=cfg.num_images, seed=cfg.seed)


# --- steps of inpaint() ----------------------------------------------------------------------


def assign_faces(faces: list[TemplateFace], n_people: int, face_index: list[int] | None,
                 min_face_size: float, template: Path) -> list[TemplateFace]:
    """The template face each person replaces, in the people's order (one-line errors otherwise)."""
    hint = f"see 'facechain faces {template}'"
    if not faces:
        raise InputError(template, "no face found in the template (it needs a visible, roughly frontal face to replace)")
    if n_people > len(faces):
        raise InputError(template, f"{n_people} people given but the template has only {len(faces)} "
                                   f"face{'s' if len(faces) != 1 else ''}; {hint}")
    if face_index:
        if len(face_index) != n_people:
            raise FacechainError(f"--face-index given {len(face_index)} time(s) for {n_people} --person; "
                                 "give one face index per person, in the same order")
        for i in face_index:
            if not 0 <= i < len(faces):
                plural = "s" if len(faces) != 1 else ""
                raise InputError(template, f"--face-index {i} is out of range: the template has {len(faces)} "
                                           f"face{plural} (0-{len(faces) - 1}, left to right); {hint}")
        if len(set(face_index)) != len(face_index):
            raise FacechainError(f"--face-index {', '.join(map(str, face_index))}: each face can be replaced only once")
        chosen = [faces[i] for i in face_index]
    else:
        largest = sorted(faces, key=lambda tf: -tf.size)[:n_people]
        chosen = sorted(largest, key=lambda tf: tf.index)
    for tf in chosen:
        if tf.size < min_face_size:
            raise InputError(template, f"face {tf.index} is too small to redraw ({tf.size:.0f} px, need at least "
                                       f"{min_face_size:.0f} px); use a larger photo")
    return chosen


def build_prompts(identity: Identity, cfg: InpaintConfig) -> tuple[str, str]:
    """(prompt, negative): the one prompt builder (generate's) with the inpaint style."""
    return _prompts(identity.trigger_word, list(identity.tags), cfg)


def inpaint_style(cfg: InpaintConfig):
    """The style a template portrait uses: ``cfg.style`` or a plain portrait, ``cfg.prompt`` replacing its prompt."""
    from ..styles import resolve_style
    from ..styles.style import style_from_mapping

    base = cfg.style if cfg.style else style_from_mapping({"name": "template", "prompt": DEFAULT_PROMPT}, "inpaint",
                                                          origin="adhoc")
    return resolve_style(base, prompt=cfg.prompt)


def _prompts(trigger: str, tag_list: list[str], cfg: InpaintConfig) -> tuple[str, str]:
    from ..generation.prompt import build_prompt

    pair = build_prompt(inpaint_style(cfg), trigger, tag_list, cfg.negative_prompt)
    return pair.prompt, pair.negative_prompt


def _config(config_file, overrides: dict[str, Any], base: InpaintConfig | None = None) -> InpaintConfig:
    """Flags > config file > defaults; with a ready pipeline, flags > that pipeline's config."""
    if base is None:
        cfg = load_config(InpaintConfig, "inpaint", config_file, overrides)
    else:
        cfg = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    for name in ("guidance_scale", "strength", "face_weight", "adapter_scale", "crop_face_share", "mask_dilate",
                 "mask_feather", "stage1_pose_scale", "stage2_pose_scale", "stage2_canny_scale"):
        if not math.isfinite(getattr(cfg, name)):
            raise ConfigError(f"inpaint: {name} must be a finite number, got {getattr(cfg, name)}")
    checks = [
        (cfg.num_images >= 1, "num_images must be at least 1"),
        (cfg.steps >= 1, "steps must be at least 1"),
        (cfg.guidance_scale >= 0, "guidance_scale must not be negative"),
        (cfg.fusion in ("landmark", "modelscope", "none"), "fusion must be landmark, modelscope or none"),
        (cfg.seed is None or cfg.seed >= 0, "seed must be a non-negative integer"),
        (cfg.size is None or (64 <= cfg.size <= 2048 and cfg.size % 8 == 0),
         "size must be a multiple of 8 between 64 and 2048"),
        (0.0 < cfg.strength <= 1.0, "strength must be in (0, 1]"),
        (int(cfg.steps * cfg.strength) >= 1, f"steps x strength must leave at least one denoising step "
                                              f"({cfg.steps} x {cfg.strength:g} leaves none); raise --steps"),
        (0.05 <= cfg.crop_face_share <= 0.9, "crop_face_share must be between 0.05 and 0.9"),
        (cfg.min_face_size >= 8, "min_face_size must be at least 8 px"),
        (cfg.mask_dilate >= 0 and cfg.mask_feather >= 0, "mask_dilate and mask_feather must not be negative"),
        (cfg.detect_max_side >= 256, "detect_max_side must be at least 256"),
        (cfg.mask in ("head", "landmarks"), "mask must be head or landmarks"),
        (0.0 <= cfg.adapter_scale <= 2.0, "adapter_scale must be between 0 and 2"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"inpaint: {message}")
    return cfg


def _default_analyzer():
    from ..perception import get_analyzer

    return get_analyzer("hog")


def _find_faces(image: np.ndarray, cfg: InpaintConfig, analyzer) -> list[TemplateFace]:
    return find_template_faces(image, analyzer or _default_analyzer(), max_side=cfg.detect_max_side,
                               min_score=cfg.min_detection_score)


def _as_list(value) -> list | None:
    if value is None:
        return None
    if isinstance(value, (str, Path, int)):
        return [value]
    return list(value)


def _resolve_people(person) -> list[Identity]:
    people = [person] if isinstance(person, Identity) else _as_list(person)
    if not people:
        return [resolve_identity(None)]
    return [p if isinstance(p, Identity) else resolve_identity(p) for p in people]


def _person_job(tf: TemplateFace, identity: Identity, cfg: InpaintConfig, analyzer):
    """The person's prompt, fusion source face and reference embedding."""
    from .pipeline import PersonJob

    prompt, negative = build_prompts(identity, cfg)
    job = PersonJob(tf, identity, prompt, negative, reference_embedding=identity.embedding)
    if identity.template_face_path.is_file():
        photo = load_image(identity.template_face_path)
        found = analyzer.analyze(photo, landmarks=True, embedding=job.reference_embedding is None)
        job.face_photo = photo
        if found:
            job.face_photo_face = found[0]
            if job.reference_embedding is None:
                job.reference_embedding = found[0].embedding
    else:
        log.warning("%s: no template face (%s); no face fusion for this person", identity.name, identity.template_face_path)
    return job


def _photo_job(tf: TemplateFace, photos: list[Path], cfg: InpaintConfig, analyzer):
    """A person given by photos: FACT face photos, trigger word from age/gender, first photo as reference.

    Each photo must show a usable face (one-line InputError naming the file otherwise).
    """
    from ..fact.preprocess import prepare_face_photos
    from ..perception.attributes import combine_attributes
    from .pipeline import PersonJob

    prepared = prepare_face_photos(photos, analyzer=analyzer)
    first = load_image(photos[0], max_side=2048)
    genders, ages, embeddings, reference_face = [], [], [], None
    for path in photos:
        img = first if path == photos[0] else load_image(path, max_side=2048)
        found = analyzer.analyze(img, landmarks=True, embedding=True, attributes=True, max_faces=1)
        if not found:  # prepare_face_photos found one; a different detector pass may not
            continue
        face = found[0]
        if path == photos[0]:
            reference_face = face
        if face.embedding is not None:
            embeddings.append(np.asarray(face.embedding, dtype=np.float64))
        if face.gender is not None and face.age is not None:
            genders.append(face.gender)
            ages.append(float(face.age))
    trigger = combine_attributes(genders, ages).trigger_word if genders else "a person"
    reference = None
    if embeddings:  # the person's mean embedding: steadier for ranking than any single photo
        mean = np.mean(embeddings, axis=0)
        reference = (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)
    prompt, negative = _prompts(trigger, [], cfg)
    return PersonJob(tf, None, prompt, negative, face_photo=first, face_photo_face=reference_face,
                     reference_embedding=reference, photos=prepared)


def _check_adapter(cfg: InpaintConfig, base: str, family: str, store=None) -> None:
    """Fail now (one line) when the FACT adapter is not there or is of the other family, not after loading SD."""
    from ..fact.config import variant_for_base_model
    from ..fact.models import locate_for_family

    locate_for_family(cfg.adapter, family, variant=variant_for_base_model(base), store=store)


def _default_base_model() -> str:
    from ..models.registry import MODELS

    return MODELS["base-sd15-portrait"].reference


def _to_portraits(template: Path, image: np.ndarray, jobs, targets, cfg: InpaintConfig, base_model: str, outcome,
                  warnings: list[str]) -> Portraits:
    """The pipeline's outcome as the shared result type: per portrait its faces, seeds and seam figures."""
    faces_meta = []
    for res in outcome.faces:
        fit = res.warp.fit
        ident = res.job.identity
        faces_meta.append({
            "face_index": res.job.face.index, "person": res.job.name,
            "identity_path": None if ident is None else str(ident.path),
            "fact": res.fact,  # adapter file, scale, photos, face tokens (None: the identity's face LoRA)
            "prompt": res.job.prompt, "negative_prompt": res.job.negative_prompt,
            "bbox": [round(float(v), 1) for v in res.job.face.face.bbox],
            "crop": res.crop.box.to_json(), "mask_pixels": res.crop.mask.area,
            "stage1": {"pose": res.stage1.pose_source, "fused": res.stage1.fused, "face_found": res.stage1.landmarks is not None},
            "warp": {"source": res.warp.source, "rms_error_px": None if fit is None else round(fit.rms_error, 3),
                     "rel_error": None if fit is None else round(fit.rel_error, 4)},
        })
    settings = {
        "verb": "inpaint", "facechain_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "template": str(template), "template_size": [int(image.shape[1]), int(image.shape[0])],
        "persons": [j.name for j in jobs], "face_indices": [tf.index for tf in targets], "base_model": base_model,
        "seed": cfg.seed, "steps": cfg.steps, "guidance_scale": cfg.guidance_scale, "size": f"{cfg.size}x{cfg.size}",
        "strength": cfg.strength, "prompt": " | ".join(j.prompt for j in jobs),
        "negative_prompt": " | ".join(dict.fromkeys(j.negative_prompt for j in jobs)),
        "faces": faces_meta, "config": config_to_dict(cfg),
    }
    per_image = ("template", "persons", "face_indices", "base_model", "steps", "guidance_scale", "size", "strength",
                 "prompt", "negative_prompt")
    portraits = []
    for portrait in outcome.portraits:
        sim = portrait.similarity
        faces = [{"face_index": f.face_index, "person": f.person, "seed": f.seed,
                  "similarity": None if f.similarity is None else round(f.similarity, 4), "seam": f.seam.to_json()}
                 for f in portrait.faces]
        seed = portrait.faces[0].seed if len(portrait.faces) == 1 else [f.seed for f in portrait.faces]
        meta = {k: settings[k] for k in per_image}
        meta.update(verb="inpaint", seed=seed, similarity=None if sim is None else round(sim, 4), faces=faces,
                    fact=next((f["fact"] for f in faces_meta if f.get("fact")), None))
        portraits.append(Portrait(Image.fromarray(portrait.image), meta["similarity"], portrait.faces[0].seed if portrait.faces else None,
                                  True, None, faces, meta))
    timings = {k: round(v, 3) for k, v in outcome.timings.items()}
    result = Portraits(portraits, settings, warnings, timings, details=outcome)
    if cfg.save_intermediates:
        result.intermediates = _intermediates(outcome)
    return result


def _intermediates(outcome) -> dict[str, np.ndarray]:
    """Every stage's images per face, for looking at what each step did (saved under intermediates/)."""
    out: dict[str, np.ndarray] = {}
    for res in outcome.faces:
        p = f"face{res.job.face.index}"
        crop = res.crop
        out[f"{p}_crop"] = crop.model_input
        out[f"{p}_mask"] = (crop.mask.soft * 255).astype(np.uint8)
        out[f"{p}_stage1_pose"] = res.stage1.pose_image
        out[f"{p}_stage1"] = res.stage1.raw
        out[f"{p}_stage1_fused"] = res.stage1.image
        out[f"{p}_stage2_pose"] = res.pose_image
        out[f"{p}_stage2_canny"] = res.canny_image
        for rank, cand in enumerate(res.candidates, 1):
            out[f"{p}_stage2_rank{rank}_seed{cand.seed}"] = cand.image
    return out
