"""FACT adapter training on tiny models with real photos (obama + biden): loss, FAIR, shuffle, CLI, resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from facechain.fact.adapter import install_adapter
from facechain.fact.config import ADAPTER_FILE, ENCODER_FILE, MANIFEST_FILE, AdapterTrainConfig
from facechain.fact.data import build_dataset
from facechain.fact.testing import tiny_fact_config, tiny_fact_model
from facechain.fact.training import LOG_FILE, AdapterTrainer, train_adapter
from tests.cli_helpers import run_cli

PHOTOS = {
    "obama": ["obama_small.jpg", "obama_2009_congress_address.jpg", "obama_2012_official_portrait.jpg"],
    "biden": ["biden_2010_blue_room_crop.jpg", "biden_official_portrait_unverified.jpg"],
}



@pytest.fixture(scope="module")
def people_dir(faces_dir, tmp_path_factory):
    """Two people, several photos each, plus one photo without a face (must be skipped, not fatal)."""
    root = tmp_path_factory.mktemp("fact-data") / "people"
    for person, names in PHOTOS.items():
        (root / person).mkdir(parents=True)
        for n in names:
            shutil.copy(faces_dir / person / n, root / person / n)
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(root / "biden" / "grey_wall.png")
    return root


@pytest.fixture(scope="module")
def small_people_dir(faces_dir, tmp_path_factory):
    """Fewer, smaller photos for the end-to-end runs (each run analyses them again)."""
    root = tmp_path_factory.mktemp("fact-small") / "people"
    for person, names in {"obama": PHOTOS["obama"][:2], "biden": PHOTOS["biden"][1:]}.items():
        (root / person).mkdir(parents=True)
        for n in names:
            shutil.copy(faces_dir / person / n, root / person / n)
    return root


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    from facechain.fact.checkpoint import save_safetensors
    from facechain.fact.encoder import FaceEncoder

    torch.manual_seed(0)
    cfg = tiny_fact_config(32)
    return save_safetensors(tmp_path_factory.mktemp("fact-enc") / ENCODER_FILE, FaceEncoder(cfg).eval(), cfg, "encoder")


@pytest.fixture(scope="module")
def trainer(people_dir):
    """An in-memory trainer on tiny SD components (dataset analysed once for the module)."""
    from diffusers import DDPMScheduler

    from facechain.testing.tiny import tiny_sd_components

    parts = tiny_sd_components()
    parts["noise_scheduler"] = DDPMScheduler.from_config(parts.pop("scheduler").config)
    for k in ("unet", "vae", "text_encoder"):
        parts[k].requires_grad_(False)
    model = tiny_fact_model(parts["unet"])
    data = build_dataset(people_dir, model.encoder, 32, progress=False)
    cfg = AdapterTrainConfig(resolution=32, steps=8, batch_size=2, learning_rate=3e-2, fair_weight=0.01)
    tr = AdapterTrainer(parts, model.encoder, model.adapter, data, cfg, None, torch.device("cpu"), progress=False)
    hooks = install_adapter(parts["unet"], model.adapter, tr.routing)
    yield tr
    hooks.remove()


def test_dataset_uses_real_faces_and_skips_unusable_photos(trainer):
    data = trainer.dataset
    assert sorted(data.people) == ["biden", "obama"]
    assert len(data.people["obama"]) == 3 and len(data.people["biden"]) == 2
    assert [r.source.name for r in data.rejections] == ["grey_wall.png"]
    assert "no face" in data.rejections[0].reason
    for photo in data.photos:
        assert photo.pixels.shape == (3, 32, 32) and photo.face_tokens.shape == (144, 32)
        covered = float(photo.mask.mean())
        assert 0.05 < covered < 0.95  # a face region, not the whole picture
        assert float(photo.mask[0, 16, 16]) > 0.5  # the face is centred in its training crop


def test_face_shuffle_draws_another_photo_of_the_same_person(trainer):
    import random

    rng = random.Random(0)
    draws = [trainer.dataset.draw(rng, shuffle_prob=1.0, drop_prob=0.0) for _ in range(40)]
    assert all(d.shuffled and d.condition is not d.target and d.condition.person == d.target.person for d in draws)
    assert not any(d.dropped for d in draws)
    kept = [trainer.dataset.draw(rng, shuffle_prob=0.0, drop_prob=1.0) for _ in range(10)]
    assert all(d.condition is d.target and d.dropped for d in kept)
    half = [trainer.dataset.draw(rng, shuffle_prob=0.5, drop_prob=0.5) for _ in range(200)]
    assert 60 < sum(d.shuffled for d in half) < 140 and 60 < sum(d.dropped for d in half) < 140


def test_training_lowers_the_loss_and_fair_is_measured_on_the_face_mask(trainer):
    before = trainer.evaluate()
    assert before["fair"] == 0.0  # gates start closed: no increment anywhere yet
    rows = [trainer.train_step(s) for s in range(trainer.cfg.steps)]
    after = trainer.evaluate()
    assert after["loss"] < before["loss"]
    assert after["fair"] > 0.0 and all(np.isfinite(r["loss"]) for r in rows)
    gates = [layer.gate_attn.item() for layer in trainer.adapter.layers.values()]
    assert any(abs(g) > 1e-3 for g in gates)  # the gates opened
    # FAIR only counts the increment outside the face: an all-face mask makes it vanish
    saved = [p.mask.clone() for p in trainer.dataset.photos]
    try:
        for p in trainer.dataset.photos:
            p.mask.fill_(1.0)
        assert trainer.evaluate()["fair"] == pytest.approx(0.0, abs=1e-6)
    finally:
        for p, m in zip(trainer.dataset.photos, saved):
            p.mask.copy_(m)


def test_cli_trains_a_usable_adapter(people_dir, encoder_file, tiny_sd_dir, tmp_path):
    cfg = tmp_path / "adapter.yaml"
    cfg.write_text("adapter:\n  log_every: 1\n  batch_size: 1\n")
    out = tmp_path / "fact-out"
    code, stdout, stderr = run_cli("train-adapter", people_dir, "-o", out, "--config", cfg, "--base-model", tiny_sd_dir,
                                   "--face-encoder", encoder_file, "--size", "32", "--steps", "3", "--learning-rate", "1e-3",
                                   "-q")
    assert code == 0, stderr
    assert "trained FACT adapter" in stdout and "grey_wall.png" in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([ADAPTER_FILE, ENCODER_FILE, MANIFEST_FILE, LOG_FILE])
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["people"] == {"biden": 2, "obama": 3} and manifest["steps"] == 3
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all("fair" in r and "mse" in r for r in log)
    assert not out.with_name(out.name + ".work").exists()

    # the trained folder is what `generate --photo --adapter OUT` loads
    from facechain.diffusion.loading import load_sd_pipeline
    from facechain.fact.integration import FactSession

    pipe = load_sd_pipeline(tiny_sd_dir)
    pipe.set_progress_bar_config(disable=True)
    with FactSession.from_photos(pipe, people_dir / "obama" / "obama_small.jpg", adapter=out, scale=0.5) as fact:
        image = pipe(**fact.embeds("a portrait"), num_inference_steps=1, height=64, width=64, output_type="np").images
    assert image.shape == (1, 64, 64, 3)

    # a second run refuses to overwrite the finished output, before any heavy work
    code, _, stderr = run_cli("train-adapter", people_dir, "-o", out, "--base-model", tiny_sd_dir)
    assert code == 2 and "already exists" in stderr and stderr.count("\n") == 1


def test_fp16_base_trains_the_adapter_with_loss_scaling(people_dir, trainer, tmp_path):
    """A half-precision base model (train-adapter --dtype fp16) scales the loss; fp32 needs no scaler."""
    from diffusers import DDPMScheduler

    from facechain.testing.tiny import tiny_sd_components

    assert not trainer.scaler.is_enabled()  # the fp32 fixture
    parts = tiny_sd_components()
    parts["noise_scheduler"] = DDPMScheduler.from_config(parts.pop("scheduler").config)
    for k in ("unet", "vae", "text_encoder"):
        parts[k].requires_grad_(False).to(torch.float16)
    model = tiny_fact_model(parts["unet"])
    cfg = AdapterTrainConfig(resolution=32, steps=2, batch_size=2, learning_rate=3e-2)
    tr = AdapterTrainer(parts, model.encoder, model.adapter, trainer.dataset, cfg, tmp_path / "work",
                        torch.device("cpu"), progress=False)
    hooks = install_adapter(parts["unet"], model.adapter, tr.routing)
    try:
        assert tr.scaler.is_enabled() and tr.scaler.get_scale() == 65536.0
        before = [p.detach().clone() for p in tr.params]
        rows = [tr.train_step(s) for s in range(2)]
        tr.step = 2
        saved = tr.save_checkpoint()
    finally:
        hooks.remove()
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert all(p.dtype == torch.float32 for p in tr.params)
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.params))
    state = torch.load(saved / "training_state.pt", weights_only=True)
    assert state["scaler"]["scale"] == tr.scaler.get_scale()


def test_interrupted_training_resumes_to_the_same_weights(small_people_dir, encoder_file, tiny_sd_dir, tmp_path, monkeypatch):
    people_dir = small_people_dir
    from safetensors.torch import load_file

    kw = dict(base_model=str(tiny_sd_dir), face_encoder=str(encoder_file), size=32, steps=4, checkpoint_every=2,
              learning_rate=1e-2, quiet=True)
    straight = train_adapter(people_dir, tmp_path / "a", **kw)

    real_step = AdapterTrainer.train_step

    def crash_at_3(self, step):
        if step == 3:
            raise KeyboardInterrupt
        return real_step(self, step)

    monkeypatch.setattr(AdapterTrainer, "train_step", crash_at_3)
    with pytest.raises(KeyboardInterrupt):
        train_adapter(people_dir, tmp_path / "b", **kw)
    assert not (tmp_path / "b").exists()
    assert [p.name for p in (tmp_path / "b.work").glob("checkpoint-*")] == ["checkpoint-000002"]
    monkeypatch.setattr(AdapterTrainer, "train_step", real_step)
    resumed = train_adapter(people_dir, tmp_path / "b", resume=True, **kw)
    assert resumed.steps == straight.steps == 4
    a, b = load_file(str(tmp_path / "a" / ADAPTER_FILE)), load_file(str(tmp_path / "b" / ADAPTER_FILE))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_cli_errors_are_one_line(tmp_path, tiny_sd_dir, encoder_file):
    empty = tmp_path / "nobody" / "walls"
    empty.mkdir(parents=True)
    Image.fromarray(np.full((100, 100, 3), 90, np.uint8)).save(empty / "wall.png")
    code, _, stderr = run_cli("train-adapter", tmp_path / "nobody", "-o", tmp_path / "o", "--base-model", tiny_sd_dir,
                              "--face-encoder", tmp_path / "missing.safetensors")
    assert code == 2 and "missing.safetensors" in stderr and stderr.count("\n") == 1
    code, _, stderr = run_cli("train-adapter", tmp_path / "nobody", "-o", tmp_path / "o", "--base-model", tiny_sd_dir,
                              "--face-encoder", encoder_file, "-q")
    assert code == 1 and "no usable face photos" in stderr and "wall.png" in stderr and not (tmp_path / "o").exists()
    code, _, stderr = run_cli("train-adapter", tmp_path / "nobody", "-o", tmp_path / "o", "--shuffle-prob", "1.5")
    assert code == 2 and "--shuffle-prob must be between 0 and 1, got 1.5" in stderr and stderr.count("\n") == 1
    code, _, stderr = run_cli("train-adapter", tmp_path / "nothing-here", "-o", tmp_path / "o")
    assert code == 2 and "nothing-here" in stderr


def test_shipped_config_file_matches_the_defaults():
    from pathlib import Path

    from facechain.config import load_config

    shipped = Path(__file__).resolve().parents[1] / "configs" / "adapter.yaml"
    cfg = load_config(AdapterTrainConfig, "adapter", shipped)
    cfg.validate()
    assert cfg == AdapterTrainConfig()
