"""Train the FACT adapter (resampler + gated layers); the base model and face encoder stay frozen.

The published FaceChain-FACT release has no training code; this follows the article:

* loss = denoising MSE + λ·FAIR, where FAIR (Face Adapting Increment Regularisation) is, per
  adapted block, ‖increment outside the face mask‖ / ‖features outside the face mask‖, averaged
  over blocks: the adapter may change the face, not the background, pose or clothes;
* face shuffle: the condition is another photo of the same person (probability ``shuffle_prob``);
* face drop: the face tokens are zeroed (→ the unconditional face embedding used for CFG) with
  probability ``drop_prob``.

Checkpoints go to ``<output>.work/checkpoint-NNNNNN`` (resume with ``resume=True``); the finished
adapter is written atomically to ``<output>/`` (``fact_adapter.safetensors``,
``face_encoder.safetensors``, ``fact.json``, ``train_log.jsonl``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import options, progress
from ..atomic import atomic_directory
from ..config import config_to_dict, load_config
from ..diffusion.conditioning import PromptEncoder, size_time_ids
from ..diffusion.family import FAMILY_NAMES, family_of_unet_config
from ..diffusion.vae import encode_posterior, vae_dtype
from ..errors import InputError, TrainingError, writing
from ..locking import output_lock
from ..outputs import OutputKind, announce, check_output, check_work_dir, claim_work_dir, guard_inputs, remove_work_dir
from ..textfiles import read_json
from ..types import Rejection
from ..weight_files import load_tensor_pickle
from .adapter import FaceTokenRouting, FactAdapter, install_adapter
from .config import ADAPTER_FILE, ENCODER_FILE, MANIFEST_FILE, AdapterTrainConfig
from .data import AdapterDataset, build_dataset, person_folders
from .encoder import FaceEncoder

LOG_FILE = "train_log.jsonl"
CKPT_PREFIX = "checkpoint-"


# --- the FAIR loss --------------------------------------------------------------------------
def fair_loss(records: list[tuple[torch.Tensor, torch.Tensor]], face_mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean over blocks and samples of ‖Δ·(1-M)‖ / ‖F·(1-M)‖ (M resized to each block's grid).

    ``records``: (features, increment) pairs, each (B, h·w, C), as recorded by the adapter hooks;
    ``face_mask``: (B, 1, H, W) in [0, 1], 1 on the face.
    """
    if not records:
        return face_mask.new_zeros(())
    height, width = face_mask.shape[-2:]
    terms = []
    for features, delta in records:
        tokens = features.shape[1]
        h = max(1, round(math.sqrt(tokens * height / width)))
        w = tokens // h
        outside = 1.0 - F.interpolate(face_mask.float(), size=(h, w), mode="area")  # (B, 1, h, w)
        outside = outside.flatten(2).transpose(1, 2).to(delta.dtype)  # (B, h·w, 1)
        num = (delta * outside).flatten(1).norm(dim=1)
        den = (features.detach() * outside).flatten(1).norm(dim=1)
        terms.append(num / (den + eps))
    return torch.stack(terms).mean()


# --- results --------------------------------------------------------------------------------
@dataclass
class AdapterTrainResult:
    output: Path
    steps: int
    final_loss: float
    people: dict[str, int]
    rejections: list[Rejection] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"output": str(self.output), "steps": self.steps, "final_loss": self.final_loss, "people": self.people,
                "rejections": [r.to_json() for r in self.rejections]}


# --- the trainer ----------------------------------------------------------------------------
class AdapterTrainer:
    """One training run over an :class:`AdapterDataset` with frozen SD components."""

    def __init__(self, components: dict[str, Any], encoder: FaceEncoder, adapter: FactAdapter, dataset: AdapterDataset,
                 cfg: AdapterTrainConfig, work_dir: Path | None, device: torch.device, progress: bool = True):
        self.unet, self.vae = components["unet"], components["vae"]
        self.noise_scheduler = components["noise_scheduler"]
        self.encoder, self.adapter, self.dataset, self.cfg = encoder, adapter, dataset, cfg
        self.work_dir, self.device, self.progress = work_dir, device, progress
        self.frozen_dtype = next(self.unet.parameters()).dtype
        self.text, self.added = self._encode_caption(components, cfg.caption, cfg.resolution)
        self.routing = FaceTokenRouting(text_len=self.text.shape[1], face_len=adapter.config.num_queries, scale=1.0)
        self.adapter.to(device, torch.float32).train()
        self.params = [p for p in self.adapter.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        # fp16 gradients through a half-precision UNet underflow without loss scaling (bf16 and
        # fp32 have fp32's exponent range and need none); the adapter itself stays fp32.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.frozen_dtype == torch.float16)
        self.step = 0
        self.history: list[float] = []
        self.latents = self._encode_targets()

    @torch.no_grad()
    def _encode_caption(self, parts: dict[str, Any], caption: str, resolution: int):
        """(1, 77, D) caption states and, for SDXL, the added conditioning (pooled text + size ids of
        an uncropped ``resolution`` square: the photos are face-aligned crops made at that size)."""
        encoders = [parts["text_encoder"]] + ([parts["text_encoder_2"]] if parts.get("text_encoder_2") is not None else [])
        tokenizers = [parts["tokenizer"]] + ([parts["tokenizer_2"]] if parts.get("text_encoder_2") is not None else [])
        encoder = PromptEncoder(encoders, tokenizers)
        text = encoder(encoder.tokenize([caption]))
        if not encoder.dual:
            return text.hidden.to(self.frozen_dtype), None
        ids = size_time_ids((resolution, resolution), (0, 0), (resolution, resolution))[None]
        return text.hidden.to(self.frozen_dtype), {"text_embeds": text.pooled.to(self.frozen_dtype),
                                                   "time_ids": ids.to(self.device, self.frozen_dtype)}

    def _encode_targets(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """VAE posterior (mean, std) of every target image, computed once (the VAE is frozen; in fp32
        where fp16 would overflow, as with SDXL's VAE)."""
        family = family_of_unet_config(self.unet.config)
        dtype = vae_dtype(self.vae, self.frozen_dtype, family)
        self.vae.to(dtype=dtype)
        out = {}
        for photo in self.dataset.photos:
            mean, std = encode_posterior(self.vae, photo.pixels[None], family)
            out[id(photo)] = (mean.to(self.frozen_dtype), std.to(self.frozen_dtype))
        return out

    # -- one step ------------------------------------------------------------------------------
    def _batch(self, step: int):
        rng = random.Random(self.cfg.seed * 1_000_003 + step)
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        draws = [self.dataset.draw(rng, self.cfg.shuffle_prob, self.cfg.drop_prob) for _ in range(self.cfg.batch_size)]
        scale = float(getattr(self.vae.config, "scaling_factor", 0.18215))
        latents = []
        for d in draws:
            mean, std = self.latents[id(d.target)]
            latents.append(mean + std * torch.randn(mean.shape, generator=gen).to(mean))
        latents = torch.cat(latents) * scale
        tokens = torch.stack([torch.zeros_like(d.condition.face_tokens) if d.dropped else d.condition.face_tokens for d in draws])
        masks = torch.stack([d.target.mask for d in draws])
        noise = torch.randn(latents.shape, generator=gen).to(latents)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(draws),), generator=gen).to(self.device)
        return draws, latents, tokens.to(self.device), masks.to(self.device), noise, t

    def train_step(self, step: int) -> dict[str, float]:
        loss, mse, fair, draws = self._loss(step)
        if not torch.isfinite(loss):
            raise TrainingError(f"step {step}: the loss became {loss.item()} (lower the learning rate)")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients; a step with inf/NaN ones is skipped
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"loss": loss.item(), "mse": mse.item(), "fair": fair.item(),
                "shuffled": sum(d.shuffled for d in draws), "dropped": sum(d.dropped for d in draws)}

    @torch.no_grad()
    def evaluate(self, seeds: range = range(10**6, 10**6 + 4)) -> dict[str, float]:
        """Loss on fixed draws (same photos, noise and timesteps every call): a comparable number."""
        rows = [self._loss(s) for s in seeds]
        return {"loss": float(sum(r[0] for r in rows) / len(rows)), "mse": float(sum(r[1] for r in rows) / len(rows)),
                "fair": float(sum(r[2] for r in rows) / len(rows))}

    def _loss(self, step: int):
        draws, latents, tokens, masks, noise, t = self._batch(step)
        noisy = self.noise_scheduler.add_noise(latents, noise, t)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, t)
        else:
            target = noise
        face = self.adapter.resampler(tokens.float()).to(self.frozen_dtype)
        states = torch.cat([self.text.expand(len(draws), -1, -1), face], dim=1)
        self.routing.record = []
        mixed = self.frozen_dtype != torch.float32  # fp32 adapter + half-precision base model
        try:
            with torch.autocast(self.device.type, dtype=self.frozen_dtype, enabled=mixed):
                extra = {}
                if self.added is not None:  # SDXL: pooled text + size/crop ids, the same for every sample
                    extra["added_cond_kwargs"] = {k: v.expand(len(draws), -1) for k, v in self.added.items()}
                pred = self.unet(noisy, t, encoder_hidden_states=states, **extra).sample
            mse = F.mse_loss(pred.float(), target.float())
            fair = fair_loss(self.routing.record, masks)
        finally:
            self.routing.record = None
        loss = mse + self.cfg.fair_weight * fair
        return loss, mse, fair, draws

    # -- checkpoints ---------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        keep = ("base_model", "resolution", "batch_size", "seed", "caption", "fair_weight", "shuffle_prob", "drop_prob")
        return {k: getattr(self.cfg, k) for k in keep} | {"fact_config": json.loads(self.adapter.config.to_json())}

    def save_checkpoint(self) -> Path:
        from .checkpoint import save_safetensors

        assert self.work_dir is not None
        dest = self.work_dir / f"{CKPT_PREFIX}{self.step:06d}"
        with atomic_directory(dest, overwrite=True) as tmp:
            save_safetensors(tmp / ADAPTER_FILE, self.adapter, self.adapter.config, "adapter")
            torch.save({"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()},
                       tmp / "training_state.pt")
            (tmp / "state.json").write_text(json.dumps({"step": self.step, "settings": self._settings(),
                                                        "history": self.history[-1000:]}, indent=1))
        for old in checkpoints(self.work_dir)[:-self.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return dest

    def resume(self, folder: Path) -> None:
        from .checkpoint import MappingReport, load_into, read_ours

        try:
            info = read_json(folder / "state.json", dict, "checkpoint state")
            state, _, _ = read_ours(folder / ADAPTER_FILE, "adapter")
            opt = load_tensor_pickle(folder / "training_state.pt")
            if not isinstance(opt, dict) or "optimizer" not in opt or not isinstance(info.get("step"), int):
                raise InputError(folder, "not a facechain FACT checkpoint")
        except InputError as e:
            raise InputError(e.path, f"{e.reason}; unusable checkpoint: train without {options.spell_value('resume')} "
                                     "to start over") from None
        if info.get("settings") != self._settings():
            changed = sorted(k for k in self._settings() if info.get("settings", {}).get(k) != self._settings()[k])
            raise InputError(folder, f"checkpoint was made with other settings ({', '.join(changed)}); train without resume")
        load_into(self.adapter, state, MappingReport(str(folder)))
        self.optimizer.load_state_dict(opt["optimizer"])
        if opt.get("scaler"):
            self.scaler.load_state_dict(opt["scaler"])
        self.step = int(info["step"])
        self.history = list(info.get("history", []))

    # -- the loop ------------------------------------------------------------------------------
    def _log(self, row: dict[str, Any]) -> None:
        if self.work_dir is None:
            return
        with writing(self.work_dir / LOG_FILE), open(self.work_dir / LOG_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def train(self) -> float:
        cfg = self.cfg
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        bar = progress.task("training FACT adapter", total=cfg.steps, unit="step") if self.progress else None
        if bar is not None and self.step:
            bar.update(self.step, message=f"resumed at step {self.step}")
        start = time.perf_counter()
        last = float("nan")
        while self.step < cfg.steps:
            row = self.train_step(self.step)
            self.step += 1
            last = row["loss"]
            self.history.append(last)
            if bar is not None:
                bar.update(1, message=f"loss {last:.4f}, fair {row['fair']:.3f}")
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                self._log({"step": self.step, **{k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()},
                           "lr": cfg.learning_rate, "seconds": round(time.perf_counter() - start, 2)})
            if self.work_dir is not None and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        return last


def checkpoints(work_dir: Path) -> list[Path]:
    if not Path(work_dir).is_dir():
        return []
    return sorted(d for d in Path(work_dir).iterdir() if d.is_dir() and d.name.startswith(CKPT_PREFIX) and (d / "state.json").exists())


# --- the public function --------------------------------------------------------------------
def default_output(dataset: Path) -> Path:
    from ..paths import facechain_home

    return facechain_home() / "adapters" / f"fact-{Path(dataset).resolve().name}"


def _load_components(path: Path, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The frozen base model (SD 1.5: one text encoder; SDXL: two) from its resolved local path."""
    from diffusers import DDPMScheduler

    from ..diffusion.loading import load_sd_pipeline

    pipe = load_sd_pipeline(path, dtype=dtype, name="base model")
    parts = dict(unet=pipe.unet, vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                 text_encoder_2=getattr(pipe, "text_encoder_2", None), tokenizer_2=getattr(pipe, "tokenizer_2", None),
                 noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config))
    for k in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if parts[k] is not None:
            parts[k].to(device).eval().requires_grad_(False)
    return parts


def _base_model_family(cfg: AdapterTrainConfig) -> tuple[Path, str]:
    """The base model's path and family, and a one-line error now (before anything loads) when an
    ``adapter_init`` of the other family is given."""
    from ..diffusion.family import base_model_family
    from .models import adapter_family, check_adapter_family, locate_adapter, resolve_reference

    path = resolve_reference(cfg.base_model, "base model")
    family = base_model_family(path).family
    if cfg.adapter_init:
        init = locate_adapter(cfg.adapter_init, variant=cfg.variant)
        check_adapter_family(init, adapter_family(init), family)
    return path, family


def _encoder_file(reference: str) -> Path:
    """The face encoder's weights file (a missing model fails here, before any work, in one line)."""
    from .models import encoder_in_folder, resolve_reference

    path = resolve_reference(reference, "face encoder")
    return encoder_in_folder(path) if path.is_dir() else path


def _load_encoder(path: Path) -> FaceEncoder:
    from .models import load_encoder

    encoder, _ = load_encoder(path)
    return encoder


def _initial_adapter(cfg: AdapterTrainConfig, unet, encoder: FaceEncoder) -> FactAdapter:
    """Fresh (gates closed) or from ``adapter_init``; the architecture follows the face encoder's."""
    import dataclasses

    from .models import load_adapter, locate_files

    d = unet.config.cross_attention_dim
    fact_cfg = dataclasses.replace(encoder.config, output_dim=int(d[0] if isinstance(d, (list, tuple)) else d))
    if not cfg.adapter_init:
        return FactAdapter.for_unet(unet, fact_cfg)
    files = locate_files(cfg.adapter_init, encoder=cfg.face_encoder, variant=cfg.variant)
    adapter, _ = load_adapter(files.adapter, unet, fact_cfg)
    if adapter.config.encoder_width != encoder.config.encoder_width:
        raise InputError(cfg.adapter_init, "adapter does not match the face encoder's width")
    return adapter


FACT_ADAPTER = OutputKind("FACT adapter folder", (MANIFEST_FILE,))


def train_adapter(
    dataset: Path | str,
    output: Path | str | None = None,
    *,
    config: Path | str | None = None,
    base_model: str | None = None,
    face_encoder: str | None = None,
    adapter_init: str | None = None,
    variant: str | None = None,
    size: int | str | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    fair_weight: float | None = None,
    shuffle_prob: float | None = None,
    drop_prob: float | None = None,
    caption: str | None = None,
    checkpoint_every: int | None = None,
    seed: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    head_mask: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    analyzer=None,
) -> AdapterTrainResult:
    """Train a FACT adapter on ``dataset`` (one sub-folder of photos per person); see the module doc.

    The keywords are the ``facechain train-adapter`` flags; ``None`` means "the recipe's" (precedence:
    keyword > ``config``'s ``adapter:`` section > :class:`AdapterTrainConfig`). ``size`` is the training
    side in px (config field ``resolution``); ``device``/``dtype`` ``auto``: the config file's, else the
    recipe's (``dtype`` fp32 for the frozen parts). ``quiet``: no progress.
    """
    from ..diffusion.device import resolve_device, resolve_dtype, training_dtype

    given = options.validate(dict(
        base_model=base_model, face_encoder=face_encoder, adapter_init=adapter_init, variant=variant, size=size,
        steps=steps, batch_size=batch_size, learning_rate=learning_rate, fair_weight=fair_weight,
        shuffle_prob=shuffle_prob, drop_prob=drop_prob, caption=caption, checkpoint_every=checkpoint_every, seed=seed,
        device=device, dtype=dtype, head_mask=head_mask), square_size=True)
    given["resolution"] = given.pop("size")
    for key in ("device", "dtype"):
        if given[key] == "auto":
            given[key] = None  # not given: the config file's, else the recipe's
    cfg = load_config(AdapterTrainConfig, "adapter", config, given)
    cfg.validate()
    dataset = Path(dataset)
    person_folders(dataset)  # a missing or empty dataset fails before anything is loaded
    output = Path(output) if output else default_output(dataset)
    work = output.with_name(output.name + ".work")
    # fail before any heavy work: not onto the dataset, over someone else's folder, or on a read-only disk
    note = check_output(output, FACT_ADAPTER, inputs=[dataset, config], overwrite=overwrite or resume)
    guard_inputs(work, [dataset])
    with output_lock(output):  # a second run into the same output fails at once
        check_work_dir(work)  # a <output>.work the user made is never reused or removed
        start_from = None
        if resume:
            found = checkpoints(work)
            if not found:
                raise InputError(work, f"no checkpoint to resume from (train without {options.spell_value('resume')})")
            start_from = found[-1]
        else:
            claim_work_dir(work, output)
        base_path, family = _base_model_family(cfg)  # a family mismatch first: it says what to change
        encoder_file = _encoder_file(cfg.face_encoder)

        with progress.reporting(quiet=quiet):
            dev = resolve_device(cfg.device)
            dt = training_dtype(dev) if cfg.dtype == "auto" else resolve_dtype(dev, cfg.dtype)
            torch.manual_seed(cfg.seed)
            progress.say(f"loading face encoder {encoder_file}")
            encoder = _load_encoder(encoder_file).to(dev)
            if analyzer is None:
                from ..perception import get_analyzer

                analyzer = get_analyzer(cfg.detector)
            from .preprocess import head_mask_fn

            data = build_dataset(dataset, encoder, cfg.resolution, analyzer=analyzer, mask_fn=head_mask_fn(cfg.head_mask),
                                 max_per_person=cfg.max_photos_per_person)  # before the big base model: unusable photos fail fast
            progress.say(f"loading {FAMILY_NAMES[family]} base model {cfg.base_model}")
            components = _load_components(base_path, dev, dt)
            adapter = _initial_adapter(cfg, components["unet"], encoder)
            trainer = AdapterTrainer(components, encoder, adapter, data, cfg, work, dev)
            hooks = install_adapter(components["unet"], adapter, trainer.routing)
            try:
                if start_from is not None:
                    trainer.resume(start_from)
                final = trainer.train()
            finally:
                hooks.remove()

        people = {k: len(v) for k, v in data.people.items()}
        manifest = {
            "kind": "facechain-fact-adapter", "family": family, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "dataset": str(dataset.resolve()), "people": people, "steps": trainer.step, "final_loss": final,
            "training": config_to_dict(cfg), "fact_config": json.loads(adapter.config.to_json()),
            "rejections": [r.to_json() for r in data.rejections],
        }
        from .checkpoint import save_safetensors

        announce(note)
        with atomic_directory(output, overwrite=overwrite or resume) as tmp:
            save_safetensors(tmp / ADAPTER_FILE, adapter, adapter.config, "adapter",
                             {"base_model": cfg.base_model, "family": family})
            save_safetensors(tmp / ENCODER_FILE, encoder, encoder.config, "encoder")
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
            if (work / LOG_FILE).exists():
                shutil.copy2(work / LOG_FILE, tmp / LOG_FILE)
        remove_work_dir(work)
        return AdapterTrainResult(output, trainer.step, final, people, data.rejections)
