"""Face fusion on real photos: the template's identity moves in, nothing outside the face mask changes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facechain.errors import FacechainError
from facechain.image_io import load_image
from facechain.perception import get_analyzer
from facechain.postprocess.fusion import FusionResult, fuse_face, get_fuser
from facechain.types import cosine_similarity


@pytest.fixture(scope="module")
def photos(faces_dir):
    return {
        "obama": load_image(faces_dir / "obama" / "obama_2012_official_portrait.jpg", max_side=512),
        "obama_ref": load_image(faces_dir / "obama" / "obama_2009_congress_address.jpg", max_side=512),
        "biden": load_image(faces_dir / "biden" / "biden_official_portrait_unverified.jpg", max_side=512),
        "luciano": load_image(faces_dir / "codait_luciano" / "Luciano.png"),
    }


def _embedding(img):
    return get_analyzer().analyze(img, embedding=True, max_faces=1)[0].embedding


@pytest.mark.parametrize("target", ["biden", "luciano"])
def test_fusion_moves_identity_and_touches_only_the_face(photos, target):
    analyzer = get_analyzer()
    obama_ref = _embedding(photos["obama_ref"])  # another obama photo than the one fused in
    tgt = photos[target]
    res = fuse_face(tgt, photos["obama"], strength=1.0, analyzer=analyzer)
    assert isinstance(res, FusionResult) and res.fused and res.reason is None and res.backend == "landmark"
    before, after = cosine_similarity(_embedding(tgt), obama_ref), cosine_similarity(_embedding(res.image), obama_ref)
    assert after > before + 0.02, (before, after)

    assert res.mask.shape == tgt.shape[:2] and res.mask.dtype == np.float32 and 0 <= res.mask.min() and res.mask.max() <= 1
    face = analyzer.analyze(tgt, landmarks=True, max_faces=1)[0]
    hull = np.zeros(tgt.shape[:2], np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(face.landmarks68.round().astype(np.int32)), 1)
    dilated = cv2.dilate(hull, np.ones((5, 5), np.uint8)) > 0
    changed = (res.image != tgt).any(axis=2)
    assert changed.sum() > 0.3 * hull.sum()  # the face really changed
    assert not changed[~dilated].any()  # ... and nothing outside the dilated face hull
    assert not changed[res.mask <= 0].any()  # ... nor outside the returned blend mask
    assert (res.mask > 0)[~dilated].sum() == 0


def test_fusion_strength_scales_the_change(photos):
    full = fuse_face(photos["biden"], photos["obama"], strength=1.0)
    half = fuse_face(photos["biden"], photos["obama"], strength=0.5)
    zero = fuse_face(photos["biden"], photos["obama"], strength=0.0)
    diff = lambda r: np.abs(r.image.astype(int) - photos["biden"].astype(int)).sum()  # noqa: E731
    assert 0 == diff(zero) < diff(half) < diff(full)
    assert not zero.fused and zero.reason


def test_no_face_returns_the_target_unchanged(photos):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    res = fuse_face(noise, photos["obama"])
    assert not res.fused and "no face" in res.reason and np.array_equal(res.image, noise) and res.mask.max() == 0
    res = fuse_face(photos["biden"], noise)
    assert not res.fused and "template" in res.reason and np.array_equal(res.image, photos["biden"])
    with pytest.raises(FacechainError, match="strength"):
        fuse_face(photos["biden"], photos["obama"], strength=1.5)


def test_modelscope_backend_fails_clearly_offline():
    # Either ModelScope's pipelines are missing or the model cannot be fetched offline: one clear message.
    with pytest.raises(FacechainError, match=r"modelscope|face-fusion"):
        get_fuser("modelscope")
    with pytest.raises(FacechainError, match="unknown face fusion backend"):
        get_fuser("magic")


def test_portrait_generator_fuses_then_ranks_real_faces(photos):
    """The generator's post-processing stages on real photos (tiny models draw no faces)."""
    from facechain.generation.portrait import PortraitGenerator, StageTimes

    gen = PortraitGenerator(pipe=None, template_face=photos["obama"], fuser="landmark")
    assert gen.template_embedding is not None and not gen.warnings
    noise = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    outputs = [noise, photos["biden"], photos["obama_ref"]]
    times = StageTimes()
    fused = gen.fuse_faces(outputs, times)
    assert [f.fused for f in fused] == [False, True, True]
    ranked = gen.rank([f.image for f in fused], times)
    assert [r.index for r in ranked] == [2, 1, 0] and not ranked[-1].ok
    assert times.fusion > 0 and times.ranking > 0
