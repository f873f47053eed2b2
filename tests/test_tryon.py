"""``facechain tryon`` on tiny models: the garment kept bit for bit, everything else redrawn, the face
stage run, metadata written, and one-line errors before any model is loaded.

Tiny SD / ControlNets / depth model (real architectures, random weights) draw noise, so these tests
check the plumbing of paper section 3.1 (what is kept, what is redrawn, which steps ran), not beauty.
The model photo is a real suit photo (arms crossed, a hand visible), scaled down for speed.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from facechain.apps.tryon import TryOnConfig, TryOnPipeline, tryon
from facechain.apps.tryon.testing import save_tiny_tryon_models
from facechain.image_io import load_image, save_png
from facechain.inpainting.testing import save_tiny_identity
from tests.cli_helpers import run_cli

TINY = dict(size=64, steps=2)


@pytest.fixture(scope="module")
def kit(tmp_path_factory, faces_dir):
    root = tmp_path_factory.mktemp("tryon-kit")
    models = save_tiny_tryon_models(root / "models")
    person = save_tiny_identity(root / "obama", "obama", faces_dir / "obama/obama_2012_official_portrait.jpg", seed=1)
    photo = load_image(faces_dir / "obama/obama_2012_official_portrait.jpg")
    save_png(root / "model.png", cv2.resize(photo, (364, 455), interpolation=cv2.INTER_AREA))
    return SimpleNamespace(root=root, models=models, person=person, photo=root / "model.png")


def _flags(kit, *extra) -> list:
    m = kit.models
    return ["--base-model", m["base_model"], "--openpose-controlnet", m["openpose_controlnet"],
            "--canny-controlnet", m["canny_controlnet"], "--size", "64", "--steps", "2", "-q", *extra]


def test_garment_pixels_kept_exactly_everything_else_redrawn_and_the_face_stage_ran(kit, tmp_path):
    """9-channel inpainting UNet for the redraw, depth on the hands, face stage on the 4-channel base."""
    m = kit.models
    cfg = TryOnConfig(num_images=2, depth=True, **TINY)
    pipe = TryOnPipeline.from_models(m["base_model"], m["openpose_controlnet"], m["canny_controlnet"],
                                     inpaint_model=m["inpaint_model"], depth_controlnet=m["depth_controlnet"],
                                     depth_estimator=m["depth_estimator"], config=cfg, device="cpu")
    assert pipe.inpaint.unet.config.in_channels == 9 and pipe.face_stage.text2img.unet.config.in_channels == 4
    unets = [pipe.inpaint.unet, pipe.face_stage.text2img.unet]
    before = [{k: v.clone() for k, v in u.state_dict().items()} for u in unets]

    result = tryon(kit.photo, kit.person.path, output=tmp_path / "out", pipeline=pipe, quiet=True)
    outcome = result.details
    photo = load_image(kit.photo)
    garment, keep = outcome.inputs.garment.mask, outcome.keep
    assert len(result) == 2 and outcome.work_size == (48, 64)  # aspect ratio kept, multiples of 8
    assert (keep & ~garment).sum() == 0 and keep.sum() > 0.6 * garment.sum()
    for portrait, im in zip(result, outcome.images):
        saved = load_image(portrait.path)
        assert saved.shape == photo.shape and np.array_equal(saved, im.image)
        assert np.array_equal(saved[keep], photo[keep])  # the garment, bit for bit
        changed = (saved != photo).any(axis=2)
        assert changed[~garment].mean() > 0.9  # everything that is not garment was redrawn
        assert im.face_outcome is not None and im.face_source in ("redrawn", "model-photo")
    assert outcome.steps["face_stage"] == "ran" and outcome.timings["face_stage"] > 0
    assert outcome.steps["redraw"] == "ran (strength 1.0)"
    assert outcome.steps["depth"] == "ran" and outcome.controls.depth is not None
    hands = outcome.inputs.hands
    assert hands, "the visible hand was not found"
    assert outcome.controls.depth.any() and outcome.controls.depth.mean() < 0.2 * 255  # depth on the hands only
    assert {"segmentation", "hands", "controls", "inpainting", "face_stage"} <= outcome.timings.keys()
    # the face LoRA was fused for the redraw and the face stage only, and removed afterwards
    for u, b in zip(unets, before):
        now = u.state_dict()
        assert max(float((now[k] - v).abs().max()) for k, v in b.items()) < 1e-5


def test_cli_end_to_end_with_metadata_intermediates_and_a_fresh_output(kit, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli("tryon", kit.photo, "--person", kit.person.path, "-o", out, "-n", "1",
                                "--prompt", "on a beach", "--seed", "5", "--save-intermediates", *_flags(kit))
    assert code == 0, err
    assert "similarity" in stdout and "of the face box" in stdout and "skipped: depth" in stdout
    summary = json.loads((out / "portraits.json").read_text())
    run = summary["settings"]
    assert run["verb"] == "tryon" and run["person"] == "obama" and summary["portraits"][0]["seed"] == 5
    assert run["steps"]["depth"].startswith("skipped: depth-estimator and depth-controlnet not downloaded")
    assert run["steps"]["face_stage"] == "ran" and run["steps"]["hands"].startswith("ran")
    assert run["garment"]["method"] == "offline" and run["garment"]["share_of_face_box"] < 0.02
    assert "on a beach" in run["prompt"] and run["config"]["strength"] == 1.0
    with Image.open(out / "0001.png") as im:
        text = dict(im.text)
        assert im.size == Image.open(kit.photo).size
    assert "Denoising strength: 1.0" in text["parameters"] and "Seed: 5" in text["parameters"]
    assert json.loads(text["facechain"])["person"] == "obama"
    steps = {p.name for p in (out / "intermediates").iterdir()}
    assert {"garment_preview.png", "garment_mask.png", "kept_pixels.png", "control_openpose.png",
            "control_canny.png", "image0_seed5_redraw.png", "image0_seed5_composed.png"} <= steps
    assert not list(tmp_path.glob(".out.partial-*"))

    # The output folder is never reused silently; --overwrite replaces it.
    before = (out / "0001.png").read_bytes()
    code, _, err = run_cli("tryon", kit.photo, "--person", kit.person.path, "-o", out, *_flags(kit))
    assert code == 2 and "already exists; pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "0001.png").read_bytes() == before
    code, _, err = run_cli("tryon", kit.photo, "--person", kit.person.path, "-o", out, "-n", "1", "--overwrite",
                           "--no-face-stage", *_flags(kit))
    assert code == 0, err
    run = json.loads((out / "portraits.json").read_text())["settings"]
    assert run["steps"]["face_stage"] == "skipped: turned off" and not (out / "intermediates").exists()


def test_a_given_garment_mask_is_what_is_kept(kit, tmp_path):
    photo = load_image(kit.photo)
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[250:430, 60:300] = 255  # a rectangle on the jacket
    save_png(tmp_path / "mask.png", mask)
    result = tryon(kit.photo, kit.person.path, garment_mask=tmp_path / "mask.png", output=tmp_path / "out",
                   num_images=1, face_stage=False, quiet=True, base_model=str(kit.models["base_model"]),
                   openpose_controlnet=str(kit.models["openpose_controlnet"]),
                   canny_controlnet=str(kit.models["canny_controlnet"]), **TINY)
    keep = result.details.keep
    assert result.settings["garment"]["method"] == "given" and keep[300:380, 100:260].all() and not keep[:240].any()
    saved = load_image(result[0].path)
    assert np.array_equal(saved[keep], photo[keep]) and (saved[:200] != photo[:200]).any(axis=2).mean() > 0.9


@pytest.mark.parametrize("case", ["no face", "mask size", "mask empty", "mask full"])
def test_one_line_errors_before_any_model_is_loaded(kit, tmp_path, case):
    photo = load_image(kit.photo)
    h, w = photo.shape[:2]
    args = [kit.photo]
    if case == "no face":
        save_png(tmp_path / "wall.png", np.full((400, 300, 3), 180, np.uint8))
        args = [tmp_path / "wall.png"]
        expect = "no face found to put the identity in"
    else:
        shape, fill, expect = {"mask size": ((h // 2, w // 2), 255, f"but the photo is {w}x{h}"),
                               "mask empty": ((h, w), 0, "covers almost nothing"),
                               "mask full": ((h, w), 255, "covers almost everything")}[case]
        save_png(tmp_path / "mask.png", np.full(shape, fill, np.uint8))
        args += ["--garment-mask", tmp_path / "mask.png"]
    # models that do not exist: an error about them would mean they were loaded before the check
    code, _, err = run_cli("tryon", *args, "--person", kit.person.path, "-o", tmp_path / "out",
                           "--base-model", tmp_path / "no-such-model", "-q")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facechain tryon: error: ") and expect in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_python_api_is_exported_and_the_verb_is_listed():
    import facechain

    assert facechain.tryon is tryon
    code, out, _ = run_cli("tryon", "--help")
    assert code == 0 and "--garment-mask" in out and "--depth" in out
    code, out, _ = run_cli("models")
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    for name in ("hands", "selfie-segmentation", "depth-controlnet", "depth-estimator", "m2fp-parsing",
                 "openpose-controlnet", "canny-controlnet", "body-pose"):
        assert "tryon" in rows[name], name
