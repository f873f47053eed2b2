"""``--pose IMAGE`` → OpenPose conditioning image: skeletons pass through, photos are analysed."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from facechain.errors import InputError, ModelNotFoundError
from facechain.image_io import load_image, save_png
from facechain.pose import BodyPose, draw_openpose, face_landmark_condition, looks_like_openpose, pose_condition_from_image
from facechain.pose.condition import build_pose_condition
from facechain.pose.skeleton import COLORS, KP


class MissingModelEstimator:
    """Behaves like BodyPoseEstimator when its model files are absent."""

    def estimate(self, image, faces=None):
        raise ModelNotFoundError("body-pose", "pypi:mediapipe==0.10.21", "run 'facechain models download body-pose'")


class FixedEstimator:
    """Returns one known body (in the input image's pixels), recording what it was given."""

    def __init__(self, body: BodyPose):
        self.body, self.calls = body, []

    def estimate(self, image, faces=None):
        self.calls.append((image.shape, len(faces or [])))
        return [self.body]


@pytest.fixture(scope="module")
def obama_small(faces_dir):
    return load_image(faces_dir / "obama" / "obama_small.jpg")  # 320 x 240


def _white(img: np.ndarray) -> int:
    return int((img.min(axis=2) >= 250).sum())


def _coloured(img: np.ndarray) -> int:
    return int(((img.max(axis=2) - img.min(axis=2)) > 100).sum())


def test_skeleton_image_is_only_resized(tmp_path):
    body = BodyPose(np.array([[100 + 10 * (i % 4), 60 + 20 * (i // 4)] for i in range(18)], float), np.ones(18))
    skeleton = draw_openpose((256, 256), bodies=[body])
    assert looks_like_openpose(skeleton)
    out = build_pose_condition(skeleton, size=(128, 192), estimator=MissingModelEstimator(), analyzer=object())
    assert out.source == "skeleton" and out.image.shape == (192, 128, 3)
    same = pose_condition_from_image(skeleton, analyzer=object(), estimator=object())
    assert np.array_equal(same, skeleton)
    save_png(tmp_path / "pose.png", skeleton)  # a path works too
    assert pose_condition_from_image(tmp_path / "pose.png").shape == (256, 256, 3)


def test_photo_without_body_model_falls_back_to_faces(obama_small, caplog):
    with caplog.at_level(logging.WARNING, logger="facechain.pose.condition"):
        cond = build_pose_condition(obama_small, estimator=MissingModelEstimator())
    assert cond.source == "faces-only" and len(cond.faces68) == 1 and not cond.bodies
    assert "facechain models download body-pose" in caplog.text and cond.warnings
    assert _white(cond.image) > 68 * 5 and _coloured(cond.image) == 0
    assert looks_like_openpose(cond.image)


def test_photo_bodies_are_drawn_at_the_requested_size(obama_small):
    kps = np.zeros((18, 2))
    scores = np.zeros(18)
    for name, xy in {"nose": (160, 130), "neck": (160, 200), "r_shoulder": (90, 205), "l_shoulder": (230, 205)}.items():
        kps[KP[name]], scores[KP[name]] = xy, 0.9
    est = FixedEstimator(BodyPose(kps, scores))
    cond = build_pose_condition(obama_small, size=(640, 480), estimator=est, include_face=False)
    assert est.calls == [((240, 320, 3), 1)]  # estimated on the original, given the dlib face
    assert cond.source == "estimated" and cond.image.shape == (480, 640, 3) and cond.faces68 == []
    x, y = 2 * 160, 2 * 200
    assert cond.image[y, x].tolist() == list(COLORS[KP["neck"]])  # joint drawn at scaled position, full size dot
    assert cond.image[405, 250].tolist() == [153, 0, 0]  # neck -> r-shoulder limb midpoint: red at 60 %
    assert _white(cond.image) == 0
    with_face = pose_condition_from_image(obama_small, size=(640, 480), estimator=est)
    assert _white(with_face) > 68 * 5


def test_real_photo_end_to_end(faces_dir):
    img = load_image(faces_dir / "obama" / "obama_2012_official_portrait.jpg")
    cond = build_pose_condition(img, size=(512, 640))
    assert cond.source == "estimated" and len(cond.bodies) == 1 and len(cond.faces68) == 1
    assert cond.image.shape == (640, 512, 3) and looks_like_openpose(cond.image)
    body = cond.bodies[0]
    assert body["r_shoulder"][0] < body["nose"][0] < body["l_shoulder"][0]
    bones = pose_condition_from_image(img, size=(512, 640), include_face=False)
    assert _white(bones) == 0 and _coloured(bones) > 500
    assert cond.to_json()["bodies"] == 1


def test_nobody_in_the_pose_image_is_an_input_error():
    grey = np.full((96, 96, 3), 128, np.uint8)
    with pytest.raises(InputError, match="no body pose or face"):
        pose_condition_from_image(grey, estimator=MissingModelEstimator())
    with pytest.raises(InputError, match="no body pose found.*facechain models download body-pose") as e:
        pose_condition_from_image(grey, estimator=MissingModelEstimator(), include_face=False)
    assert "\n" not in str(e.value)


def test_face_landmark_condition(obama_small):
    from facechain.perception import get_analyzer

    lm = get_analyzer().analyze(obama_small)[0].landmarks68
    cond = face_landmark_condition((320, 240), [lm])
    assert cond.shape == (240, 320, 3) and _coloured(cond) == 0
    for x, y in np.round(lm).astype(int):
        assert cond[y, x].tolist() == [255, 255, 255]
