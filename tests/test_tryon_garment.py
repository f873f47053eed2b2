"""The try-on garment mask: offline on real suit photos, M2FP with a stand-in parser, given masks,
and the one-line refusals (no face, no person, a mask that is empty, full or of another size).

The offline mask needs the mediapipe wheel's TFLite files (``facechain models download hands``
fetches every group: selfie segmentation, hands, body pose).
"""

from __future__ import annotations

import numpy as np
import pytest

from facechain.apps.tryon.garment import (GarmentMask, M2FPGarmentSegmenter, check_garment, clean_garment,
                                          garment_from_file, hand_region, head_region)
from facechain.apps.tryon.inputs import TryOnPerception
from facechain.errors import InputError
from facechain.image_io import load_image, save_png
from facechain.types import Face

# Full-body and half-body suits with the arms crossed, hands visible (../shared/faces/README.md).
SUITS = ["biden/biden_2010_blue_room_crop.jpg", "obama/obama_2010_blue_room_crop.jpg",
         "obama/obama_2012_official_portrait.jpg"]


@pytest.fixture(scope="module")
def perception():
    return TryOnPerception()


@pytest.fixture(scope="module")
def suits(perception, faces_dir):
    return {name: perception(load_image(faces_dir / name), label=name) for name in SUITS}


@pytest.mark.parametrize("name", SUITS)
def test_offline_garment_mask_covers_the_suit_and_spares_face_hair_and_hands(suits, name):
    inputs = suits[name]
    g = inputs.garment
    m = g.mask
    assert g.method == "offline" and m.shape == inputs.photo.shape[:2]
    x1, y1, x2, y2 = np.round(inputs.face.bbox).astype(int)

    # the suit: the torso between the shoulders, below the shoulder line (hands and skin aside)
    body = inputs.bodies[0]
    r_sh, l_sh = body["r_shoulder"], body["l_shoulder"]
    hip = body["r_hip"]
    bottom = int(hip[1]) if hip is not None else m.shape[0]
    top = int(max(r_sh[1], l_sh[1]) + 0.1 * (bottom - max(r_sh[1], l_sh[1])))
    torso = (slice(top, bottom), slice(int(min(r_sh[0], l_sh[0])), int(max(r_sh[0], l_sh[0]))))
    spared = g.skin | g.hands
    suit_share = m[torso][~spared[torso]].mean()
    # face and hair: the face box, and the band from the top of the person down to the face box
    person_top = int(np.argmax(g.person[:, x1:x2].any(axis=1)))
    hair = m[person_top:y1, x1:x2]
    # hands: every finger joint the hand model found, and the skin the colour model found
    finger_joints = np.concatenate([np.round(h.points[5:]).astype(int) for h in inputs.hands]) if inputs.hands else np.zeros((0, 2), int)
    on_fingers = m[finger_joints[:, 1], finger_joints[:, 0]].mean() if len(finger_joints) else 0.0
    print(f"\n{name}: garment = {g.share_of_person:.1%} of the person, {g.share_of_image:.1%} of the photo, "
          f"{g.share_of_face_box:.2%} of the face box, {hair.mean():.2%} of the hair band, "
          f"{suit_share:.1%} of the torso (skin/hands aside), {on_fingers:.0%} of {len(finger_joints)} finger joints; "
          f"{len(inputs.hands)} hand(s), skin {g.skin.sum()} px")

    assert suit_share > 0.95
    assert 0.6 < g.share_of_person < 0.97
    assert g.share_of_face_box < 0.02
    assert hair.size > 0 and hair.mean() < 0.01
    assert not (m & g.head).any() and not (m & g.skin).any() and not (m & g.hands).any()
    assert on_fingers == 0.0


# Points on visible hand skin, read off the photos by eye (x, y): the back of a fist, fingers on a sleeve.
VISIBLE_HANDS = {
    "biden/biden_2010_blue_room_crop.jpg": [(360, 1010), (320, 1040), (850, 955), (880, 945)],
    "obama/obama_2010_blue_room_crop.jpg": [(530, 1180), (560, 1200), (1000, 1110), (1040, 1075)],
    "obama/obama_2012_official_portrait.jpg": [(250, 920), (230, 950), (620, 860), (690, 830)],
}


@pytest.mark.parametrize("name", SUITS)
def test_every_visible_hand_is_spared_with_or_without_keypoints(suits, name):
    """Crossed arms hide most fingers and the hand model finds only some hands; every hand that shows
    (the points above, both hands of each photo) must be left to redraw, whoever found it."""
    m = suits[name].garment.mask
    for x, y in VISIBLE_HANDS[name]:
        window = m[y - 4:y + 5, x - 4:x + 5]
        assert window.mean() < 0.2, f"{name}: the hand at ({x}, {y}) is {window.mean():.0%} garment"


# --- parts and backends ----------------------------------------------------------------------------


def _face68(cx=100.0, cy=100.0, s=40.0) -> np.ndarray:
    """A frontal 68-point face of width ``s`` centred at (cx, cy): jaw U, brows, nose, eyes, mouth."""
    lm = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    lm[0:17] = np.c_[cx + s / 2 * np.cos(t), cy + s / 2 * np.sin(t) * 1.2]
    lm[17:27] = np.c_[np.linspace(cx - s * 0.4, cx + s * 0.4, 10), np.full(10, cy - s * 0.25)]
    lm[27:36] = np.c_[np.full(9, cx), np.linspace(cy - s * 0.2, cy + s * 0.15, 9)]
    lm[36:48] = np.c_[np.r_[np.linspace(cx - s * 0.3, cx - s * 0.1, 6), np.linspace(cx + s * 0.1, cx + s * 0.3, 6)],
                      np.full(12, cy - s * 0.1)]
    lm[48:68] = np.c_[np.linspace(cx - s * 0.2, cx + s * 0.2, 20), np.full(20, cy + s * 0.35)]
    return lm


def test_head_is_the_face_plus_the_person_above_the_chin_near_the_face():
    person = np.zeros((300, 200), bool)
    person[40:, 40:160] = True  # head and shoulders
    head = head_region(person.shape, _face68(), person)
    assert head[100, 100] and head[45, 100]  # face, hair above it
    assert not head[200, 100] and not head[130, 45]  # chest, shoulder beside the chin
    tilted = _face68()
    c = np.array([100.0, 100.0])
    rot = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    head_t = head_region(person.shape, (tilted - c) @ rot.T + c, person)
    assert head_t[100, 100] and not head_t[200, 100]


def test_hand_region_covers_the_fingers_and_not_the_forearm():
    pts = np.array([[100, 200]] + [[80 + 10 * f, 170 - 12 * j] for f in range(5) for j in range(4)], float)
    region = hand_region((300, 300), [pts])
    assert region[pts[8, 1].astype(int), pts[8, 0].astype(int)] and region[150, 100]
    assert not region[240, 100]  # below the wrist: the sleeve or forearm is not the hand


def test_cleaning_fills_specks_but_never_a_hand():
    g = np.ones((200, 200), bool)
    g[50:53, 50:53] = False  # a speck (a skin-coloured thread)
    g[100:140, 100:140] = False  # a hand in front of the suit
    hand = np.zeros_like(g)
    hand[110:130, 110:130] = True
    out = clean_garment(g, hand, face_size=60)
    assert out[51, 51] and not out[120, 120] and not out[101, 101]


def test_m2fp_backend_keeps_clothes_classes_and_spares_hands():
    shape = (100, 80)

    def box(y0, y1, x0, x1):
        m = np.zeros(shape, np.float32)
        m[y0:y1, x0:x1] = 1
        return m

    class FakeParser:
        def __call__(self, bgr):
            assert bgr.shape[:2] == shape
            return {"masks": [box(0, 100, 10, 70), box(0, 25, 25, 55), box(30, 80, 15, 65), box(80, 100, 20, 60),
                              box(50, 60, 30, 40), box(0, 5, 0, 5)],
                    "labels": ["Human", "Face", "UpperClothes", "Pants", "Left-arm", "Coat"],
                    "scores": [0.99, 0.99, 0.95, 0.9, 0.9, 0.2]}

    face = Face(bbox=np.array([25, 0, 55, 25], float), score=1.0)
    hand = np.array([[40, 70]] + [[35 + 2 * f, 66 - 2 * j] for f in range(5) for j in range(4)], float)
    g = M2FPGarmentSegmenter(pipe=FakeParser())(np.zeros(shape + (3,), np.uint8), face, [hand])
    assert g.method == "m2fp" and g.mask[50, 20] and g.mask[90, 40]  # upper clothes, pants
    assert not g.mask[10, 40] and not g.mask[2, 2]  # the face; a low-score coat
    assert not g.mask[62, 40] and g.hands[62, 40]  # a hand in front of the jacket
    assert g.share_of_person == pytest.approx((g.mask & g.person).sum() / g.person.sum())


# --- given masks and refusals ------------------------------------------------------------------------


def test_given_mask_must_have_the_photos_size(tmp_path):
    mask = np.zeros((100, 80), np.uint8)
    mask[40:90, 10:70] = 255
    save_png(tmp_path / "m.png", mask)
    g = garment_from_file(tmp_path / "m.png", (100, 80))
    assert g.method == "given" and g.mask.sum() == 50 * 60
    with pytest.raises(InputError) as e:
        garment_from_file(tmp_path / "m.png", (120, 80))
    assert "80x100" in str(e.value) and "80x120" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("fill, words", [(0.0, "covers almost nothing"), (1.0, "covers almost everything")])
def test_empty_or_full_masks_are_refused_with_a_reason(fill, words):
    mask = np.zeros((100, 100), bool)
    mask[: int(fill * 100)] = True
    with pytest.raises(InputError) as e:
        check_garment(GarmentMask(mask, "given"), "photo.jpg")
    msg = str(e.value)
    assert words in msg and msg.startswith("photo.jpg: ") and "\n" not in msg
    check_garment(GarmentMask(np.arange(10000).reshape(100, 100) < 4000, "given"), "photo.jpg")  # 40 %: fine


def test_no_face_and_no_person_are_one_line_errors(faces_dir):
    with pytest.raises(InputError, match="no face found to put the identity in"):
        TryOnPerception()(np.full((300, 300, 3), 200, np.uint8), label="wall.jpg")

    class NoPerson:
        def __call__(self, image):
            return np.zeros(image.shape[:2], np.float32)

    from facechain.apps.tryon.garment import OfflineGarmentSegmenter

    photo = load_image(faces_dir / "obama/obama_2012_official_portrait.jpg")
    perception = TryOnPerception(garment_segmenter=OfflineGarmentSegmenter(NoPerson()))
    with pytest.raises(InputError) as e:
        perception(photo, label="obama.jpg")
    assert str(e.value).startswith("obama.jpg: no person found") and "\n" not in str(e.value)
