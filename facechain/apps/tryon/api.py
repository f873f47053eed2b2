"""``facechain.tryon``: a trained person wearing the garment of a model photo (paper section 3.1).

    >>> import facechain
    >>> result = facechain.tryon("model.jpg", "alice", prompt="on a beach", num_images=2, seed=1)
    >>> result.best.similarity, result.output_dir        # Portraits, like generate and inpaint

``facechain tryon MODEL_PHOTO --person NAME [--garment-mask MASK.png] [--prompt "on a beach"]`` is
:func:`tryon`. Every user mistake (no face to put the identity in, no person, a garment mask of
another size, one that covers almost nothing or almost everything, an existing output folder) is
found before any diffusion model is loaded and raised as a one-line
:class:`~facechain.errors.FacechainError`. The result is the shared :class:`~facechain.results.Portraits`, saved in
its layout, atomically into a fresh folder: ``0001.png`` ... (best first, parameters embedded),
``portraits.json`` (settings: garment shares, hands, steps run or skipped, timings), ``contact_sheet.jpg``,
and with ``save_intermediates`` ``intermediates/``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ... import __version__, progress
from ...config import config_to_dict, load_config
from ...errors import FacechainError
from ...identity import Identity, resolve_identity
from ...image_io import load_image
from ...results import Portrait, Portraits, check_output_folder
from .config import TryOnConfig

log = logging.getLogger(__name__)

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
) -> Portraits:
    """Dress ``person`` (identity name or folder; default: the newest) in the garment of ``model_photo``.

    ``garment_mask``: a black/white image of the photo's size (white = garment to keep); default: found
    offline (or with ``garment_segmenter="m2fp"``). ``prompt`` describes the scene (the background is
    redrawn from it); ``style`` a facechain style. ``depth``: None uses depth on the hands when the
    depth models are already downloaded, True requires them, False turns it off. ``size``: the long
    side (N) of the image Stable Diffusion redraws, or WxH to fit in; outputs keep the photo's size.
    ``pipeline``: a ready :class:`~.pipeline.TryOnPipeline` (its models are used, the options here win).
    """
    # keyword > config file > default: a keyword left at its default does not hide the config's value
    num_images = None if num_images == 4 else num_images
    device = None if device == "auto" else device
    dtype = None if dtype == "auto" else dtype
    save_intermediates = save_intermediates or None
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
        _check_sd15(identity, cfg.base_model)
        out_dir = None if output is None else check_output_folder(output, overwrite)  # None: not saved (as generate)
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

        # 3. the shared result type, saved in the shared layout (atomically, into a fresh folder)
        run = _run_record(photo_path, garment_mask, identity, cfg, outcome)
        result = _to_portraits(outcome, run, cfg.save_intermediates)
        if out_dir is not None:
            result.save(out_dir, overwrite=overwrite)
    return result


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


def _check_sd15(identity: Identity, base_model: str | None) -> None:
    """Try-on's garment-preserving stages are SD 1.5 models (inpainting UNet, depth/OpenPose/Canny
    ControlNets): an SDXL identity or base model is a one-line error before anything loads."""
    from ...diffusion.family import FamilyMismatchError, identity_family, reference_family

    if identity_family(identity) == "sdxl":
        raise FamilyMismatchError(identity.path, f"identity '{identity.name}' was trained on SDXL; virtual try-on runs on "
                                                 "SD 1.5 models only: train an SD 1.5 identity for it (the default base model)")
    if base_model is not None and reference_family(base_model) == "sdxl":
        raise FamilyMismatchError(base_model, "an SDXL base model; virtual try-on runs on SD 1.5 models only")


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


def _to_portraits(outcome, run: dict[str, Any], intermediates: bool) -> Portraits:
    """Best first, each with its seed, similarity and the run's parameters (the A1111 line included)."""
    from PIL import Image

    cfg = run["config"]
    w, h = run["work_size"]
    portraits = []
    for im in outcome.images:
        sim = None if im.similarity is None else round(im.similarity, 4)
        meta = {**_short(run), "seed": im.seed, "similarity": sim, "face_source": im.face_source,
                "steps": cfg["steps"], "guidance_scale": cfg["guidance_scale"], "strength": cfg["strength"],
                "size": f"{w}x{h}", "template": run["model_photo"], "run_steps": run["steps"]}
        portraits.append(Portrait(Image.fromarray(np.ascontiguousarray(im.image)), sim, im.seed, True, None,
                                  [{"similarity": sim, "source": im.face_source}], meta))
    result = Portraits(portraits, run, list(outcome.warnings), dict(run["timings_s"]), details=outcome)
    if intermediates:
        result.intermediates = {stem: np.ascontiguousarray(image) for stem, image in outcome.intermediates().items()}
    return result


def _short(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("verb", "model_photo", "person", "base_model", "prompt", "negative_prompt", "work_size", "config")
    return {k: run[k] for k in keys}
