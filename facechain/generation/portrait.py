"""``PortraitGenerator``: the paper's inference chain as one readable call (sections 2.3-2.4).

    build prompt -> denoise with the fused face + style LoRAs (+ OpenPose ControlNet)
                 -> fuse the template face into each output -> rank by likeness

Components are passed in (diffusers style): the LoRA-fused pipeline, an optional ControlNet
pipeline sharing its weights, the face analyzer and the face-fusion backend. Each stage is timed
(text encoding, denoising, VAE decode, fusion, ranking), which the benchmark reports.
"""

from __future__ import annotations

import contextlib
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from .. import progress
from ..diffusion.family import family_of_pipeline
from ..diffusion.prompt_embeds import PromptEmbeds, encode_prompt
from ..postprocess.fusion import FaceFuser, FusionBackend, FusionResult
from ..postprocess.ranking import MIN_FACE_FRACTION, RankedImage, SimilarityRanker
from ..types import Face
from .prompt import PromptPair


@dataclass
class GenerationRequest:
    """What to sample: prompts, one seed per image, and the sampler settings."""

    prompts: PromptPair
    seeds: list[int]
    width: int = 512
    height: int = 512
    steps: int = 40
    guidance: float = 7.0
    batch_size: int = 1
    pose_condition: np.ndarray | None = None  # OpenPose image (H, W, 3) uint8, needs a ControlNet pipeline
    pose_strength: float = 1.0


@dataclass
class StageTimes:
    """Seconds spent per stage over a whole run."""

    text_encoding: float = 0.0
    denoising: float = 0.0
    vae_decode: float = 0.0
    fusion: float = 0.0
    ranking: float = 0.0

    @property
    def total(self) -> float:
        return self.text_encoding + self.denoising + self.vae_decode + self.fusion + self.ranking

    def per_image(self, n: int) -> dict[str, float]:
        n = max(1, n)
        return {k: v / n for k, v in self.to_json().items()}

    def to_json(self) -> dict[str, float]:
        return {"text_encoding": self.text_encoding, "denoising": self.denoising, "vae_decode": self.vae_decode,
                "fusion": self.fusion, "ranking": self.ranking, "total": self.total}


@dataclass
class GeneratedPortraits:
    """Raw and fused images in generation order, the ranking (best first), and timings."""

    raw: list[np.ndarray]
    images: list[np.ndarray]
    fusion: list[FusionResult | None]
    ranking: list[RankedImage]
    seeds: list[int]
    times: StageTimes = field(default_factory=StageTimes)


@contextmanager
def _timed(times: StageTimes, stage: str, device: torch.device | None = None) -> Iterator[None]:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        setattr(times, stage, getattr(times, stage) + time.perf_counter() - t0)


class PortraitGenerator:
    """Text-to-portrait with identity post-processing; see the module docstring."""

    def __init__(
        self,
        pipe,
        *,
        controlnet_pipe=None,
        template_face: np.ndarray | None = None,
        template_embedding: np.ndarray | None = None,
        analyzer=None,
        fuser: FusionBackend | str | None = "landmark",
        fusion_strength: float = 1.0,
        min_face_fraction: float = MIN_FACE_FRACTION,
        fact=None,
    ):
        self.pipe = pipe
        self.fact = fact  # a facechain.fact.FactSession: face tokens instead of a face LoRA
        self.controlnet_pipe = controlnet_pipe
        self.template_face = template_face
        self.analyzer = analyzer
        self.fuser = fuser
        self.fusion_strength = fusion_strength
        self.min_face_fraction = min_face_fraction
        self._template_face_info: Face | None = None
        self.template_embedding = template_embedding
        self.warnings: list[str] = []
        if template_face is not None and (fuser is not None or template_embedding is None):
            self._template_face_info = self._analyze_template(template_face)
            if self._template_face_info is None:
                self.warnings.append("no face found in the template face image: face fusion skipped")
            elif self.template_embedding is None:
                self.template_embedding = self._template_face_info.embedding

    # -- the story ------------------------------------------------------------------------
    def __call__(self, request: GenerationRequest) -> GeneratedPortraits:
        return self.finish(self.denoise(request))

    def denoise(self, request: GenerationRequest) -> GeneratedPortraits:
        """The diffusion part (needs the pipeline, so callers hold its lock only for this)."""
        times = StageTimes()
        raw = self._denoise(request, times)
        return GeneratedPortraits(raw, list(raw), [None] * len(raw), [], list(request.seeds), times)

    def finish(self, out: GeneratedPortraits) -> GeneratedPortraits:
        """Face fusion and ranking of denoised images (no diffusion model involved)."""
        fused = self.fuse_faces(out.raw, out.times)
        images = [r.image if r is not None else img for r, img in zip(fused, out.raw)]
        ranking = self.rank(images, out.times)
        return GeneratedPortraits(out.raw, images, fused, ranking, out.seeds, out.times)

    # -- stages ---------------------------------------------------------------------------
    def _denoise(self, request: GenerationRequest, times: StageTimes) -> list[np.ndarray]:
        """Text encoding once, then batches of seeded latents through the (ControlNet) pipeline, then the VAE."""
        use_pose = request.pose_condition is not None
        if use_pose and self.controlnet_pipe is None:
            raise ValueError("a pose condition needs a ControlNet pipeline")
        pipe = self.controlnet_pipe if use_pose else self.pipe
        device = pipe._execution_device
        cfg = request.guidance > 1.0
        with torch.inference_mode():
            with _timed(times, "text_encoding", device):
                # one encoding for every seed; SDXL pipelines also get their pooled embeddings
                embeds = encode_prompt(pipe, request.prompts.prompt, request.prompts.negative_prompt, guidance=cfg,
                                       device=device)
                if self.fact is not None:  # FACT: 16 face tokens per photo after the 77 text tokens
                    embeds = self.fact.append_face_tokens_to(embeds)
            extra = {}
            if use_pose:
                from PIL import Image

                extra = dict(image=Image.fromarray(request.pose_condition), controlnet_conditioning_scale=float(request.pose_strength))
            images: list[np.ndarray] = []
            seeds = list(request.seeds)
            bar = progress.task("portraits", total=len(seeds), unit="image")
            face_adapter = self.fact.applied_to(pipe) if self.fact is not None else contextlib.nullcontext()
            with face_adapter:
                self._denoise_batches(pipe, request, embeds, extra, seeds, images, times, bar)
            bar.close()
        return images

    def _denoise_batches(self, pipe, request, embeds: PromptEmbeds, extra, seeds, images, times, bar) -> None:
        """Seeded batches through the pipeline (latents out), each VAE-decoded into ``images``."""
        device = pipe._execution_device
        for start in range(0, len(seeds), max(1, request.batch_size)):
            batch = seeds[start:start + max(1, request.batch_size)]
            n = len(batch)
            generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in batch]
            with _timed(times, "denoising", device):
                latents = pipe(
                    **embeds.repeat(n).kwargs(),
                    num_inference_steps=request.steps, guidance_scale=request.guidance,
                    width=request.width, height=request.height, generator=generators,
                    output_type="latent", **extra,
                ).images
            with _timed(times, "vae_decode", device):
                images.extend(decode_latents(pipe, latents))
            bar.update(n, message=f"seed {batch[-1]}")

    def fuse_faces(self, images: list[np.ndarray], times: StageTimes) -> list[FusionResult | None]:
        """Blend the template face into each output (skipped without a template face or a fuser)."""
        if self.fuser is None or self.template_face is None or self._template_face_info is None:
            return [None] * len(images)
        fuser = FaceFuser(self._analyzer(), self.fusion_strength, backend=self.fuser)
        with _timed(times, "fusion"):
            return [fuser(img, self.template_face, self._template_face_info) for img in images]

    def rank(self, images: list[np.ndarray], times: StageTimes) -> list[RankedImage]:
        """Order by similarity to the template face; images without one usable face go last, flagged."""
        with _timed(times, "ranking"):
            return SimilarityRanker(self._analyzer(), self.min_face_fraction)(images, self.template_embedding)

    # -- helpers --------------------------------------------------------------------------
    def _analyzer(self):
        if self.analyzer is None:
            from ..perception import get_analyzer

            self.analyzer = get_analyzer()
        return self.analyzer

    def _analyze_template(self, image: np.ndarray) -> Face | None:
        faces = self._analyzer().analyze(image, landmarks=True, embedding=True, max_faces=1)
        return faces[0] if faces else None


def decode_latents(pipe, latents: torch.Tensor) -> list[np.ndarray]:
    """VAE-decode latents into RGB uint8 arrays (what ``output_type="np"`` would give, as uint8).

    An fp16 decode that overflows (NaN/inf: some community VAEs) is redone in fp32, and SDXL's stock
    VAE (``force_upcast``) decodes in fp32 straight away (:func:`facechain.diffusion.vae.decode_latents`).
    """
    from ..diffusion.vae import decode_latents as decode_safely

    decoded = decode_safely(pipe.vae, latents, family_of_pipeline(pipe))
    arr = pipe.image_processor.postprocess(decoded, output_type="np", do_denormalize=[True] * decoded.shape[0])
    return [np.ascontiguousarray((np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8)) for a in arr]
