"""``facechain.train`` / ``facechain.train_style``: the public training calls behind the CLI verbs.

``train`` turns photos (or a prepared dataset) into a self-contained identity folder::

    <identity>/pytorch_lora_weights.safetensors   face LoRA, diffusers format
    <identity>/facechain.json                     manifest (facechain.identity.Identity)
    <identity>/template_face.png                  best-quality training face
    <identity>/dataset/                           the prepared dataset it was trained on
    <identity>/train_log.jsonl                    loss per step

The base model's family (SD 1.5 or SDXL) is read when it is resolved and decides the defaults
(resolution 512 or 1024), the conditioning the trainer caches and the LoRA writer; no flag says
which family it is. The manifest records it, so generation can refuse to mix families.

The story: resolve the base model (fail fast) -> prepare the photos (or reuse a prepared folder)
-> load the base model -> train the LoRA (checkpoints in ``<output>.work/``) -> write the identity
folder atomically -> remove the work folder. A failed or interrupted run leaves no identity
folder, only the work folder, from which ``resume=True`` continues.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import gc
import json
import logging
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from .. import __version__
from ..atomic import atomic_directory, atomic_write_text, check_destination
from ..config import config_to_dict, load_config
from ..errors import InputError
from ..identity import LORA_FILE, Identity
from ..diffusion.family import FAMILY_NAMES
from ..paths import facechain_home, identities_dir
from ..preprocess.config import PrepareConfig
from .checkpoint import latest_checkpoint
from ..models.references import resolve_reference
from .components import BaseModelInfo, load_components, resolve_base_model
from .config import StyleTrainConfig, TrainConfig
from .data import PreparedDataset, TrainingExample, is_prepared_folder, read_captioned_folder, read_prepared
from .trainer import LOG_FILE, LoraTrainer, TrainOutcome, resolve_precision

log = logging.getLogger(__name__)

PathsLike = str | Path | Sequence[str | Path]
PREPARE_RESOLUTION = PrepareConfig().resolution  # prepare's default crop size (512)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _as_paths(photos: PathsLike) -> list[Path]:
    items = [photos] if isinstance(photos, (str, Path)) else list(photos)
    if not items:
        raise InputError("photos", "no photos given")
    paths = [Path(p).expanduser() for p in items]
    for p in paths:
        if not p.exists():
            raise InputError(p, "file or folder not found")
    return paths


def default_name(inputs: list[Path]) -> str:
    """The identity's name from the photo folder (``dataset`` folders name their parent)."""
    first = inputs[0].resolve()
    folder = first if first.is_dir() else first.parent
    if folder.name in ("dataset", "images") and folder.parent.name:
        folder = folder.parent
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", folder.name).strip("._-")
    return name or "person"


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InputError(name, "invalid name: use letters, digits, '.', '_' or '-' (at most 100 characters)")
    return name


def work_dir_for(output: Path) -> Path:
    """Checkpoints and the prepared dataset of an unfinished run: ``<output>.work`` beside the output."""
    return output.with_name(output.name + ".work")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _start_work(work: Path, resume: bool, progress: bool) -> Path | None:
    """The checkpoint to resume from (``resume``), or a clean work folder."""
    if resume:
        ckpt = latest_checkpoint(work)
        if ckpt is None:
            raise InputError(work, "no checkpoint to resume from (train without --resume)")
        _say(progress, f"resuming from {ckpt}")
        return ckpt
    if work.exists():
        if latest_checkpoint(work) is not None:
            _say(progress, f"starting over: removing the checkpoints of an unfinished run in {work} "
                           "(pass --resume to continue it instead)")
        shutil.rmtree(work)
    return None


@contextlib.contextmanager
def _work_folder_kept_only_if_resumable(work: Path) -> Iterator[None]:
    """On failure keep the work folder only when it holds a checkpoint to ``--resume`` from."""
    try:
        yield
    except BaseException:
        if work.exists() and latest_checkpoint(work) is None:
            shutil.rmtree(work, ignore_errors=True)
        raise


def _prepare_photos(inputs: list[Path], dest: Path, *, resume: bool, config_file, trigger, retouch, progress,
                    analyzer, resolution: int | None = None) -> Path:
    """Run ``facechain prepare`` into the work folder (kept there, so resume does not redo it).

    ``resolution``: crop size when training needs larger crops than prepare's default (SDXL).
    """
    if resume and is_prepared_folder(dest):
        _say(progress, f"reusing the prepared dataset in {dest}")
        return dest
    from ..preprocess.pipeline import prepare

    extra = {"resolution": resolution} if resolution else {}
    result = prepare(inputs if len(inputs) > 1 else inputs[0], dest, config_file=config_file, overwrite=True,
                     trigger=trigger, retouch=retouch, progress=progress, analyzer=analyzer, **extra)
    if progress and hasattr(result, "summary"):
        _say(progress, result.summary())
    return Path(getattr(result, "output_dir", dest))


def _load_trainer(info: BaseModelInfo, examples: list[TrainingExample], cfg: TrainConfig, work: Path,
                  progress: bool) -> LoraTrainer:
    _, _, dtype = resolve_precision(cfg)
    _say(progress, f"loading {FAMILY_NAMES[info.family]} base model {info.reference}")
    components = load_components(info, dtype, vae=cfg.vae)
    trainer = LoraTrainer(components, examples, cfg, work_dir=work, progress=progress)
    del components
    gc.collect()  # with latents cached the trainer no longer holds the VAE (and CLIP): let them go
    return trainer


def _lora_manifest(cfg: TrainConfig, family: str) -> dict[str, Any]:
    return {
        "format": "diffusers",
        "rank": cfg.rank,
        "alpha": cfg.alpha,
        "target_modules": list(cfg.target_modules),
        "alpha_baked_into_weights": True,  # lora.up scaled by alpha/rank: load at weight 1.0 = trained model
        "text_encoder": ({"rank": cfg.text_encoder_rank, "alpha": cfg.text_encoder_alpha,
                          "target_modules": list(cfg.text_encoder_target_modules)} if cfg.train_text_encoder else None),
        "text_encoders_trained": (["text_encoder", "text_encoder_2"][:2 if family == "sdxl" else 1]
                                  if cfg.train_text_encoder else []),
    }


def _training_manifest(cfg: TrainConfig, outcome: TrainOutcome, trainer: LoraTrainer) -> dict[str, Any]:
    settings = config_to_dict(cfg)
    settings.pop("base_model", None)
    return {**outcome.to_json(), "total_steps": trainer.total_steps, "prediction_type": trainer.prediction_type,
            "settings": settings, "facechain_version": __version__, "log_file": LOG_FILE}


def train(
    photos: PathsLike,
    *,
    name: str | None = None,
    output: str | Path | None = None,
    config_file: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    trigger: str | None = None,
    retouch: bool | None = None,
    progress: bool = True,
    analyzer: Any = None,
    **overrides: Any,
) -> Identity:
    """Train a face LoRA from ``photos`` (files/folders, or one prepared dataset folder).

    ``overrides`` are :class:`TrainConfig` fields (``steps=30``, ``base_model=...``, ...); ``trigger``
    and ``retouch`` are passed to ``prepare``. Returns the saved :class:`~facechain.identity.Identity`.
    """
    cfg = load_config(TrainConfig, "train", config_file, overrides)
    inputs = _as_paths(photos)
    prepared = inputs[0] if len(inputs) == 1 and is_prepared_folder(inputs[0]) else None
    if prepared is None:
        stray = [p for p in inputs if is_prepared_folder(p)]
        if stray:
            raise InputError(stray[0], "a prepared dataset must be given alone (not mixed with photos)")
    name = check_name(name or default_name(inputs))
    output = Path(output).expanduser() if output else identities_dir() / name
    check_destination(output, overwrite)  # before any heavy work
    work = work_dir_for(output)

    base, cfg = _resolve_models(cfg)  # a missing or unusable model fails here, in one line
    resume_from = _start_work(work, resume, progress)
    with _work_folder_kept_only_if_resumable(work):
        if prepared is None:
            crops = cfg.resolution if base.family == "sdxl" and cfg.resolution > PREPARE_RESOLUTION else None
            prepared = _prepare_photos(inputs, work / "dataset", resume=resume, config_file=config_file,
                                       trigger=trigger, retouch=retouch, progress=progress, analyzer=analyzer,
                                       resolution=crops)
        elif trigger is not None or retouch is not None:
            log.warning("%s is already prepared: --trigger/--no-retouch are ignored", prepared)
        data = read_prepared(prepared)

        trainer = _load_trainer(base, data.examples, cfg, work, progress)
        _say(progress, f"training '{name}': {trainer.describe()}")
        outcome = trainer.train(resume_from=resume_from)

        identity = _write_identity(output, overwrite, name, base, data, cfg, trainer, outcome, work)
    shutil.rmtree(work, ignore_errors=True)
    _say(progress, f"identity '{name}' saved in {output} (final loss {outcome.final_loss:.4f}, "
                   f"{outcome.steps} steps in {outcome.seconds:.0f} s)")
    return identity


def _resolve_models(cfg: TrainConfig) -> tuple[BaseModelInfo, TrainConfig]:
    """The base model (and family), the replacement VAE if any, and the settings with the family's
    defaults filled in; nothing is loaded yet."""
    base = resolve_base_model(cfg.base_model)
    if cfg.vae:
        resolve_reference(cfg.vae, what="vae")
    return base, cfg.for_family(base.family)


def _write_identity(output: Path, overwrite: bool, name: str, base: BaseModelInfo, data: PreparedDataset,
                    cfg: TrainConfig, trainer: LoraTrainer, outcome: TrainOutcome, work: Path) -> Identity:
    with atomic_directory(output, overwrite=overwrite) as tmp:
        trainer.save_lora(tmp)
        shutil.copytree(data.folder, tmp / "dataset")
        template = data.template_face or data.examples[0].image
        shutil.copy2(template, tmp / "template_face.png")
        if (work / LOG_FILE).exists():
            shutil.copy2(work / LOG_FILE, tmp / LOG_FILE)
        dataset = data.summary()
        if data.template_face is None:
            dataset["template_face_source"] = f"first training image ({template.name}): the dataset named none"
        identity = Identity(
            name=name, base_model=base.reference, trigger_word=data.trigger_word, path=output, lora_file=LORA_FILE,
            template_face="template_face.png", template_embedding=data.template_embedding, tags=data.tags,
            lora=_lora_manifest(cfg, base.family), family=base.family, training=_training_manifest(cfg, outcome, trainer), dataset=dataset,
            base_model_revision=base.revision, base_model_sha256=base.unet_sha256, created=_now(),
        )
        identity.save(tmp)
    return identity


# --- style LoRAs --------------------------------------------------------------------------

STYLE_MANIFEST = "facechain_lora.json"
STYLE_SNIPPET = "style.yaml"


@dataclass
class StyleLora:
    """A trained style LoRA folder and the style definition that uses it."""

    name: str
    path: Path
    base_model: str
    prompt: str
    outcome: TrainOutcome

    @property
    def lora_path(self) -> Path:
        return self.path / LORA_FILE

    @property
    def style_yaml(self) -> Path:
        return self.path / STYLE_SNIPPET


def common_caption_tags(captions: list[str], min_share: float = 0.5) -> list[str]:
    """Comma-separated caption parts shared by at least ``min_share`` of the images (the style's words)."""
    counts = collections.Counter()
    for c in captions:
        counts.update({t.strip() for t in c.split(",") if t.strip()})
    need = max(1, int(min_share * len(captions) + 0.999))
    return [t for t, n in counts.most_common() if n >= need]


def style_snippet(name: str, lora_path: Path, base_model: str, prompt: str, source: Path) -> str:
    """A ready style file (the ``configs/styles`` schema) using the LoRA; drop it into ``$FACECHAIN_HOME/styles/``."""
    import yaml

    body = {
        "name": name,
        "title": name.replace("_", " ").title(),
        "description": f"Style LoRA trained by 'facechain train-style' on {source.name}.",
        "base_model": base_model,
        "style_lora": str(lora_path),
        "style_weight": 0.25,  # facechain's default style weight (reference implementation); tune per style
        "prompt": prompt or "portrait",
        "negative_prompt": None,
        "source": f"facechain train-style {source}",
    }
    header = (f"# facechain style '{name}' made by 'facechain train-style'. Copy this file to\n"
              f"# {facechain_home() / 'styles'}/{name}.yaml to use it with 'facechain generate --style {name}'.\n"
              "# The identity's trigger word and tags are put in front of the prompt; tune style_weight/prompt.\n")
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=1000)


def train_style(
    folder: str | Path,
    *,
    name: str | None = None,
    output: str | Path | None = None,
    config_file: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> StyleLora:
    """Train a style LoRA (paper preset: rank 32, lr 1e-4, cosine with restarts, 20 epochs).

    ``folder`` holds style images with a same-named ``.txt`` caption each, or a ``metadata.jsonl``.
    Writes ``<output>/pytorch_lora_weights.safetensors``, ``facechain_lora.json`` and ``style.yaml``
    (default output ``$FACECHAIN_HOME/loras/<name>``).
    """
    cfg = load_config(StyleTrainConfig, "train_style", config_file, overrides)
    folder = _as_paths(folder)[0]
    examples = read_captioned_folder(folder)
    name = check_name(name or default_name([folder]))
    output = Path(output).expanduser() if output else facechain_home() / "loras" / name
    check_destination(output, overwrite)
    work = work_dir_for(output)
    base, cfg = _resolve_models(cfg)
    resume_from = _start_work(work, resume, progress)
    with _work_folder_kept_only_if_resumable(work):
        trainer = _load_trainer(base, examples, cfg, work, progress)
        _say(progress, f"training style '{name}': {trainer.describe()}")
        outcome = trainer.train(resume_from=resume_from)
        prompt = _write_style_lora(output, overwrite, name, folder, examples, base, cfg, trainer, outcome, work)
    shutil.rmtree(work, ignore_errors=True)
    _say(progress, f"style LoRA '{name}' saved in {output}; style definition: {output / STYLE_SNIPPET}")
    return StyleLora(name, output, base.reference, prompt, outcome)


def _write_style_lora(output: Path, overwrite: bool, name: str, folder: Path, examples: list[TrainingExample],
                      base: BaseModelInfo, cfg: TrainConfig, trainer: LoraTrainer, outcome: TrainOutcome,
                      work: Path) -> str:
    """The LoRA, its manifest and a ready style file, written atomically; returns the style prompt."""
    prompt = ", ".join(common_caption_tags([e.caption for e in examples]))
    with atomic_directory(output, overwrite=overwrite) as tmp:
        trainer.save_lora(tmp)
        if (work / LOG_FILE).exists():
            shutil.copy2(work / LOG_FILE, tmp / LOG_FILE)
        manifest = {"name": name, "kind": "style", "base_model": base.reference, "family": base.family,
                    "base_model_revision": base.revision, "base_model_sha256": base.unet_sha256,
                    "images": len(examples), "source": str(folder.resolve()), "prompt": prompt, "created": _now(),
                    "lora": _lora_manifest(cfg, base.family), "training": _training_manifest(cfg, outcome, trainer)}
        atomic_write_text(tmp / STYLE_MANIFEST, json.dumps(manifest, indent=2))
        atomic_write_text(tmp / STYLE_SNIPPET,
                          style_snippet(name, output / LORA_FILE, base.reference, prompt, folder.resolve()))
    return prompt
