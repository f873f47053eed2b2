"""The built-in job kinds: ``prepare``, ``train``, ``train_style``, ``generate`` and ``inpaint``.

Each runner maps the job's params onto the public function (uploads become files in the job's
``input/`` folder), lets the function write where the service says, and returns the result the
API shows. Runners are re-entrant: a re-run after a crash continues training from its last
checkpoint, and a job whose outputs were already complete is not run again.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .errors import ServiceError
from .kinds import RESERVED, JobKind, Submission, ValidationContext, register_kind

if TYPE_CHECKING:
    from .worker import RunContext


def list_files(folder: Path, recursive: bool = True, limit: int = 2000) -> list[str]:
    """Result files of a folder as relative POSIX names (the names ``GET .../files/{name}`` serves)."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    names = sorted(p.relative_to(folder).as_posix() for p in found if p.is_file() and not p.name.startswith("."))
    return names[:limit]


def folder_result(folder: Path, recursive: bool = True, **facts: Any) -> dict[str, Any]:
    """``_folder`` stays on the server (never shown); ``files`` are what clients may download."""
    return {"_folder": str(folder), "files": list_files(folder, recursive), **facts}


# --- prepare ------------------------------------------------------------------------------------


def run_prepare(ctx: "RunContext") -> dict[str, Any]:
    from ..preprocess.pipeline import prepare

    params = dict(ctx.params)
    done = ctx.finished_output()
    if done is None:
        photos = ctx.inputs(params.pop("photos"), "photos")
        out = ctx.fresh_output()
        prepare(photos, out, progress=False, **params)
        done = ctx.publish(out)
    return prepared_result(done)


def prepared_result(folder: Path) -> dict[str, Any]:
    report = json.loads((folder / "report.json").read_text())
    return folder_result(
        folder, trigger_word=report.get("trigger_word"),
        accepted=[{"file": a.get("output"), "source": Path(str(a.get("source", ""))).name} for a in report.get("accepted", [])],
        rejected=[{"source": Path(str(r.get("source", ""))).name, "reason": r.get("reason")} for r in report.get("rejected", [])],
    )


# --- train ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _discard_on_cancel(work: Path) -> Iterator[None]:
    """A cancelled job will not be resumed (a new job with the name starts over): drop its checkpoints."""
    from ..progress import Cancelled

    try:
        yield
    except Cancelled:
        shutil.rmtree(work, ignore_errors=True)
        raise



def check_train(ctx: ValidationContext, params: dict[str, Any], sub: Submission) -> None:
    from ..identity import MANIFEST
    from ..paths import identities_dir

    name = params["name"]
    if (identities_dir() / name / MANIFEST).exists():
        raise ServiceError(409, f"identity '{name}' already exists; choose another name")
    sub.claim = f"identity:{name}"


def run_train(ctx: "RunContext") -> dict[str, Any]:
    from ..identity import MANIFEST
    from ..paths import identities_dir
    from ..training.api import train, work_dir_for
    from ..training.checkpoint import latest_checkpoint

    params = dict(ctx.params)
    name = params.pop("name")
    output = identities_dir() / name  # fixed per job: a re-run finds its checkpoints in <output>.work
    if not (ctx.attempt > 1 and (output / MANIFEST).is_file()):  # else: finished just before the server died
        photos = ctx.inputs(params.pop("photos"), "photos")
        resume = ctx.attempt > 1 and latest_checkpoint(work_dir_for(output)) is not None
        with _discard_on_cancel(work_dir_for(output)):
            train(photos, name=name, output=output, resume=resume, progress=False, **params)
    manifest = json.loads((output / MANIFEST).read_text())
    return folder_result(output, recursive=False, identity=name, trigger_word=manifest.get("trigger_word"),
                         resumed_from_step=(manifest.get("training") or {}).get("resumed_from_step"))


# --- train_style ----------------------------------------------------------------------------------


def check_train_style(ctx: ValidationContext, params: dict[str, Any], sub: Submission) -> None:
    from ..paths import facechain_home
    from ..styles import find_style
    from ..errors import FacechainError

    name = params["name"]
    if (facechain_home() / "loras" / name).exists():
        raise ServiceError(409, f"style LoRA '{name}' already exists; choose another name")
    try:
        find_style(name)
    except FacechainError:
        pass
    else:
        raise ServiceError(409, f"a style named '{name}' already exists; choose another name")
    captions = params.get("captions")
    if isinstance(captions, list) and len(captions) != len(params["folder"]):
        raise ServiceError(422, f"param 'captions': {len(captions)} captions for {len(params['folder'])} images")
    if captions is None:
        raise ServiceError(422, "param 'captions' is required: one caption per image, or one for all")
    sub.claim = f"style:{name}"


def run_train_style(ctx: "RunContext") -> dict[str, Any]:
    from ..atomic import atomic_write_text
    from ..paths import facechain_home, user_styles_dir
    from ..training.api import STYLE_SNIPPET, train_style, work_dir_for
    from ..training.checkpoint import latest_checkpoint

    params = dict(ctx.params)
    name = params.pop("name")
    captions = params.pop("captions")
    output = facechain_home() / "loras" / name
    if not (ctx.attempt > 1 and (output / STYLE_SNIPPET).is_file()):
        images = ctx.inputs(params.pop("folder"), "images")
        texts = captions if isinstance(captions, list) else [captions] * len(images)
        for image, text in zip(images, texts):
            image.with_suffix(".txt").write_text(str(text), encoding="utf-8")
        resume = ctx.attempt > 1 and latest_checkpoint(work_dir_for(output)) is not None
        with _discard_on_cancel(work_dir_for(output)):
            train_style(images[0].parent, name=name, output=output, resume=resume, progress=False, **params)
    # the style becomes usable by name (GET /v1/styles, generate style=NAME) like a user style file
    installed = user_styles_dir() / f"{name}.yaml"
    if not installed.exists():
        atomic_write_text(installed, (output / STYLE_SNIPPET).read_text(encoding="utf-8"))
    return folder_result(output, recursive=False, style=name)


# --- generate -------------------------------------------------------------------------------------


def check_generate(ctx: ValidationContext, params: dict[str, Any], sub: Submission) -> None:
    if not params.get("person") and not params.get("photo"):
        raise ServiceError(422, "give 'person' (a trained identity) or 'photo' (upload ids, train-free FACT)")
    if params.get("seed") is None:  # fixed now, so a re-run after a crash makes the same images
        params["seed"] = secrets.randbelow(2**31)


def run_generate(ctx: "RunContext") -> dict[str, Any]:
    from ..generation.api import generate

    params = dict(ctx.params)
    done = ctx.finished_output()
    if done is None:
        if params.get("photo"):
            params["photo"] = [str(p) for p in ctx.inputs(params["photo"], "photo")]
        if params.get("pose"):
            params["pose"] = str(ctx.inputs([params["pose"]], "pose")[0])
        out = ctx.fresh_output()
        generate(params.pop("person", None), params.pop("style", None), output=str(out), progress=False, **params)
        done = ctx.publish(out)
    summary = json.loads((done / "portraits.json").read_text())
    sims = [p.get("similarity") for p in summary.get("portraits", []) if p.get("similarity") is not None]
    return folder_result(done, portraits=[p.get("file") for p in summary.get("portraits", [])],
                         best_similarity=max(sims) if sims else None, warnings=summary.get("warnings", []))


# --- inpaint --------------------------------------------------------------------------------------


def check_inpaint(ctx: ValidationContext, params: dict[str, Any], sub: Submission) -> None:
    if params.get("person") and params.get("photo"):
        raise ServiceError(422, "give 'person' (trained identities) or 'photo' (upload ids), not both")
    if not params.get("person") and not params.get("photo"):
        raise ServiceError(422, "give 'person' (trained identities, one per face) or 'photo' (upload ids)")


def run_inpaint(ctx: "RunContext") -> dict[str, Any]:
    from ..inpainting.api import inpaint

    params = dict(ctx.params)
    done = ctx.finished_output()
    if done is None:
        template = ctx.inputs([params.pop("template")], "template")[0]
        if params.get("photo"):
            params["photo"] = ctx.inputs(params["photo"], "photo")
        out = ctx.fresh_output()
        out.mkdir(parents=True)
        inpaint(template, params.pop("person", None), output=out, progress=False, **params)
        done = ctx.publish(out)
    summary = json.loads((done / "inpaint.json").read_text())
    images = [r.get("file") for run in summary.get("runs", []) for r in run.get("images", [])]
    return folder_result(done, portraits=images)


MODEL = "model"

register_kind(JobKind(
    name="prepare", function="facechain.preprocess.pipeline:prepare", config="facechain.preprocess.config:PrepareConfig",
    device="cpu", run=run_prepare, required=("photos",),
    roles={"photos": "uploads", "orientation_model": MODEL, "tagger_model": MODEL},
    phases={"prepare": (0.0, 0.95)},
    description="photos -> a training set: upright, aligned, cropped, segmented, retouched, captioned; rejects with reasons",
))
register_kind(JobKind(
    name="train", function="facechain.training.api:train", config="facechain.training.config:TrainConfig",
    device="gpu", run=run_train, required=("photos", "name"), check=check_train,
    roles={"photos": "uploads", "name": "name", "base_model": MODEL},
    phases={"prepare": (0.0, 0.2), "caching latents": (0.2, 0.25), "training": (0.25, 0.99)},
    description="photos -> a trained identity (face LoRA) named 'name'",
))
register_kind(JobKind(
    name="train_style", function="facechain.training.api:train_style", config="facechain.training.config:StyleTrainConfig",
    device="gpu", run=run_train_style, required=("folder", "name"), check=check_train_style,
    roles={"folder": "uploads", "name": "name", "base_model": MODEL}, extra={"captions": list[str] | str},
    phases={"caching latents": (0.0, 0.1), "training": (0.1, 0.99)},
    description="style images + captions -> a style LoRA and a style named 'name'",
))
register_kind(JobKind(
    name="generate", function="facechain.generation.api:generate", config="facechain.generation.config:GenerateConfig",
    device="gpu", run=run_generate, check=check_generate, reserved=RESERVED | {"face_lora"},
    roles={"person": "identity", "style": "style", "photo": "uploads", "pose": "upload", "base_model": MODEL,
           "style_lora": MODEL, "adapter": MODEL, "openpose_controlnet": MODEL},
    phases={"portraits": (0.1, 0.95)},
    description="portraits of a trained identity (or of uploaded photos, train-free) in a style",
))
register_kind(JobKind(
    name="inpaint", function="facechain.inpainting.api:inpaint", config=None,
    device="gpu", run=run_inpaint, required=("template",), check=check_inpaint,
    roles={"template": "upload", "person": "identities", "photo": "uploads", "style": "style", "adapter": MODEL,
           "base_model": MODEL, "openpose_controlnet": MODEL, "canny_controlnet": MODEL},
    phases={"inpaint": (0.1, 0.95)},
    description="faces of trained identities (or of uploaded photos) into a template photo",
))
