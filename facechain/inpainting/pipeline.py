"""``TemplatePortraitPipeline``: the paper's two-stage inpainting of a person into a template photo.

Per target face of the template (section 2.5 of the FaceChain paper):

1. **crop** a square around the face (the face a fixed share of it) and bring it to the model's
   resolution, so huge templates and group photos work the same way;
2. **stage 1** – text-to-image with the person's face LoRA (or, given photos, the train-free FACT
   adapter) under an OpenPose ControlNet showing
   the template's body pose (bones only), face fusion, 68 landmarks of the drawn face;
3. **warp** those landmarks onto the template face with an affine fit (M: L_ID -> L_template);
4. **stage 2** – inpaint the dilated face region of the template crop (strength ~0.65 from the
   template latent) with two ControlNets: OpenPose on the warped landmarks, Canny on the template's
   edges outside the face; face fusion again;
5. **rank** the candidates by identity similarity to the person;
6. **paste** back inside the soft mask only, with the VAE round-trip error added back (no seam).

Components are injected (diffusers style): the two diffusion pipelines share one UNet, VAE and
text encoder(s) (``from_pipe``), and are SD 1.5 or SDXL classes as the base model is
(:func:`stage_pipelines`; SDXL works on 1024 px crops unless a size is given); each person's LoRA is loaded as an adapter for that person's faces
and unloaded afterwards, so the base weights are never modified. A person given by photos instead
(:attr:`PersonJob.photos`) gets FACT face tokens: the adapter's hooks sit in the shared UNet only
while that face is drawn, and both stages receive prompt embeddings with the face tokens appended.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch
from PIL import Image

from .. import progress
from ..identity import Identity
from ..types import Face
from ..diffusion.family import family_of_pipeline
from ..generation.portrait import decode_latents
from ..postprocess.fusion import FaceFuser
from ..postprocess.ranking import SimilarityRanker
from .config import InpaintConfig
from .control import BodyPoseSource, canny_outside, stage1_pose_image, stage2_pose_image
from .geometry import CropBox, LandmarkWarp, resize_to, square_crop_box, warp_landmarks
from .masks import FaceMask, HeadRegion, build_face_mask
from .seam import SeamReport, composite, corrected_crop, measure_seam, to_uint8, vae_round_trip
from .template_faces import TemplateFace

log = logging.getLogger(__name__)

#: Head region of a template crop: (crop RGB, 68 landmarks in crop pixels) -> bool mask.
Segmenter = Callable[[np.ndarray, np.ndarray], np.ndarray]


# --- values handed from stage to stage ---------------------------------------------------------


@dataclass
class PersonJob:
    """One template face and the person who replaces it: a trained identity, or photos (FACT)."""

    face: TemplateFace
    identity: Identity | None
    prompt: str
    negative_prompt: str
    face_photo: np.ndarray | None = None  # the identity's template face (or the first photo): fusion source
    face_photo_face: Face | None = None
    reference_embedding: np.ndarray | None = None  # for similarity ranking
    photos: list[Any] = field(default_factory=list)  # FACT FacePhotos (or paths); non-empty = no LoRA
    name: str = ""  # shown in outputs; default: the identity's name

    def __post_init__(self) -> None:
        if self.identity is None and not self.photos:
            raise ValueError("a PersonJob needs an identity or face photos")
        if not self.name:
            self.name = self.identity.name if self.identity is not None else _photo_name(self.photos[0])
        if self.identity is not None and not self.photos:
            self.identity.check_weights()  # a truncated face LoRA fails now, not after the models loaded


@dataclass
class WorkCrop:
    """The template around one face, at crop size (S) and at the model's resolution (R)."""

    box: CropBox
    pixels: np.ndarray  # (S, S, 3) uint8, the template's own pixels
    model_input: np.ndarray  # (R, R, 3) uint8
    landmarks: np.ndarray  # template face's 68 landmarks in R pixels
    face_box: np.ndarray  # template face box (x1, y1, x2, y2) in R pixels
    mask: FaceMask  # at S: what is pasted back, and how softly
    model_mask: np.ndarray  # bool (R, R): what the diffusion model repaints
    round_trip: np.ndarray | None  # float (R, R, 3): decode(encode(model_input)), for the seam correction


@dataclass
class Stage1Result:
    pose_image: np.ndarray
    pose_source: str  # "body" (skeleton) or "face-landmarks" (no body-pose model / no body found)
    raw: np.ndarray  # text-to-image output
    image: np.ndarray  # after face fusion
    fused: bool
    landmarks: np.ndarray | None  # 68 points of the drawn face; None: no face detected


@dataclass
class Candidate:
    seed: int
    raw: np.ndarray  # stage-2 output (R, R, 3) uint8
    image: np.ndarray  # after face fusion
    fused: bool
    similarity: float | None = None
    rank_ok: bool = False
    rank_reason: str = ""


@dataclass
class FaceResult:
    job: PersonJob
    crop: WorkCrop
    stage1: Stage1Result
    warp: LandmarkWarp
    pose_image: np.ndarray  # stage-2 OpenPose condition (warped landmarks)
    canny_image: np.ndarray  # stage-2 Canny condition (edges outside the face)
    candidates: list[Candidate]  # ranked, best first
    fact: dict[str, Any] | None = None  # FACT session metadata (adapter, scale, photos) when photos were used


@dataclass
class PastedFace:
    face_index: int
    person: str
    seed: int
    similarity: float | None
    seam: SeamReport


@dataclass
class Portrait:
    """One finished template portrait (every target face replaced)."""

    image: np.ndarray
    rank: int
    faces: list[PastedFace]

    @property
    def similarity(self) -> float | None:
        sims = [f.similarity for f in self.faces if f.similarity is not None]
        return float(np.mean(sims)) if sims else None


@dataclass
class InpaintOutcome:
    portraits: list[Portrait]  # best first
    faces: list[FaceResult]
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step (lora/fact, crop, stage1, ...)


# --- the pipeline ------------------------------------------------------------------------------


def _timed(name: str):
    """Accumulate the wall time of a pipeline step into ``self.timings[name]`` (seconds)."""

    def wrap(method):
        @functools.wraps(method)
        def inner(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

        return inner

    return wrap


class TemplatePortraitPipeline:
    """Two-stage template inpainting with injected components (see the module docstring)."""

    def __init__(
        self,
        text2img,
        inpaint,
        analyzer,
        *,
        config: InpaintConfig | None = None,
        fuser: FaceFuser | None = None,
        ranker: SimilarityRanker | None = None,
        body_pose: BodyPoseSource | None = None,
        segmenter: Segmenter | None = None,
    ):
        self.text2img = text2img  # StableDiffusion(XL)ControlNetPipeline (OpenPose ControlNet)
        self.inpaint = inpaint  # StableDiffusion(XL)ControlNetInpaintPipeline ([OpenPose, Canny])
        self.analyzer = analyzer
        self.config = config or InpaintConfig()
        self.fuser = fuser or FaceFuser(analyzer)
        self.ranker = ranker or SimilarityRanker(analyzer)
        self.body_pose = body_pose or BodyPoseSource()
        self.segmenter = segmenter  # head region for config.mask == "head" (default: HeadRegion)
        self.warnings: list[str] = []
        self.timings: dict[str, float] = {}
        self.store = None  # ModelStore for the FACT adapter (None: the default one)
        self._fact = None  # the FactSession of the face being drawn (photos), else None
        self._fact_models: dict[str, Any] = {}  # loaded FACT models by reference, reused across calls
        self.fact_variant = "film"  # published adapter variant for this base model (see fact.config)
        self.fact_loader: Callable[[Any, Any], Any] | None = None  # (files, unet) -> FactModel; e.g. the shared cache
        for pipe in (text2img, inpaint):
            pipe.set_progress_bar_config(disable=True)

    @classmethod
    def from_models(
        cls,
        base_model: str | Path,
        openpose_controlnet: str | Path,
        canny_controlnet: str | Path,
        *,
        analyzer,
        config: InpaintConfig | None = None,
        device: str = "auto",
        dtype: str = "auto",
        store=None,
        **components,
    ) -> "TemplatePortraitPipeline":
        """Load the base model and both ControlNets once; the inpainting pipeline shares the UNet.

        The base model's family (SD 1.5 or SDXL) picks the pipeline classes; ControlNets of the
        other family are refused in one line before anything is loaded.
        """
        from ..diffusion.device import resolve_device, resolve_dtype
        from ..diffusion.family import check_compatible
        from ..diffusion.loading import load_controlnet, load_sd_pipeline, resolve_model_path

        base_path = resolve_model_path(base_model, "base model", store, kind="pipeline")
        nets = [resolve_model_path(ref, f"{role} ControlNet", store, kind="controlnet")
                for role, ref in (("openpose", openpose_controlnet), ("canny", canny_controlnet))]
        check_compatible(base_path, controlnets=nets, base_label=str(base_model))
        dev = resolve_device(device)
        dt = resolve_dtype(dev, dtype)
        openpose = load_controlnet(nets[0], dtype=dt, store=store, name="openpose-controlnet")
        canny = load_controlnet(nets[1], dtype=dt, store=store, name="canny-controlnet")
        base = load_sd_pipeline(base_path, dtype=dt, store=store)
        pipeline = cls.from_pipe(base, openpose, canny, analyzer=analyzer, config=config, store=store, **components)
        pipeline.text2img.to(dev)
        pipeline.inpaint.to(dev)
        return pipeline

    @classmethod
    def from_pipe(cls, base_pipe, openpose, canny, *, analyzer, config: InpaintConfig | None = None, store=None,
                  **components) -> "TemplatePortraitPipeline":
        """Both diffusion pipelines made from a loaded base pipeline (``from_pipe``: no second copy of
        the UNet, VAE or text encoders) and two loaded ControlNets, in the base pipeline's family."""
        text2img, inpaint = stage_pipelines(base_pipe, openpose, canny)
        pipeline = cls(text2img, inpaint, analyzer, config=config, **components)
        pipeline.store = store
        return pipeline

    @property
    def family(self) -> str:
        """``"sd15"`` or ``"sdxl"``: the shared UNet's family (stand-in pipelines without a UNet: SD 1.5)."""
        return family_of_pipeline(self.text2img)

    @property
    def resolution(self) -> int:
        """Side of the square work crop the models see: ``config.size``, else the family's native size."""
        from ..diffusion.family import NATIVE_RESOLUTION

        return int(self.config.size or NATIVE_RESOLUTION[self.family])

    def with_config(self, config: InpaintConfig) -> "TemplatePortraitPipeline":
        """The same models and components under another configuration."""
        clone = copy.copy(self)
        clone.config = config
        clone.warnings, clone.timings = [], {}
        clone._fact = None
        return clone

    # -- the story ------------------------------------------------------------------------------
    def __call__(self, template: np.ndarray, jobs: list[PersonJob], *, num_images: int = 1, seed: int = 0) -> InpaintOutcome:
        """Replace each job's template face by its person; ``num_images`` ranked portraits."""
        self.warnings, self.timings = [], {}
        bar = progress.task("inpainting", total=len(jobs) * (1 + num_images), unit="stage")
        results = []
        for job in jobs:
            with self.person_condition(job) as fact:
                crop = self.work_crop(template, job.face)
                stage1 = self.stage1(crop, job, seed)
                bar.update(1, message=f"face {job.face.index}: stage 1")
                warp = self.warp(stage1, crop, job)
                pose_image, canny_image = self.stage2_conditions(crop, warp)
                candidates = []
                for k in range(num_images):
                    candidates.append(self.stage2(crop, pose_image, canny_image, job, seed + k))
                    bar.update(1, message=f"face {job.face.index}: stage 2, candidate {k + 1}/{num_images}")
            ranked = self.rank(candidates, crop, job)
            results.append(FaceResult(job, crop, stage1, warp, pose_image, canny_image, ranked,
                                      None if fact is None else fact.metadata()))
        bar.close()
        portraits = [self.paste(template, results, k) for k in range(num_images)]
        return InpaintOutcome(portraits, results, list(self.warnings), dict(self.timings))

    # -- steps ----------------------------------------------------------------------------------
    def person_condition(self, job: PersonJob):
        """The person's likeness for this block: FACT face tokens for photos, else the face LoRA."""
        return self.person_fact(job) if job.photos else _yield_none(self.person_lora(job.identity))

    @contextlib.contextmanager
    def person_fact(self, job: PersonJob) -> Iterator[Any]:
        """FACT face tokens of the job's photos, hooked into both pipelines for this block only.

        The adapter is loaded for the shared UNet once per pipeline (``config.adapter``); leaving
        the block removes every hook, so the next face (LoRA or photos) sees the base model.
        """
        from ..fact.integration import FactSession

        start = time.perf_counter()
        fact = FactSession.from_photos(self.text2img, job.photos, adapter=self.fact_model(),
                                       scale=self.config.adapter_scale, analyzer=self.analyzer)
        self.timings["fact"] = self.timings.get("fact", 0.0) + time.perf_counter() - start
        with fact.applied_to(self.text2img, self.inpaint):
            self._fact = fact
            try:
                yield fact
            finally:
                self._fact = None

    def fact_model(self):
        """The FACT encoder + adapter for the shared UNet (loaded on first use, then reused)."""
        from ..fact.models import load_fact, locate_files

        ref = str(self.config.adapter)
        if ref not in self._fact_models:
            files = locate_files(ref, variant=self.fact_variant, store=self.store)
            loader = self.fact_loader or (lambda f, unet: load_fact(f, unet))
            self._fact_models[ref] = loader(files, self.text2img.unet)
        return self._fact_models[ref]

    @contextlib.contextmanager
    def person_lora(self, identity: Identity) -> Iterator[None]:
        """The person's face LoRA fused into the shared UNet/text encoder for this block, then removed.

        Both diffusion pipelines share those modules (``from_pipe``), so loading into one serves both;
        unfusing and unloading afterwards gives the next person the base weights back.
        """
        from ..generation.lora import LoraSpec, apply_loras, remove_loras

        start = time.perf_counter()
        apply_loras(self.text2img, [LoraSpec("face", identity.lora_path, self.config.face_weight)], fuse=True, unload=False)
        self.timings["lora"] = self.timings.get("lora", 0.0) + time.perf_counter() - start
        try:
            yield
        finally:
            start = time.perf_counter()
            remove_loras(self.text2img)
            self.timings["lora"] += time.perf_counter() - start

    @_timed("crop")
    def work_crop(self, template: np.ndarray, tface: TemplateFace) -> WorkCrop:
        cfg = self.config
        res = self.resolution
        box = square_crop_box(tface.face, template.shape, cfg.crop_face_share)
        pixels = box.cut(template).copy()
        lm_crop = box.to_crop(tface.face.landmarks68)
        region = self.head_region(pixels, lm_crop) if cfg.mask == "head" else None
        mask = build_face_mask(pixels.shape[:2], lm_crop, tface.size, dilate=cfg.mask_dilate,
                               feather=cfg.mask_feather, forehead=cfg.forehead, region=region)
        model_input = resize_to(pixels, res)
        round_trip = vae_round_trip(self.inpaint.vae, model_input, self.family) if cfg.seam_correction else None
        return WorkCrop(
            box=box, pixels=pixels, model_input=model_input,
            landmarks=box.to_crop(tface.face.landmarks68, res),
            face_box=box.to_crop(tface.face.bbox.reshape(2, 2), res).ravel(),
            mask=mask, model_mask=_resize_mask(mask.hard, res), round_trip=round_trip,
        )

    def head_region(self, pixels: np.ndarray, lm_crop: np.ndarray) -> np.ndarray:
        """Face + hair of the template crop (``mask: head``), the landmark hull always included."""
        if self.segmenter is None:
            self.segmenter = HeadRegion(forehead=self.config.forehead)
        return self.segmenter(pixels, lm_crop)

    @_timed("stage1")
    def stage1(self, crop: WorkCrop, job: PersonJob, seed: int) -> Stage1Result:
        """The person drawn in the template's body pose: gives the face structure (landmarks)."""
        cfg = self.config
        res = self.resolution
        face_s = Face(bbox=crop.box.to_crop(job.face.face.bbox.reshape(2, 2)).ravel(), score=job.face.face.score)
        scale = res / crop.box.side
        body = _target_body(self.body_pose.estimate(crop.pixels, faces=[face_s]), face_s.center)
        bodies = [] if body is None else [_scaled_body(body, scale)]
        if self.body_pose.unavailable and not any("body pose" in w for w in self.warnings):
            self._warn(f"body pose unavailable ({self.body_pose.unavailable}); stage 1 uses the face landmarks only")
        pose_image, pose_source = stage1_pose_image(res, bodies, crop.landmarks)
        raw = self.text2img(
            **self._prompt(job, self.text2img), image=Image.fromarray(pose_image),
            height=res, width=res, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
            controlnet_conditioning_scale=cfg.stage1_pose_scale, generator=_generator(seed), output_type="latent",
        ).images
        raw = _to_image(self.text2img, raw)
        fused = self._fuse(raw, job)
        faces = self.analyzer.analyze(fused.image, landmarks=True)
        return Stage1Result(pose_image, pose_source, raw, fused.image, fused.fused,
                            faces[0].landmarks68 if faces else None)

    @_timed("warp")
    def warp(self, stage1: Stage1Result, crop: WorkCrop, job: PersonJob) -> LandmarkWarp:
        """Stage 1's landmarks mapped onto the template face; the template's own if none were found."""
        if stage1.landmarks is None:
            self._warn(f"face {job.face.index} ({job.name}): stage 1 drew no detectable face; "
                       "using the template's own landmarks for stage 2")
            return LandmarkWarp(crop.landmarks.copy(), None, "template")
        return warp_landmarks(stage1.landmarks, crop.landmarks)

    @_timed("stage2")
    def stage2_conditions(self, crop: WorkCrop, warp: LandmarkWarp) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        pose = stage2_pose_image(self.resolution, warp.landmarks)
        canny = canny_outside(crop.model_input, crop.model_mask, cfg.canny_low, cfg.canny_high)
        return pose, canny

    @_timed("stage2")
    def stage2(self, crop: WorkCrop, pose_image: np.ndarray, canny_image: np.ndarray, job: PersonJob,
               seed: int) -> Candidate:
        """Inpaint the dilated face region from the template latent, guided by pose + edges."""
        cfg = self.config
        res = self.resolution
        raw = self.inpaint(
            **self._prompt(job, self.inpaint), image=Image.fromarray(crop.model_input),
            mask_image=Image.fromarray(crop.model_mask.astype(np.uint8) * 255),
            control_image=[Image.fromarray(pose_image), Image.fromarray(canny_image)],
            height=res, width=res, strength=cfg.strength, num_inference_steps=cfg.steps,
            guidance_scale=cfg.guidance_scale,
            controlnet_conditioning_scale=[cfg.stage2_pose_scale, cfg.stage2_canny_scale],
            generator=_generator(seed), output_type="latent",
        ).images
        raw = _to_image(self.inpaint, raw)
        fused = self._fuse(raw, job)
        return Candidate(seed, raw, fused.image, fused.fused)

    @_timed("rank")
    def rank(self, candidates: list[Candidate], crop: WorkCrop, job: PersonJob) -> list[Candidate]:
        """Best first by identity similarity, judged on a patch around the face (no neighbours)."""
        patches = [_face_patch(c.image, crop.face_box) for c in candidates]
        ranked = self.ranker(patches, job.reference_embedding)
        out = []
        for r in ranked:
            c = candidates[r.index]
            c.similarity, c.rank_ok, c.rank_reason = r.similarity, r.ok, r.reason
            out.append(c)
        return out

    @_timed("paste")
    def paste(self, template: np.ndarray, results: list[FaceResult], k: int) -> Portrait:
        """Portrait ``k``: every face's k-th best candidate pasted in with the seam correction."""
        canvas = template.copy()
        pasted = []
        for res in results:
            cand = res.candidates[k]
            corrected, uncorrected = corrected_crop(cand.image, res.crop.pixels, res.crop.round_trip)
            seam = measure_seam(res.crop.pixels, None if res.crop.round_trip is None else corrected, uncorrected,
                                res.crop.mask)
            composite(canvas, res.crop.box, corrected, res.crop.mask)
            pasted.append(PastedFace(res.job.face.index, res.job.name, cand.seed, cand.similarity, seam))
        return Portrait(canvas, k, pasted)

    # -- helpers --------------------------------------------------------------------------------
    def _prompt(self, job: PersonJob, pipe) -> dict[str, Any]:
        """Prompt keywords for ``pipe``: plain text, or text embeddings + face tokens under FACT."""
        if self._fact is None:
            return {"prompt": job.prompt, "negative_prompt": job.negative_prompt}
        return self._fact.embeds(job.prompt, job.negative_prompt, pipe=pipe)

    def _fuse(self, image: np.ndarray, job: PersonJob):
        if self.config.fusion == "none" or job.face_photo is None:
            return FaceFuser.skipped(image, "fusion off")
        return self.fuser(image, job.face_photo, job.face_photo_face)

    def _warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)


def stage_pipelines(base_pipe, openpose, canny) -> tuple[Any, Any]:
    """(stage 1, stage 2) pipelines of ``base_pipe``'s family sharing its components: text-to-image
    under the OpenPose ControlNet, inpainting under [OpenPose, Canny]. The one place where SD 1.5 vs
    SDXL classes are chosen; a loaded ControlNet of the other family is a one-line error here."""
    from diffusers import (MultiControlNetModel, StableDiffusionControlNetInpaintPipeline,
                           StableDiffusionControlNetPipeline)

    from ..diffusion.family import FamilyMismatchError, family_name, family_of_unet_config
    from ..diffusion.loading import pipeline_class_for

    family = family_of_pipeline(base_pipe)
    for role, net in (("OpenPose", openpose), ("Canny", canny)):
        got = family_of_unet_config(net.config)
        if got is not None and got != family:
            raise FamilyMismatchError(getattr(net.config, "_name_or_path", "") or f"{role} ControlNet",
                                      f"an {family_name(got)} {role} ControlNet cannot be used with an "
                                      f"{family_name(family)} base model")
    text2img = pipeline_class_for(family, StableDiffusionControlNetPipeline).from_pipe(base_pipe, controlnet=openpose)
    inpaint = pipeline_class_for(family, StableDiffusionControlNetInpaintPipeline).from_pipe(
        base_pipe, controlnet=MultiControlNetModel([openpose, canny]))
    return text2img, inpaint


@contextlib.contextmanager
def _yield_none(context) -> Iterator[None]:
    with context:
        yield None


def _photo_name(photo) -> str:
    """A person given by photos is named after the first photo's file stem."""
    source = getattr(photo, "source", photo)
    return Path(str(source)).stem if not isinstance(source, np.ndarray) else "photo"


def _to_image(pipe, images) -> np.ndarray:
    """The first image of a pipeline call as uint8 RGB: latents are decoded NaN-safely (fp16 VAEs that
    overflow are decoded again in fp32); a pipeline that already returned pixels in [0, 1] passes."""
    if isinstance(images, torch.Tensor):
        return decode_latents(pipe, images)[0]
    return to_uint8(np.asarray(images[0]) * 255.0)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(int(seed))


def _resize_mask(mask: np.ndarray, side: int) -> np.ndarray:
    """Resize a bool mask so that every pixel touched by the mask stays in it."""
    m = mask.astype(np.float32)
    interp = cv2.INTER_AREA if side < mask.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(m, (side, side), interpolation=interp) > 1e-3


def _target_body(bodies: list, face_centre: np.ndarray):
    """The body whose head (nose, eyes, neck) is nearest the target face: stage 1 draws one person."""
    best, best_d = None, np.inf
    for body in bodies:
        head = [i for i in (0, 14, 15, 1) if body.scores[i] > 0]
        if not head:
            continue
        d = float(np.linalg.norm(body.keypoints[head].mean(axis=0) - face_centre))
        if d < best_d:
            best, best_d = body, d
    return best


def _scaled_body(body, scale: float):
    from ..pose.skeleton import BodyPose

    return BodyPose(body.keypoints * scale, body.scores)


def _face_patch(image: np.ndarray, face_box: np.ndarray, grow: float = 1.8) -> np.ndarray:
    """The face box grown by ``grow`` (square, clipped): enough context for a face detector."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = face_box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1) * grow / 2
    a, b = int(max(0, cx - half)), int(min(w, cx + half))
    c, d = int(max(0, cy - half)), int(min(h, cy + half))
    return np.ascontiguousarray(image[c:d, a:b])
