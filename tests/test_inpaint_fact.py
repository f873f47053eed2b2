"""``facechain inpaint TEMPLATE --photo face.jpg``: template inpainting with the train-free FACT adapter.

Tiny SD / ControlNets / FACT adapter (real architectures, random weights; the adapter's gates are
opened so the face tokens do change the UNet) on real template photos and real face photos.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from facechain.fact.testing import tiny_fact_model
from facechain.image_io import load_image, save_png
from facechain.inpainting import InpaintConfig, TemplatePortraitPipeline, inpaint
from facechain.inpainting.testing import save_tiny_inpaint_models
from facechain.perception import get_analyzer
from facechain.perception.attributes import TRIGGER_TABLE
from facechain.testing.tiny import tiny_unet
from tests.cli_helpers import run_cli


@pytest.fixture(scope="module")
def kit(tmp_path_factory, faces_dir):
    root = tmp_path_factory.mktemp("inpaint-fact-kit")
    models = save_tiny_inpaint_models(root / "models")
    adapter = tiny_fact_model(tiny_unet(0), seed=3, open_gates=0.6).save(root / "fact")
    portrait = load_image(faces_dir / "obama/obama_2012_official_portrait.jpg")
    save_png(root / "obama_portrait.png", cv2.resize(portrait, (320, 400), interpolation=cv2.INTER_AREA))
    return SimpleNamespace(models=models, adapter=adapter, obama=faces_dir / "obama/obama_small.jpg",
                           obama2=root / "obama_portrait.png",  # a second, differently lit photo (small: fast)
                           template=faces_dir / "eileen_collins/astronaut.png")


def _model_flags(kit) -> list:
    m = kit.models
    return ["--base-model", m["base_model"], "--openpose-controlnet", m["openpose_controlnet"],
            "--canny-controlnet", m["canny_controlnet"], "--size", "64", "--steps", "2"]


def test_cli_photo_end_to_end_keeps_the_template_outside_the_mask_and_records_the_adapter(kit, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli("inpaint", kit.template, "--photo", kit.obama, "--adapter", kit.adapter,
                                "-n", "1", "--output", out, *_model_flags(kit))
    assert code == 0, err
    assert "saved 1 portrait(s)" in stdout
    original = load_image(kit.template)
    run = json.loads((out / "portraits.json").read_text())["settings"]
    face = run["faces"][0]
    assert run["persons"] == ["obama_small"] and face["identity_path"] is None
    assert face["fact"]["fact_adapter"].startswith(str(kit.adapter))
    assert face["fact"]["adapter_scale"] == 0.55 and face["fact"]["face_tokens"] == 16
    assert face["fact"]["face_photos"] == [str(kit.obama)]
    assert run["config"]["adapter"] == str(kit.adapter)
    assert any(face["prompt"].startswith(t) for t in TRIGGER_TABLE.values()), face["prompt"]  # from age/gender
    assert "man" in face["prompt"].split(",")[0]  # the photo shows a man (the template a woman)

    with Image.open(out / "0001.png") as im:
        text = dict(im.text)
        img = np.asarray(im.convert("RGB"))
    assert img.shape == original.shape  # the template's size
    x0, y0, side = face["crop"]
    changed = (img != original).any(axis=2)
    assert changed.any()
    ys, xs = np.nonzero(changed)  # inside the face crop, and no more pixels than the dilated mask
    assert xs.min() >= x0 and xs.max() < x0 + side and ys.min() >= y0 and ys.max() < y0 + side
    assert changed.sum() <= face["mask_pixels"]
    fact = json.loads(text["facechain"])["fact"]
    assert fact["fact_adapter"].startswith(str(kit.adapter)) and fact["adapter_scale"] == 0.55
    assert fact["face_photos"] == [str(kit.obama)]
    assert "Adapter scale: 0.55" in text["parameters"]


def test_python_api_several_photos_scale_matters_and_hooks_are_removed(kit, tmp_path):
    pipe = TemplatePortraitPipeline.from_models(
        kit.models["base_model"], kit.models["openpose_controlnet"], kit.models["canny_controlnet"],
        analyzer=get_analyzer("hog"), config=InpaintConfig(size=64, steps=2, num_images=1, fusion="none",
                             seam_correction=False, mask="landmarks"),  # the CLI test covers those
    )
    unet = pipe.text2img.unet
    hooks_before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in unet.modules())
    runs = {}
    for scale in (0.0, 1.0):
        result = inpaint(kit.template, photo=[kit.obama, kit.obama2], adapter=kit.adapter, adapter_scale=scale,
                         output=tmp_path / f"s{scale}", pipeline=pipe, quiet=True)
        res = result.details.faces[0]
        assert res.fact["face_tokens"] == 32 and res.fact["adapter_scale"] == scale  # 16 tokens per photo
        assert res.job.reference_embedding is not None and res.job.face_photo is not None
        runs[scale] = res.stage1.raw
    assert not np.array_equal(runs[0.0], runs[1.0])  # the face tokens reach the UNet
    hooks_after = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in unet.modules())
    assert hooks_after == hooks_before  # the base pipeline is untouched afterwards
    assert len(pipe._fact_models) == 1  # the adapter was loaded once for both runs


@pytest.mark.parametrize("case", ["no face", "missing adapter", "photo and person", "two faces"])
def test_photo_mistakes_fail_with_one_line_errors(kit, tmp_path, faces_dir, case):
    noface = tmp_path / "no_face.png"
    save_png(noface, load_image(faces_dir / "eileen_collins/astronaut.png")[:240, 330:])
    argv, message = {
        "no face": (["--photo", noface, "--adapter", kit.adapter],
                    f"{noface}: no face found in this photo"),
        "missing adapter": (["--photo", kit.obama], "facechain models download fact-adapter"),
        "photo and person": (["--photo", kit.obama, "--person", "someone", "--adapter", kit.adapter],
                             "--photo and --person both given"),
        "two faces": (["--photo", kit.obama, "--face-index", "0", "--face-index", "1", "--adapter", kit.adapter],
                      "--photo puts one person into one face"),
    }[case]
    out = tmp_path / "out"
    code, _, err = run_cli("inpaint", kit.template, *argv, "--output", out, *_model_flags(kit))
    assert code == 2, (case, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("facechain inpaint: error:"), err
    assert message in err, (case, err)
    assert not out.exists()
