"""Unit tests of the preprocessing perception pieces: face rotation formula, orientation search,
segmentation, retouching, quality, tags, attributes, identity split (real photos where it matters)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from facechain.image_io import load_image
from facechain.perception import get_analyzer
from facechain.perception.alignment import (
    FACE_TEMPLATE_5,
    compose,
    face_rotation_angle,
    invert,
    similarity_matrix,
    transform_points,
    warp_similarity,
)
from facechain.perception.attributes import age_group, combine_attributes, trigger_word
from facechain.perception.orientation import DetectorOrientation, OnnxOrientationClassifier, rotate_image
from facechain.perception.quality import ClassicalFaceQuality
from facechain.perception.retouch import ClassicalSkinRetoucher, skin_mask
from facechain.perception.segmentation import GrabCutHeadSegmenter, whiten_background
from facechain.perception.tagging import LandmarkTagger, WD14Tagger, filter_identity_tags, is_identity_bound
from facechain.preprocess.align import align_and_crop
from facechain.preprocess.selection import frequent_tags, split_by_identity
from facechain.types import Face


# --- face rotation: the paper's least-squares formula ------------------------------------
@pytest.mark.parametrize("angle", [-30.0, -12.5, 0.0, 7.0, 25.0, 44.0])
def test_face_rotation_angle_undoes_a_known_rotation(angle):
    # The template turned by `angle` (plus scale and shift) must be turned back by -angle.
    m = similarity_matrix(angle, 3.7, FACE_TEMPLATE_5.mean(axis=0), (400.0, 250.0))
    pts = transform_points(m, FACE_TEMPLATE_5)
    assert face_rotation_angle(pts) == pytest.approx(-angle, abs=1e-6)


def test_face_rotation_angle_is_the_papers_formula():
    rng = np.random.default_rng(0)
    pts = FACE_TEMPLATE_5 + rng.normal(0, 2.0, FACE_TEMPLATE_5.shape)
    pts = transform_points(similarity_matrix(17.0, 2.0, (50, 50), (300, 200)), pts)

    def norm(p):
        p = p - p.mean(axis=0)
        return p / p.std()

    p1, p2 = norm(pts), norm(FACE_TEMPLATE_5)
    r = (np.linalg.inv(p1.T @ p1) @ p1.T @ p2).T
    assert face_rotation_angle(pts) == pytest.approx(math.degrees(math.atan(r[1, 0] / r[1, 1])), abs=1e-9)


def test_similarity_warp_moves_pixels_where_the_matrix_says():
    img = np.zeros((300, 400, 3), np.uint8)
    cv2.circle(img, (100, 80), 4, (255, 255, 255), -1)
    m = similarity_matrix(30.0, 0.5, (200, 150), (128, 128))
    out = warp_similarity(img, m, (256, 256), border=cv2.BORDER_CONSTANT)
    ys, xs = np.nonzero(out[..., 0] > 128)
    expected = transform_points(m, np.array([[100.0, 80.0]]))[0]
    assert np.hypot(xs.mean() - expected[0], ys.mean() - expected[1]) < 1.0
    assert np.allclose(compose(invert(m), m), [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_rotate_image_turns_clockwise():
    img = np.zeros((20, 30, 3), np.uint8)
    img[0, 0] = 255  # top-left corner
    r90 = rotate_image(img, 90)
    assert r90.shape == (30, 20, 3) and r90[0, -1, 0] == 255  # clockwise: top-left -> top-right
    assert rotate_image(img, 180)[-1, -1, 0] == 255
    assert rotate_image(img, 270)[-1, 0, 0] == 255


# --- fixtures from a real photo -----------------------------------------------------------
@pytest.fixture(scope="module")
def analyzer():
    return get_analyzer("hog")


@pytest.fixture(scope="module")
def portrait(faces_dir):
    return load_image(faces_dir / "obama" / "obama_2012_official_portrait.jpg", max_side=1024)


@pytest.fixture(scope="module")
def aligned(portrait, analyzer):
    face = analyzer.analyze(portrait)[0]
    out = align_and_crop(portrait, face, analyzer, 512, 0.40, 0.45)
    assert out is not None
    return out


def test_orientation_search_finds_upright_for_every_rotation(faces_dir, analyzer):
    img = load_image(faces_dir / "obama" / "obama_small.jpg")
    orient = DetectorOrientation(analyzer.detector)
    for turned in (0, 90, 180, 270):
        res = orient.estimate(rotate_image(img, turned))
        assert res.rotation == (360 - turned) % 360, (turned, res.scores)
        assert res.faces, "the winning rotation carries its detections"


def test_orientation_gives_up_gracefully_without_a_face(analyzer):
    y, x = np.mgrid[0:240, 0:320]
    noise = (128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)).astype(np.uint8)
    res = DetectorOrientation(analyzer.detector).estimate(np.dstack([noise, noise[::-1], noise[:, ::-1]]))
    assert res.rotation == 0 and res.faces == []


def test_orientation_tries_diagonals_when_no_rotation_shows_a_face():
    class OnlyOnDiagonals:  # stands in for a detector that sees the face only after a 45-degree turn
        def detect(self, image):
            if image.shape[0] != image.shape[1]:
                return []
            return [Face(bbox=np.array([10.0, 10.0, 50.0, 50.0]), score=1.0)]

    res = DetectorOrientation(OnlyOnDiagonals(), retry_side=0).estimate(np.zeros((60, 80, 3), np.uint8))
    assert (res.rotation, res.tilt, res.angle) == (0, 45, 45) and len(res.faces) == 1
    assert set(res.scores) == {45, 135, 225, 315}
    # on that turned canvas, a box in the corner lies outside the photo, one in the middle does not
    from facechain.preprocess.photo import outside_fraction

    turned = rotate_image(np.zeros((60, 80, 3), np.uint8), 45)
    cy, cx = turned.shape[0] / 2, turned.shape[1] / 2
    assert outside_fraction(np.array([cx - 10, cy - 10, cx + 10, cy + 10]), (60, 80, 3), res) == 0.0
    assert outside_fraction(np.array([0.0, 0.0, 12.0, 12.0]), (60, 80, 3), res) > 0.9


def test_onnx_orientation_classifier_maps_classes_back():
    class FakeSession:
        def get_inputs(self):
            return [type("I", (), {"name": "x", "shape": [1, 3, 224, 224]})()]

        def run(self, _, feeds):
            assert feeds["x"].shape == (1, 3, 224, 224) and feeds["x"].dtype == np.float32
            return [np.array([[0.1, 4.0, 0.2, 0.3]])]  # "rotated 90 clockwise"

    res = OnnxOrientationClassifier("unused", session=FakeSession()).estimate(np.zeros((64, 48, 3), np.uint8))
    assert res.rotation == 270  # turned back by 90 = 270 clockwise


# --- alignment, segmentation, retouching, quality on a real aligned face -----------------
def test_align_and_crop_levels_and_sizes_the_face(aligned):
    f = aligned.face
    assert abs(f.eye_angle_deg) < 3.0
    assert 0.35 <= f.size / 512 <= 0.45
    assert abs(f.center[0] / 512 - 0.5) < 0.05


def test_grabcut_keeps_the_head_and_whitens_the_rest(aligned):
    crop, face = aligned.crop, aligned.face
    mask = GrabCutHeadSegmenter().segment(crop, face)
    lm = face.landmarks68
    assert mask.shape == crop.shape[:2] and mask.dtype == np.float32
    assert mask[int(lm[30, 1]), int(lm[30, 0])] == pytest.approx(1.0)  # nose tip
    assert mask[int(lm[27, 1] - 0.6 * (lm[8, 1] - lm[27, 1])), int(lm[27, 0])] > 0.5  # hair above the forehead
    assert mask[:10, :10].max() < 0.01 and mask[-10:, :].max() < 0.01  # corner, neck/clothes
    out = whiten_background(crop, mask)
    assert (out[-5:, :] == 255).all() and np.array_equal(out[int(lm[30, 1]), int(lm[30, 0])], crop[int(lm[30, 1]), int(lm[30, 0])])


def test_classical_retouch_smooths_skin_only(aligned):
    crop, face = aligned.crop, aligned.face
    out = ClassicalSkinRetoucher().retouch(crop, face)
    lm = face.landmarks68
    skin = skin_mask(crop, lm) > 0.9
    assert skin.sum() > 2000

    def lap_var(img):
        return cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)[skin].var()

    assert lap_var(out) < 0.8 * lap_var(crop)
    for idx in (slice(36, 42), slice(42, 48), slice(48, 68)):  # eyes and mouth untouched
        x, y = np.round(lm[idx].mean(axis=0)).astype(int)
        assert np.array_equal(out[y - 1:y + 2, x - 1:x + 2], crop[y - 1:y + 2, x - 1:x + 2])
    assert np.array_equal(out[:20, :20], crop[:20, :20])


def test_quality_drops_with_blur(aligned):
    q = ClassicalFaceQuality()
    sharp = q.assess(aligned.crop, aligned.face, 250.0)
    blurred = q.assess(cv2.GaussianBlur(aligned.crop, (0, 0), 5.0), aligned.face, 250.0)
    assert set(sharp.parts) == {"sharpness", "size", "frontal", "exposure"}
    assert sharp.parts["sharpness"] > 0.5 > 0.25 > blurred.parts["sharpness"]
    assert blurred.score < sharp.score
    assert q.assess(aligned.crop, aligned.face, 50.0).parts["size"] == pytest.approx(0.25)


def test_landmark_tagger_sees_the_smile(aligned):
    tags = LandmarkTagger().tag(aligned.crop, aligned.face)
    assert "smile" in tags and "facing viewer" in tags
    assert "white background" not in tags and "monochrome" not in tags  # the crop still has the room behind him
    grey = np.repeat(cv2.cvtColor(aligned.crop, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert "monochrome" in LandmarkTagger().tag(grey, aligned.face)
    white = np.full((512, 512, 3), 255, np.uint8)
    assert "white background" in LandmarkTagger().tag(white, Face(bbox=np.zeros(4), score=0.0))


# --- tags, attributes, identity ----------------------------------------------------------
def test_identity_bound_tags_are_removed():
    tags = ["1boy", "Blue_eyes", "lips", "smile", "open mouth", "short hair", "nose", "ears", "eyewear", "glasses",
            "brown eyes", "teeth", "looking at viewer", "white background", "smile", "mature male", "dark skin"]
    assert filter_identity_tags(tags) == ["smile", "open mouth", "short hair", "eyewear", "glasses", "looking at viewer", "white background"]
    assert is_identity_bound("red lips") and not is_identity_bound("sunglasses")


def test_wd14_tagger_reads_probabilities_in_tag_order():
    seen = {}

    class FakeSession:
        def get_inputs(self):
            return [type("I", (), {"name": "input_1:0", "shape": [1, 448, 448, 3]})()]

        def run(self, _, feeds):
            seen["x"] = feeds["input_1:0"]
            return [np.array([[0.9, 0.2, 0.8, 0.99, 0.5]], np.float32)]

    tagger = WD14Tagger(session=FakeSession(), tag_names=["general", "smile", "solo", "upper_body", "blue_eyes"], categories=[9, 0, 0, 0, 0], threshold=0.35)
    img = np.zeros((100, 50, 3), np.uint8)
    img[..., 0] = 200  # red in RGB
    tags = tagger.tag(img, Face(bbox=np.zeros(4), score=0.0))
    assert tags == ["upper body", "solo", "blue eyes"]  # rating category dropped, sorted by probability
    x = seen["x"]
    assert x.shape == (1, 448, 448, 3) and x.dtype == np.float32
    assert x[0, 224, 224, 2] == pytest.approx(200) and x[0, 224, 224, 0] == 0  # BGR order
    assert x[0, 224, 5].tolist() == [255.0, 255.0, 255.0]  # padded to a white square
    assert filter_identity_tags(tags) == ["upper body", "solo"]


@pytest.mark.parametrize(
    "gender,age,expected",
    [("male", 8, "a boy, children"), ("female", 19.9, "a girl, children"), ("male", 20, "a handsome man"),
     ("female", 40, "a beautiful woman"), ("male", 40.5, "a mature man"), ("female", 63, "a mature woman")],
)
def test_trigger_word_table(gender, age, expected):
    assert trigger_word(gender, age) == expected


def test_attributes_are_combined_over_photos():
    p = combine_attributes(["male", "female", "male"], [30, 70, 50], [1.0, 0.5, 1.0])
    assert p.gender == "male" and p.gender_agreement == pytest.approx(0.8)
    assert p.age == 50 and age_group(p.age) == "mature" and p.trigger_word == "a mature man"


class _P:
    def __init__(self, emb, quality=0.5):
        self.face = Face(bbox=np.zeros(4), score=1.0, embedding=np.asarray(emb, float), quality=quality)


def test_identity_split_keeps_the_majority():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=16), rng.normal(size=16)
    group = [_P(a + rng.normal(scale=0.1, size=16)) for _ in range(4)]
    stranger = _P(b)
    split = split_by_identity(group + [stranger], threshold=0.9)
    assert split.kept == group and [p for p, _ in split.outliers] == [stranger]
    # no majority with one photo each: the better-quality person stays
    lone = split_by_identity([_P(a, 0.3), _P(b, 0.8)], threshold=0.9)
    assert len(lone.kept) == 1 and lone.kept[0].face.quality == 0.8


def test_frequent_tags_need_half_the_images():
    assert frequent_tags([["smile", "a"], ["smile"], ["b"], ["smile", "b"]]) == ["smile", "b"]
    assert frequent_tags([]) == []
