"""The reference's real-weight recipe, checked on tiny models: clean prompts, sampler, FACT variant and
recipe, thread-safe generation (issue 9)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from facechain.generation.api import generate
from facechain.generation.pipeline_cache import PipelineCache
from facechain.generation.prompt import build_prompt, identity_tags
from facechain.identity import Identity
from facechain.styles import find_style
from tests.test_generate import _random_lora

POLLUTING = ["white background", "facing viewer", "monochrome", "simple background", "looking at viewer"]
PERSONAL = ["smile", "short hair", "glasses", "beard"]


@pytest.fixture(scope="module")
def tagged_identity(tmp_path_factory, tiny_sd_dir, faces_dir) -> Path:
    folder = tmp_path_factory.mktemp("ids") / "tagged"
    _random_lora(folder, seed=5)
    shutil.copy(faces_dir / "obama" / "obama_small.jpg", folder / "template_face.png")
    Identity(name="tagged", base_model=str(tiny_sd_dir), trigger_word="a mature man", path=folder,
             tags=POLLUTING + ["solo"] + PERSONAL).save()
    return folder


def test_identity_tags_keep_the_person_and_drop_the_photo():
    assert identity_tags(POLLUTING + ["solo"] + PERSONAL + ["hair over white background"]) == PERSONAL


def test_cyberpunk_prompt_carries_no_background_tag(tagged_identity, tiny_sd_dir):
    res = generate(tagged_identity, "cyberpunk", base_model=str(tiny_sd_dir), size=64, steps=1, seed=1, num_images=1,
                   fusion="none", quiet=True)
    prompt = res.settings["prompt"].lower()
    for tag in POLLUTING:
        assert tag not in prompt, (tag, prompt)
    for tag in PERSONAL:
        assert tag in prompt
    assert prompt.startswith("a mature man")


def test_inpaint_uses_the_same_prompt_builder(tagged_identity):
    from facechain.inpainting.api import build_prompts, inpaint_style
    from facechain.inpainting.config import InpaintConfig

    ident = Identity.load(tagged_identity)
    for cfg in (InpaintConfig(), InpaintConfig(style="underwater")):
        prompt, negative = build_prompts(ident, cfg)
        expected = build_prompt(inpaint_style(cfg), ident.trigger_word, ident.tags, None)
        assert (prompt, negative) == (expected.prompt, expected.negative_prompt)
        style_text = inpaint_style(cfg).prompt.lower()
        assert not any(tag in prompt and tag not in style_text for tag in POLLUTING)


def test_lora_portraits_sample_with_dpm_singlestep(tagged_identity, tiny_sd_dir):
    cache = PipelineCache()
    res = generate(tagged_identity, "cyberpunk", base_model=str(tiny_sd_dir), size=64, steps=2, seed=1, num_images=1,
                   fusion="none", quiet=True, cache=cache)
    assert find_style("cyberpunk").sampler == "dpm_singlestep"
    assert res.settings["sampler"] == "dpm_singlestep" and res.settings["steps"] == 2
    with cache.lock:
        assert type(cache._pipe.scheduler).__name__ == "DPMSolverSinglestepScheduler"


def test_prompt_only_style_without_realism_lora_says_so(tagged_identity, tiny_sd_dir):
    res = generate(tagged_identity, "cyberpunk", base_model=str(tiny_sd_dir), size=64, steps=1, seed=1, num_images=1,
                   fusion="none", quiet=True)
    assert any("realism LoRA" in w and "facechain models download realism-lora" in w for w in res.warnings)
    assert res.settings["style_lora"] is None


def test_photo_with_a_majicmix_base_records_the_maj_adapter(tiny_sd_dir, faces_dir, tmp_path):
    from diffusers import UNet2DConditionModel

    from facechain.fact.testing import tiny_fact_model

    base = shutil.copytree(tiny_sd_dir, tmp_path / "majicmixRealistic_v6")
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    adapter = tiny_fact_model(unet, seed=4).save(tmp_path / "tiny-fact")
    style = tmp_path / "maj.yaml"
    style.write_text(f"name: maj\nprompt: '{{trigger}}, portrait'\nbase_model: {base}\n")
    res = generate(style=str(style), photo=faces_dir / "obama" / "obama_small.jpg", adapter=adapter, size=64, num_images=1,
                   seed=2, fusion="none", quiet=True)
    assert res.settings["fact"]["variant"] == "maj"
    assert res.settings["steps"] == 50 and res.settings["guidance_scale"] == 5.0  # the reference's FACT recipe
    film = generate(style=str(style), photo=faces_dir / "obama" / "obama_small.jpg", adapter=adapter, size=64,
                    num_images=1, seed=2, fusion="none", quiet=True, base_model=str(tiny_sd_dir), steps=2)
    assert film.settings["fact"]["variant"] == "film" and film.settings["steps"] == 2


def test_two_threads_with_different_styles_equal_sequential_runs(tagged_identity, tiny_sd_dir, tmp_path):
    lora = _random_lora(tmp_path / "style-lora", seed=9, scale=0.3)
    jobs = {
        "lora-style": dict(prompt="{trigger}, painting", style_lora=str(lora), style_weight=0.8, face_weight=0.5),
        "prompt-only": dict(prompt="{trigger}, photo", face_weight=1.2, sampler="euler"),
    }
    common = dict(base_model=str(tiny_sd_dir), size=64, steps=3, num_images=2, fusion="none", quiet=True)
    cache = PipelineCache()
    sequential = {k: [p.array for p in generate(tagged_identity, seed=7, cache=cache, **kw, **common)] for k, kw in jobs.items()}
    results: dict[str, list[np.ndarray]] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            for _ in range(2):  # interleave several calls per thread
                results[name] = [p.array for p in generate(tagged_identity, seed=7, cache=cache, **jobs[name], **common)]
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for name in jobs:
        for got, want in zip(results[name], sequential[name]):
            assert np.array_equal(got, want), name
    assert not np.array_equal(sequential["lora-style"][0], sequential["prompt-only"][0])
