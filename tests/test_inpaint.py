"""``facechain inpaint``: two-stage template inpainting on tiny models and real template photos.

Tiny SD / ControlNets (real architectures, random weights) draw noise faces, so these tests check
the plumbing the paper describes (what is repainted, what is kept, seams, metadata, errors), not
beauty. Stage 1's landmark path and the ranking are exercised with stand-in pipelines that return
real photographs.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facechain.errors import ModelNotFoundError
from facechain.image_io import load_image, save_jpeg, save_png
from facechain.inpainting import InpaintConfig, TemplatePortraitPipeline, inpaint
from facechain.inpainting.control import BodyPoseSource
from facechain.inpainting.geometry import square_crop_box
from facechain.inpainting.testing import save_tiny_identity, save_tiny_inpaint_models, side_by_side
from facechain.perception import get_analyzer
from tests.cli_helpers import run_cli

TINY = dict(size=64, steps=2, num_images=2)


@pytest.fixture(scope="module")
def kit(tmp_path_factory, faces_dir):
    root = tmp_path_factory.mktemp("inpaint-kit")
    models = save_tiny_inpaint_models(root / "models")
    obama = save_tiny_identity(root / "obama", "obama", faces_dir / "obama/obama_2012_official_portrait.jpg", seed=1)
    biden = save_tiny_identity(root / "biden", "biden", faces_dir / "biden/biden_official_portrait_unverified.jpg", seed=2)
    group = side_by_side([faces_dir / "obama/obama_2012_official_portrait.jpg",
                          faces_dir / "biden/biden_official_portrait_unverified.jpg"])
    save_png(root / "group.png", group)
    return SimpleNamespace(root=root, models=models, obama=obama, biden=biden, group=root / "group.png")


@pytest.fixture(scope="module")
def pipe(kit):
    """The real tiny pipelines, loaded once for the Python-API tests."""
    return TemplatePortraitPipeline.from_models(
        kit.models["base_model"], kit.models["openpose_controlnet"], kit.models["canny_controlnet"],
        analyzer=get_analyzer("hog"), config=InpaintConfig(**TINY),
    )


def _model_flags(kit) -> list[str]:
    m = kit.models
    return ["--base-model", m["base_model"], "--openpose-controlnet", m["openpose_controlnet"],
            "--canny-controlnet", m["canny_controlnet"], "--size", "64", "--steps", "2"]


def _full_masks(result, shape) -> list[np.ndarray]:
    """Each replaced face's dilated mask (soft weight > 0) in template pixels."""
    masks = []
    for face in result.details.faces:
        m = np.zeros(shape[:2], bool)
        m[face.crop.box.slices] = face.crop.mask.hard
        masks.append(m)
    return masks


def test_cli_single_person_end_to_end_with_metadata_and_no_overwrite(kit, faces_dir, tmp_path):
    template = faces_dir / "eileen_collins/astronaut.png"
    out = tmp_path / "out"
    code, stdout, err = run_cli("inpaint", template, "--person", kit.obama.path, "--output", out, "-n", "2",
                                "--save-intermediates", *_model_flags(kit))
    assert code == 0, err
    assert (out / "0001.png").is_file() and (out / "0002.png").is_file() and f"to {out}" in stdout
    original = load_image(template)
    summary = json.loads((out / "portraits.json").read_text())
    run = summary["settings"]
    assert run["verb"] == "inpaint" and run["persons"] == ["obama"] and run["face_indices"] == [0] and run["strength"] == 0.65
    assert [p["rank"] for p in summary["portraits"]] == [1, 2]  # 1-based, as generate
    x0, y0, side = run["faces"][0]["crop"]
    for name in ("0001.png", "0002.png"):
        with Image.open(out / name) as im:
            text = dict(im.text)
            img = np.asarray(im.convert("RGB"))
        assert img.shape == original.shape  # the template's size
        changed = (img != original).any(axis=2)
        assert changed.any()
        ys, xs = np.nonzero(changed)  # only inside the face crop, and no more than the dilated mask
        assert xs.min() >= x0 and xs.max() < x0 + side and ys.min() >= y0 and ys.max() < y0 + side
        assert changed.sum() <= run["faces"][0]["mask_pixels"]
        assert {"facechain", "parameters"} <= text.keys()
        assert "Denoising strength: 0.65" in text["parameters"] and "a handsome man" in text["parameters"]
        meta = json.loads(text["facechain"])
        assert meta["persons"] == ["obama"] and meta["strength"] == 0.65 and meta["template"] == str(template)
        assert isinstance(meta["seed"], int) and meta["faces"][0]["person"] == "obama"
    steps = out / "intermediates"
    assert {"face0_stage1.png", "face0_stage1_pose.png", "face0_stage2_pose.png", "face0_stage2_canny.png",
            "face0_mask.png"} <= {p.name for p in steps.iterdir()}

    # A second run into the same folder is refused (as generate): nothing is appended or overwritten...
    before = {p.name: p.read_bytes() for p in out.glob("*.png")}
    code, _, err = run_cli("inpaint", template, "--person", kit.obama.path, "--output", out, "-n", "1",
                           "--seed", "7", *_model_flags(kit))
    assert code == 2 and "already exists; pass --overwrite" in err
    assert all((out / n).read_bytes() == b for n, b in before.items())
    # ... unless --overwrite, which replaces the folder facechain wrote.
    code, _, err = run_cli("inpaint", template, "--person", kit.obama.path, "--output", out, "-n", "1",
                           "--seed", "7", "--overwrite", *_model_flags(kit))
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.png")) == ["0001.png"]
    assert json.loads((out / "portraits.json").read_text())["settings"]["seed"] == 7


def test_two_people_replace_both_faces_and_nothing_between(kit, pipe, tmp_path):
    unet_before = {k: v.clone() for k, v in pipe.text2img.unet.state_dict().items()}
    result = inpaint(kit.group, [kit.obama.path, kit.biden.path], output=tmp_path / "out", pipeline=pipe,
                     quiet=True)
    template = load_image(kit.group)
    masks = _full_masks(result, template.shape)
    assert [f.job.face.index for f in result.details.faces] == [0, 1]
    assert [f.job.identity.name for f in result.details.faces] == ["obama", "biden"]
    for path in [p.path for p in result]:
        img = load_image(path)
        assert img.shape == template.shape
        diff = np.abs(img.astype(int) - template).max(axis=2)
        for m in masks:  # both faces were repainted
            assert (diff[m] > 0).mean() > 0.5
        outside = ~(masks[0] | masks[1])
        assert (diff[outside] == 0).all()  # exactly the template outside the dilated masks
        x_gap = slice(masks[0].any(0).nonzero()[0].max() + 1, masks[1].any(0).nonzero()[0].min())
        assert x_gap.start < x_gap.stop and (diff[:, x_gap] == 0).all()  # nothing between the faces
    # The seam correction: colour error against the template on the mask's feathered edge and on
    # the crop border, with and without adding the VAE round-trip error back.
    print()
    for rec in [p.metadata for p in result]:
        for f in rec["faces"]:
            s = f["seam"]
            print(f"{rec['file']} face {f['face_index']} ({f['person']}): mean |error| 0-255, feather band "
                  f"{s['band_uncorrected']:.2f} -> {s['band_corrected']:.2f} corrected; crop border "
                  f"{s['border_uncorrected']:.2f} -> {s['border_corrected']:.2f} corrected")
            assert s["border_corrected"] < 0.5 * s["border_uncorrected"]
            assert s["band_corrected"] < s["band_uncorrected"]
    # Each person's LoRA was applied for their face only and removed afterwards.
    unet_after = pipe.text2img.unet.state_dict()
    assert unet_after.keys() == unet_before.keys()
    assert max(float((unet_after[k] - v).abs().max()) for k, v in unet_before.items()) < 1e-5


def test_each_persons_lora_is_active_only_for_their_face(kit, pipe):
    """Both diffusion pipelines share one UNet: a person's LoRA changes it inside person_lora only."""
    assert pipe.inpaint.unet is pipe.text2img.unet and pipe.inpaint.vae is pipe.text2img.vae
    base = {k: v.clone() for k, v in pipe.text2img.unet.state_dict().items()}

    def max_change():
        now = pipe.text2img.unet.state_dict()
        return max(float((now[k] - v).abs().max()) for k, v in base.items() if k in now)

    seen = {}
    for ident in (kit.obama, kit.biden):
        with pipe.person_lora(ident):
            # (peft keeps the fused weight as "<layer>.base_layer.weight" while the adapter is attached)
            seen[ident.name] = {k.replace(".base_layer", ""): v.clone()
                                for k, v in pipe.inpaint.unet.state_dict().items() if "lora_" not in k}
            assert seen[ident.name].keys() == base.keys()
            assert max(float((seen[ident.name][k] - base[k]).abs().max()) for k in base) > 1e-3
        assert max_change() < 1e-5  # base weights back for the next person
    assert any(not torch.equal(seen["obama"][k], seen["biden"][k]) for k in base)


def test_huge_template_goes_through_the_crop_path(kit, pipe, tmp_path):
    group = load_image(kit.group)
    scale = 6000 / group.shape[1]
    big = cv2.resize(group, (6000, round(group.shape[0] * scale)), interpolation=cv2.INTER_LINEAR)
    big = cv2.copyMakeBorder(big, 0, 4000 - big.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    save_jpeg(tmp_path / "huge.jpg", big, quality=85)
    template = load_image(tmp_path / "huge.jpg")
    assert template.shape == (4000, 6000, 3)
    result = inpaint(tmp_path / "huge.jpg", kit.biden.path, face_index=1, output=tmp_path / "out",
                     pipeline=pipe, num_images=1, quiet=True)
    face = result.details.faces[0]
    assert face.crop.model_input.shape == (64, 64, 3)  # SD ran on the crop at its resolution
    assert face.crop.box.side > 1000
    img = load_image(result[0].path)
    assert img.shape == template.shape
    (mask,) = _full_masks(result, template.shape)
    changed = (img != template).any(axis=2)
    assert changed.any() and not (changed & ~mask).any()


class _PhotoPipe:
    """Stands in for a diffusion pipeline: returns real photographs (seed k -> photo k mod n)."""

    def __init__(self, photos, vae=None):
        self.photos, self.vae, self.calls = photos, vae, []

    def set_progress_bar_config(self, **kw):
        pass

    # LoRA calls are accepted and recorded (the real pipelines are tested above).
    def load_lora_weights(self, *a, **kw):
        self.calls.append(("load_lora", kw.get("adapter_name")))

    def get_list_adapters(self):
        return {"unet": [name for kind, name in self.calls if kind == "load_lora"]}

    def set_adapters(self, *a, **kw):
        pass

    def fuse_lora(self, *a, **kw):
        pass

    def unfuse_lora(self, *a, **kw):
        pass

    def unload_lora_weights(self):
        self.calls.append(("unload_lora", None))

    def __call__(self, **kw):
        self.calls.append(("run", kw["generator"].initial_seed()))
        photo = self.photos[kw["generator"].initial_seed() % len(self.photos)]
        side = kw["height"]
        return SimpleNamespace(images=[cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA) / 255.0])


def _padded(img: np.ndarray, pad: int = 400) -> np.ndarray:
    return cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))


def _face_crop(analyzer, path, share=0.3) -> np.ndarray:
    """A real photo cropped like the pipeline crops templates (face centred, ``share`` of the side)."""
    img = _padded(load_image(path))
    face = analyzer.analyze(img)[0]
    return square_crop_box(face, img.shape, share).cut(img)


def test_stage1_face_is_warped_onto_the_template_and_candidates_are_ranked(kit, pipe, faces_dir, tmp_path):
    analyzer = get_analyzer("hog")
    obama = _face_crop(analyzer, faces_dir / "obama/obama_2012_official_portrait.jpg")
    biden = _face_crop(analyzer, faces_dir / "biden/biden_official_portrait_unverified.jpg")
    stage1 = _PhotoPipe([obama])
    stage2 = _PhotoPipe([obama, biden], vae=pipe.inpaint.vae)  # seed 0: obama, seed 1: biden
    cfg = InpaintConfig(size=256, steps=2, num_images=2)
    stub = TemplatePortraitPipeline(stage1, stage2, analyzer, config=cfg)
    template = tmp_path / "astronaut_padded.png"
    save_png(template, _padded(load_image(faces_dir / "eileen_collins/astronaut.png")))
    result = inpaint(template, kit.obama.path, output=tmp_path / "out", pipeline=stub, quiet=True, seed=0)
    face = result.details.faces[0]
    # Stage 1 drew a detectable face: its 68 landmarks were fused and warped onto the template face.
    assert face.stage1.landmarks is not None and face.stage1.fused
    assert face.warp.source == "stage1"
    lo, hi = face.crop.landmarks.min(0), face.crop.landmarks.max(0)
    margin = 0.1 * (hi - lo)
    assert ((face.warp.landmarks >= lo - margin) & (face.warp.landmarks <= hi + margin)).all()
    print(f"\nstage-1 landmarks -> template face: affine fit RMS {face.warp.fit.rms_error:.2f} px "
          f"({face.warp.fit.rel_error:.2%} of the face)")
    assert face.warp.fit.rel_error < 0.08
    # Stage 2's pose condition shows the warped landmarks, not the template's own.
    assert (face.pose_image > 0).any()
    # Ranking against obama's reference face puts the obama candidate first.
    sims = [c.similarity for c in face.candidates]
    print(f"candidate similarities to obama (best first): seeds {[c.seed for c in face.candidates]} -> "
          f"{[round(s, 3) for s in sims]}")
    assert face.candidates[0].seed == 0 and sims[0] > sims[1]
    assert result[0].similarity == pytest.approx(sims[0], abs=1e-4)
    assert stage1.calls[0] == ("load_lora", "face") and stage1.calls[-1] == ("unload_lora", None)


def test_missing_body_pose_model_falls_back_to_face_landmarks(kit, pipe, faces_dir, tmp_path):
    """No body-pose model: stage 1 is guided by the template's face landmarks, with a warning."""
    class NoModel:
        def estimate(self, image, faces=None):
            raise ModelNotFoundError("body-pose", "pypi:mediapipe==0.10.21", "run 'facechain models download body-pose'")

    no_pose = pipe.with_config(pipe.config)  # same models, own components
    no_pose.body_pose = BodyPoseSource(NoModel())
    template = faces_dir / "obama/obama_2009_congress_address.jpg"
    result = inpaint(template, kit.obama.path, output=tmp_path / "o", pipeline=no_pose, num_images=1,
                     seam_correction=False, mask="landmarks", quiet=True)
    assert result.details.faces[0].stage1.pose_source == "face-landmarks"
    # (and without the seam correction, with the landmark-hull mask: still nothing changes outside it)
    seam = result[0].faces[0]["seam"]
    assert seam["border_corrected"] is None and seam["border_uncorrected"] > 0
    (mask,) = _full_masks(result, load_image(template).shape)
    assert not ((load_image(result[0].path) != load_image(template)).any(axis=2) & ~mask).any()
    assert any("body pose unavailable" in w for w in result.warnings)
    assert any("stage 1 drew no detectable face" in w for w in result.warnings)  # noise face: template landmarks
    assert result.details.faces[0].warp.source == "template"


@pytest.mark.parametrize("case, args, message", [
    ("no face", ["{noface}", "--person", "{obama}"], "no face found in the template"),
    ("index out of range", ["{group}", "--person", "{obama}", "--face-index", "2"],
     "--face-index 2 is out of range: the template has 2 faces (0-1, left to right)"),
    ("more people than faces", ["{single}", "--person", "{obama}", "--person", "{biden}"],
     "2 people given but the template has only 1 face"),
    ("face too small", ["{bryan}", "--person", "{obama}"], "face 0 is too small to redraw (37 px, need at least 48 px)"),
    ("index count", ["{group}", "--person", "{obama}", "--face-index", "0", "--face-index", "1"],
     "--face-index given 2 time(s) for 1 --person"),
    ("same face twice", ["{group}", "--person", "{obama}", "--person", "{biden}", "--face-index", "1",
                         "--face-index", "1"], "each face can be replaced only once"),
    ("unknown person", ["{group}", "--person", "nobody"], "nobody: no such identity"),
])
def test_bad_requests_fail_with_one_line_errors(kit, faces_dir, tmp_path, case, args, message):
    noface = tmp_path / "no_face.png"
    save_png(noface, load_image(faces_dir / "eileen_collins/astronaut.png")[:240, 330:])
    values = dict(noface=noface, obama=kit.obama.path, biden=kit.biden.path, group=kit.group,
                  single=faces_dir / "obama/obama_2012_official_portrait.jpg", bryan=faces_dir / "codait_bryan/Bryan.png")
    argv = [a.format(**{k: str(v) for k, v in values.items()}) for a in args]
    out = tmp_path / "out"
    code, _, err = run_cli("inpaint", *argv, "--output", out, *_model_flags(kit))
    assert code == 2, (case, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("facechain inpaint: error:")
    assert message in err, (case, err)
    assert not out.exists()  # nothing written


def test_config_file_and_flags(kit, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("inpaint:\n  strength: 1.5\n")
    code, _, err = run_cli("inpaint", kit.group, "--person", kit.obama.path, "--config", cfg, "--output",
                           tmp_path / "o", *_model_flags(kit))
    assert code == 2 and "strength must be in (0, 1]" in err
    cfg.write_text("inpaint:\n  strenght: 0.5\n")
    code, _, err = run_cli("inpaint", kit.group, "--person", kit.obama.path, "--config", cfg)
    assert code == 2 and "unknown key 'strenght'" in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's file")
    code, _, err = run_cli("inpaint", kit.group, "--person", kit.obama.path, "--output", tmp_path / "mine",
                           "--overwrite", *_model_flags(kit))
    assert code == 2 and "was not written by facechain" in err  # --overwrite never replaces a user's folder
    assert (tmp_path / "mine" / "notes.txt").read_text() == "the user's file"
