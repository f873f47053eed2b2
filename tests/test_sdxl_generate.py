"""``facechain generate`` on an SDXL base model (tiny SDXL-architecture models, random weights).

The same verb, options and ``Portraits`` as on SD 1.5: the base model (identity manifest, style or
``--base-model``) decides the family; pooled embeddings, SDXL ControlNets and the native size follow
from it. Mixtures of families are one-line errors before any model loads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facechain
from facechain.generation.api import plan_run
from facechain.generation.config import GenerateConfig
from facechain.identity import Identity
from facechain.models.store import default_store
from facechain.styles import resolve_style
from tests.cli_helpers import run_cli

TINY = ["--size", "64", "--steps", "2"]


def _random_sdxl_lora(folder: Path, seed: int) -> Path:
    """A diffusers-format LoRA for the tiny SDXL UNet with random (non-zero) A and B matrices."""
    from facechain.testing.tiny import save_tiny_lora, tiny_sdxl_unet

    return save_tiny_lora(folder, tiny_sdxl_unet(0), seed=seed)


@pytest.fixture(scope="module")
def xl_identity(tmp_path_factory, tiny_sdxl_dir, faces_dir) -> Path:
    folder = tmp_path_factory.mktemp("xl-identities") / "xena"
    _random_sdxl_lora(folder, seed=1)
    shutil.copy(faces_dir / "obama" / "obama_small.jpg", folder / "template_face.png")
    Identity(name="xena", base_model=str(tiny_sdxl_dir), trigger_word="a handsome man", path=folder,
             tags=["short hair"], family="sdxl").save()
    return folder


@pytest.fixture(scope="module")
def xl_style_lora(tmp_path_factory) -> Path:
    return _random_sdxl_lora(tmp_path_factory.mktemp("xl-style"), seed=2)


@pytest.fixture(scope="module")
def xl_controlnet_dir(tmp_path_factory) -> Path:
    """A tiny ControlNet-XL whose zero-initialised output convolutions are randomised, so the pose matters."""
    from facechain.testing.tiny import tiny_sdxl_controlnet
    from tests.test_generate import save_live_controlnet

    return save_live_controlnet(tiny_sdxl_controlnet(0), tmp_path_factory.mktemp("xl-cn") / "openpose-xl")


def _images(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)).astype(int) for p in sorted(folder.glob("0*.png"))]


def test_generate_on_sdxl_with_a_prompt_only_style_and_with_a_style_lora(xl_identity, tiny_sdxl_dir, xl_style_lora,
                                                                         tmp_path):
    plain, styled = tmp_path / "plain", tmp_path / "styled"
    code, _, err = run_cli("generate", "--person", xl_identity, "--style", "sdxl_studio", "--base-model", tiny_sdxl_dir,
                           *TINY, "-n", "2", "--seed", "3", "-o", plain)
    assert code == 0, err
    run = json.loads((plain / "portraits.json").read_text())
    assert run["settings"]["style"] == "sdxl_studio" and run["settings"]["size"] == "64x64"
    assert run["settings"]["prompt"].startswith("a handsome man, short hair, professional studio portrait")
    assert [p["seed"] for p in run["portraits"]] == [3, 4]
    assert len(_images(plain)) == 2 and _images(plain)[0].shape == (64, 64, 3)

    code, _, err = run_cli("generate", "--person", xl_identity, "--style", "sdxl_studio", "--base-model", tiny_sdxl_dir,
                           "--style-lora", xl_style_lora, "--style-weight", "1.0", *TINY, "-n", "2", "--seed", "3",
                           "-o", styled)
    assert code == 0, err
    assert json.loads((styled / "portraits.json").read_text())["settings"]["style_lora"] == str(xl_style_lora)
    assert np.abs(_images(plain)[0] - _images(styled)[0]).mean() > 1.0  # the SDXL style LoRA changes the picture


def test_the_face_lora_changes_the_sdxl_output_and_python_matches_the_cli(xl_identity, tiny_sdxl_dir, tmp_path):
    kw = dict(prompt="{trigger}, portrait", base_model=str(tiny_sdxl_dir), size=64, steps=2, num_images=1, seed=7,
              fusion="none", quiet=True)
    with_face = facechain.generate(str(xl_identity), **kw)
    without = facechain.generate(str(xl_identity), face_weight=0.0, **kw)
    again = facechain.generate(str(xl_identity), **kw)
    a, b, c = (np.asarray(r[0].image).astype(int) for r in (with_face, without, again))
    assert np.abs(a - b).mean() > 1.0
    assert np.array_equal(a, c)  # same request, same image (cached pipeline, LoRA set switched and back)
    assert isinstance(with_face, facechain.Portraits) and with_face.settings["base_model"] == str(tiny_sdxl_dir)


def test_pose_uses_an_sdxl_controlnet(xl_identity, tiny_sdxl_dir, xl_controlnet_dir, tmp_path):
    from tests.test_generate import _skeleton

    pose_file = tmp_path / "pose.png"
    Image.fromarray(_skeleton()).save(pose_file)  # an OpenPose image passes through unchanged
    common = ["--person", xl_identity, "--prompt", "{trigger}, portrait", "--base-model", tiny_sdxl_dir, *TINY, "-n", "1",
              "--seed", "1", "--no-fusion"]
    code, _, err = run_cli("generate", *common, "--pose", pose_file, "--openpose-controlnet", xl_controlnet_dir,
                           "-o", tmp_path / "posed")
    assert code == 0, err
    settings = json.loads((tmp_path / "posed" / "portraits.json").read_text())["settings"]
    assert settings["openpose_controlnet"] == str(xl_controlnet_dir) and settings["pose"] == str(pose_file)
    code, _, err = run_cli("generate", *common, "-o", tmp_path / "free")
    assert code == 0, err
    assert np.abs(_images(tmp_path / "posed")[0] - _images(tmp_path / "free")[0]).mean() > 0.5  # the pose mattered


def test_sdxl_defaults_follow_the_base_model_family(xl_identity, tiny_sdxl_dir, tiny_sd_dir):
    ident = facechain.Identity.load(xl_identity)
    store = default_store()
    # a style without a size: the family's native size (SDXL 1024, SD 1.5 512)
    plan = plan_run(GenerateConfig(style="sdxl_studio", base_model=str(tiny_sdxl_dir)), ident, None, None, store)
    assert (plan.width, plan.height) == (1024, 1024) and plan.family == "sdxl"
    assert plan.sampler == "dpm++2m_karras" and plan.steps == 30
    # an SD 1.5 prompt-only style (its base model is SD 1.5) follows an SDXL identity's own base model
    plan = plan_run(GenerateConfig(style="cyberpunk"), ident, None, None, store)
    assert plan.base_path == Path(tiny_sdxl_dir) and plan.family == "sdxl" and (plan.width, plan.height) == (1024, 1024)
    assert not any(lo.name == "style" for lo in plan.loras)  # the SD 1.5 realism LoRA is not merged on SDXL
    assert any("follows the identity's SDXL base model" in w for w in plan.warnings)
    # an explicit size always wins
    plan = plan_run(GenerateConfig(style="cyberpunk", size="96x64"), ident, None, None, store)
    assert (plan.width, plan.height) == (96, 64)


def test_sd15_style_sizes_stay_512(tiny_sd_dir, tmp_path):
    ident = Identity(name="sd", base_model=str(tiny_sd_dir), trigger_word="a man", path=tmp_path, family="sd15")
    style = resolve_style("cyberpunk")
    plan = plan_run(GenerateConfig(base_model=str(tiny_sd_dir), face_lora=None, photo=["x.jpg"]), ident, style, None,
                    default_store())
    assert (plan.width, plan.height) == (512, 512) and plan.family == "sd15"


@pytest.mark.parametrize("case", ["sd15-identity", "sd15-style-lora", "sd15-controlnet"])
def test_family_mixtures_are_one_line_errors_before_loading(case, xl_identity, tiny_sdxl_dir, tiny_sd_dir,
                                                            tiny_controlnet_dir, tmp_path):
    from tests.test_generate import _random_lora

    out = tmp_path / "out"
    if case == "sd15-identity":
        sd_ident = tmp_path / "ids" / "bob"
        _random_lora(sd_ident, seed=3)
        Identity(name="bob", base_model=str(tiny_sd_dir), trigger_word="a man", path=sd_ident, family="sd15").save()
        args, expect = ["--person", sd_ident, "--base-model", tiny_sdxl_dir], "was trained on an SD 1.5 base model"
    elif case == "sd15-style-lora":
        sd_lora = _random_lora(tmp_path / "sdlora", seed=4)
        args = ["--person", xl_identity, "--base-model", tiny_sdxl_dir, "--style-lora", sd_lora]
        expect = "an SD 1.5 style LoRA cannot be used with the SDXL base model"
    else:
        pose = tmp_path / "pose.png"
        from tests.test_generate import _skeleton

        Image.fromarray(_skeleton()).save(pose)
        args = ["--person", xl_identity, "--base-model", tiny_sdxl_dir, "--pose", pose,
                "--openpose-controlnet", tiny_controlnet_dir]
        expect = "SD 1.5 ControlNet"
    code, _, err = run_cli("generate", *args, "--prompt", "{trigger}", *TINY, "-n", "1", "-o", out)
    assert code == 2, err
    assert expect in err and err.strip().count("\n") == 0, err
    assert not out.exists()


def test_sdxl_pose_without_a_controlnet_names_the_sdxl_download(xl_identity, tiny_sdxl_dir, tmp_path):
    from tests.test_generate import _skeleton

    pose = tmp_path / "pose.png"
    Image.fromarray(_skeleton()).save(pose)
    code, _, err = run_cli("generate", "--person", xl_identity, "--base-model", tiny_sdxl_dir, "--pose", pose,
                           "--prompt", "{trigger}", *TINY, "-n", "1", "-o", tmp_path / "o", "--offline")
    assert code == 2 and "openpose-controlnet-sdxl" in err, err


def test_photo_portraits_on_sdxl_refuse_the_published_sd15_adapter_before_loading(tiny_sdxl_dir, faces_dir, tmp_path):
    from facechain.generation.pipeline_cache import default_cache

    builds = default_cache().builds
    code, _, err = run_cli("generate", "--photo", faces_dir / "obama" / "obama_small.jpg", "--base-model", tiny_sdxl_dir,
                           "--prompt", "{trigger}", *TINY, "-n", "1", "-o", tmp_path / "o")
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "published FACT checkpoints are SD 1.5 only" in err and "train-adapter" in err
    assert default_cache().builds == builds and not (tmp_path / "o").exists()


def test_tryon_says_in_one_line_that_it_is_sd15_only(xl_identity, faces_dir, tmp_path):
    code, _, err = run_cli("tryon", faces_dir / "obama" / "obama_small.jpg", "--person", xl_identity, "-o", tmp_path / "o")
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "virtual try-on runs on SD 1.5 models only" in err and not (tmp_path / "o").exists()
