"""The offline body-pose estimator (BlazePose under ai-edge-litert), its geometry and its model files.

The real-model tests need the two TFLite files, fetched once with
``facechain models download body-pose`` (CI does this before pytest; see docs/pose.md). They
are found through FACECHAIN_MODELS_DIR or the default ~/.cache/facechain, which the per-test
temporary FACECHAIN_HOME does not hide.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

from facechain.errors import ModelNotFoundError
from facechain.image_io import load_image
from facechain.models.store import ModelStore
from facechain.pose import blazepose as bp
from facechain.pose import model_files
from tests.cli_helpers import run_cli


@pytest.fixture(scope="module")
def pose_model_dir() -> Path:
    found = model_files.locate()
    if found is None:
        pytest.fail("body-pose model files not found: run 'facechain models download body-pose' once "
                    f"(searched {', '.join(map(str, model_files.candidate_dirs()))})")
    return found


@pytest.fixture(scope="module")
def estimator(pose_model_dir):
    from facechain.pose.estimate import BodyPoseEstimator

    return BodyPoseEstimator(pose_model_dir)


@pytest.fixture(scope="module")
def analyzer():
    from facechain.perception import get_analyzer

    return get_analyzer()


# --- geometry (no model) -------------------------------------------------------------------
def test_ssd_anchors_match_the_detector_layout():
    a = bp.ssd_anchor_centers()
    assert a.shape == (bp.NUM_ANCHORS, 2)
    assert np.allclose(a[0], [0.5 / 28, 0.5 / 28]) and np.allclose(a[0], a[1])  # 2 anchors per cell
    assert np.allclose(a[2], [1.5 / 28, 0.5 / 28])  # x varies fastest
    assert np.allclose(a[28 * 28 * 2], [0.5 / 14, 0.5 / 14])  # stride 16 layer
    assert np.allclose(a[-6:], [13 / 14, 13 / 14])  # three stride-32 layers share the 7x7 map: 6 per cell


def test_roi_geometry_upright_and_rotated():
    upright = bp.roi_from_alignment_points(np.array([100.0, 200.0]), np.array([100.0, 120.0]))
    assert upright.rotation == pytest.approx(0.0) and upright.size == pytest.approx(2 * 80 * 1.25)
    m = upright.crop_to_image(256)
    assert np.allclose(bp.apply_affine(m, [[128, 128]]), [[100, 200]])
    assert np.allclose(bp.apply_affine(m, [[128, 0]]), [[100, 200 - upright.size / 2]])
    # Body lying with its head to the image-right: the crop's "up" maps to image +x.
    lying = bp.roi_from_alignment_points(np.array([100.0, 200.0]), np.array([180.0, 200.0]))
    assert lying.rotation == pytest.approx(math.pi / 2)
    up = bp.apply_affine(lying.crop_to_image(256), [[128, 0]])[0] - [100, 200]
    assert up[0] > 0 and abs(up[1]) < 1e-6
    assert lying.contains([150, 200]) and not lying.contains([400, 200])


def test_crop_and_map_back_round_trip():
    img = np.zeros((300, 400, 3), np.uint8)
    img[140:160, 290:310] = 255  # a white square centred at (300, 150)
    roi = bp.Roi(250.0, 150.0, 200.0, math.radians(30))
    patch, to_image = bp.crop(img, roi, 256)
    ys, xs = np.nonzero(patch[..., 0] > 128)
    assert np.allclose(bp.apply_affine(to_image, [[xs.mean(), ys.mean()]]), [[300, 150]], atol=1.5)
    letterbox, m = bp.crop(img, bp.whole_image_roi(400, 300), 224)
    assert letterbox[:20].max() == 0 and letterbox[-20:].max() == 0  # black bars above and below
    assert np.allclose(bp.apply_affine(m, [[0, 28], [224, 196]]), [[0, 0], [400, 300]], atol=1e-6)


def test_weighted_nms_merges_overlaps_and_keeps_separate_people():
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]])
    kps = np.stack([np.full((4, 2), v) for v in (0.2, 0.3, 0.7)])
    out = bp.weighted_nms(np.array([0.9, 0.6, 0.8]), boxes, kps)
    assert len(out) == 2 and out[0][0] == 0.9 and out[1][0] == 0.8
    assert out[0][1][0] == pytest.approx((0.1 * 0.9 + 0.12 * 0.6) / 1.5)
    assert out[0][2][0, 0] == pytest.approx((0.2 * 0.9 + 0.3 * 0.6) / 1.5)


def test_decode_detections_applies_anchor_offsets_and_threshold():
    anchors = bp.ssd_anchor_centers()
    raw = np.zeros((bp.NUM_ANCHORS, 12))
    raw[5] = [22.4, -22.4, 44.8, 89.6, 0, 0, 11.2, 0, 0, 0, 0, 0]
    logits = np.full(bp.NUM_ANCHORS, -5.0)
    logits[5] = 3.0
    scores, boxes, kps = bp.decode_detections(raw, logits, anchors)
    assert scores.shape == (1,) and scores[0] == pytest.approx(1 / (1 + math.exp(-3)))
    cx, cy = anchors[5] + [0.1, -0.1]
    assert np.allclose(boxes[0], [cx - 0.1, cy - 0.2, cx + 0.1, cy + 0.2])
    assert np.allclose(kps[0, 1], anchors[5] + [0.05, 0])


# --- model files ------------------------------------------------------------------------
def test_locate_prefers_shared_models_dir(tmp_path, monkeypatch, pose_model_dir):
    shared = tmp_path / "shared"
    d = shared / "pypi" / f"mediapipe-{model_files.VERSION}"
    d.mkdir(parents=True)
    for name in model_files.FILES:
        (d / name).symlink_to(pose_model_dir / name)
    monkeypatch.setenv("FACECHAIN_MODELS_DIR", str(shared))
    assert model_files.locate() == d


def _fake_wheel(path: Path, source_dir: Path | None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, (member, _) in model_files.ALL_FILES.items():
            zf.writestr(member, (source_dir / name).read_bytes() if source_dir else b"not a model")
    return path


def test_fetch_extracts_and_verifies_from_a_wheel(tmp_path, monkeypatch, pose_model_dir):
    monkeypatch.setattr(model_files, "locate", lambda name="body-pose": None)  # pretend nothing is installed yet
    store = ModelStore(cache_dir=tmp_path / "models", offline=True)
    with pytest.raises(ModelNotFoundError, match="offline"):
        model_files.fetch(store)
    bad = _fake_wheel(tmp_path / "bad.whl", None)
    with pytest.raises(ModelNotFoundError, match="SHA-256"):
        model_files.fetch(store, wheel=bad)
    dest = tmp_path / "models" / "pypi" / f"mediapipe-{model_files.VERSION}"
    assert not dest.exists()  # nothing half-written
    good = _fake_wheel(tmp_path / "good.whl", pose_model_dir)
    assert model_files.fetch(store, wheel=good) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(model_files.ALL_FILES)  # one wheel, every group


def test_missing_files_and_runtime_give_one_line_errors(tmp_path, monkeypatch, pose_model_dir):
    from facechain.pose.estimate import BodyPoseEstimator

    with pytest.raises(ModelNotFoundError) as e:
        BodyPoseEstimator(tmp_path)
    assert "facechain models download body-pose" in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setattr(model_files, "candidate_dirs", lambda: [tmp_path / "nowhere"])
    with pytest.raises(ModelNotFoundError, match="facechain models download body-pose"):
        BodyPoseEstimator()
    monkeypatch.setitem(__import__("sys").modules, "ai_edge_litert", None)
    monkeypatch.setitem(__import__("sys").modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ModelNotFoundError, match="pip install ai-edge-litert"):
        BodyPoseEstimator(pose_model_dir)


def test_models_cli_lists_body_pose(pose_model_dir):
    code, out, _ = run_cli("models")
    line = next(ln for ln in out.splitlines() if ln.startswith("body-pose"))
    assert code == 0 and "present" in line and "pypi:mediapipe==0.10.21" in line


# --- the real model on real photos -------------------------------------------------------
def test_frontal_portrait_pose_is_anatomically_right(estimator, analyzer, faces_dir):
    img = load_image(faces_dir / "obama" / "obama_2012_official_portrait.jpg")
    faces = analyzer.analyze(img, landmarks=True)
    bodies = estimator.estimate(img, faces=faces)
    assert len(bodies) == 1
    body, face = bodies[0], faces[0]
    eyes_x = face.landmarks68[36:48, 0]
    x1, y1, x2, y2 = face.bbox
    assert eyes_x.min() < body["nose"][0] < eyes_x.max()
    assert y1 < body["nose"][1] < y2
    r_sh, l_sh = body["r_shoulder"], body["l_shoulder"]
    assert r_sh is not None and l_sh is not None and body["neck"] is not None
    assert r_sh[1] > y2 and l_sh[1] > y2  # below the face box
    assert r_sh[0] < face.center[0] < l_sh[0]  # person's right shoulder on the image-left
    assert r_sh[0] < x1 and l_sh[0] > x2  # shoulders are wider than the face
    assert body["r_eye"][0] < body["l_eye"][0]
    assert body["r_hip"] is None or body["r_hip"][1] > r_sh[1]


def test_every_test_photo_gets_a_pose_on_its_face(estimator, analyzer, faces_dir):
    for path in sorted(p for d in faces_dir.iterdir() if d.is_dir() for p in d.iterdir()):
        img = load_image(path, max_side=640)
        face = analyzer.analyze(img, landmarks=True)[0]
        bodies = estimator.estimate(img, faces=[face])
        assert bodies, path.name
        nose = bodies[0]["nose"]
        x1, y1, x2, y2 = face.bbox
        assert nose is not None and x1 <= nose[0] <= x2 and y1 <= nose[1] <= y2, path.name


def test_two_people_side_by_side(estimator, analyzer, faces_dir):
    a = load_image(faces_dir / "obama" / "obama_2012_official_portrait.jpg", max_side=400)
    b = load_image(faces_dir / "biden" / "biden_official_portrait_unverified.jpg", max_side=400)
    h = max(a.shape[0], b.shape[0])
    img = np.concatenate([np.pad(x, ((0, h - x.shape[0]), (0, 0), (0, 0))) for x in (a, b)], axis=1)
    bodies = estimator.estimate(img, faces=analyzer.analyze(img))
    assert len(bodies) == 2
    noses = sorted(b["nose"][0] for b in bodies)
    assert noses[0] < a.shape[1] < noses[1]


def test_face_derived_roi_finds_the_body_without_the_detector(estimator, analyzer, faces_dir):
    from facechain.pose.estimate import face_roi

    img = load_image(faces_dir / "eileen_collins" / "astronaut.png")
    face = analyzer.analyze(img, landmarks=True)[0]
    lms = estimator.landmarks_in(img, face_roi(face))
    assert lms is not None and lms.pose_score > 0.5
    x1, y1, x2, y2 = face.bbox
    assert x1 <= lms.points[0, 0] <= x2 and y1 <= lms.points[0, 1] <= y2
    assert lms.points[12, 0] < face.center[0] < lms.points[11, 0]  # mediapipe: 12 = right shoulder


def test_no_person_no_pose(estimator):
    rng = np.random.default_rng(0)
    noise = (rng.random((64, 64, 3)) * 40 + 100).astype(np.uint8)
    img = np.kron(noise, np.ones((4, 4, 1), np.uint8))
    assert estimator.estimate(img) == []
