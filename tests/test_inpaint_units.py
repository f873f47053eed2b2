"""Template-portrait geometry on real photos: face numbering, crops, the landmark warp, masks, seams."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facechain.image_io import load_image
from facechain.inpainting.geometry import fit_affine, square_crop_box, warp_landmarks
from facechain.inpainting.masks import build_face_mask
from facechain.inpainting.seam import border_ring, composite, corrected_crop, measure_seam
from facechain.inpainting.template_faces import find_template_faces
from facechain.inpainting.testing import side_by_side
from facechain.perception import get_analyzer


@pytest.fixture(scope="module")
def analyzer():
    return get_analyzer("hog")


def _face(analyzer, path):
    return analyzer.analyze(load_image(path), landmarks=True)[0]


@pytest.mark.parametrize("source, target", [
    ("obama/obama_2012_official_portrait.jpg", "biden/biden_official_portrait_unverified.jpg"),
    ("codait_luciano/Luciano.png", "biden/biden_2010_blue_room_crop.jpg"),
])
def test_landmark_warp_between_two_real_faces(analyzer, faces_dir, source, target):
    src, tpl = _face(analyzer, faces_dir / source), _face(analyzer, faces_dir / target)
    warp = warp_landmarks(src.landmarks68, tpl.landmarks68)
    # The template face box: the box of its own 68 landmarks (dlib's detection box stops above the
    # chin, so even the template's own jaw points leave it), grown by 10% of its size per side.
    lo, hi = tpl.landmarks68.min(axis=0), tpl.landmarks68.max(axis=0)
    margin = 0.10 * (hi - lo)
    inside = ((warp.landmarks >= lo - margin) & (warp.landmarks <= hi + margin)).all(axis=1)
    print(f"\n{source} -> {target}: affine fit RMS error {warp.fit.rms_error:.2f} px "
          f"= {warp.fit.rel_error:.2%} of the template face; {inside.sum()}/68 warped points inside the face box")
    assert warp.source == "stage1" and warp.landmarks.shape == (68, 2)
    assert warp.fit.rel_error < 0.05  # two different people: the residual is their difference in shape
    assert inside.all()
    # The warp moved the source's points onto the template face (they started elsewhere).
    assert np.linalg.norm(warp.landmarks.mean(0) - tpl.landmarks68.mean(0)) < 0.05 * (hi - lo).max()


def test_affine_fit_recovers_a_known_map_exactly():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(68, 2))
    m = np.array([[1.3, -0.2, 15.0], [0.25, 0.9, -4.0]])
    dst = src @ m[:, :2].T + m[:, 2]
    fit = fit_affine(src, dst)
    assert np.allclose(fit.matrix, m, atol=1e-9) and fit.rms_error < 1e-9
    with pytest.raises(ValueError):
        fit_affine(src[:2], dst[:2])


def test_faces_are_numbered_left_to_right_and_found_on_huge_templates(analyzer, faces_dir):
    group = side_by_side([faces_dir / "biden/biden_official_portrait_unverified.jpg",
                          faces_dir / "obama/obama_2012_official_portrait.jpg"])
    faces = find_template_faces(group, analyzer)
    assert [tf.index for tf in faces] == [0, 1]
    assert faces[0].face.center[0] < group.shape[1] / 2 < faces[1].face.center[0]
    # A 6000 px wide version is searched at 2048 px; boxes and landmarks come back in full-size pixels.
    scale = 6000 / group.shape[1]
    huge = cv2.resize(group, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    big = find_template_faces(huge, analyzer, max_side=2048)
    assert len(big) == 2
    for small, large in zip(faces, big):
        assert np.allclose(large.face.center / scale, small.face.center, atol=0.04 * small.size)
        assert abs(large.size / scale - small.size) < 0.15 * small.size
        assert large.face.landmarks68.shape == (68, 2)


def test_crop_is_square_inside_the_image_with_the_face_at_the_given_share(analyzer, faces_dir):
    img = load_image(faces_dir / "eileen_collins/astronaut.png")
    face = analyzer.analyze(img)[0]
    box = square_crop_box(face, img.shape, 0.3)
    assert box.x0 >= 0 and box.y0 >= 0 and box.x0 + box.side <= 512 and box.y0 + box.side <= 512
    assert box.side == round(max(face.width, face.height) / 0.3)
    # A face cut at the image edge (box starts at x < 0): the crop shifts inside, never pads.
    partial = load_image(faces_dir / "obama/obama_partial_face.jpg")
    pf = analyzer.analyze(partial)[0]
    assert pf.bbox[0] < 0
    pbox = square_crop_box(pf, partial.shape, 0.3)
    assert pbox.x0 == 0 and pbox.side <= min(partial.shape[:2])
    assert pbox.cut(partial).shape == (pbox.side, pbox.side, 3)


def test_face_mask_is_dilated_feathered_inside_and_zero_outside(analyzer, faces_dir):
    img = load_image(faces_dir / "obama/obama_2012_official_portrait.jpg")
    face = analyzer.analyze(img)[0]
    mask = build_face_mask(img.shape[:2], face.landmarks68, face.size, dilate=0.12, feather=0.08)
    assert mask.region.sum() < mask.hard.sum()  # dilated
    assert (mask.soft[mask.region] == 1).all()  # the face itself is fully replaced
    assert (mask.soft[~mask.hard] == 0).all() and (mask.soft[mask.hard] > 0).all()  # feathering stays inside
    ys, xs = np.nonzero(mask.region)
    assert ys.min() < face.landmarks68[17:27, 1].min() - 0.2 * face.size  # extended up to the forehead
    assert mask.hard[int(face.center[1]), int(face.center[0])]


def test_seam_correction_restores_the_template_where_the_model_kept_it():
    """With a fake 'VAE' that shifts colours and blurs, the corrected paste equals the template
    wherever the generated image is just that round trip; the composite leaves the rest exact."""
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, size=(96, 96, 3)).astype(np.uint8)
    small = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    round_trip = np.clip(cv2.GaussianBlur(small, (5, 5), 1.5) * 0.9 + 12.0, 0, 255)
    generated = round_trip.copy()
    generated[20:44, 20:44] = 200.0  # the "new face"
    corrected, uncorrected = corrected_crop(generated, crop, round_trip)
    ring = border_ring(96)
    assert np.abs(corrected[ring] - crop[ring]).max() < 1e-3
    assert np.abs(uncorrected[ring] - crop[ring]).mean() > 5
    lm = np.array([[30 + 36 * np.cos(t), 48 + 20 * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 68)])
    lm[17:27] = [[x, 40] for x in np.linspace(36, 60, 10)]
    mask = build_face_mask((96, 96), lm, 30.0, dilate=0.1, feather=0.1)
    seam = measure_seam(crop, corrected, uncorrected, mask)
    assert seam.border_corrected < 1e-3 < seam.border_uncorrected
    from facechain.inpainting.geometry import CropBox

    canvas = np.zeros((120, 120, 3), np.uint8)
    canvas[10:106, 12:108] = crop
    before = canvas.copy()
    composite(canvas, CropBox(12, 10, 96), corrected, mask)
    outside = np.ones((120, 120), bool)
    outside[10:106, 12:108][mask.hard] = False
    assert (canvas[outside] == before[outside]).all()
    assert (canvas[10:106, 12:108][mask.soft == 1] != before[10:106, 12:108][mask.soft == 1]).any()


def test_shipped_config_file_matches_the_defaults():
    from facechain.config import load_config
    from facechain.inpainting.config import InpaintConfig
    from facechain.paths import builtin_configs_dir

    assert load_config(InpaintConfig, "inpaint", builtin_configs_dir() / "inpaint.yaml") == InpaintConfig()


def test_head_region_adds_the_hair_to_the_landmark_hull(analyzer, faces_dir):
    from facechain.inpainting.masks import HeadRegion, face_region_polygon, rasterize_polygon

    img = load_image(faces_dir / "eileen_collins/astronaut.png")
    face = analyzer.analyze(img)[0]
    box = square_crop_box(face, img.shape, 0.3)
    crop, lm = box.cut(img), box.to_crop(face.landmarks68)
    hull = rasterize_polygon(face_region_polygon(lm), crop.shape[:2])
    head = HeadRegion()(crop, lm)
    assert (head | hull).sum() == head.sum()  # the face hull is always inside
    assert head.sum() > 1.3 * hull.sum()  # plus her (voluminous) hair
    assert np.nonzero(head)[0].min() < np.nonzero(hull)[0].min() - 0.1 * face.size  # the top of the head
    assert not head[-5:].any()  # not the suit below the chin


def test_prompts_put_the_identity_first_and_use_styles(tmp_path):
    from facechain.identity import Identity
    from facechain.inpainting.api import DEFAULT_PROMPT, build_prompts
    from facechain.inpainting.config import InpaintConfig

    ident = Identity(name="a", base_model="x", trigger_word="a mature man", path=tmp_path, tags=["smile"])
    prompt, negative = build_prompts(ident, InpaintConfig())
    assert prompt == f"a mature man, smile, {DEFAULT_PROMPT}" and "worst quality" in negative
    prompt, _ = build_prompts(ident, InpaintConfig(prompt="in the rain", negative_prompt="blurry"))
    assert prompt == "a mature man, smile, in the rain"
    style = tmp_path / "st.yaml"
    style.write_text("name: st\nprompt: '{trigger}, oil painting, {tags}'\nnegative_prompt: ugly\n")
    prompt, negative = build_prompts(ident, InpaintConfig(style=str(style)))
    assert (prompt, negative) == ("a mature man, oil painting, smile", "ugly, children")  # adults stay adult
