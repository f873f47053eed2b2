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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from .. import __version__, options, progress
from ..atomic import atomic_directory, atomic_write_text
from ..config import config_to_dict, load_config
from ..errors import InputError
from ..diffusion.family import FAMILY_NAMES
from ..identity import LORA_FILE, MANIFEST, Identity
from ..locking import output_lock
from ..models.references import resolve_reference
from ..outputs import OutputKind, check_output, check_work_dir, claim_work_dir, guard_inputs, remove_work_dir
from ..paths import facechain_home, identities_dir
from ..preprocess.config import PrepareConfig
from ..progress import say
from .checkpoint import latest_checkpoint
from .components import BaseModelInfo, load_components, resolve_base_model
from .config import StyleTrainConfig, TrainConfig
from .data import PreparedDataset, TrainingExample, is_prepared_folder, read_captioned_folder, read_prepared
from .trainer import LOG_FILE, LoraTrainer, TrainOutcome, resolve_precision

log = logging.getLogger(__name__)

PathsLike = str | Path | Sequence[str | Path]
IDENTITY = OutputKind("identity", (MANIFEST,))  # what --overwrite may replace
PREPARE_RESOLUTION = PrepareConfig().resolution  # prepare's default crop size (512)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


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


def _local(reference: str | None) -> Path | None:
    """A model reference that is a local path (an output must not land on it), else None."""
    if reference and Path(reference).expanduser().exists():
        return Path(reference).expanduser()
    return None


def work_dir_for(output: Path) -> Path:
    """Checkpoints and the prepared dataset of an unfinished run: ``<output>.work`` beside the output."""
    return output.with_name(output.name + ".work")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _start_work(work: Path, output: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (``resume``), or a clean work folder (only ever one facechain made)."""
    check_work_dir(work)  # a <output>.work the user made is never reused or removed
    if resume:
        ckpt = latest_checkpoint(work)
        if ckpt is None:
            raise InputError(work, f"no checkpoint to resume from (train without {options.spell_value('resume')})")
        progress.say(f"resuming from {ckpt}")
        return ckpt
    if work.exists() and latest_checkpoint(work) is not None:
        progress.say(f"starting over: removing the checkpoints of an unfinished run in {work} "
                     f"(pass {options.spell_value('resume')} to continue it instead)")
    claim_work_dir(work, output)
    return None


@contextlib.contextmanager
def _work_folder_kept_only_if_resumable(work: Path) -> Iterator[None]:
    """On failure keep the work folder only when it holds a checkpoint to ``--resume`` from."""
    try:
        yield
    except BaseException:
        if work.exists() and latest_checkpoint(work) is None:
            remove_work_dir(work)
        raise


def _prepare_photos(inputs: list[Path], dest: Path, *, resume: bool, config, trigger, retouch, quiet,
                    analyzer, size: int | None = None) -> Path:
    """Run ``facechain prepare`` into the work folder (kept there, so resume does not redo it).

    ``size``: crop size when training needs larger crops than prepare's default (SDXL).
    """
    if resume and is_prepared_folder(dest):
        progress.say(f"reusing the prepared dataset in {dest}")
        return dest
    from ..preprocess.pipeline import prepare

    result = prepare(inputs if len(inputs) > 1 else inputs[0], dest, config=config, overwrite=True,
                     trigger=trigger, retouch=retouch, quiet=quiet, analyzer=analyzer, size=size)
    if hasattr(result, "summary"):
        progress.say(result.summary())
    return Path(getattr(result, "output_dir", dest))


def _load_trainer(info: BaseModelInfo, examples: list[TrainingExample], cfg: TrainConfig, work: Path) -> LoraTrainer:
    _, _, dtype = resolve_precision(cfg)
    progress.say(f"loading base model {info.reference} ({FAMILY_NAMES[info.family]})")
    components = load_components(info, dtype, vae=cfg.vae)
    trainer = LoraTrainer(components, examples, cfg, work_dir=work)
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


#: ``train``/``train_style`` keywords that are :class:`TrainConfig` fields of the same name.
TRAINING_KEYWORDS = ("base_model", "vae", "steps", "epochs", "batch_size", "learning_rate", "lr_scheduler", "rank", "alpha",
                     "train_text_encoder", "seed", "gradient_checkpointing", "cache_latents", "flip", "optimizer",
                     "checkpoint_every")
_DTYPE_TO_MIXED_PRECISION = {"auto": None, "fp32": "no", "fp16": "fp16", "bf16": "bf16"}


def training_overrides(keywords: dict[str, Any]) -> dict[str, Any]:
    """``train``/``train_style`` keywords -> :class:`TrainConfig` fields: ``size`` -> ``resolution``, ``dtype`` ->
    ``mixed_precision`` (fp32 = no mixed precision), ``device``/``dtype`` ``auto`` -> not given (the config file's,
    else automatic). Other keywords are ignored; every value is checked first (one-line errors)."""
    wanted = (*TRAINING_KEYWORDS, "size", "device", "dtype")
    values = options.validate({k: keywords.get(k) for k in wanted}, square_size=True)
    out = {k: values[k] for k in TRAINING_KEYWORDS if values.get(k) is not None}
    if values.get("size") is not None:
        out["resolution"] = int(values["size"])
    if values.get("device") not in (None, "auto"):
        out["device"] = values["device"]
    precision = _DTYPE_TO_MIXED_PRECISION[values.get("dtype") or "auto"]
    if precision is not None:
        out["mixed_precision"] = precision
    return out


def train(
    photos: PathsLike,
    *,
    name: str | None = None,
    output: str | Path | None = None,
    config: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    trigger: str | None = None,
    retouch: bool | None = None,
    base_model: str | None = None,
    vae: str | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    size: int | str | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    lr_scheduler: str | None = None,
    rank: int | None = None,
    alpha: float | None = None,
    train_text_encoder: bool | None = None,
    seed: int | None = None,
    dtype: str = "auto",
    gradient_checkpointing: bool | None = None,
    cache_latents: bool | None = None,
    flip: bool | None = None,
    optimizer: str | None = None,
    checkpoint_every: int | None = None,
    device: str = "auto",
    quiet: bool = False,
    analyzer: Any = None,
) -> Identity:
    """Train a face LoRA from ``photos`` (files/folders, or one prepared dataset folder).

    The keywords are the ``facechain train`` flags; ``None`` means "the recipe's" (precedence: keyword >
    ``config``'s ``train:`` section > :class:`TrainConfig` default). ``base_model`` may be SD 1.5 or SDXL: its
    family decides the defaults. ``size`` is the training side in px (config field ``resolution``; None: the
    family's native size, 512 or 1024); ``vae`` replaces the base model's VAE (e.g. ``sdxl-vae-fp16-fix``);
    ``dtype`` the training precision (config field ``mixed_precision``:
    ``fp32`` = no mixed precision, ``auto`` = bf16/fp16 on CUDA, fp32 elsewhere). ``trigger`` and ``retouch``
    are passed to :func:`~facechain.preprocess.pipeline.prepare`. ``quiet``: no progress. Returns the
    saved :class:`~facechain.identity.Identity`.
    """
    overrides = training_overrides(locals())  # the keywords above, before anything else is bound
    cfg = load_config(TrainConfig, "train", config, overrides)
    inputs = _as_paths(photos)
    prepared = inputs[0] if len(inputs) == 1 and is_prepared_folder(inputs[0]) else None
    if prepared is None:
        stray = [p for p in inputs if is_prepared_folder(p)]
        if stray:
            raise InputError(stray[0], "a prepared dataset must be given alone (not mixed with photos)")
    name = check_name(name or default_name(inputs))
    output = Path(output).expanduser() if output else identities_dir() / name
    work = work_dir_for(output)
    # before any heavy work: never onto the photos, over someone else's folder, or on a read-only disk
    note = check_output(output, IDENTITY, inputs=[*inputs, config, _local(cfg.base_model)],
                        overwrite=overwrite)
    guard_inputs(work, inputs)

    base, cfg = _resolve_models(cfg)  # a missing or unusable model fails here, in one line
    with output_lock(output), progress.reporting(quiet=quiet):  # a second run into the same output fails at once
        resume_from = _start_work(work, output, resume)
        with _work_folder_kept_only_if_resumable(work):
            if prepared is None:
                crops = cfg.resolution if base.family == "sdxl" and cfg.resolution > PREPARE_RESOLUTION else None
                prepared = _prepare_photos(inputs, work / "dataset", resume=resume, config=config, trigger=trigger,
                                           retouch=retouch, quiet=quiet, analyzer=analyzer, size=crops)
            elif trigger is not None or retouch is not None:
                log.warning("%s is already prepared: trigger/retouch are ignored", prepared)
            data = read_prepared(prepared)

            trainer = _load_trainer(base, data.examples, cfg, work)
            progress.say(f"training '{name}': {trainer.describe()}")
            outcome = trainer.train(resume_from=resume_from)

            if note:
                progress.say(note)
            identity = _write_identity(output, overwrite, name, base, data, cfg, trainer, outcome, work)
        remove_work_dir(work)
        progress.say(f"identity '{name}' saved in {output} (final loss {outcome.final_loss:.4f}, "
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
STYLE_LORA = OutputKind("style LoRA folder", (STYLE_MANIFEST,))


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
    config: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    base_model: str | None = None,
    vae: str | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    size: int | str | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    lr_scheduler: str | None = None,
    rank: int | None = None,
    alpha: float | None = None,
    train_text_encoder: bool | None = None,
    seed: int | None = None,
    dtype: str = "auto",
    gradient_checkpointing: bool | None = None,
    cache_latents: bool | None = None,
    flip: bool | None = None,
    optimizer: str | None = None,
    checkpoint_every: int | None = None,
    device: str = "auto",
    quiet: bool = False,
) -> StyleLora:
    """Train a style LoRA (paper preset: rank 32, lr 1e-4, cosine with restarts, 20 epochs).

    ``folder`` holds style images with a same-named ``.txt`` caption each, or a ``metadata.jsonl``.
    Writes ``<output>/pytorch_lora_weights.safetensors``, ``facechain_lora.json`` and ``style.yaml``
    (default output ``$FACECHAIN_HOME/loras/<name>``). The keywords are :func:`train`'s (section
    ``train_style:`` of ``config``; ``size`` -> ``resolution``, ``dtype`` -> ``mixed_precision``).
    """
    overrides = training_overrides(locals())  # the keywords above, before anything else is bound
    cfg = load_config(StyleTrainConfig, "train_style", config, overrides)
    folder = _as_paths(folder)[0]
    examples = read_captioned_folder(folder)
    name = check_name(name or default_name([folder]))
    output = Path(output).expanduser() if output else facechain_home() / "loras" / name
    work = work_dir_for(output)
    note = check_output(output, STYLE_LORA, inputs=[folder, config, _local(cfg.base_model)], overwrite=overwrite)
    guard_inputs(work, [folder])
    base, cfg = _resolve_models(cfg)
    with output_lock(output), progress.reporting(quiet=quiet):
        resume_from = _start_work(work, output, resume)
        with _work_folder_kept_only_if_resumable(work):
            trainer = _load_trainer(base, examples, cfg, work)
            progress.say(f"training style '{name}': {trainer.describe()}")
            outcome = trainer.train(resume_from=resume_from)
            if note:
                progress.say(note)
            prompt = _write_style_lora(output, overwrite, name, folder, examples, base, cfg, trainer, outcome, work)
        remove_work_dir(work)
        progress.say(f"style LoRA '{name}' saved in {output}; style definition: {output / STYLE_SNIPPET}")
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
