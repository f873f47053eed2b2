"""OpenPose drawing conventions, skeleton recognition, and the BodyPose value."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from facechain.image_io import load_image, list_images
from facechain.pose import BodyPose, draw_openpose, looks_like_openpose
from facechain.pose.draw import HAND_EDGES
from facechain.pose.skeleton import COLORS, KP, LIMBS

# A standing person, 512 x 512, spread out so no limb midpoint touches another limb or joint.
STANDING = {
    "nose": (256, 100), "neck": (256, 160),
    "r_shoulder": (186, 160), "r_elbow": (150, 235), "r_wrist": (130, 310),
    "l_shoulder": (326, 160), "l_elbow": (362, 235), "l_wrist": (382, 310),
    "r_hip": (220, 300), "r_knee": (212, 390), "r_ankle": (208, 480),
    "l_hip": (292, 300), "l_knee": (300, 390), "l_ankle": (304, 480),
    "r_eye": (238, 84), "l_eye": (274, 84), "r_ear": (214, 96), "l_ear": (298, 96),
}


def standing_pose(missing: tuple[str, ...] = ()) -> BodyPose:
    kps = np.array([STANDING[n] for n in sorted(STANDING, key=KP.get)], dtype=float)
    scores = np.array([0.0 if n in missing else 0.9 for n in sorted(STANDING, key=KP.get)])
    return BodyPose(kps, scores)


def dimmed(color) -> np.ndarray:
    return (np.array(color, dtype=np.float64) * 0.6).astype(np.uint8)


def test_limbs_have_openpose_colours_at_their_midpoints_and_joints_full_colour():
    canvas = draw_openpose((512, 512), bodies=[standing_pose()])
    assert canvas.shape == (512, 512, 3) and canvas.dtype == np.uint8
    pose = standing_pose()
    for i, (a, b) in enumerate(LIMBS):
        mid = np.round((pose.keypoints[a] + pose.keypoints[b]) / 2).astype(int)
        assert np.array_equal(canvas[mid[1], mid[0]], dimmed(COLORS[i])), f"limb {i} {a}->{b}"
    for i, (x, y) in enumerate(pose.keypoints.astype(int)):
        assert np.array_equal(canvas[y, x], np.array(COLORS[i], dtype=np.uint8)), f"keypoint {i}"
    # Limbs are 4 px half-width: 6 px beside the neck->r_hip midpoint is background.
    assert canvas[230, 246].tolist() == [0, 0, 0]
    assert canvas[5, 5].tolist() == [0, 0, 0] and (canvas.max(axis=2) == 0).mean() > 0.9


def test_specific_limbs_follow_the_trained_colour_order():
    # The neck -> r-shoulder limb is red, neck -> l-shoulder orange, neck -> nose blue.
    canvas = draw_openpose((512, 512), bodies=[standing_pose()])
    assert canvas[160, 221].tolist() == [153, 0, 0]
    assert canvas[160, 291].tolist() == [153, 51, 0]
    assert canvas[130, 256].tolist() == [0, 0, 153]


def test_missing_keypoints_drop_their_limbs():
    canvas = draw_openpose((512, 512), bodies=[standing_pose(missing=("l_wrist",))])
    mid = (np.array(STANDING["l_elbow"]) + np.array(STANDING["l_wrist"])) // 2
    assert canvas[mid[1], mid[0]].tolist() == [0, 0, 0]
    x, y = STANDING["l_wrist"]
    assert canvas[y, x].tolist() == [0, 0, 0]
    x, y = STANDING["l_elbow"]
    assert canvas[y, x].tolist() == list(COLORS[KP["l_elbow"]])


def test_hands_drawn_with_hue_bones_and_blue_joints():
    hand = np.array([[100 + 12 * (i % 5), 100 + 25 * (i // 5)] for i in range(21)], dtype=float)
    hand[1:5] = [[60, 120], [50, 145], [40, 170], [30, 195]]  # thumb off to the side
    canvas = draw_openpose((256, 256), hands=[hand])
    for x, y in hand.astype(int):
        assert canvas[y, x].tolist() == [0, 0, 255]
    assert canvas[110, 80].tolist() == [255, 0, 0]  # wrist -> thumb bone (first edge): hue 0 = red
    assert len({tuple(c) for c in canvas.reshape(-1, 3)}) > len(HAND_EDGES) // 2


@pytest.fixture(scope="module")
def obama_faces(faces_dir):
    from facechain.perception import get_analyzer

    img = load_image(faces_dir / "obama" / "obama_2012_official_portrait.jpg")
    faces = get_analyzer().analyze(img, landmarks=True)
    assert len(faces) == 1 and faces[0].landmarks68 is not None
    return img, faces


def test_face_landmarks_drawn_as_white_dots(obama_faces):
    img, faces = obama_faces
    lm = faces[0].landmarks68
    canvas = draw_openpose((img.shape[1], img.shape[0]), faces68=[lm])
    for x, y in np.round(lm).astype(int):
        assert canvas[y, x].tolist() == [255, 255, 255]
    ink = np.argwhere(canvas.max(axis=2) > 0)
    (y0, x0), (y1, x1) = ink.min(0), ink.max(0)
    assert x0 >= lm[:, 0].min() - 4 and x1 <= lm[:, 0].max() + 4 and y0 >= lm[:, 1].min() - 4 and y1 <= lm[:, 1].max() + 4
    # Every drawn pixel is white: the face adds no colour.
    assert set(map(tuple, canvas[canvas.max(axis=2) > 0])) == {(255, 255, 255)}


def test_bones_only_draws_no_face_dots(obama_faces):
    img, faces = obama_faces
    size = (img.shape[1], img.shape[0])
    scale = np.array(size) / 512
    body = standing_pose().scaled(*scale)
    full = draw_openpose(size, bodies=[body], faces68=[faces[0].landmarks68])
    bones = draw_openpose(size, bodies=[body], faces68=[faces[0].landmarks68], bones_only=True)
    white = lambda c: int((c.min(axis=2) == 255).sum())  # noqa: E731
    assert white(full) > 68 * 10 and white(bones) == 0
    assert np.array_equal(bones, draw_openpose(size, bodies=[body]))


def test_draw_openpose_rejects_bad_size():
    with pytest.raises(ValueError):
        draw_openpose((0, 10))


def test_looks_like_openpose_true_on_skeletons(obama_faces):
    img, faces = obama_faces
    size = (img.shape[1], img.shape[0])
    body = standing_pose().scaled(size[0] / 512, size[1] / 512)
    drawn = [
        draw_openpose((512, 512), bodies=[standing_pose()]),
        draw_openpose(size, bodies=[body], faces68=[faces[0].landmarks68]),
        draw_openpose(size, faces68=[faces[0].landmarks68]),  # face-only condition
    ]
    for skeleton in list(drawn):  # also after JPEG and resizing, as users pass them around
        buf = io.BytesIO()
        Image.fromarray(skeleton).save(buf, "JPEG", quality=85)
        drawn.append(cv2.resize(np.asarray(Image.open(buf).convert("RGB")), (300, 360), interpolation=cv2.INTER_AREA))
    assert all(looks_like_openpose(s) for s in drawn)


def test_looks_like_openpose_false_on_photos_and_blanks(faces_dir):
    photos = list_images(sorted(d for d in faces_dir.iterdir() if d.is_dir()))
    assert len(photos) >= 10
    for path in photos:
        img = load_image(path)
        assert not looks_like_openpose(img), path.name
        assert not looks_like_openpose((img * 0.25).astype(np.uint8)), f"darkened {path.name}"
    assert not looks_like_openpose(np.zeros((64, 64, 3), np.uint8))
    assert not looks_like_openpose(np.full((64, 64, 3), 255, np.uint8))


def test_body_pose_from_mediapipe33():
    rng = np.random.default_rng(0)
    pts = rng.uniform(10, 90, size=(33, 3))
    vis = np.full(33, 0.9)
    vis[16] = 0.2  # right wrist occluded
    pts[27] = [150, 50, 0]  # left ankle outside a 100 x 100 image
    pose = BodyPose.from_mediapipe33(pts, vis, image_size=(100, 100))
    assert np.allclose(pose["nose"], pts[0, :2])
    assert np.allclose(pose["neck"], (pts[11, :2] + pts[12, :2]) / 2)
    assert np.allclose(pose["r_shoulder"], pts[12, :2]) and np.allclose(pose["l_shoulder"], pts[11, :2])
    assert np.allclose(pose["r_eye"], pts[5, :2]) and np.allclose(pose["l_eye"], pts[2, :2])
    assert np.allclose(pose["r_ear"], pts[8, :2]) and np.allclose(pose["l_ear"], pts[7, :2])
    assert np.allclose(pose["r_hip"], pts[24, :2]) and np.allclose(pose["l_knee"], pts[25, :2])
    assert pose["r_wrist"] is None and pose["l_ankle"] is None
    assert pose.visible().sum() == 16
    assert pose.scaled(2.0)["nose"] == pytest.approx(pts[0, :2] * 2)
    with pytest.raises(ValueError):
        BodyPose.from_mediapipe33(np.zeros((17, 2)))
