"""``facechain.inpaint``: put trained people into a template photo (paper section 2.5).

``facechain inpaint TEMPLATE.jpg --person NAME [--person NAME2 ...] [--face-index i ...] --output DIR``
is :func:`inpaint`; ``--photo face.jpg [--photo face2.jpg]`` puts one person given by photos into
one face with the train-free FACT adapter instead of a trained face LoRA; ``facechain faces TEMPLATE.jpg`` is :func:`template_faces`. Every user mistake
(no face, a face index out of range, more people than faces, a face too small, a photo without a
face, a FACT adapter that is not there) is found before any diffusion model is loaded and raised as a one-line :class:`~facechain.errors.FacechainError`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import atomic_directory, atomic_write_text
from ..config import config_to_dict, load_config
from ..diffusion.family import check_references
from ..errors import ConfigError, FacechainError, InputError, OutputExistsError
from ..identity import Identity, resolve_identity
from ..image_io import load_image, save_png
from .config import InpaintConfig
from .template_faces import TemplateFace, draw_numbered_faces, find_template_faces

log = logging.getLogger(__name__)

SUMMARY = "inpaint.json"
PREVIEW_MARKER = "facechain-faces-preview"
DEFAULT_PROMPT = "portrait photo, detailed face, natural skin texture, best quality, photorealistic"
_NUMBERED = re.compile(r"^(\d{4,})\.png$")


# --- results ---------------------------------------------------------------------------------


@dataclass
class InpaintResult:
    """What :func:`inpaint` wrote: ranked portraits (best first) and the run's summary."""

    output: Path
    images: list[Path]
    records: list[dict[str, Any]]  # per image: file, similarity, per-face seed/similarity/seam figures
    summary_path: Path
    warnings: list[str] = field(default_factory=list)
    outcome: Any = None  # the pipeline's InpaintOutcome (arrays of every stage), for Python users

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class TemplateFacesReport:
    template: Path
    size: tuple[int, int]  # (W, H)
    faces: list[TemplateFace]
    min_face_size: int
    preview: Path | None

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
    preview: str | Path | None | bool = True,
    overwrite: bool = False,
    config_file: str | Path | None = None,
    min_face_size: int | None = None,
    analyzer=None,
) -> TemplateFacesReport:
    """Number the template's faces left to right (what ``--face-index`` means); save a preview.

    ``preview=True`` writes ``./<stem>.faces.png`` (replacing only an earlier facechain preview),
    a path writes there, ``False``/``None`` writes nothing.
    """
    cfg = _config(config_file, {"min_face_size": min_face_size})
    path = Path(template)
    image = load_image(path)
    faces = _find_faces(image, cfg, analyzer)
    out: Path | None = None
    if preview:
        out = Path(f"{path.stem}.faces.png") if preview is True else Path(preview)
        _check_preview_destination(out, overwrite)
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
    person: str | Path | Sequence[str | Path] | None = None,
    *,
    photo: str | Path | Sequence[str | Path] | None = None,
    adapter: str | Path | None = None,
    adapter_scale: float | None = None,
    face_index: int | Sequence[int] | None = None,
    output: str | Path = "inpaint-results",
    config_file: str | Path | None = None,
    num_images: int | None = None,
    seed: int | None = None,
    resolution: int | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    strength: float | None = None,
    face_weight: float | None = None,
    style: str | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    base_model: str | None = None,
    openpose_controlnet: str | None = None,
    canny_controlnet: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    crop_face_share: float | None = None,
    min_face_size: int | None = None,
    mask: str | None = None,
    mask_dilate: float | None = None,
    mask_feather: float | None = None,
    seam_correction: bool | None = None,
    fuse_faces: bool | None = None,
    save_intermediates: bool | None = None,
    progress: bool = True,
    pipeline=None,
    analyzer=None,
) -> InpaintResult:
    """Replace faces of ``template`` by trained people; write ranked portraits to ``output``.

    ``person``: identity names or folders, one per face (default: the newest identity).
    ``photo``: instead of ``person``, one or more photos of one person for one face: the FACT
    adapter (``adapter``, default registry ``fact-adapter``; ``adapter_scale`` default 0.55) gives
    the likeness, the first photo is the fusion/ranking reference, its age/gender the trigger word.
    ``face_index``: which faces (left-to-right numbers, see :func:`template_faces`), one per person;
    default: the N largest faces, assigned to the people from left to right.
    Outputs ``output/NNNN.png`` (numbering continues after existing files; nothing is overwritten)
    with the run's parameters in PNG text, and ``output/inpaint.json`` (one entry per run).
    ``pipeline``: a ready :class:`TemplatePortraitPipeline` (its models and config are then used).
    """
    overrides = dict(
        num_images=num_images, seed=seed, resolution=resolution, steps=steps, guidance_scale=guidance_scale,
        strength=strength, face_weight=face_weight, style=style, prompt=prompt, negative_prompt=negative_prompt,
        base_model=base_model, openpose_controlnet=openpose_controlnet, canny_controlnet=canny_controlnet,
        device=device, dtype=dtype, crop_face_share=crop_face_share, min_face_size=min_face_size,
        mask=mask, mask_dilate=mask_dilate, mask_feather=mask_feather, seam_correction=seam_correction,
        fuse_faces=fuse_faces, save_intermediates=save_intermediates,
        adapter=None if adapter is None else str(adapter), adapter_scale=adapter_scale,
    )
    cfg = _config(config_file, overrides, base=None if pipeline is None else pipeline.config)
    if pipeline is not None and cfg != pipeline.config:
        pipeline = pipeline.with_config(cfg)
    template_path = Path(template)
    out_dir = Path(output)

    # 1. everything a user can get wrong, before any model is loaded
    photos = [Path(p) for p in _as_list(photo) or []]
    indices = _as_list(face_index)
    if photos and _as_list(person):
        raise FacechainError("--photo and --person both given: give either a trained identity (--person) "
                             "or photos of one person (--photo), not both")
    if photos and indices and len(indices) > 1:
        raise FacechainError(f"--face-index given {len(indices)} times with --photo: --photo puts one person "
                             "into one face; give one --face-index (or use --person for several faces)")
    identities = [] if photos else _resolve_people(person)
    image = load_image(template_path)
    analyzer = analyzer or (pipeline.analyzer if pipeline is not None else None) or _default_analyzer()
    faces = _find_faces(image, cfg, analyzer)
    targets = assign_faces(faces, len(identities) or 1, indices, cfg.min_face_size, template_path)
    runs = _read_summary(out_dir)
    first_number = _next_number(out_dir)
    if photos:
        jobs = [_photo_job(targets[0], photos, cfg, analyzer)]
        _check_adapter(cfg, None if pipeline is None else pipeline.store)
    else:
        jobs = [_person_job(tf, ident, cfg, analyzer) for tf, ident in zip(targets, identities)]

    # 2. the models (once), then the two-stage story per face
    warnings: list[str] = []
    base = cfg.base_model or (identities[0].base_model if identities else _default_base_model())
    if pipeline is None:  # SD 1.5 and SDXL parts never mix: a one-line error before any model loads
        check_references(base, identities=identities, controlnets=[cfg.openpose_controlnet or "openpose-controlnet",
                                                                    cfg.canny_controlnet or "canny-controlnet"])
        pipeline = _build_pipeline(cfg, base, identities, analyzer, warnings)
    outcome = pipeline(image, jobs, num_images=cfg.num_images, seed=cfg.seed, progress=progress)
    warnings = list(dict.fromkeys(warnings + outcome.warnings))

    # 3. outputs with metadata; never overwrite
    run = _run_record(template_path, image, [j.name for j in jobs], targets, cfg, str(base), outcome, warnings)
    paths, records = _save_portraits(out_dir, first_number, outcome, run)
    run["images"] = records
    if cfg.save_intermediates:
        run["intermediates"] = str(_save_intermediates(out_dir, first_number, outcome))
    runs.append(run)
    summary = out_dir / SUMMARY
    atomic_write_text(summary, json.dumps({"runs": runs}, indent=2))
    return InpaintResult(out_dir, paths, records, summary, warnings, outcome)


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
    """(prompt, negative): trigger word + the identity's tags + the style's (or a portrait) prompt."""
    return _prompts(identity.trigger_word, list(identity.tags), cfg)


def _prompts(trigger: str, tag_list: list[str], cfg: InpaintConfig) -> tuple[str, str]:
    from ..styles.style import DEFAULT_NEGATIVE_PROMPT

    text, negative = DEFAULT_PROMPT, DEFAULT_NEGATIVE_PROMPT
    if cfg.style:
        from ..styles import find_style

        st = find_style(cfg.style)
        text, negative = st.prompt, st.negative
    tags = ", ".join(tag_list)
    if "{trigger}" in text or "{tags}" in text:
        text = text.replace("{trigger}", trigger).replace("{tags}", tags)
    else:
        text = ", ".join(p for p in (trigger, tags, text) if p)
    if cfg.prompt and cfg.style:
        text = f"{text}, {cfg.prompt}"
    elif cfg.prompt:
        text = ", ".join(p for p in (trigger, tags, cfg.prompt) if p)
    return text, (cfg.negative_prompt if cfg.negative_prompt is not None else negative)


def _config(config_file, overrides: dict[str, Any], base: InpaintConfig | None = None) -> InpaintConfig:
    """Flags > config file > defaults; with a ready pipeline, flags > that pipeline's config."""
    if base is None:
        cfg = load_config(InpaintConfig, "inpaint", config_file, overrides)
    else:
        cfg = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    checks = [
        (cfg.num_images >= 1, "num_images must be at least 1"),
        (cfg.steps >= 1, "steps must be at least 1"),
        (64 <= cfg.resolution <= 2048 and cfg.resolution % 8 == 0, "resolution must be a multiple of 8 between 64 and 2048"),
        (0.0 < cfg.strength <= 1.0, "strength must be in (0, 1]"),
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
    people = _as_list(person)
    if not people:
        return [resolve_identity(None)]
    return [resolve_identity(p) for p in people]


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


def _check_adapter(cfg: InpaintConfig, store=None) -> None:
    """Fail now (one line) when the FACT adapter is not there, not after loading SD."""
    from ..fact.models import locate_files

    locate_files(cfg.adapter, store=store)


def _default_base_model() -> str:
    from ..models.registry import MODELS

    return MODELS["base-sd15-portrait"].reference


def _build_pipeline(cfg: InpaintConfig, base: str, identities: list[Identity], analyzer, warnings: list[str]):
    from ..models.registry import MODELS
    from .pipeline import TemplatePortraitPipeline

    if identities and cfg.base_model is None and len({i.base_model for i in identities}) > 1:
        msg = (f"the people were trained on different base models; using {identities[0].name}'s "
               f"({identities[0].base_model}); pass --base-model to choose")
        log.warning(msg)
        warnings.append(msg)
    return TemplatePortraitPipeline.from_models(
        base,
        cfg.openpose_controlnet or MODELS["openpose-controlnet"].reference,
        cfg.canny_controlnet or MODELS["canny-controlnet"].reference,
        analyzer=analyzer, config=cfg, device=cfg.device, dtype=cfg.dtype,
    )


def _next_number(out_dir: Path) -> int:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "--output must be a folder, not a file")
    numbers = [int(m.group(1)) for p in (out_dir.iterdir() if out_dir.is_dir() else []) if (m := _NUMBERED.match(p.name))]
    return max(numbers, default=0) + 1  # 0001 first, as generate


def _read_summary(out_dir: Path) -> list[dict]:
    path = out_dir / SUMMARY
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        runs = data["runs"]
        if not isinstance(runs, list):
            raise TypeError
        return runs
    except (ValueError, KeyError, TypeError):
        raise InputError(path, "exists and is not a facechain inpaint summary; choose another --output") from None


def _run_record(template: Path, image: np.ndarray, persons: list[str], targets, cfg, base_model: str, outcome,
                warnings) -> dict[str, Any]:
    faces = []
    for res in outcome.faces:
        fit = res.warp.fit
        ident = res.job.identity
        faces.append({
            "face_index": res.job.face.index,
            "person": res.job.name,
            "identity_path": None if ident is None else str(ident.path),
            "fact": res.fact,  # adapter file, scale, photos, face tokens (None: the identity's face LoRA)
            "prompt": res.job.prompt,
            "negative_prompt": res.job.negative_prompt,
            "bbox": [round(float(v), 1) for v in res.job.face.face.bbox],
            "crop": res.crop.box.to_json(),
            "mask_pixels": res.crop.mask.area,
            "stage1": {"pose": res.stage1.pose_source, "fused": res.stage1.fused,
                       "face_found": res.stage1.landmarks is not None},
            "warp": {"source": res.warp.source,
                     "rms_error_px": None if fit is None else round(fit.rms_error, 3),
                     "rel_error": None if fit is None else round(fit.rel_error, 4)},
        })
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "template": str(template),
        "template_size": [int(image.shape[1]), int(image.shape[0])],
        "persons": persons,
        "face_indices": [tf.index for tf in targets],
        "base_model": base_model,
        "seed": cfg.seed,
        "strength": cfg.strength,
        "config": config_to_dict(cfg),
        "faces": faces,
        "timings_s": {k: round(v, 3) for k, v in outcome.timings.items()},
        "warnings": warnings,
    }


def _save_portraits(out_dir: Path, first: int, outcome, run: dict) -> tuple[list[Path], list[dict]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, records = [], []
    for k, portrait in enumerate(outcome.portraits):
        path = out_dir / f"{first + k:04d}.png"
        if path.exists():  # pragma: no cover - numbering makes this a race with another process
            raise OutputExistsError(path)
        sim = portrait.similarity
        record = {
            "file": path.name, "rank": portrait.rank,
            "similarity": None if sim is None else round(sim, 4),
            "faces": [{"face_index": f.face_index, "person": f.person, "seed": f.seed,
                       "similarity": None if f.similarity is None else round(f.similarity, 4),
                       "seam": f.seam.to_json()} for f in portrait.faces],
        }
        text = {
            "parameters": _a1111_parameters(run, portrait),
            "template": run["template"],
            "persons": json.dumps(run["persons"]),
            "face_indices": json.dumps(run["face_indices"]),
            "seed": json.dumps([f.seed for f in portrait.faces]),
            "strength": str(run["strength"]),
            "similarity": "" if sim is None else f"{sim:.4f}",
            "facechain": json.dumps({"verb": "inpaint", **record, "config": run["config"]}),
        }
        facts = [f["fact"] for f in run["faces"] if f.get("fact")]
        if facts:
            text.update(photos=json.dumps([p for f in facts for p in f["face_photos"]]),
                        adapter=facts[0]["fact_adapter"], adapter_scale=str(facts[0]["adapter_scale"]))
        save_png(path, portrait.image, text=text)
        paths.append(path)
        records.append(record)
    return paths, records


def _a1111_parameters(run: dict, portrait) -> str:
    """The one-line parameter format many image tools read (as ``generate`` writes it)."""
    faces = run["faces"]
    cfg = run["config"]
    prompt = " | ".join(f["prompt"] for f in faces)
    negative = " | ".join(dict.fromkeys(f["negative_prompt"] for f in faces))
    seeds = ", ".join(str(f.seed) for f in portrait.faces)
    facts = [f["fact"] for f in faces if f.get("fact")]
    fact = f", FACT adapter: {facts[0]['fact_adapter']}, Adapter scale: {facts[0]['adapter_scale']}" if facts else ""
    return (f"{prompt}\nNegative prompt: {negative}\nSteps: {cfg['steps']}, CFG scale: {cfg['guidance_scale']}, "
            f"Seed: {seeds}, Size: {cfg['resolution']}x{cfg['resolution']}, Denoising strength: {cfg['strength']}, "
            f"Model: {run.get('base_model')}, Template: {run['template']}{fact}")


def _save_intermediates(out_dir: Path, first: int, outcome) -> Path:
    """Every stage's images per face, for looking at what each step did."""
    dest = out_dir / f"steps-{first:04d}"
    with atomic_directory(dest) as tmp:
        for res in outcome.faces:
            p = f"face{res.job.face.index}"
            crop = res.crop
            save_png(tmp / f"{p}_crop.png", crop.model_input)
            save_png(tmp / f"{p}_mask.png", (crop.mask.soft * 255).astype(np.uint8))
            save_png(tmp / f"{p}_stage1_pose.png", res.stage1.pose_image)
            save_png(tmp / f"{p}_stage1.png", res.stage1.raw)
            save_png(tmp / f"{p}_stage1_fused.png", res.stage1.image)
            save_png(tmp / f"{p}_stage2_pose.png", res.pose_image)
            save_png(tmp / f"{p}_stage2_canny.png", res.canny_image)
            for rank, cand in enumerate(res.candidates):
                save_png(tmp / f"{p}_stage2_rank{rank}_seed{cand.seed}.png", cand.image)
    return dest
