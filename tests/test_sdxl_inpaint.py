"""``facechain inpaint`` on an SDXL base model: the same two stages with SDXL pipelines and ControlNets.

Tiny SDXL-architecture models (two text encoders, ``text_time`` added conditioning, random weights)
draw noise faces, so these tests check the plumbing: the base model's family picks the pipeline
classes, the ControlNets and the crop size; every pixel outside the dilated masks stays the
template's; FACT face tokens at scale 0 change nothing; mixing families is one line, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from facechain.diffusion.family import FamilyMismatchError
from facechain.fact.testing import tiny_fact_model
from facechain.diffusion.device import resolve_device
from facechain.generation.pipeline_cache import LoraSet, PipelineCache, PipelineKey
from facechain.image_io import load_image, save_png
from facechain.inpainting import InpaintConfig, TemplatePortraitPipeline, inpaint
from facechain.inpainting.pipeline import stage_pipelines
from facechain.inpainting.testing import save_tiny_identity, save_tiny_inpaint_models, side_by_side
from facechain.perception import get_analyzer
from facechain.pipelines import PortraitPipeline, TemplatePipeline
from facechain.testing.tiny import tiny_controlnet, tiny_sdxl_controlnet, tiny_sdxl_pipeline, tiny_sdxl_unet, tiny_unet
from tests.cli_helpers import run_cli
from tests.test_inpaint import _full_masks, _PhotoPipe
from tests.test_sdxl_family import _one_line_exit_2, no_model_loading  # noqa: F401 (a fixture)

TINY = dict(size=64, steps=2, num_images=1)
OBAMA = "obama/obama_2012_official_portrait.jpg"
BIDEN = "biden/biden_official_portrait_unverified.jpg"


@pytest.fixture(scope="module")
def kit(tmp_path_factory, faces_dir):
    """Tiny SDXL base + SDXL ControlNets, two SDXL identities whose manifests name that base, the
    SD 1.5 counterparts for the mismatch cases, and a two-face group template."""
    root = tmp_path_factory.mktemp("sdxl-inpaint-kit")
    xl = save_tiny_inpaint_models(root / "xl", family="sdxl")
    sd = save_tiny_inpaint_models(root / "sd")
    base = str(xl["base_model"])
    obama = save_tiny_identity(root / "obama", "obama", faces_dir / OBAMA, seed=1, base_model=base, family="sdxl")
    biden = save_tiny_identity(root / "biden", "biden", faces_dir / BIDEN, seed=2, base_model=base, family="sdxl")
    sd_person = save_tiny_identity(root / "sdperson", "sdperson", faces_dir / OBAMA, seed=3,
                                   base_model=str(sd["base_model"]))
    save_png(root / "group.png", side_by_side([faces_dir / OBAMA, faces_dir / BIDEN]))
    return SimpleNamespace(root=root, xl=xl, sd=sd, obama=obama, biden=biden, sd_person=sd_person,
                           group=root / "group.png", single=faces_dir / "eileen_collins/astronaut.png")


def _controlnet_flags(models) -> list:
    return ["--openpose-controlnet", models["openpose_controlnet"], "--canny-controlnet", models["canny_controlnet"]]


def test_stage_pipelines_follow_the_base_models_family():
    base = tiny_sdxl_pipeline()
    text2img, inpaint_pipe = stage_pipelines(base, tiny_sdxl_controlnet(1), tiny_sdxl_controlnet(2))
    assert type(text2img).__name__ == "StableDiffusionXLControlNetPipeline"
    assert type(inpaint_pipe).__name__ == "StableDiffusionXLControlNetInpaintPipeline"
    assert type(inpaint_pipe.controlnet).__name__ == "MultiControlNetModel"
    for pipe in (text2img, inpaint_pipe):  # from_pipe: one UNet, VAE and pair of text encoders
        assert pipe.unet is base.unet and pipe.vae is base.vae and pipe.text_encoder_2 is base.text_encoder_2
    with pytest.raises(FamilyMismatchError, match="an SD 1.5 Canny ControlNet cannot be used with an SDXL base model"):
        stage_pipelines(base, tiny_sdxl_controlnet(1), tiny_controlnet(2))


def test_two_sdxl_people_through_the_shared_cache_keep_every_pixel_outside_the_masks(kit, tmp_path):
    """TemplatePipeline on a PortraitPipeline's SDXL base (the process cache path, ``from_pipe``)."""
    cache = PipelineCache()
    portraits = PortraitPipeline.from_pretrained(kit.xl["base_model"], cache=cache, analyzer=get_analyzer("hog"))
    key = PipelineKey(str(Path(kit.xl["base_model"]).resolve()), str(resolve_device("auto")), "fp32")
    base = cache.get(key, LoraSet(()))  # what the portrait pipeline loaded (no second build below)
    assert type(base).__name__ == "StableDiffusionXLPipeline"
    unet = base.unet
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    templates = TemplatePipeline.from_pipe(portraits, openpose=kit.xl["openpose_controlnet"],
                                           canny=kit.xl["canny_controlnet"])
    result = templates(kit.group, [kit.obama.path, kit.biden.path], output=tmp_path / "out", quiet=True, seed=3, **TINY)
    assert cache.builds == 1  # the portrait pipeline's SDXL base was reused, not loaded again
    template = load_image(kit.group)
    masks = _full_masks(result, template.shape)
    assert [f.job.identity.name for f in result.details.faces] == ["obama", "biden"]
    img = load_image(result[0].path)
    assert img.shape == template.shape
    diff = np.abs(img.astype(int) - template).max(axis=2)
    for m in masks:  # both faces were repainted ...
        assert (diff[m] > 0).mean() > 0.5
    assert (diff[~(masks[0] | masks[1])] == 0).all()  # ... and nothing else, exactly
    seam = result[0].faces[0]["seam"]  # SDXL's VAE round trip is added back: no square crop edge
    assert seam["border_corrected"] < 0.5 * seam["border_uncorrected"]
    settings = json.loads((tmp_path / "out" / "portraits.json").read_text())["settings"]
    assert settings["size"] == "64x64" and settings["base_model"] == str(kit.xl["base_model"])
    after = unet.state_dict()  # each person's SDXL LoRA was removed after their face
    assert max(float((after[k] - v).abs().max()) for k, v in before.items()) < 1e-5


def test_cli_the_identitys_manifest_picks_the_sdxl_base(kit, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli("inpaint", kit.single, "--person", kit.obama.path, "-o", out, "-n", "1", "--size", "64",
                                "--steps", "2", *_controlnet_flags(kit.xl))  # no --base-model
    assert code == 0, err
    run = json.loads((out / "portraits.json").read_text())["settings"]
    assert run["base_model"] == str(kit.xl["base_model"]) and run["persons"] == ["obama"]
    original = load_image(kit.single)
    img = load_image(out / "0001.png")
    x0, y0, side = run["faces"][0]["crop"]
    changed = (img != original).any(axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.any() and xs.min() >= x0 and xs.max() < x0 + side and ys.min() >= y0 and ys.max() < y0 + side
    assert changed.sum() <= run["faces"][0]["mask_pixels"]


def test_without_controlnets_an_sdxl_base_asks_for_the_sdxl_ones(kit, tmp_path, no_model_loading):
    code, _, err = run_cli("inpaint", kit.single, "--person", kit.obama.path, "-o", tmp_path / "out", "--size", "64")
    _one_line_exit_2(code, err, "openpose-controlnet-sdxl")
    code, _, err = run_cli("inpaint", kit.single, "--person", kit.obama.path, "-o", tmp_path / "out", "--size", "64",
                           "--openpose-controlnet", kit.xl["openpose_controlnet"])
    _one_line_exit_2(code, err, "canny-controlnet-sdxl")
    code, _, err = run_cli("inpaint", kit.single, "--person", kit.sd_person.path, "-o", tmp_path / "out")
    _one_line_exit_2(code, err, "openpose-controlnet")
    assert "-sdxl" not in err
    assert not (tmp_path / "out").exists()


def test_the_crop_size_defaults_to_the_familys_native_resolution(kit, faces_dir, tmp_path):
    """Stand-in pipelines (real photos back) with an SD 1.5 or SDXL UNet config: no --size means 512 / 1024."""
    photo = load_image(faces_dir / OBAMA)
    for family, native in (("sd15", 512), ("sdxl", 1024)):
        stages = [_PhotoPipe([photo]), _PhotoPipe([photo])]
        for stage in stages:
            stage.unet = SimpleNamespace(config={"addition_embed_type": "text_time" if family == "sdxl" else None})
        person = kit.obama if family == "sdxl" else kit.sd_person
        stub = TemplatePortraitPipeline(*stages, get_analyzer("hog"), config=InpaintConfig(steps=2, seam_correction=False))
        assert stub.family == family and stub.resolution == native
        for size, side in ((None, native),) + (((256, 256),) if family == "sdxl" else ()):  # explicit sizes stay
            result = inpaint(kit.single, person.path, pipeline=stub, num_images=1, size=size, quiet=True, seed=0)
            assert result.details.faces[0].crop.model_input.shape == (side, side, 3)
            assert result.settings["size"] == f"{side}x{side}"
            assert stages[1].calls[-1][0] == "run"
    with pytest.raises(FamilyMismatchError, match="identity 'sdperson' was trained on an SD 1.5 base model"):
        inpaint(kit.single, kit.sd_person.path, pipeline=stub, num_images=1, quiet=True)  # the SDXL stand-in


@pytest.mark.parametrize("case", ["sd15 identity", "sd15 controlnet", "sdxl identity on sd15", "sd15 adapter",
                                  "published adapter"])
def test_family_mismatches_are_one_line_before_any_model_loads(kit, tmp_path, faces_dir, case, no_model_loading):
    sd_adapter = kit.root / "fact-sd15"
    if not sd_adapter.exists():
        tiny_fact_model(tiny_unet(0), open_gates=0.5).save(sd_adapter)
    argv, needles = {
        "sd15 identity": (["--person", kit.sd_person.path, "--base-model", kit.xl["base_model"],
                           *_controlnet_flags(kit.xl)], ["identity 'sdperson' was trained on an SD 1.5 base model"]),
        "sd15 controlnet": (["--person", kit.obama.path, *_controlnet_flags(kit.sd)],
                            [str(kit.sd["openpose_controlnet"]), "an SD 1.5 ControlNet cannot be used with the SDXL"]),
        "sdxl identity on sd15": (["--person", kit.obama.path, "--base-model", kit.sd["base_model"],
                                   *_controlnet_flags(kit.sd)], ["identity 'obama' was trained on an SDXL base model"]),
        "sd15 adapter": (["--photo", faces_dir / "obama/obama_small.jpg", "--adapter", sd_adapter, "--base-model",
                          kit.xl["base_model"], *_controlnet_flags(kit.xl)], [str(sd_adapter), "SD 1.5 only"]),
        "published adapter": (["--photo", faces_dir / "obama/obama_small.jpg", "--base-model", kit.xl["base_model"]],
                              ["fact-adapter: this FACT adapter was trained for SD 1.5", "SD 1.5 only"]),  # not downloaded
    }[case]
    out = tmp_path / "out"
    code, _, err = run_cli("inpaint", kit.single, *argv, "-o", out, "--size", "64", "--steps", "2")
    _one_line_exit_2(code, err, *needles)
    assert err.startswith("facechain inpaint: error:")
    assert not out.exists()  # nothing written


def test_fact_photos_on_sdxl_at_scale_zero_are_exactly_the_base_pipeline(kit, faces_dir, tmp_path):
    pipe = TemplatePortraitPipeline.from_models(
        kit.xl["base_model"], kit.xl["openpose_controlnet"], kit.xl["canny_controlnet"], analyzer=get_analyzer("hog"),
        config=InpaintConfig(**TINY, fusion="none", mask="landmarks"))
    assert type(pipe.text2img).__name__ == "StableDiffusionXLControlNetPipeline" and pipe.resolution == 64
    adapter = tiny_fact_model(tiny_sdxl_unet(0), seed=3, open_gates=0.6).save(tmp_path / "fact-xl")
    photo = faces_dir / "obama/obama_small.jpg"
    runs = {}
    for scale in (0.0, 1.0):
        result = inpaint(kit.single, photo=photo, adapter=adapter, adapter_scale=scale, pipeline=pipe, seed=5,
                         quiet=True)
        runs[scale] = result.details.faces[0]
        assert runs[scale].fact["adapter_scale"] == scale and runs[scale].fact["face_tokens"] == 16
    off, on = runs[0.0], runs[1.0]
    # Outside the adapter's block (no hooks, plain text prompt) the same stages draw the same pixels.
    plain1 = pipe.stage1(off.crop, off.job, 5)
    plain2 = pipe.stage2(off.crop, off.pose_image, off.canny_image, off.job, 5)
    assert np.array_equal(off.stage1.raw, plain1.raw) and np.array_equal(off.candidates[0].raw, plain2.raw)
    assert not np.array_equal(on.stage1.raw, plain1.raw)  # the face tokens do reach the SDXL UNet


def test_seam_round_trip_of_an_fp16_sdxl_vae_runs_in_fp32_and_leaves_the_vae_alone():
    """SDXL's VAE says ``force_upcast`` (it overflows in fp16): the round trip uses its fp32 twin."""
    import copy

    import torch

    from facechain.inpainting.seam import vae_round_trip
    from facechain.testing.tiny import tiny_vae

    vae16 = tiny_vae(0, scaling_factor=0.13025, force_upcast=True).to(torch.float16)
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    got = vae_round_trip(vae16, image, "sdxl")
    want = vae_round_trip(copy.deepcopy(vae16).to(torch.float32), image, "sdxl")
    assert got.dtype == np.float32 and np.isfinite(got).all() and np.array_equal(got, want)
    # SD 1.5 VAEs carry the flag too (diffusers' default) without meaning it: they stay in fp16
    assert not np.array_equal(vae_round_trip(vae16, image, "sd15"), want)
    assert next(vae16.parameters()).dtype == torch.float16  # the shared VAE is not converted
