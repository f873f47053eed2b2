"""``facechain.tryon``: a trained person wearing the garment of a model photo (paper section 3.1).

    >>> import facechain
    >>> result = facechain.tryon("model.jpg", "alice", prompt="on a beach", num_images=2, seed=1)
    >>> result.best.similarity, result.output

``facechain tryon MODEL_PHOTO --person NAME [--garment-mask MASK.png] [--prompt "on a beach"]`` is
:func:`tryon`. Every user mistake (no face to put the identity in, no person, a garment mask of
another size, one that covers almost nothing or almost everything, an existing output folder) is
found before any diffusion model is loaded and raised as a one-line
:class:`~facechain.errors.FacechainError`. Outputs go atomically into a fresh folder: ``0001.png``
... (best first, parameters embedded), ``tryon.json``, and with ``save_intermediates`` ``steps/``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ... import __version__, progress
from ...atomic import atomic_directory, check_destination
from ...config import config_to_dict, load_config
from ...errors import FacechainError
from ...identity import Identity, resolve_identity
from ...image_io import load_image, save_png
from .config import TryOnConfig

log = logging.getLogger(__name__)

SUMMARY = "tryon.json"


@dataclass
class TryOnPortrait:
    """One saved try-on image."""

    path: Path
    seed: int
    similarity: float | None
    face_source: str  # the face stage ran on the "redrawn" face or the "model-photo"'s landmarks ("" = off)

    @property
    def image(self):
        from PIL import Image

        return Image.open(self.path)


@dataclass
class TryOnResult:
    """What :func:`tryon` wrote (best first) and how the run went."""

    output: Path
    portraits: list[TryOnPortrait]
    summary_path: Path
    steps: dict[str, str]  # step -> "ran ..." / "skipped: ..."
    garment: dict[str, Any]  # method and the mask's shares of the photo, the person and the face box
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    outcome: Any = None  # the pipeline's TryOnOutcome (arrays of every stage), for Python users

    def __len__(self) -> int:
        return len(self.portraits)

    def __iter__(self):
        return iter(self.portraits)

    @property
    def images(self) -> list[Path]:
        return [p.path for p in self.portraits]

    @property
    def best(self) -> TryOnPortrait | None:
        return self.portraits[0] if self.portraits else None


def tryon(
    model_photo: str | Path,
    person: str | Path | None = None,
    *,
    garment_mask: str | Path | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    style: str | None = None,
    num_images: int = 4,
    seed: int | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    size: int | str | None = None,
    base_model: str | None = None,
    inpaint_model: str | None = None,
    openpose_controlnet: str | None = None,
    canny_controlnet: str | None = None,
    depth_controlnet: str | None = None,
    depth_estimator: str | None = None,
    depth: bool | None = None,
    garment_segmenter: str | None = None,
    face_stage: bool | None = None,
    device: str = "auto",
    dtype: str = "auto",
    config: str | Path | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    save_intermediates: bool = False,
    pipeline=None,
    analyzer=None,
) -> TryOnResult:
    """Dress ``person`` (identity name or folder; default: the newest) in the garment of ``model_photo``.

    ``garment_mask``: a black/white image of the photo's size (white = garment to keep); default: found
    offline (or with ``garment_segmenter="m2fp"``). ``prompt`` describes the scene (the background is
    redrawn from it); ``style`` a facechain style. ``depth``: None uses depth on the hands when the
    depth models are already downloaded, True requires them, False turns it off. ``size``: the long
    side (N) of the image Stable Diffusion redraws, or WxH to fit in; outputs keep the photo's size.
    ``pipeline``: a ready :class:`~.pipeline.TryOnPipeline` (its models are used, the options here win).
    """
    overrides = dict(num_images=num_images, seed=seed, steps=steps, guidance_scale=guidance_scale, prompt=prompt,
                     negative_prompt=negative_prompt, style=style, base_model=base_model, inpaint_model=inpaint_model,
                     openpose_controlnet=openpose_controlnet, canny_controlnet=canny_controlnet,
                     depth_controlnet=depth_controlnet, depth_estimator=depth_estimator, depth=depth,
                     garment_segmenter=garment_segmenter, face_stage=face_stage, device=device, dtype=dtype,
                     save_intermediates=save_intermediates, size=None if size is None else _long_side(size))
    if pipeline is None:
        cfg = load_config(TryOnConfig, "tryon", config, overrides).check()
    else:  # a ready pipeline: flags > that pipeline's config
        cfg = dataclasses.replace(pipeline.config, **{k: v for k, v in overrides.items() if v is not None}).check()
    photo_path = Path(model_photo)
    with progress.reporting(quiet=quiet):
        # 1. everything a user can get wrong, before any diffusion model is loaded
        identity = resolve_identity(person)
        out_dir = Path(output) if output is not None else _default_output(photo_path)
        check_destination(out_dir, overwrite)
        photo = load_image(photo_path)
        from .garment import garment_from_file, get_garment_segmenter
        from .inputs import TryOnPerception

        given = None if garment_mask is None else garment_from_file(garment_mask, photo.shape[:2])
        if pipeline is not None:
            pipeline = pipeline.with_config(cfg)
            perception = pipeline.perception
        else:
            perception = TryOnPerception(analyzer, min_face_size=cfg.min_face_size)
        if given is None and cfg.garment_segmenter != "offline":
            perception.garment_segmenter = get_garment_segmenter(cfg.garment_segmenter)
        progress.say(f"looking at {photo_path.name}: face, body pose, hands, garment")
        inputs = perception(photo, garment=given, label=str(photo_path))

        # 2. the models (once), then the story
        if pipeline is None:
            pipeline = _build_pipeline(cfg, identity, perception)
        outcome = pipeline(inputs, identity)

        # 3. outputs with metadata, atomically into a fresh folder
        run = _run_record(photo_path, garment_mask, identity, cfg, outcome)
        portraits = _save(out_dir, outcome, run, cfg.save_intermediates, overwrite)
    return TryOnResult(out_dir, portraits, out_dir / SUMMARY, dict(outcome.steps), run["garment"],
                       dict(outcome.timings), list(outcome.warnings), outcome)


# --- steps of tryon() --------------------------------------------------------------------------


def _long_side(size: int | str) -> int:
    """``--size``: N (the long side) or WxH (the long side that fits in it; the aspect ratio is the photo's)."""
    text = str(size).lower().strip()
    try:
        parts = [int(p) for p in text.split("x")]
    except ValueError:
        raise FacechainError(f"--size {size}: give N or WxH, e.g. 768 or 512x768") from None
    if len(parts) not in (1, 2) or min(parts) <= 0:
        raise FacechainError(f"--size {size}: give N or WxH, e.g. 768 or 512x768")
    return min(parts) if len(parts) == 2 else parts[0]


def _default_output(photo: Path) -> Path:
    from ...generation.api import default_output_dir

    return default_output_dir(f"tryon-{photo.stem}")


def _build_pipeline(cfg: TryOnConfig, identity: Identity, perception):
    from ...models.registry import MODELS
    from ...models.store import default_store
    from .pipeline import TryOnPipeline

    store = default_store()
    depth_net = cfg.depth_controlnet or MODELS["depth-controlnet"].reference
    depth_est = cfg.depth_estimator or MODELS["depth-estimator"].reference
    use_depth, why = _depth_models(cfg, store, depth_net, depth_est)
    return TryOnPipeline.from_models(
        cfg.base_model or identity.base_model,
        cfg.openpose_controlnet or MODELS["openpose-controlnet"].reference,
        cfg.canny_controlnet or MODELS["canny-controlnet"].reference,
        inpaint_model=cfg.inpaint_model, depth_controlnet=depth_net if use_depth else None,
        depth_estimator=depth_est if use_depth else None, depth_unavailable=why, analyzer=perception.analyzer,
        config=cfg, device=cfg.device, dtype=cfg.dtype, store=store, perception=perception,
    )


def _depth_models(cfg: TryOnConfig, store, net: str, estimator: str) -> tuple[bool, str | None]:
    """Whether to load the depth models: always with depth=True, never with False, and by default
    only when both are already on disk (an optional step never triggers a download)."""
    if cfg.depth is False:
        return False, "turned off"
    if cfg.depth:
        return True, None
    missing = [name for name, ref in (("depth-estimator", estimator), ("depth-controlnet", net))
               if not (Path(ref).exists() or store.is_present(ref, _allow(name)))]
    if missing:
        return False, (f"{' and '.join(missing)} not downloaded (run 'facechain models download "
                       f"{' '.join(missing)}' or pass --depth)")
    return True, None


def _allow(name: str):
    from ...models.registry import MODELS

    return MODELS[name].allow_patterns


def _run_record(photo: Path, garment_mask, identity: Identity, cfg: TryOnConfig, outcome) -> dict[str, Any]:
    inputs = outcome.inputs
    return {
        "verb": "tryon",
        "facechain_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_photo": str(photo),
        "photo_size": [int(inputs.photo.shape[1]), int(inputs.photo.shape[0])],
        "garment_mask": None if garment_mask is None else str(garment_mask),
        "person": identity.name,
        "identity_path": str(identity.path),
        "base_model": cfg.base_model or identity.base_model,
        "prompt": outcome.prompt,
        "negative_prompt": outcome.negative_prompt,
        "work_size": list(outcome.work_size),
        "garment": {**inputs.garment.to_json(), "kept_pixels": int(outcome.keep.sum())},
        "face": inputs.face.to_json(),
        "hands": [h.to_json() for h in inputs.hands],
        "steps": dict(outcome.steps),
        "config": config_to_dict(cfg),
        "timings_s": {k: round(v, 3) for k, v in outcome.timings.items()},
        "warnings": list(outcome.warnings),
    }


def _save(out_dir: Path, outcome, run: dict[str, Any], intermediates: bool, overwrite: bool) -> list[TryOnPortrait]:
    portraits, records = [], []
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for rank, im in enumerate(outcome.images, 1):
            name = f"{rank:04d}.png"
            record = {"file": name, "rank": rank, "seed": im.seed, "face_source": im.face_source,
                      "similarity": None if im.similarity is None else round(im.similarity, 4)}
            text = {"parameters": _parameters(run, im.seed), "facechain": json.dumps({**record, **_short(run)}),
                    "seed": str(im.seed), "model_photo": run["model_photo"], "person": run["person"],
                    "similarity": "" if im.similarity is None else f"{im.similarity:.4f}"}
            save_png(tmp / name, im.image, text=text)
            records.append(record)
            portraits.append(TryOnPortrait(out_dir / name, im.seed, im.similarity, im.face_source))
        if intermediates:
            (tmp / "steps").mkdir()
            for stem, image in outcome.intermediates().items():
                save_png(tmp / "steps" / f"{stem}.png", np.ascontiguousarray(image))
            run["intermediates"] = "steps"
        run["images"] = records
        (tmp / SUMMARY).write_text(json.dumps(run, indent=2))
    return portraits


def _short(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("verb", "model_photo", "person", "base_model", "prompt", "negative_prompt", "work_size", "steps", "config")
    return {k: run[k] for k in keys}


def _parameters(run: dict[str, Any], seed: int) -> str:
    """The one-line parameter format many image tools read (as ``generate`` and ``inpaint`` write it)."""
    cfg = run["config"]
    w, h = run["work_size"]
    return (f"{run['prompt']}\nNegative prompt: {run['negative_prompt']}\nSteps: {cfg['steps']}, "
            f"CFG scale: {cfg['guidance_scale']}, Seed: {seed}, Size: {w}x{h}, Denoising strength: {cfg['strength']}, "
            f"Model: {run['base_model']}, Model photo: {run['model_photo']}")
