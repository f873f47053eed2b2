"""The LoRA trainer: noise-prediction MSE on the frozen UNet with low-rank adapters (paper section 2.2).

One step, as in diffusers' ``train_text_to_image_lora.py``: take a batch of latents, add DDPM
noise at random timesteps, predict the noise (or the velocity, for v-prediction bases) with the
UNet conditioned on the caption, and step the LoRA weights on the mean squared error.

What differs from that example, and why:

* latents and caption embeddings are cached once per dataset (:mod:`.dataset`), which removes the
  VAE and CLIP from every step; flipped images are encoded too, so flip augmentation still works;
* SDXL bases (two text encoders, ``text_time`` added conditioning) train through the same loop:
  the cached conditioning then also holds the pooled text embedding and the size/crop time ids
  (:mod:`facechain.diffusion.conditioning`), and a VAE flagged ``force_upcast`` (the stock SDXL VAE, which overflows
  in fp16) encodes in fp32 under fp16 mixed precision;
* every random draw (data order, flips, VAE posterior sample, noise, timesteps) comes from
  generators seeded by ``seed`` whose state goes into each checkpoint: the same seed gives the same
  LoRA on CPU, and a resumed run continues exactly where it stopped;
* 8-bit AdamW (bitsandbytes) on CUDA, torch AdamW elsewhere (8-bit AdamW is ~9x slower on CPU);
* a non-finite loss stops with :class:`~facechain.errors.TrainingError`, Ctrl-C finishes the
  current step and saves a checkpoint.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from .. import progress
from ..options import spell, spell_value
from ..config import config_to_dict
from ..diffusion.conditioning import PromptEncoder
from ..diffusion.device import native_bf16, resolve_device, training_dtype
from ..diffusion.family import FAMILY_NAMES
from ..diffusion.vae import vae_dtype
from ..diffusion.loading import quiet_ml_logs
from ..errors import ConfigError, TrainingError, writing
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .components import SDComponents
from .config import RESUME_KEYS, TrainConfig
from .data import TrainingExample
from .dataset import CachedDataset, LiveDataset

log = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"
TEXT_ENCODER_PREFIXES = ("text_encoder", "text_encoder_2")  # diffusers' LoRA key prefixes, in encoder order
_EVAL_SEED = 20240101  # fixed noise/timesteps for the before/after loss measurement


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: a checkpoint was saved; ``--resume`` continues from it."""

    def __init__(self, step: int, total: int, checkpoint: Path | None):
        self.step, self.total, self.checkpoint = step, total, checkpoint
        where = f"checkpoint saved in {checkpoint}; continue with --resume" if checkpoint else "no checkpoint (no work folder)"
        super().__init__(f"interrupted at step {step}/{total}; {where}")


@dataclass
class TrainOutcome:
    """What a training run did; recorded in the identity manifest."""

    steps: int
    losses: list[float]
    optimizer: str
    mixed_precision: str
    device: str
    attention: str
    latents_cached: bool
    seconds: float
    resumed_from_step: int | None = None
    fixed_batch_loss_before: float | None = None
    fixed_batch_loss_after: float | None = None

    @property
    def final_loss(self) -> float | None:
        """Mean of the last 10 step losses (single-step losses are noisy: random timesteps)."""
        tail = self.losses[-10:]
        return float(sum(tail) / len(tail)) if tail else None

    def to_json(self) -> dict[str, Any]:
        return dict(steps=self.steps, final_loss=self.final_loss, optimizer=self.optimizer,
                    mixed_precision=self.mixed_precision, device=self.device, attention=self.attention,
                    latents_cached=self.latents_cached, seconds=round(self.seconds, 2),
                    resumed_from_step=self.resumed_from_step,
                    fixed_batch_loss_before=self.fixed_batch_loss_before,
                    fixed_batch_loss_after=self.fixed_batch_loss_after)


def resolve_precision(cfg: TrainConfig) -> tuple[torch.device, str, torch.dtype]:
    """Device, accelerate mixed-precision mode and the dtype of the frozen weights.

    ``auto``: bf16 on GPUs that compute it natively (compute capability >= 8), fp16 on older GPUs
    (accelerate then scales the loss with a GradScaler; the LoRA weights stay fp32 so the scaler
    can unscale their gradients), fp32 elsewhere (fp16 on CPU is ~20x slower).
    """
    device = resolve_device(cfg.device)
    mode = cfg.mixed_precision
    if mode == "auto":
        mode = {torch.float32: "no", torch.float16: "fp16", torch.bfloat16: "bf16"}[training_dtype(device)]
    if mode == "fp16" and device.type == "cpu":
        raise ConfigError("mixed_precision fp16 needs a GPU; use bf16 or no on CPU")
    if mode == "bf16" and device.type == "cuda" and not native_bf16(device):
        log.warning("this GPU has no native bf16 (compute capability < 8): bf16 is emulated and slow; "
                    "mixed_precision fp16 or auto is faster")
    dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[mode]
    return device, mode, dtype


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig, device: torch.device):
    """(optimizer, name): 8-bit AdamW on CUDA when bitsandbytes works, else torch AdamW."""
    choice = cfg.optimizer
    if choice == "auto":
        choice = "adamw8bit" if device.type == "cuda" else "adamw"
    kwargs = dict(lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.adam_weight_decay,
                  eps=cfg.adam_epsilon)
    if choice == "adamw8bit":
        try:
            import bitsandbytes as bnb

            if device.type != "cuda":
                log.warning("8-bit AdamW on %s is ~9x slower than torch AdamW", device.type)
            return bnb.optim.AdamW8bit(params, **kwargs), "bitsandbytes AdamW8bit"
        except Exception as e:  # no CUDA build / import failure
            if cfg.optimizer == "adamw8bit":
                raise ConfigError(f"optimizer adamw8bit: bitsandbytes is unusable here ({str(e).splitlines()[0][:120]})") from None
            log.warning("bitsandbytes unusable (%s); using torch AdamW", e)
    return torch.optim.AdamW(params, **kwargs), "torch AdamW"


def _make_accelerator(device: torch.device, mixed_precision: str):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # AcceleratorState is a process-wide singleton that refuses a second precision; every
    # training run is a fresh start, so reset it (accelerate's own tests do the same).
    AcceleratorState._reset_state(True)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return Accelerator(mixed_precision=mixed_precision, cpu=device.type == "cpu")


@contextlib.contextmanager
def _stop_on_ctrl_c() -> Iterator[dict[str, bool]]:
    """First Ctrl-C (or SIGTERM) asks the loop to stop after the current step; a second one aborts at once."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True
        progress.say("stopping after this step to save a checkpoint (Ctrl-C again to abort at once)")

    # SIGTERM (kill, docker stop, a batch scheduler's notice) is treated like Ctrl-C: a checkpoint first
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _set_sdpa(unet) -> str:
    """Use PyTorch's fused scaled-dot-product attention (memory-efficient/flash kernels on GPU)."""
    try:
        from diffusers.models.attention_processor import AttnProcessor2_0

        unet.set_attn_processor(AttnProcessor2_0())
        return "sdpa"
    except Exception as e:  # pragma: no cover - exotic UNets
        log.warning("could not switch the UNet to SDPA attention: %s", e)
        return "default"


@dataclass
class _TrainState:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    fixed_loss_before: float | None = None
    resumed_from: int | None = None


class LoraTrainer:
    """Trains LoRA adapters on a Stable Diffusion UNet (and optionally its text encoder).

    ``components`` are the frozen base model parts; ``examples`` the (image, caption) pairs.
    With a ``work_dir`` the trainer writes ``train_log.jsonl`` and resumable checkpoints there.
    """

    def __init__(self, components: SDComponents, examples: list[TrainingExample], config: TrainConfig, *,
                 work_dir: Path | None = None, progress: bool = True,
                 on_step: Callable[[int, float], None] | None = None):
        quiet_ml_logs()
        from peft import LoraConfig

        self.family = components.family
        self.cfg = config = config.for_family(self.family)
        self.work_dir = Path(work_dir) if work_dir else None
        self.progress = progress
        self.on_step = on_step
        self.device, self.mixed_precision, self.weight_dtype = resolve_precision(config)
        self.accelerator = _make_accelerator(self.device, self.mixed_precision)
        self.device = self.accelerator.device
        self.noise_scheduler = components.noise_scheduler
        self.prediction_type = components.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise TrainingError(f"base model predicts '{self.prediction_type}'; only epsilon and v_prediction are supported")

        self.unet, self.vae = components.unet, components.vae
        self.text_encoders = components.text_encoders
        for module in (self.unet, *self.text_encoders):
            module.requires_grad_(False)
            module.to(self.device, dtype=self.weight_dtype)
        self.vae.requires_grad_(False)
        self.vae.to(self.device, dtype=vae_dtype(self.vae, self.weight_dtype, self.family))
        self.prompt_encoder = PromptEncoder(self.text_encoders, components.tokenizers)
        self.attention = _set_sdpa(self.unet)

        # LoRA A matrices are randomly initialised (B = 0): seed so the same seed gives the same run.
        # "gaussian" draws A from N(0, 1/rank^2) like the reference's LoRA layers; True is peft's kaiming init.
        init = "gaussian" if config.lora_init == "gaussian" else True
        torch.manual_seed(config.seed)
        self.unet.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights=init,
                                         target_modules=list(config.target_modules)))
        if config.train_text_encoder:
            for te in self.text_encoders:
                te.add_adapter(LoraConfig(r=config.text_encoder_rank, lora_alpha=config.text_encoder_alpha,
                                          init_lora_weights=init, target_modules=list(config.text_encoder_target_modules)))
        self.params = self._trainable_parameters()
        for p in self.params.values():  # LoRA weights train in fp32 even when the base is fp16/bf16
            p.data = p.data.float()
        if config.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
            if config.train_text_encoder:
                for te in self.text_encoders:
                    te.gradient_checkpointing_enable()

        dataset_cls = CachedDataset if config.cache_latents else LiveDataset
        self.dataset = dataset_cls(examples, self.vae, self.prompt_encoder, resolution=config.resolution,
                                   flip=config.flip, device=self.device, cache_text=not config.train_text_encoder,
                                   time_ids=self.family == "sdxl", progress=progress)
        if config.cache_latents:  # the cache replaces them: off the GPU, and no references kept
            unused = [self.vae] + ([] if config.train_text_encoder else list(self.text_encoders))
            if self.device.type != "cpu":
                for module in unused:
                    module.to("cpu")
            self.vae = None
            if not config.train_text_encoder:
                self.text_encoders, self.prompt_encoder = [], None
            del unused
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

        self.total_steps = config.total_steps(len(self.dataset))
        optimizer, self.optimizer_name = make_optimizer(list(self.params.values()), config, self.device)
        from diffusers.optimization import get_scheduler

        lr_scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps,
                                     num_training_steps=self.total_steps, num_cycles=config.lr_num_cycles)
        self.optimizer, self.lr_scheduler = self.accelerator.prepare(optimizer, lr_scheduler)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.state = _TrainState()
        self._order: tuple[int, torch.Tensor] | None = None

    # -- description ------------------------------------------------------------------
    def describe(self) -> str:
        c = self.cfg
        return (f"{FAMILY_NAMES[self.family]} base, {self.total_steps} steps on {len(self.dataset)} images at "
                f"{c.resolution}px, batch {c.batch_size}, "
                f"LoRA rank {c.rank}/alpha {c.alpha:g} ({c.lora_init} init){' + text encoder' if c.train_text_encoder else ''}, "
                f"lr {c.learning_rate:g} {c.lr_scheduler}; device {self.device.type}, precision "
                f"{'fp32' if self.mixed_precision == 'no' else self.mixed_precision}"
                f"{' with loss scaling' if self.accelerator.scaler is not None else ''}, optimizer {self.optimizer_name}, "
                f"attention {self.attention}, latents {'cached' if c.cache_latents else 'encoded every step'}"
                f"{', gradient checkpointing' if c.gradient_checkpointing else ''}")

    def _trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        params = {f"unet.{n}": p for n, p in self.unet.named_parameters() if p.requires_grad}
        if self.cfg.train_text_encoder:
            for prefix, te in zip(TEXT_ENCODER_PREFIXES, self.text_encoders):
                params.update({f"{prefix}.{n}": p for n, p in te.named_parameters() if p.requires_grad})
        return params

    # -- one step -----------------------------------------------------------------------
    def _batch_indices(self, step: int) -> list[int]:
        """Examples of ``step``: a seeded shuffle per epoch, so the order needs no checkpointed state."""
        n, bs = len(self.dataset), self.cfg.batch_size
        out = []
        for k in range(step * bs, step * bs + bs):
            epoch, pos = divmod(k, n)
            if self._order is None or self._order[0] != epoch:
                g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
                self._order = (epoch, torch.randperm(n, generator=g))
            out.append(int(self._order[1][pos]))
        return out

    def _loss(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, batch) -> torch.Tensor:
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == "epsilon":
            target = noise
        else:
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        with self.accelerator.autocast():
            text = batch.text if batch.text is not None else self.prompt_encoder(batch.input_ids)
            text = text.to(self.device, self.weight_dtype)
            extra = {}
            if self.family == "sdxl":  # SDXL's added conditioning: pooled text + size/crop time ids
                extra["added_cond_kwargs"] = {"text_embeds": text.pooled,
                                              "time_ids": batch.time_ids.to(self.device, self.weight_dtype)}
            pred = self.unet(noisy.to(self.weight_dtype), timesteps, text.hidden, **extra).sample
        return F.mse_loss(pred.float(), target.float())

    def _draw(self, indices: list[int], generator: torch.Generator, allow_flip: bool):
        """Flips, batch latents, noise and timesteps from ``generator`` (always in this order)."""
        bsz = len(indices)
        flips = (torch.rand(bsz, generator=generator) < 0.5).tolist() if allow_flip else [False] * bsz
        batch = self.dataset.batch(indices, flips, generator)
        latents = batch.latents.to(self.device)
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        t_max = int(self.noise_scheduler.config.num_train_timesteps)
        timesteps = torch.randint(0, t_max, (bsz,), generator=generator).to(self.device)
        return batch, latents, noise, timesteps

    def training_step(self) -> float:
        """One optimisation step; raises TrainingError when the loss is not finite."""
        batch, latents, noise, timesteps = self._draw(self._batch_indices(self.state.step), self.generator, self.cfg.flip)
        loss = self._loss(latents, noise, timesteps, batch)
        if not torch.isfinite(loss):
            raise TrainingError(self._divergence_message(float(loss.detach())))
        self.accelerator.backward(loss)
        if self.accelerator.sync_gradients and self.cfg.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(list(self.params.values()), self.cfg.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def _divergence_message(self, value: float) -> str:
        step = self.state.step + 1
        hint = f"lower {spell('learning_rate')}"
        if self.mixed_precision != "no":
            hint += f" or {spell_value('dtype', 'fp32')}"
        last = latest_checkpoint(self.work_dir) if self.work_dir else None
        saved = f"; last checkpoint: {last}" if last else ""
        return f"loss became {value} at step {step}/{self.total_steps}: training diverged (try a {hint}){saved}"

    @torch.no_grad()
    def fixed_batch_loss(self, samples: int | None = None) -> float | None:
        """Loss on a fixed batch (first ``samples`` examples, fixed noise and timesteps, no flip).

        The same call before and after training measures whether the LoRA learned the data.
        """
        n = min(self.cfg.eval_samples if samples is None else samples, len(self.dataset))
        if n <= 0:
            return None
        was_training = self.unet.training
        self.unet.eval()
        g = torch.Generator().manual_seed(_EVAL_SEED)
        batch, latents, noise, timesteps = self._draw(list(range(n)), g, allow_flip=False)
        total = 0.0
        for k in range(n):  # one at a time: no extra activation memory
            one = slice(k, k + 1)
            total += float(self._loss(latents[one], noise[one], timesteps[one], batch.select(one)))
        self.unet.train(was_training)
        return total / n

    # -- checkpoints --------------------------------------------------------------------
    def _resume_info(self) -> dict[str, Any]:
        cfg = config_to_dict(self.cfg)
        return {"settings": {k: cfg[k] for k in RESUME_KEYS} | {"total_steps": self.total_steps},
                "losses": self.state.losses, "seconds": self.state.seconds,
                "fixed_batch_loss_before": self.state.fixed_loss_before, "optimizer": self.optimizer_name}

    def save_checkpoint(self) -> Path:
        if self.work_dir is None:
            raise TrainingError("no work folder to save a checkpoint in")
        state: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        return save_checkpoint(self.work_dir, self.state.step, self.params, state, self._resume_info(),
                               keep=self.cfg.keep_checkpoints)

    def load_checkpoint(self, folder: Path) -> int:
        """Restore LoRA weights, optimizer, schedule and RNG states; returns the step reached."""
        ckpt = load_checkpoint(folder)
        saved = ckpt.info.get("settings", {})
        now = self._resume_info()["settings"]
        for key, value in now.items():
            if key in saved and saved[key] != value:
                raise ConfigError(f"--resume: {ckpt.folder} was trained with {key}={saved[key]!r}, now {value!r}; "
                                  "use the same settings, or start over without --resume")
        missing = set(self.params) - set(ckpt.params)
        if missing:
            raise ConfigError(f"--resume: {ckpt.folder} lacks {len(missing)} LoRA weights (different LoRA settings)")
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(ckpt.params[name].to(p.device, p.dtype))
        st = ckpt.training_state
        self.optimizer.load_state_dict(st["optimizer"])
        self.lr_scheduler.load_state_dict(st["lr_scheduler"])
        self.generator.set_state(st["generator"])
        torch.set_rng_state(st["torch_rng"])
        if "cuda_rng" in st and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st["cuda_rng"])
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and "scaler" in st:
            scaler.load_state_dict(st["scaler"])
        self.state = _TrainState(step=ckpt.step, losses=list(ckpt.info.get("losses", []))[:ckpt.step],
                                 seconds=float(ckpt.info.get("seconds", 0.0)),
                                 fixed_loss_before=ckpt.info.get("fixed_batch_loss_before"), resumed_from=ckpt.step)
        return ckpt.step

    # -- the loop -----------------------------------------------------------------------
    def _open_log(self):
        """``train_log.jsonl`` in the work folder, cut back to the resumed step."""
        if self.work_dir is None:
            return None
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / LOG_FILE
        kept = []
        if self.state.step and path.exists():
            for line in path.read_bytes().decode("utf-8", "replace").splitlines():  # a damaged line is dropped
                with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
                    if int(json.loads(line)["step"]) <= self.state.step:
                        kept.append(line)
        path.write_text("".join(k + "\n" for k in kept))
        return open(path, "a", encoding="utf-8")

    def train(self, resume_from: Path | None = None) -> TrainOutcome:
        """Run (or continue) training to ``total_steps``; returns the outcome."""
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        else:
            self.state.fixed_loss_before = self.fixed_batch_loss()
        logf = self._open_log()
        every = self.cfg.checkpoint_every
        bar = progress.task("training", total=self.total_steps, unit="step")  # a no-op without a sink
        if bar is not None and self.state.step:
            bar.update(self.state.step, message=f"resumed at step {self.state.step}")
        started = time.perf_counter() - self.state.seconds
        self.unet.train()
        if self.cfg.train_text_encoder:
            for te in self.text_encoders:
                te.train()
        try:
            with _stop_on_ctrl_c() as flag:
                while self.state.step < self.total_steps:
                    loss = self.training_step()
                    self.state.step += 1
                    self.state.losses.append(loss)
                    self.state.seconds = time.perf_counter() - started
                    if logf is not None:
                        with writing(self.work_dir / LOG_FILE):  # a full disk: one line naming the file
                            logf.write(json.dumps({"step": self.state.step, "loss": loss,
                                                   "lr": self.lr_scheduler.get_last_lr()[0],
                                                   "seconds": round(self.state.seconds, 3)}) + "\n")
                            logf.flush()
                    if bar is not None:
                        bar.update(1, message=f"loss {loss:.4f}")
                    if self.on_step is not None:
                        self.on_step(self.state.step, loss)
                    if flag["stop"]:
                        saved = self.save_checkpoint() if self.work_dir else None
                        raise TrainingInterrupted(self.state.step, self.total_steps, saved)
                    if self.work_dir and every > 0 and self.state.step % every == 0 and self.state.step < self.total_steps:
                        self.save_checkpoint()
        finally:
            if logf is not None:
                logf.close()
        if bar is not None:
            bar.close()  # only a finished run closes its task (an interrupted one is not "done")
        after = self.fixed_batch_loss()
        return TrainOutcome(steps=self.state.step, losses=list(self.state.losses), optimizer=self.optimizer_name,
                            mixed_precision=self.mixed_precision, device=self.device.type, attention=self.attention,
                            latents_cached=self.cfg.cache_latents, seconds=self.state.seconds,
                            resumed_from_step=self.state.resumed_from,
                            fixed_batch_loss_before=self.state.fixed_loss_before, fixed_batch_loss_after=after)

    # -- export -------------------------------------------------------------------------
    def lora_state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        """LoRA weights in diffusers' format, alpha/rank baked in, by component: ``unet`` and, when
        trained, ``text_encoder`` (+ ``text_encoder_2`` for SDXL)."""
        from .export import diffusers_lora_layers

        out = {"unet": diffusers_lora_layers(self.unet, self.cfg.rank, self.cfg.alpha)}
        if self.cfg.train_text_encoder:
            for prefix, te in zip(TEXT_ENCODER_PREFIXES, self.text_encoders):
                out[prefix] = diffusers_lora_layers(te, self.cfg.text_encoder_rank, self.cfg.text_encoder_alpha)
        return out

    def save_lora(self, folder: Path) -> Path:
        from .export import save_lora_weights

        return save_lora_weights(folder, self.lora_state_dicts(), self.family)
