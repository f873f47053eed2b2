"""Face/style LoRA trainer on tiny SD models: reproducibility, exact resume, export format, failure modes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from facechain.config import config_to_dict, load_config
from facechain.errors import ConfigError, InputError
from facechain.identity import Identity
from facechain.training.config import StyleTrainConfig, TrainConfig
from tests.cli_helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
RES = 64



def write_prepared(folder: Path, faces_dir: Path, trigger: str = "a handsome man") -> Path:
    """A dataset in exactly the layout 'facechain prepare' writes (images/, metadata.jsonl, report.json)."""
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    lines = []
    for i, src in enumerate(sorted((faces_dir / "obama").iterdir())[:4]):
        im = Image.open(src).convert("RGB")
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im.crop((left, top, left + side, top + side)).resize((RES, RES)).save(folder / f"images/{i:03d}.png")
        lines.append(json.dumps({"file_name": f"images/{i:03d}.png", "text": f"{trigger}, smile, suit"}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    Image.open(folder / "images/000.png").save(folder / "template_face.png")
    report = {"trigger_word": trigger, "accepted": 4, "rejected": [{"source": "x.jpg", "reason": "no face"}],
              "template_face": "template_face.png", "template_embedding": [0.25] * 128, "tags_frequent": ["smile"]}
    (folder / "report.json").write_text(json.dumps(report))
    return folder


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, faces_dir) -> Path:
    return write_prepared(tmp_path_factory.mktemp("prep") / "obama", faces_dir)


def make_trainer(tiny_sd_dir, prepared, work_dir=None, on_step=None, **kw):
    from facechain.diffusion.loading import load_sd_pipeline
    from facechain.training.components import SDComponents
    from facechain.training.data import read_prepared
    from facechain.training.trainer import LoraTrainer

    cfg = TrainConfig(base_model=str(tiny_sd_dir), resolution=RES, **{"learning_rate": 3e-3, "eval_samples": 0, **kw})
    comps = SDComponents.from_pipeline(load_sd_pipeline(tiny_sd_dir), str(tiny_sd_dir))
    return LoraTrainer(comps, read_prepared(prepared).examples, cfg, work_dir=work_dir, progress=False, on_step=on_step)


def lora_params(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.params.items()}


# --- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize("cls,section", [(TrainConfig, "train"), (StyleTrainConfig, "train_style")])
def test_shipped_config_files_document_every_default(cls, section):
    path = REPO / "configs" / f"{section}.yaml"
    data = yaml.safe_load(path.read_text())
    assert set(data) == {section}
    fields = set(config_to_dict(cls()))
    assert set(data[section]) == fields, f"{path} must list every {section} field"
    assert load_config(cls, section, path) == cls()


def test_step_count_rules_and_validation():
    cfg = TrainConfig()
    # the reference's 200 epochs at batch 1, capped at 200 epochs of its 20-photo maximum
    assert (cfg.total_steps(3), cfg.total_steps(5), cfg.total_steps(20), cfg.total_steps(35)) == (600, 1000, 4000, 4000)
    assert (cfg.rank, cfg.alpha, cfg.lora_init, cfg.learning_rate, cfg.lr_scheduler, cfg.lr_warmup_steps) == \
        (4, 4.0, "gaussian", 1.5e-4, "cosine", 0)
    assert TrainConfig(steps=7).total_steps(20) == 7
    style = StyleTrainConfig()
    assert (style.rank, style.learning_rate, style.lr_scheduler, style.epochs) == (32, 1e-4, "cosine_with_restarts", 20)
    assert style.total_steps(6) == 120 and StyleTrainConfig(batch_size=4).total_steps(6) == 40
    with pytest.raises(ConfigError, match="resolution"):
        TrainConfig(resolution=100)
    with pytest.raises(ConfigError, match="lora_init"):
        TrainConfig(lora_init="xavier")
    with pytest.raises(ConfigError, match="unknown option 'ranks'"):
        load_config(TrainConfig, "train", None, {"ranks": 3})


def test_dataset_readers_reject_bad_folders(tmp_path, prepared):
    from facechain.training.data import read_captioned_folder, read_prepared

    data = read_prepared(prepared)
    assert data.trigger_word == "a handsome man" and len(data.examples) == 4
    assert data.summary()["rejected"] == 1 and data.template_embedding == [0.25] * 128
    style = tmp_path / "style"
    style.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 10, 10)).save(style / "a.png")
    with pytest.raises(InputError, match=r"a.png: no caption"):
        read_captioned_folder(style)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metadata.jsonl").write_text('{"file_name": "../a.png", "text": "x"}\n')
    with pytest.raises(InputError, match="outside the dataset folder"):
        read_captioned_folder(bad)


# --- the trainer ------------------------------------------------------------------------------

def test_precision_and_optimizer_choice_on_cpu():
    from facechain.training.trainer import make_optimizer, resolve_precision

    assert resolve_precision(TrainConfig(device="cpu"))[1:] == ("no", torch.float32)  # auto: fp32 on CPU
    assert resolve_precision(TrainConfig(device="cpu", mixed_precision="bf16"))[1:] == ("bf16", torch.bfloat16)
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        resolve_precision(TrainConfig(device="cpu", mixed_precision="fp16"))
    params = [torch.nn.Parameter(torch.zeros(4))]
    assert make_optimizer(params, TrainConfig(), torch.device("cpu"))[1] == "torch AdamW"  # auto on CPU
    opt, name = make_optimizer(params, TrainConfig(optimizer="adamw8bit"), torch.device("cpu"))
    assert name == "bitsandbytes AdamW8bit" and type(opt).__module__.startswith("bitsandbytes")


@pytest.mark.parametrize("init", ["gaussian", "kaiming"])
def test_lora_initialisation_matches_the_reference_layers(tiny_sd_dir, prepared, init):
    """gaussian: A ~ N(0, 1/rank^2) as diffusers' old LoRALinearLayer (the reference); kaiming: peft's U(+-1/sqrt(fan_in))."""
    trainer = make_trainer(tiny_sd_dir, prepared, steps=1, rank=4, alpha=4.0, lora_init=init)
    a = torch.cat([v.flatten() for k, v in trainer.params.items() if ".lora_A." in k])
    b = torch.cat([v.flatten() for k, v in trainer.params.items() if ".lora_B." in k])
    assert torch.count_nonzero(b) == 0  # the LoRA starts as the identity: B = 0
    if init == "gaussian":
        assert abs(float(a.std()) - 1 / 4) < 0.02
    else:
        bounds = [1 / v.shape[1] ** 0.5 for k, v in trainer.params.items() if ".lora_A." in k]
        assert float(a.abs().max()) <= max(bounds) and float(a.std()) < 0.2
    # scale 1: the exported up matrices are the trained B matrices, unscaled
    trainer.training_step()
    unet_layers = trainer.lora_state_dicts()["unet"]
    b_trained = {k.replace(".lora_B.default.weight", ""): v for k, v in trainer.params.items() if ".lora_B." in k}
    key = next(iter(b_trained))
    up = unet_layers[key.removeprefix("unet.") + ".lora.up.weight"]
    assert torch.equal(up, b_trained[key].detach().float().cpu())


def test_v_prediction_base_trains_on_velocity(tiny_sd_dir, prepared):
    from diffusers import DDPMScheduler

    trainer = make_trainer(tiny_sd_dir, prepared, steps=1)
    trainer.noise_scheduler = DDPMScheduler.from_config(trainer.noise_scheduler.config, prediction_type="v_prediction")
    trainer.prediction_type = "v_prediction"
    g = torch.Generator().manual_seed(3)
    batch, latents, noise, t = trainer._draw([0, 1], g, allow_flip=False)
    with torch.no_grad():
        loss = trainer._loss(latents, noise, t, batch)
        noisy = trainer.noise_scheduler.add_noise(latents, noise, t)
        pred = trainer.unet(noisy, t, batch.text.hidden).sample
        velocity = trainer.noise_scheduler.get_velocity(latents, noise, t)
    assert torch.isclose(loss, torch.nn.functional.mse_loss(pred, velocity), rtol=1e-5)
    assert not torch.isclose(loss, torch.nn.functional.mse_loss(pred, noise), rtol=1e-3)


def test_caching_matches_encoding_every_step(tiny_sd_dir, prepared):
    """Cached latents (plain + flipped) give the same training as the encode-every-step recipe."""
    cached = make_trainer(tiny_sd_dir, prepared, steps=4)
    cached.train()
    live = make_trainer(tiny_sd_dir, prepared, steps=4, cache_latents=False)
    live.train()
    assert np.allclose(cached.state.losses, live.state.losses, rtol=1e-4, atol=1e-5)
    a, b = lora_params(cached), lora_params(live)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4


def test_ctrl_c_saves_checkpoint_and_resume_matches_uninterrupted_run(tiny_sd_dir, prepared, tmp_path):
    from facechain.training.checkpoint import latest_checkpoint, list_checkpoints
    from facechain.training.trainer import TrainingInterrupted

    steps = 8
    full = make_trainer(tiny_sd_dir, prepared, tmp_path / "full", steps=steps, checkpoint_every=3)
    full.train()
    assert [p.name for p in list_checkpoints(tmp_path / "full")] == ["checkpoint-000003", "checkpoint-000006"]

    def ctrl_c_at_5(step, loss):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: the trainer finishes the step, saves, stops

    first = make_trainer(tiny_sd_dir, prepared, tmp_path / "run", on_step=ctrl_c_at_5, steps=steps, checkpoint_every=3)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 5/8"):
        first.train()
    ckpt = latest_checkpoint(tmp_path / "run")
    assert ckpt.name == "checkpoint-000005"
    assert first.state.losses == full.state.losses[:5]  # same seed, same steps

    resumed = make_trainer(tiny_sd_dir, prepared, tmp_path / "run", steps=steps, checkpoint_every=3)
    resumed.train(resume_from=ckpt)
    assert resumed.state.resumed_from == 5 and resumed.state.step == steps
    assert np.allclose(resumed.state.losses, full.state.losses, rtol=0, atol=1e-6)
    a, b = lora_params(resumed), lora_params(full)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, steps + 1))

    other = make_trainer(tiny_sd_dir, prepared, tmp_path / "run", steps=steps, rank=8)
    with pytest.raises(ConfigError, match="rank=4, now 8"):
        other.load_checkpoint(ckpt)


def test_exported_lora_reproduces_trained_model_in_plain_diffusers(tiny_sd_dir, prepared, tmp_path):
    """alpha/rank is baked into the saved weights: load_lora_weights gives back the trained UNet and text encoder."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    trainer = make_trainer(tiny_sd_dir, prepared, steps=5, learning_rate=1e-2, train_text_encoder=True,
                           text_encoder_rank=4, text_encoder_alpha=16)
    trainer.train()
    trainer.save_lora(tmp_path / "lora")
    keys = list(load_file(str(tmp_path / "lora" / "pytorch_lora_weights.safetensors")))
    assert {k.split(".")[0] for k in keys} == {"unet", "text_encoder"}  # prefixed, as diffusers' loader needs
    assert any(".to_out.0.lora" in k for k in keys)

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd_dir), safety_checker=None, requires_safety_checker=False)
    g = torch.Generator().manual_seed(0)
    x, ehs = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    t = torch.tensor([500])
    ids = pipe.tokenizer(["a handsome man, smile"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        before = pipe.unet(x, t, ehs).sample
        pipe.load_lora_weights(str(tmp_path / "lora"))
        after = pipe.unet(x, t, ehs).sample
        trainer.unet.eval()
        trainer.text_encoders[0].eval()
        assert float((after - before).abs().max()) > 1e-3
        assert torch.allclose(after, trainer.unet(x, t, ehs).sample, atol=1e-5)
        assert torch.allclose(pipe.text_encoder(ids)[0], trainer.text_encoders[0](ids)[0], atol=1e-5)


# --- failures through the CLI -------------------------------------------------------------------

def test_nan_loss_is_one_line_training_error_and_leaves_no_identity(tiny_sd_dir, prepared, isolated_home):
    code, out, err = run_cli("train", prepared, "--name", "boom", "--base-model", tiny_sd_dir, "--size", RES,
                             "--steps", 6, "--learning-rate", 1e30, "--checkpoint-every", 1, "-q")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("facechain train: error: loss became ")
    assert "training diverged" in err and "lower --learning-rate" in err
    ids = isolated_home / "identities"
    assert not (ids / "boom").exists()
    assert [p.name for p in ids.iterdir()] == ["boom.work"]  # no half-written identity, only resumable checkpoints
    assert any(p.name.startswith("checkpoint-") for p in (ids / "boom.work").iterdir())
    code, out, _ = run_cli("list")
    assert code == 0 and "boom" not in out


def test_existing_identity_is_not_overwritten(tiny_sd_dir, prepared, isolated_home):
    target = isolated_home / "identities" / "taken"
    target.mkdir(parents=True)
    (target / "facechain.json").write_text("{}")
    code, _, err = run_cli("train", prepared, "--name", "taken", "--base-model", tiny_sd_dir, "--steps", 1, "-q")
    assert code == 2 and "already exists; pass --overwrite" in err and err.count("\n") == 1
    assert (target / "facechain.json").read_text() == "{}"


def test_missing_default_base_model_names_the_download_command(prepared, isolated_home):
    code, out, err = run_cli("train", prepared, "--name", "x", "-q")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "base-sd15-portrait" in err and "facechain models download base-sd15-portrait" in err
    assert not (isolated_home / "identities").exists() or not any((isolated_home / "identities").iterdir())


def test_resume_without_checkpoint_is_a_clear_error(tiny_sd_dir, prepared):
    code, _, err = run_cli("train", prepared, "--name", "fresh", "--base-model", tiny_sd_dir, "--resume", "-q")
    assert code == 2 and "no checkpoint to resume from" in err


# --- style LoRA ------------------------------------------------------------------------------------

def test_train_style_writes_lora_and_ready_style_yaml(tiny_sd_dir, tmp_path, isolated_home):
    from PIL import Image

    src = tmp_path / "watercolor"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (80, 64, 3), dtype=np.uint8)).save(src / f"{i}.png")
        (src / f"{i}.txt").write_text(f"watercolor painting, soft light, subject {i}")
    code, out, err = run_cli("train-style", src, "--base-model", tiny_sd_dir, "--size", RES, "--epochs", 2)
    assert code == 0, err
    # without -q: what it loads and how far it is, as log lines (stderr is not a terminal here)
    assert f"loading base model {tiny_sd_dir.resolve()}" in err and "caching latents: 100% 6/6 img" in err
    assert "training: 100% 6/6 step" in err and "style LoRA 'watercolor' saved in" in err
    folder = isolated_home / "loras" / "watercolor"
    manifest = json.loads((folder / "facechain_lora.json").read_text())
    assert manifest["training"]["steps"] == 6 and manifest["lora"]["rank"] == 32
    assert manifest["training"]["settings"]["lr_scheduler"] == "cosine_with_restarts"
    from facechain.styles import load_style_file

    style = load_style_file(folder / "style.yaml")  # the snippet is a valid style for 'generate --style'
    assert Path(style.style_lora) == folder / "pytorch_lora_weights.safetensors" and Path(style.style_lora).is_file()
    assert set(style.prompt.split(", ")) == {"watercolor painting", "soft light"}  # captions' shared words
    assert style.base_model == str(tiny_sd_dir.resolve())
    assert "style definition" in out and "style_lora:" in out
    assert not (isolated_home / "loras" / "watercolor.work").exists()


def test_interrupted_cli_run_resumes_into_a_finished_identity(tiny_sd_dir, prepared, isolated_home, monkeypatch):
    from facechain.training.trainer import LoraTrainer

    original = LoraTrainer.training_step

    def step_then_ctrl_c(self):
        loss = original(self)
        if self.state.step == 3 and self.state.resumed_from is None:  # Ctrl-C while step 4 runs
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    monkeypatch.setattr(LoraTrainer, "training_step", step_then_ctrl_c)
    args = ["train", prepared, "--name", "ann", "--base-model", tiny_sd_dir, "--size", RES, "--steps", 6, "-q"]
    code, out, err = run_cli(*args)
    assert code == 130 and "interrupted at step 4/6" in err and "--resume" in err
    ids = isolated_home / "identities"
    assert not (ids / "ann").exists() and (ids / "ann.work" / "checkpoint-000004").is_dir()

    code, out, err = run_cli(*args, "--resume")
    assert code == 0, err
    ident = Identity.load(ids / "ann")
    assert ident.training["resumed_from_step"] == 4 and ident.training["steps"] == 6
    log = [json.loads(x) for x in (ids / "ann" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert not (ids / "ann.work").exists()
