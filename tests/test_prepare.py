"""``facechain prepare`` end to end on real photos (../shared/faces), rotated and spoiled.

One run over a mixed folder (rotated photos of Obama, a tilted Biden, a cut-off face, a blurred
copy, two people side by side, broken files) is shared by many assertions; the outputs are
measured with our own detector and 68 landmarks, independently of what the report says.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import facechain
from facechain.errors import NoUsablePhotosError, OutputExistsError
from facechain.perception import get_analyzer
from facechain.perception.tagging import is_identity_bound
from facechain.preprocess.pipeline import PrepareResult, prepare
from facechain.types import cosine_similarity
from tests.cli_helpers import run_cli

ANALYZER = get_analyzer("hog")

# file written into the test folder -> (source photo, clockwise degrees it is turned by)
ROTATED = {
    "a_2012_r90.jpg": ("obama/obama_2012_official_portrait.jpg", 90),
    "b_2009_r180.jpg": ("obama/obama_2009_congress_address.jpg", 180),
    "c_blueroom_r270.jpg": ("obama/obama_2010_blue_room_crop.jpg", 270),
    "d_small_t25.jpg": ("obama/obama_small.jpg", 25),
    "e_2012_tm30.jpg": ("obama/obama_2012_official_portrait.jpg", -30),
    "f_2009_r110.jpg": ("obama/obama_2009_congress_address.jpg", 110),  # sideways and tilted by 20
}
EXPECTED_REJECTIONS = {
    "g_partial.jpg": "cut off at the image edge",
    "h_biden_t30.jpg": "different person than the majority",
    "i_blurred.png": "too blurred",
    "j_two_people.png": "several faces of similar size",
    "k_gradient.png": "no face found",
    "l_truncated.jpg": "truncated or corrupt image",
    "m_text.jpg": "not an image",
    "n_empty.jpg": "empty file",
    "o_tiny.png": "image too small",
}


def _turn(src: Path, degrees: float, dst: Path) -> None:
    im = Image.open(src).convert("RGB")
    im.rotate(-degrees, expand=True, resample=Image.BICUBIC, fillcolor=(120, 120, 120)).save(dst, quality=92)


def _face_square(path: Path, side: int) -> np.ndarray:
    """A square crop around the photo's face, resized to ``side`` (for the two-people photo)."""
    img = np.asarray(Image.open(path).convert("RGB"))
    f = ANALYZER.analyze(img, landmarks=False)[0]
    cx, cy = f.center
    half = int(f.size * 1.3)
    crop = img[max(int(cy - half), 0):int(cy + half), max(int(cx - half), 0):int(cx + half)]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)


def build_mixed_folder(faces: Path, folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, (src, deg) in ROTATED.items():
        _turn(faces / src, deg, folder / name)
    # the face cut at the left edge, as it is
    (folder / "g_partial.jpg").write_bytes((faces / "obama/obama_partial_face.jpg").read_bytes())
    _turn(faces / "biden/biden_2010_blue_room_crop.jpg", 30, folder / "h_biden_t30.jpg")
    blurred = cv2.GaussianBlur(np.asarray(Image.open(faces / "obama/obama_2012_official_portrait.jpg").convert("RGB")), (0, 0), 6.0)
    Image.fromarray(blurred).save(folder / "i_blurred.png")
    two = np.hstack([_face_square(faces / "obama/obama_2012_official_portrait.jpg", 300), _face_square(faces / "biden/biden_official_portrait_unverified.jpg", 300)])
    Image.fromarray(two).save(folder / "j_two_people.png")
    y, x = np.mgrid[0:300, 0:400]
    texture = np.dstack([x * 255 // 400, y * 255 // 300, (128 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0))]).astype(np.uint8)
    Image.fromarray(texture).save(folder / "k_gradient.png")
    jpeg = (faces / "obama/obama_small.jpg").read_bytes()
    (folder / "l_truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "m_text.jpg").write_text("this is not a photo\n")
    (folder / "n_empty.jpg").write_bytes(b"")
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(folder / "o_tiny.png")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Module-scoped runs happen before the per-test isolated home exists: give them their own."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FACECHAIN_HOME", str(tmp_path_factory.mktemp("prep_home")))
    mp.setenv("FACECHAIN_OFFLINE", "1")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def mixed(home, faces_dir, tmp_path_factory) -> PrepareResult:
    root = tmp_path_factory.mktemp("mixed")
    build_mixed_folder(faces_dir, root / "photos")
    return prepare(root / "photos", root / "out", quiet=True, analyzer=ANALYZER)


def _by_name(items):
    return {Path(i.source).name: i for i in items}


# --- which photos were used, and why the others were not -----------------------------------
def test_rotated_photos_are_accepted_and_bad_ones_rejected_with_reasons(mixed):
    assert sorted(_by_name(mixed.accepted)) == sorted(ROTATED)
    rejected = _by_name(mixed.rejected)
    assert sorted(rejected) == sorted(EXPECTED_REJECTIONS)
    for name, reason in EXPECTED_REJECTIONS.items():
        assert reason in rejected[name].reason, (name, rejected[name].reason)
        assert "\n" not in rejected[name].reason


def test_orientation_is_undone(mixed):
    acc = _by_name(mixed.accepted)
    for name, (_, deg) in ROTATED.items():
        total = acc[name].angles["total"]
        assert abs((total + deg + 180) % 360 - 180) < 8.0, (name, acc[name].angles)  # within the photo's own head tilt
    assert acc["a_2012_r90.jpg"].angles["orientation"] == 270
    assert acc["b_2009_r180.jpg"].angles["orientation"] == 180
    assert acc["c_blueroom_r270.jpg"].angles["orientation"] == 90


# --- the outputs, measured with our own detector ---------------------------------------------
def test_every_output_is_level_centred_and_sized(mixed):
    for a in mixed.accepted:
        img = np.asarray(Image.open(a.output))
        assert img.shape == (512, 512, 3) and img.dtype == np.uint8
        faces = ANALYZER.analyze(img)
        assert len(faces) == 1, a.output
        f = faces[0]
        assert abs(f.eye_angle_deg) <= 3.0, (a.source.name, f.eye_angle_deg)
        assert 0.35 <= f.size / 512 <= 0.45, (a.source.name, f.size / 512)
        assert abs(f.center[0] / 512 - 0.5) <= 0.05, (a.source.name, f.center[0] / 512)
        # the report's own measurements agree with ours
        assert a.face["size"] == pytest.approx(f.size / 512, abs=1e-6)


def test_background_is_white_and_face_is_not(mixed):
    for a in mixed.accepted:
        img = np.asarray(Image.open(a.output))
        border = np.concatenate([img[:3].reshape(-1, 3), img[-3:].reshape(-1, 3)])
        assert (border == 255).mean() > 0.95
        f = ANALYZER.analyze(img)[0]
        nose = f.landmarks68[30].astype(int)
        assert img[nose[1], nose[0]].min() < 250


def test_tags_and_captions(mixed):
    acc = _by_name(mixed.accepted)
    assert "smile" in acc["a_2012_r90.jpg"].tags and "smile" in acc["e_2012_tm30.jpg"].tags
    assert "smile" not in acc["c_blueroom_r270.jpg"].tags
    assert "open mouth" in acc["b_2009_r180.jpg"].tags
    lines = [json.loads(line) for line in (mixed.output_dir / "metadata.jsonl").read_text().splitlines()]
    assert [line["file_name"] for line in lines] == [a.output.relative_to(mixed.output_dir).as_posix() for a in mixed.accepted]
    for line, a in zip(lines, mixed.accepted):
        assert (mixed.output_dir / line["file_name"]).is_file()
        assert line["text"].startswith(mixed.trigger_word + ", ") and line["text"] == a.caption
        assert not any(is_identity_bound(t) for t in a.tags)
    n = len(mixed.accepted)
    for tag in mixed.tags_frequent:
        assert sum(tag in a.tags for a in mixed.accepted) * 2 >= n
    assert "white background" in mixed.tags_frequent


def test_trigger_word_for_obama(mixed):
    assert mixed.trigger_word in ("a handsome man", "a mature man")
    assert mixed.gender == "male"


# --- the template face -----------------------------------------------------------------------
def test_template_face_is_one_level_face_with_its_background(mixed):
    img = np.asarray(Image.open(mixed.template_face))
    h, w = img.shape[:2]
    assert h == w >= 256
    faces = ANALYZER.analyze(img, embedding=True)
    assert len(faces) == 1
    f = faces[0]
    assert abs(f.eye_angle_deg) <= 3.0 and 0.35 <= f.size / w <= 0.65
    assert (img[:4] >= 250).all(axis=-1).mean() < 0.5  # not whitened
    assert cosine_similarity(f.embedding, mixed.template_embedding) > 0.99
    best = max(mixed.accepted, key=lambda a: a.quality)
    assert mixed.template_source == best.source


# --- report.json and reading the folder back ---------------------------------------------------
def test_report_and_load_round_trip(mixed):
    report = json.loads((mixed.output_dir / "report.json").read_text())
    assert report["trigger_word"] == mixed.trigger_word
    assert report["template_face"] == "template_face.png"
    assert len(report["template_embedding"]) == 128
    assert {"source", "output", "quality", "angles", "gender", "age", "tags"} <= set(report["accepted"][0])
    assert {r["reason"] for r in report["rejected"]} == {r.reason for r in mixed.rejected}
    loaded = PrepareResult.load(mixed.output_dir)
    assert loaded.trigger_word == mixed.trigger_word
    assert [a.output for a in loaded.accepted] == [a.output for a in mixed.accepted]
    assert [a.source for a in loaded.accepted] == [a.source for a in mixed.accepted]
    assert [(str(r.source), r.reason) for r in loaded.rejected] == [(str(r.source), r.reason) for r in mixed.rejected]
    assert np.allclose(loaded.template_embedding, mixed.template_embedding, atol=1e-5)
    assert loaded.template_face == mixed.template_face and loaded.tags_frequent == mixed.tags_frequent
    text = mixed.summary()
    assert mixed.trigger_word in text and "cut off at the image edge" in text
    assert not any(p.name.startswith(".") for p in mixed.output_dir.parent.iterdir())  # no partial folder left
    assert facechain.PrepareResult is PrepareResult


# --- the woman, and Biden: trigger words ---------------------------------------------------------
def test_woman_gets_a_woman_trigger_word(home, faces_dir, tmp_path):
    photos = tmp_path / "eileen"
    photos.mkdir()
    _turn(faces_dir / "eileen_collins/astronaut.png", 90, photos / "r90.png")
    _turn(faces_dir / "eileen_collins/astronaut.png", -20, photos / "tm20.png")
    res = prepare(photos, tmp_path / "out", quiet=True, retouch=False, analyzer=ANALYZER)
    assert len(res.accepted) == 2 and res.gender == "female"
    assert res.trigger_word == "a beautiful woman"  # she is in her thirties in this photo
    assert res.config["retouch"] is False


def test_biden_gets_a_man_trigger_word_and_background_can_be_kept(home, faces_dir, tmp_path):
    res = prepare(faces_dir / "biden", tmp_path / "out", quiet=True, segmenter="none", retouch=False, analyzer=ANALYZER)
    assert len(res.accepted) == 2
    assert res.trigger_word in ("a handsome man", "a mature man")
    img = np.asarray(Image.open(res.accepted[0].output))
    assert (img[:3] == 255).all(axis=-1).mean() < 0.5  # segmenter "none": background kept


# --- CLI ----------------------------------------------------------------------------------------
def test_cli_trigger_override_config_precedence_and_overwrite(faces_dir, tmp_path):
    cfg = tmp_path / "prep.yaml"
    cfg.write_text("prepare:\n  trigger: a mature woman\n  retouch: false\n  segmenter: none\n")
    out = tmp_path / "out"
    photo = faces_dir / "obama/obama_small.jpg"
    code, stdout, stderr = run_cli("prepare", photo, "-o", out, "-c", cfg, "--trigger", "a handsome man", "-q")
    assert code == 0, stderr
    assert stderr == ""  # -q: no progress at all
    assert 'trigger word: "a handsome man"' in stdout and "obama_small.jpg" in stdout
    line = json.loads((out / "metadata.jsonl").read_text().splitlines()[0])
    assert line["text"].startswith("a handsome man")  # flag beats the config file
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["retouch"] is False and report["config"]["segmenter"] == "none"  # file beats default
    before = sorted(p.name for p in out.rglob("*"))
    code, _, stderr = run_cli("prepare", photo, "-o", out, "-c", cfg)
    assert code == 2 and "--overwrite" in stderr and len(stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.rglob("*")) == before
    with pytest.raises(OutputExistsError):
        prepare(photo, out, quiet=True)
    code, _, stderr = run_cli("prepare", photo, "-o", out, "-c", cfg, "--overwrite", "--trigger", "a mature man")
    assert code == 0, stderr
    assert "loading face models" in stderr and "preparing photos: 100% 1/1 photo" in stderr  # progress, as log lines
    assert json.loads((out / "metadata.jsonl").read_text().splitlines()[0])["text"].startswith("a mature man")


def test_cli_all_bad_photos_exit_1_and_leave_nothing(faces_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "e.png").write_bytes((faces_dir / "codait_bryan/Bryan.png").read_bytes())  # a 37 px face
    (bad / "a.jpg").write_text("not a photo")
    (bad / "b.jpg").write_bytes(b"")
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(bad / "c.png")
    y, x = np.mgrid[0:200, 0:260]
    Image.fromarray(np.dstack([x, y, x // 2 + y // 2]).astype(np.uint8)).save(bad / "d.png")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("prepare", bad, "-o", out, "-q")
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "no usable photo" in lines[0]
    for reason in ("a.jpg: not an image", "b.jpg: empty file", "c.png: image too small", "d.png: no face found", "e.png: face too small"):
        assert reason in lines[0]
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad"]
    with pytest.raises(NoUsablePhotosError):
        prepare(bad / "a.jpg", out, quiet=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, stderr = run_cli("prepare", empty, "-o", out)
    assert code == 1 and "no image files" in stderr


def test_cli_help_and_usage_errors(tmp_path):
    code, stdout, _ = run_cli("prepare", "--help")
    assert code == 0 and "--output" in stdout and "--no-retouch" in stdout and "--trigger" in stdout
    code, _, stderr = run_cli("prepare", "x.jpg", "-o", tmp_path / "o", "--bogus")
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    code, _, stderr = run_cli("prepare", "x.jpg")  # --output missing
    assert code == 2 and "--output" in stderr
    code, _, stderr = run_cli("prepare", "x.jpg", "-o", tmp_path / "o", "-c", tmp_path / "missing.yaml")
    assert code == 2 and "missing.yaml" in stderr and len(stderr.strip().splitlines()) == 1
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("prepare:\n  face_sise: 0.4\n")
    code, _, stderr = run_cli("prepare", "x.jpg", "-o", tmp_path / "o", "-c", bad_cfg)
    assert code == 2 and "face_sise" in stderr
    photo = tmp_path / "x.jpg"  # a real file: a missing input is reported before any model (exit 2 too)
    Image.new("RGB", (64, 64)).save(photo)
    code, _, stderr = run_cli("prepare", photo, "-o", tmp_path / "o", "--segmenter", "m2fp")
    assert code == 2 and "m2fp-parsing" in stderr and "download" in stderr
    assert not (tmp_path / "o").exists()
