"""FACT on SDXL: the adapter in SDXL pipelines (exactly the base pipeline at scale 0), train-adapter
on an SDXL base, and a one-line error for an SD 1.5 adapter (all published ones are) on SDXL."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from facechain.diffusion.family import FamilyMismatchError
from facechain.fact.config import ADAPTER_FILE, ENCODER_FILE, MANIFEST_FILE
from facechain.fact.integration import FactSession
from facechain.fact.models import adapter_family, load_fact
from facechain.fact.testing import tiny_fact_model
from facechain.testing.tiny import tiny_sdxl_controlnet, tiny_sdxl_pipeline, tiny_unet
from tests.cli_helpers import run_cli
from tests.test_fact_adapter import STEPS, _gen, obama  # noqa: F401 (obama: a fixture)
from tests.test_fact_training import encoder_file  # noqa: F401 (a fixture)

@pytest.fixture(scope="module")
def sd15_adapter_dir(tmp_path_factory):
    """A FACT adapter for an SD 1.5-layout UNet, in our format (as train-adapter/convert write it)."""
    folder = tmp_path_factory.mktemp("fact-sd15") / "adapter"
    tiny_fact_model(tiny_unet(), open_gates=0.5).save(folder)
    return folder


def test_fact_at_scale_zero_is_exactly_the_sdxl_base_pipeline(obama):
    from diffusers import StableDiffusionXLControlNetPipeline

    pipe = tiny_sdxl_pipeline()
    pipe.set_progress_bar_config(disable=True)
    control = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    cn_pipe = StableDiffusionXLControlNetPipeline.from_pipe(pipe, controlnet=tiny_sdxl_controlnet())
    cn_pipe.set_progress_bar_config(disable=True)
    base = pipe("a portrait", generator=_gen(), **STEPS).images
    cn_base = cn_pipe("a portrait", image=control, generator=_gen(), **STEPS).images

    model = tiny_fact_model(pipe.unet, open_gates=0.6)
    assert len(model.adapter.layers) == 8  # SDXL's blocks: 2 transformer blocks deep in the tiny UNet's second stage
    fact = FactSession.from_photos(pipe, obama, adapter=model, scale=1.0)
    with fact.applied_to(pipe, cn_pipe):
        on = pipe(**fact.embeds("a portrait"), generator=_gen(), **STEPS).images
        cn_on = cn_pipe(**fact.embeds("a portrait", pipe=cn_pipe), image=control, generator=_gen(), **STEPS).images
        fact.scale = 0.0
        off = pipe(**fact.embeds("a portrait"), generator=_gen(), **STEPS).images
        cn_off = cn_pipe(**fact.embeds("a portrait", pipe=cn_pipe), image=control, generator=_gen(), **STEPS).images
    assert np.abs(on - base).max() > 1e-3 and np.abs(cn_on - cn_base).max() > 1e-3
    assert np.array_equal(off, base) and np.array_equal(cn_off, cn_base)
    after = pipe("a portrait", generator=_gen(), **STEPS).images  # hooks gone: the base pipeline again
    assert np.array_equal(after, base)


def test_train_adapter_on_an_sdxl_base(faces_dir, tiny_sdxl_dir, encoder_file, tmp_path, obama):
    people = tmp_path / "people"
    for person, name in (("obama", "obama_small.jpg"), ("obama", "obama_2012_official_portrait.jpg"),
                         ("biden", "biden_official_portrait_unverified.jpg")):
        (people / person).mkdir(parents=True, exist_ok=True)
        shutil.copy(faces_dir / person / name, people / person / name)
    out = tmp_path / "fact-xl"
    code, stdout, stderr = run_cli("train-adapter", people, "-o", out, "--base-model", tiny_sdxl_dir, "--face-encoder",
                                   encoder_file, "--size", "32", "--steps", "3", "--learning-rate", "1e-2", "-q")
    assert code == 0, stderr
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["family"] == "sdxl" and manifest["fact_config"]["output_dim"] == 64  # SDXL's text width
    assert adapter_family(out / ADAPTER_FILE) == "sdxl"

    # the trained folder runs in the SDXL pipeline (what `generate --photo --adapter OUT` will load)
    from facechain.diffusion.loading import load_sd_pipeline

    pipe = load_sd_pipeline(tiny_sdxl_dir)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    model = load_fact(out, pipe.unet)
    with torch.no_grad():
        for layer in model.adapter.layers.values():  # 3 steps barely open the gates: open them to see the effect
            layer.gate_attn.fill_(0.5)
    base = pipe("a portrait", generator=_gen(), **STEPS).images
    with FactSession.from_photos(pipe, obama, adapter=model, scale=1.0) as fact:
        image = pipe(**fact.embeds("a portrait"), generator=_gen(), **STEPS).images
    assert np.abs(image - base).max() > 1e-3


def test_an_sd15_adapter_on_sdxl_is_one_line(sd15_adapter_dir, tiny_sdxl_dir, faces_dir, tmp_path):
    from facechain.fact.checkpoint import read_ours, to_published_adapter

    pipe = tiny_sdxl_pipeline()
    with pytest.raises(FamilyMismatchError) as err:
        load_fact(sd15_adapter_dir, pipe.unet)
    text = str(err.value)
    assert "trained for SD 1.5 and cannot run on an SDXL base model" in text
    assert "published FACT checkpoints are SD 1.5 only" in text and "\n" not in text

    # the published (pickle) layout says the same
    state, _, _ = read_ours(sd15_adapter_dir / ADAPTER_FILE, "adapter")
    published = tmp_path / "adapter_film.ckpt"
    torch.save(to_published_adapter(state), published)
    with pytest.raises(FamilyMismatchError, match="published FACT checkpoints are SD 1.5 only"):
        load_fact(published, pipe.unet, encoder=sd15_adapter_dir / ENCODER_FILE)

    # train-adapter refuses it as a starting point before loading anything
    (tmp_path / "people" / "obama").mkdir(parents=True)
    shutil.copy(faces_dir / "obama" / "obama_small.jpg", tmp_path / "people" / "obama")
    code, _, stderr = run_cli("train-adapter", tmp_path / "people", "-o", tmp_path / "o", "--base-model", tiny_sdxl_dir,
                              "--adapter-init", sd15_adapter_dir, "-q")
    assert code == 2 and stderr.count("\n") == 1 and "SD 1.5 only" in stderr, stderr
    assert not (tmp_path / "o").exists()
