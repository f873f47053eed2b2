"""Hand keypoints (palm detector + hand landmarks under ai-edge-litert) and the try-on pose image.

Real-model tests need the ``hands`` (and ``body-pose``) TFLite files of the mediapipe 0.10.21 wheel,
fetched once with ``facechain models download hands`` (the same download serves every group).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from facechain.errors import ModelNotFoundError
from facechain.image_io import load_image
from facechain.pose import blazepose as bp
from facechain.pose import model_files
from facechain.pose.draw import HAND_EDGES, HAND_POINT_COLOR, draw_openpose
from facechain.pose.hands import (Hand, HandEstimator, landmarks_roi, palm_anchor_centers, palm_roi,
                                  wrist_search_regions)

# Suits with the arms crossed and a visible hand (see ../shared/faces/README.md).
HAND_PHOTOS = ["obama/obama_2012_official_portrait.jpg", "obama/obama_2010_blue_room_crop.jpg"]


@pytest.fixture(scope="module")
def hands_estimator() -> HandEstimator:
    found = model_files.locate("hands")
    if found is None:
        pytest.fail("hand model files not found: run 'facechain models download hands' once "
                    f"(searched {', '.join(map(str, model_files.candidate_dirs()))})")
    return HandEstimator(found)


@pytest.fixture(scope="module")
def people(faces_dir):
    """Each hand photo with its BlazePose body (for the wrist search squares and the drawing)."""
    from facechain.perception import get_analyzer
    from facechain.pose.estimate import get_body_pose_estimator

    analyzer, estimator = get_analyzer("hog"), get_body_pose_estimator()
    out = {}
    for name in HAND_PHOTOS:
        image = load_image(faces_dir / name)
        face = max(analyzer.analyze(image, landmarks=True), key=lambda f: f.size)
        (pose,) = [p for p in estimator.estimate_detailed(image, faces=[face])][:1]
        out[name] = (image, face, pose)
    return out


# --- geometry (no model) -------------------------------------------------------------------------


def test_palm_anchors_follow_the_palm_detector_layout():
    a = palm_anchor_centers()
    assert a.shape == (2016, 2)  # 24x24x2 (stride 8) + 12x12x6 (three stride-16 layers share one map)
    assert np.allclose(a[0], [0.5 / 24, 0.5 / 24]) and np.allclose(a[0], a[1])
    assert np.allclose(a[2], [1.5 / 24, 0.5 / 24])
    assert np.allclose(a[24 * 24 * 2], [0.5 / 12, 0.5 / 12]) and np.allclose(a[-6:], [11.5 / 12, 11.5 / 12])


def test_decode_takes_the_palm_detectors_seven_keypoints():
    anchors = palm_anchor_centers()
    raw = np.zeros((2016, 18), np.float32)
    raw[5, :4] = [9.6, -9.6, 19.2, 38.4]  # centre offset and size, 192-px units
    raw[5, 4:] = np.arange(14)
    logits = np.full(2016, -10.0, np.float32)
    logits[5] = 3.0
    scores, boxes, kps = bp.decode_detections(raw, logits, anchors, 0.5, 192, 7)
    assert scores.shape == (1,) and kps.shape == (1, 7, 2)
    cx, cy = anchors[5] + [0.05, -0.05]
    assert np.allclose(boxes[0], [cx - 0.05, cy - 0.1, cx + 0.05, cy + 0.1], atol=1e-6)
    assert np.allclose(kps[0, 1], anchors[5] + np.array([2, 3]) / 192)


def test_palm_square_points_from_the_wrist_to_the_fingers_and_covers_the_hand():
    # An upright palm: wrist (keypoint 0) below the middle knuckle (keypoint 2).
    kps = np.array([[100, 140], [90, 110], [100, 100], [110, 105], [80, 120], [120, 120], [95, 130]], float)
    roi = palm_roi(np.array([80.0, 100.0, 120.0, 140.0]), kps)
    assert roi.rotation == pytest.approx(0.0)
    assert roi.size == pytest.approx(2.6 * 40) and roi.cy == pytest.approx(100.0)  # shifted half a box to the fingers
    # The same palm lying with its fingers to the image-right: the square turns with it.
    lying = palm_roi(np.array([80.0, 100.0, 120.0, 140.0]), np.array([[80, 120], [0, 0], [120, 120]] + [[0, 0]] * 4, float))
    assert lying.rotation == pytest.approx(math.pi / 2)
    assert lying.cx == pytest.approx(120.0) and lying.cy == pytest.approx(120.0)


def test_landmark_square_turns_a_sideways_hand_upright():
    # A hand pointing image-left: wrist at the right, fingers to the left.
    pts = np.zeros((21, 2))
    pts[0] = [200, 100]
    for finger, y in zip(range(5), (70, 85, 100, 115, 130)):
        for j in range(4):
            pts[1 + 4 * finger + j] = [170 - 20 * j, y]
    roi = landmarks_roi(pts)
    assert roi.rotation == pytest.approx(-math.pi / 2, abs=0.05)
    up = bp.apply_affine(roi.crop_to_image(224), [[112, 0]])[0] - (roi.cx, roi.cy)
    assert up[0] < 0 and abs(up[1]) < 1e-6  # the crop's "up" is the image-left: towards the fingertips
    assert all(roi.contains(p) for p in pts)


def test_wrist_search_squares_sit_on_the_visible_hands():
    lm = np.zeros((33, 2))
    lm[11], lm[12] = [300, 200], [200, 200]  # shoulders 100 px apart
    lm[[15, 17, 19, 21]] = [[250, 400]] * 4
    lm[[16, 18, 20, 22]] = [[150, 400]] * 4
    vis = np.ones(33)
    vis[16] = 0.1  # right wrist not visible
    (region,) = wrist_search_regions(lm, vis)
    assert (region.cx, region.cy, region.size, region.rotation) == (250, 400, 150, 0.0)


def test_hands_are_drawn_in_openpose_colours_with_the_body():
    from facechain.pose.skeleton import BodyPose

    points = np.array([[60 + 10 * (i % 5), 60 + 20 * (i // 5)] for i in range(21)], float)
    hand = Hand(points, np.zeros(21), 0.9, 0.8, bp.Roi(80, 100, 100), "image")
    scores = np.zeros(18)
    scores[[1, 2, 3, 4]] = 1
    body = BodyPose(np.array([[0, 0], [128, 40], [100, 40], [100, 100], [100, 150]] + [[0, 0]] * 13, float), scores)
    canvas = draw_openpose((256, 256), bodies=[body], hands=[hand])
    for x, y in points.astype(int):
        assert tuple(canvas[y, x]) == HAND_POINT_COLOR
    assert (canvas[40, 128] > 0).any()  # the neck: the body is there too
    assert not ((canvas == 255).all(axis=2)).any()  # no white face dots


def test_missing_hand_files_give_a_one_line_error(tmp_path):
    with pytest.raises(ModelNotFoundError) as e:
        HandEstimator(tmp_path)
    assert "facechain models download hands" in str(e.value) and "\n" not in str(e.value)


# --- the real models on real photos --------------------------------------------------------------


@pytest.mark.parametrize("name", HAND_PHOTOS)
def test_hand_keypoints_found_on_visible_hands_and_drawn_into_the_control_image(hands_estimator, people, name):
    """On suits with crossed arms: a hand whose 21 points lie on the visible hand, in the pose image."""
    from facechain.apps.tryon.skin import SkinColourModel

    image, face, pose = people[name]
    hands = hands_estimator.estimate(image, wrist_search_regions(pose.landmarks.points, pose.landmarks.visibility))
    assert hands, f"{name}: no hand found"
    skin = SkinColourModel.from_face(image, face.landmarks68)
    for hand in hands:
        assert hand.points.shape == (21, 2) and hand.score >= 0.5
        # the finger joints sit on the person's skin (colour model learned from the face)
        fingers = np.round(hand.points[5:]).astype(int)
        d2 = skin.distance(image)[fingers[:, 1], fingers[:, 0]]
        assert (d2 < 9).mean() >= 0.6, f"{name}: only {(d2 < 9).mean():.0%} of the finger joints on skin"
        # and the hand belongs to one of the person's wrists (BlazePose), not to a stray palm-like patch
        wrists = pose.landmarks.points[[15, 16]]
        assert np.linalg.norm(wrists - hand.points[0], axis=1).min() < 1.5 * hand.size
        print(f"\n{name}: {hand.side} hand, presence {hand.score:.2f}, {hand.size:.0f} px, "
              f"{(d2 < 9).mean():.0%} of finger joints on skin")
    control = draw_openpose((image.shape[1], image.shape[0]), bodies=[pose.body], hands=hands)
    for hand in hands:
        joints = np.round(hand.points).astype(int)
        blue = [(control[y - 1:y + 2, x - 1:x + 2] == HAND_POINT_COLOR).all(axis=2).any() for x, y in joints]
        assert np.mean(blue) > 0.9  # every joint drawn as OpenPose's blue dot (a few may be covered by bones)
    edge_colours = {tuple(int(v) for v in c) for c in control.reshape(-1, 3)}
    assert len(edge_colours) > len(HAND_EDGES)  # hue-coloured bones of the hand + the body's limb colours


def test_no_hand_on_a_plain_image(hands_estimator):
    image = np.full((480, 640, 3), 128, np.uint8)
    assert hands_estimator.estimate(image) == []
