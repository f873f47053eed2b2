"""``TryOnPipeline``: a trained person wearing the garment of a model photo (FaceChain paper, 3.1).

The story of :meth:`TryOnPipeline.__call__`, per model photo:

1. **perceive** the photo (:mod:`.inputs`): the face the identity goes into, the body pose, the
   21-point hands and the garment mask (given, offline, or M2FP);
2. **keep** the garment eroded by a few pixels: these pixels are copied into every output
   bit for bit;
3. **controls** (:mod:`.controls`): OpenPose bones + hands, Canny edges of the body, and depth on
   the hands when the depth models are there;
4. **redraw** everything outside the kept garment at strength 1.0 (nothing of the old person's
   latent survives) with the person's face LoRA and the multi-ControlNet; the background comes
   from the prompt;
5. **compose**: the garment back in, blended into the redraw over a thin band *inside* the
   garment;
6. **strengthen the face** with the section 2.5 template pipeline
   (:class:`~facechain.inpainting.pipeline.TemplatePortraitPipeline`: two stages, face fusion) on
   the redrawn face, then put the kept garment pixels back once more;
7. **rank** the images by likeness to the person (as ``inpaint`` does).

Components are injected (diffusers style): the redraw pipeline is a
``StableDiffusionControlNetInpaintPipeline`` with ``MultiControlNetModel([openpose, canny])``
(a 4-channel UNet, then it shares every module with the face stage, or a 9-channel SD inpainting
UNet); the depth ControlNet, when present, joins through ``from_pipe``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import cv2
import numpy as np
import torch
from PIL import Image

from ... import progress
from ...identity import Identity
from ...inpainting.config import InpaintConfig
from .config import TryOnConfig
from .controls import (TryOnControls, body_canny, hand_depth_image, pose_image, resize_mask,
                       work_size)
from .garment import GarmentMask, hand_region
from .inputs import TryOnInputs, TryOnPerception

log = logging.getLogger(__name__)

#: Appended to the redraw's prompt: the redraw draws the whole person, hands included.
REDRAW_WORDS = "full body, natural hands, detailed fingers"


# --- values handed from stage to stage ---------------------------------------------------------


@dataclass
class TryOnImage:
    """One try-on result and the images it went through."""

    image: np.ndarray  # final, photo size
    seed: int
    similarity: float | None
    redrawn: np.ndarray  # the strength-1.0 redraw at work size
    composed: np.ndarray  # the redraw with the garment put back, photo size, before the face stage
    face_source: str  # face stage ran on: "redrawn" (face found in the redraw) or "model-photo" (its landmarks); "" = off
    face_outcome: Any = None  # the face stage's InpaintOutcome
    rank_reason: str = ""


@dataclass
class TryOnOutcome:
    images: list[TryOnImage]  # best first
    inputs: TryOnInputs
    controls: TryOnControls
    keep: np.ndarray  # bool (H, W): the pixels copied from the photo into every output
    work_size: tuple[int, int]  # (W, H) the redraw ran at
    prompt: str
    negative_prompt: str
    steps: dict[str, str] = field(default_factory=dict)  # step -> "ran ..." / "skipped: ..."
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def intermediates(self) -> dict[str, np.ndarray]:
        """Every stage's images by file stem (``--save-intermediates``)."""
        g = self.inputs.garment
        out = {"garment_preview": g.preview(self.inputs.photo), "garment_mask": g.mask.astype(np.uint8) * 255,
               "kept_pixels": self.keep.astype(np.uint8) * 255, "control_openpose": self.controls.pose,
               "control_canny": self.controls.canny}
        if self.controls.depth is not None:
            out["control_depth"] = self.controls.depth
        for k, im in enumerate(self.images):
            out[f"image{k}_seed{im.seed}_redraw"] = im.redrawn
            out[f"image{k}_seed{im.seed}_composed"] = im.composed
            if im.face_outcome is not None:
                face = im.face_outcome.faces[0]
                out[f"image{k}_seed{im.seed}_face_stage1"] = face.stage1.image
                out[f"image{k}_seed{im.seed}_face_stage2"] = face.candidates[0].image
        return out


# --- the pipeline ------------------------------------------------------------------------------


class TryOnPipeline:
    """Virtual try-on with injected components (see the module docstring)."""

    def __init__(self, inpaint, face_stage=None, *, config: TryOnConfig | None = None,
                 perception: TryOnPerception | None = None, depth_controlnet=None, depth_estimator=None,
                 depth_unavailable: str | None = None, ranker=None):
        self.inpaint = inpaint  # StableDiffusionControlNetInpaintPipeline, controlnet = Multi([openpose, canny])
        self.face_stage = face_stage  # TemplatePortraitPipeline (None: no face stage)
        self.config = (config or TryOnConfig()).check()
        analyzer = getattr(face_stage, "analyzer", None)
        self.perception = perception or TryOnPerception(analyzer, min_face_size=self.config.min_face_size)
        self.depth_estimator = depth_estimator
        missing = [n for n, m in (("depth-controlnet", depth_controlnet), ("depth-estimator", depth_estimator)) if m is None]
        self.depth_unavailable = depth_unavailable or (f"{' and '.join(missing)} not loaded" if missing else "")
        self.inpaint_depth = None
        if depth_controlnet is not None and depth_estimator is not None:
            from diffusers import MultiControlNetModel, StableDiffusionControlNetInpaintPipeline

            nets = list(inpaint.controlnet.nets) + [depth_controlnet]
            self.inpaint_depth = StableDiffusionControlNetInpaintPipeline.from_pipe(
                inpaint, controlnet=MultiControlNetModel(nets))
            self.inpaint_depth.set_progress_bar_config(disable=True)
        self._ranker = ranker
        self.inpaint.set_progress_bar_config(disable=True)
        self.warnings: list[str] = []
        self.timings: dict[str, float] = {}

    @classmethod
    def from_models(cls, base_model, openpose_controlnet, canny_controlnet, *, inpaint_model=None,
                    depth_controlnet=None, depth_estimator=None, depth_unavailable: str | None = None,
                    analyzer=None, config: TryOnConfig | None = None, device: str = "auto", dtype: str = "auto",
                    store=None, **components) -> "TryOnPipeline":
        """Load every model once. The face stage runs on ``base_model`` (the face LoRA's own base);
        the redraw shares it, unless ``inpaint_model`` names an SD inpainting model for the redraw."""
        from diffusers import (MultiControlNetModel, StableDiffusionControlNetInpaintPipeline,
                               StableDiffusionControlNetPipeline)

        from ...diffusion.device import resolve_device, resolve_dtype
        from ...diffusion.loading import load_controlnet, load_sd_pipeline
        from ...inpainting.pipeline import TemplatePortraitPipeline

        cfg = config or TryOnConfig()
        dev = resolve_device(device)
        dt = resolve_dtype(dev, dtype)
        progress.say("loading the try-on models")
        openpose = load_controlnet(openpose_controlnet, dtype=dt, store=store, name="openpose-controlnet")
        canny = load_controlnet(canny_controlnet, dtype=dt, store=store, name="canny-controlnet")
        text2img = load_sd_pipeline(base_model, StableDiffusionControlNetPipeline, dtype=dt, store=store, controlnet=openpose)
        face_inpaint = StableDiffusionControlNetInpaintPipeline.from_pipe(text2img, controlnet=MultiControlNetModel([openpose, canny]))
        if inpaint_model is None:
            redraw = face_inpaint
        else:
            redraw = load_sd_pipeline(inpaint_model, StableDiffusionControlNetInpaintPipeline, dtype=dt, store=store,
                                      name="inpaint model", controlnet=MultiControlNetModel([openpose, canny]))
            redraw.to(dev)
        depth_net = estimator = None
        if depth_controlnet is not None and depth_estimator is not None:
            from .controls import DepthEstimator

            depth_net = load_controlnet(depth_controlnet, dtype=dt, store=store, name="depth-controlnet")
            estimator = DepthEstimator.from_pretrained(depth_estimator, store=store, device=dev, dtype=dt)
        text2img.to(dev)
        face_inpaint.to(dev)
        if depth_net is not None:
            depth_net.to(dev)
        if analyzer is None:
            from ...perception import get_analyzer

            analyzer = get_analyzer("hog")
        face_stage = TemplatePortraitPipeline(text2img, face_inpaint, analyzer, config=face_stage_config(cfg, 0))
        face_stage.store = store
        return cls(redraw, face_stage, config=cfg, depth_controlnet=depth_net, depth_estimator=estimator,
                   depth_unavailable=depth_unavailable, **components)

    @classmethod
    def from_pipe(cls, face_stage, *, config: TryOnConfig | None = None, **components) -> "TryOnPipeline":
        """Reuse an inpainting :class:`TemplatePortraitPipeline`'s models (one UNet for everything)."""
        return cls(face_stage.inpaint, face_stage, config=config, **components)

    def with_config(self, config: TryOnConfig) -> "TryOnPipeline":
        """The same models and components under another configuration."""
        clone = copy.copy(self)
        clone.config = config.check()
        clone.warnings, clone.timings = [], {}
        return clone

    # -- the story ------------------------------------------------------------------------------
    def __call__(self, photo: np.ndarray | TryOnInputs, identity: Identity, *, garment: GarmentMask | None = None,
                 label: str = "photo") -> TryOnOutcome:
        """``config.num_images`` try-on images of ``identity`` wearing the photo's garment, best first."""
        cfg = self.config
        self.warnings, self.timings = [], {}
        inputs = photo if isinstance(photo, TryOnInputs) else self.perception(photo, garment=garment, label=label)
        keep = self.keep_region(inputs.garment)
        controls = self.controls(inputs)
        job = self.person_job(identity, inputs)
        seeds = [cfg.seed + k for k in range(cfg.num_images)]
        with progress.task("try-on", total=len(seeds) * (cfg.steps + (1 if self._face_stage_on() else 0)), unit="step") as bar:
            with self.person_lora(identity):
                redraws = [self.redraw(inputs, keep, controls, job, seed, bar) for seed in seeds]
            images = [self.finish(inputs, keep, redrawn, job, seed, bar) for redrawn, seed in zip(redraws, seeds)]
        images = self.rank(images, inputs, job)
        steps = {**inputs.steps, "depth": controls.depth_step, "redraw": f"ran (strength {cfg.strength})",
                 "face_stage": "ran" if self._face_stage_on() else "skipped: " + self._face_stage_off_reason()}
        timings = {**inputs.timings, **self.timings}
        warnings = list(dict.fromkeys(inputs.warnings + self.warnings))
        return TryOnOutcome(images, inputs, controls, keep, self._work_size(inputs.photo), job.prompt + ", " + REDRAW_WORDS,
                            job.negative_prompt, steps, warnings, timings)

    # -- steps ----------------------------------------------------------------------------------
    def keep_region(self, garment: GarmentMask) -> np.ndarray:
        """The garment eroded by ``garment_erode`` x the long side: copied bit for bit."""
        px = int(round(self.config.garment_erode * max(garment.mask.shape)))
        if px <= 0:
            return garment.mask.copy()
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
        return cv2.erode(garment.mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0

    def controls(self, inputs: TryOnInputs) -> TryOnControls:
        """OpenPose bones + hands, Canny of the body, depth on the hands (or why not), at work size."""
        start = time.perf_counter()
        cfg = self.config
        size = self._work_size(inputs.photo)
        small = cv2.resize(inputs.photo, size, interpolation=cv2.INTER_AREA)
        g = inputs.garment
        person = None if g.person is None else resize_mask(g.person, size, conservative=False)
        head = None if g.head is None else resize_mask(g.head, size, conservative=False)
        pose = pose_image(size, inputs.photo.shape, inputs.bodies, inputs.hands)
        canny = body_canny(small, person, head, cfg.canny_low, cfg.canny_high)
        depth, depth_step = None, ""
        if cfg.depth is False:
            depth_step = "skipped: turned off"
        elif self.inpaint_depth is None:
            depth_step = f"skipped: {self.depth_unavailable}"
        elif not inputs.hands:
            depth_step = "skipped: no hands found"
        else:
            d = self.depth_estimator(small)
            sx = size[0] / inputs.photo.shape[1]
            hands = [h.scaled(sx, size[1] / inputs.photo.shape[0]) for h in inputs.hands]
            region = cv2.dilate(hand_region((size[1], size[0]), hands).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            depth, depth_step = hand_depth_image(d, region), "ran"
        self._add_time("controls", start)
        return TryOnControls(pose, canny, depth, depth_step)

    def person_job(self, identity: Identity, inputs: TryOnInputs):
        """Prompt, negative prompt, fusion source face and reference embedding of the person."""
        from ...inpainting.api import _person_job
        from ...inpainting.template_faces import TemplateFace

        analyzer = self.perception._analyzer()
        return _person_job(TemplateFace(0, inputs.face), identity, face_stage_config(self.config, 0), analyzer)

    @contextlib.contextmanager
    def person_lora(self, identity: Identity) -> Iterator[None]:
        """The face LoRA fused into the redraw UNet for the redraws, removed afterwards."""
        from ...generation.lora import LoraSpec, apply_loras, remove_loras

        start = time.perf_counter()
        apply_loras(self.inpaint, [LoraSpec("face", identity.lora_path, self.config.face_weight)], fuse=True, unload=False)
        self._add_time("lora", start)
        try:
            yield
        finally:
            start = time.perf_counter()
            remove_loras(self.inpaint)
            self._add_time("lora", start)

    def redraw(self, inputs: TryOnInputs, keep: np.ndarray, controls: TryOnControls, job, seed: int, bar) -> np.ndarray:
        """Everything outside the kept garment drawn anew (strength 1.0), under the control images."""
        start = time.perf_counter()
        cfg = self.config
        size = self._work_size(inputs.photo)
        small = cv2.resize(inputs.photo, size, interpolation=cv2.INTER_AREA)
        repaint = ~resize_mask(keep, size, conservative=True)
        use_depth = controls.depth is not None
        pipe = self.inpaint_depth if use_depth else self.inpaint
        scales = [cfg.pose_scale, cfg.canny_scale] + ([cfg.depth_scale] if use_depth else [])

        def step_done(_pipe, _i, _t, kwargs):
            bar.update(1)
            return kwargs

        out = pipe(
            prompt=f"{job.prompt}, {REDRAW_WORDS}", negative_prompt=job.negative_prompt,
            image=Image.fromarray(small), mask_image=Image.fromarray(repaint.astype(np.uint8) * 255),
            control_image=[Image.fromarray(c) for c in controls.images()], height=size[1], width=size[0],
            strength=cfg.strength, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
            controlnet_conditioning_scale=scales, generator=torch.Generator("cpu").manual_seed(int(seed)),
            output_type="np", callback_on_step_end=step_done,
        ).images[0]
        self._add_time("inpainting", start)
        return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)

    def finish(self, inputs: TryOnInputs, keep: np.ndarray, redrawn: np.ndarray, job, seed: int, bar) -> TryOnImage:
        """Garment back in, the face stage on the new face, the kept pixels restored exactly."""
        start = time.perf_counter()
        feather = self.config.garment_feather * max(inputs.photo.shape[:2])
        composed = compose(inputs.photo, redrawn, keep, inputs.garment.mask, feather)
        self._add_time("compose", start)
        image, source, face_outcome = composed, "", None
        if self._face_stage_on():
            start = time.perf_counter()
            image, source, face_outcome = self.strengthen_face(composed, inputs, job, seed)
            image = image.copy()
            image[keep] = inputs.photo[keep]
            self._add_time("face_stage", start)
            bar.update(1)
        return TryOnImage(image, seed, None, redrawn, composed, source, face_outcome)

    def strengthen_face(self, composed: np.ndarray, inputs: TryOnInputs, job, seed: int):
        """Section 2.5 on the redrawn face: two-stage inpainting with the face LoRA, fusion, ranking."""
        from ...inpainting.template_faces import TemplateFace, find_template_faces

        found = find_template_faces(composed, self.face_stage.analyzer)
        face, source = _matching_face(found, inputs.face), "redrawn"
        if face is None:
            face, source = inputs.face, "model-photo"  # the pose control put the head where it was
        stage = self.face_stage.with_config(face_stage_config(self.config, seed))
        outcome = stage(composed, [dataclasses.replace(job, face=TemplateFace(0, face))], num_images=1, seed=seed)
        self.warnings.extend(outcome.warnings)
        for k, v in outcome.timings.items():
            self.timings[f"face_stage.{k}"] = self.timings.get(f"face_stage.{k}", 0.0) + v
        return outcome.portraits[0].image, source, outcome

    def rank(self, images: list[TryOnImage], inputs: TryOnInputs, job) -> list[TryOnImage]:
        """Best first by the person's likeness on the face (seed order without a reference)."""
        from ...inpainting.pipeline import _face_patch

        start = time.perf_counter()
        patches = [_face_patch(im.image, inputs.face.bbox) for im in images]
        ranked = self.ranker(patches, job.reference_embedding)
        out = []
        for r in ranked:
            im = images[r.index]
            im.similarity, im.rank_reason = r.similarity, r.reason
            out.append(im)
        self._add_time("rank", start)
        return out

    @property
    def ranker(self):
        if self._ranker is None:
            from ...postprocess.ranking import SimilarityRanker

            self._ranker = SimilarityRanker(self.perception._analyzer())
        return self._ranker

    # -- helpers --------------------------------------------------------------------------------
    def _work_size(self, photo: np.ndarray) -> tuple[int, int]:
        return work_size(photo.shape, self.config.size, _size_multiple(self.inpaint))

    def _face_stage_on(self) -> bool:
        return self.face_stage is not None and self.config.face_stage

    def _face_stage_off_reason(self) -> str:
        return "turned off" if not self.config.face_stage else "no face-stage pipeline"

    def _add_time(self, name: str, start: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def compose(photo: np.ndarray, redrawn: np.ndarray, keep: np.ndarray, garment: np.ndarray, feather: float) -> np.ndarray:
    """The redraw at photo size with the kept pixels copied exactly and a blend over ``feather`` px
    around them (inside the garment only; outside it the redraw is used as is)."""
    h, w = photo.shape[:2]
    up = cv2.resize(redrawn, (w, h), interpolation=cv2.INTER_CUBIC if w > redrawn.shape[1] else cv2.INTER_AREA)
    out = up.astype(np.float32)
    if feather > 0:
        dist = cv2.distanceTransform((~keep).astype(np.uint8), cv2.DIST_L2, 5)
        ramp = np.clip(1.0 - dist / feather, 0.0, 1.0)
        weight = (ramp * ramp * (3.0 - 2.0 * ramp))[..., None]
        weight[~garment] = 0.0
        out = photo.astype(np.float32) * weight + out * (1.0 - weight)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    out[keep] = photo[keep]
    return out


def face_stage_config(cfg: TryOnConfig, seed: int) -> InpaintConfig:
    """The section 2.5 settings of the face stage, from the try-on's."""
    return InpaintConfig(
        num_images=1, seed=seed, size=cfg.face_resolution, steps=cfg.steps, guidance_scale=cfg.guidance_scale,
        strength=cfg.face_strength, face_weight=cfg.face_weight, style=cfg.style, prompt=cfg.prompt,
        negative_prompt=cfg.negative_prompt, fusion="landmark" if cfg.fuse_faces else "none", min_face_size=cfg.min_face_size,
        openpose_controlnet=cfg.openpose_controlnet, canny_controlnet=cfg.canny_controlnet, device=cfg.device,
        dtype=cfg.dtype, base_model=cfg.base_model,
    )


def _matching_face(found: list, face) -> Any:
    """The redrawn face where the model photo's face was (centre within half a face, similar size)."""
    best, best_d = None, np.inf
    for tf in found:
        d = float(np.linalg.norm(tf.face.center - face.center))
        if d < 0.5 * face.size and 0.5 < tf.face.size / face.size < 2.0 and d < best_d:
            best, best_d = tf.face, d
    return best


def _size_multiple(pipe) -> int:
    """Image sides must be multiples of this: the VAE's and the UNet's downsampling (64 for SD 1.5)."""
    import math

    vae = int(getattr(pipe, "vae_scale_factor", 8))
    unet = 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    return math.lcm(vae * unet, 8)
