"""Similarity ranking on real photos: the template's person first; images without one usable face flagged last."""

from __future__ import annotations

import numpy as np

from facechain.image_io import load_image
from facechain.perception import get_analyzer
from facechain.postprocess.ranking import RankedImage, rank_images


def test_obama_photos_rank_before_biden_against_an_obama_template(faces_dir):
    analyzer = get_analyzer()
    template = load_image(faces_dir / "obama" / "obama_2009_congress_address.jpg", max_side=512)
    ref = analyzer.analyze(template, embedding=True, max_faces=1)[0].embedding
    files = [faces_dir / "biden" / "biden_official_portrait_unverified.jpg", faces_dir / "obama" / "obama_2012_official_portrait.jpg",
             faces_dir / "biden" / "biden_2010_blue_room_crop.jpg", faces_dir / "obama" / "obama_small.jpg",
             faces_dir / "obama" / "obama_2010_blue_room_crop.jpg"]
    images = [load_image(f, max_side=512) for f in files]
    ranked = rank_images(images, ref, analyzer=analyzer)
    assert all(isinstance(r, RankedImage) for r in ranked)
    assert all(r.ok and r.face_count == 1 for r in ranked)
    order = [files[r.index].parent.name for r in ranked]
    assert order == ["obama"] * 3 + ["biden"] * 2
    sims = [r.similarity for r in ranked]
    assert sims == sorted(sims, reverse=True)
    assert min(sims[:3]) > max(sims[3:])


def test_images_without_one_usable_face_are_flagged_and_ranked_last(faces_dir):
    analyzer = get_analyzer()
    obama = load_image(faces_dir / "obama" / "obama_small.jpg")
    ref = analyzer.analyze(obama, embedding=True, max_faces=1)[0].embedding
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    small = np.full((960, 1280, 3), 200, np.uint8)  # obama's face at ~8% of the image side
    small[:240, :320] = obama
    pair = np.concatenate([obama, obama], axis=1)  # two faces of the same size
    ranked = rank_images([noise, small, obama, pair], ref, analyzer=analyzer)
    assert ranked[0].index == 2 and ranked[0].ok and ranked[0].similarity > 0.99
    flagged = {r.index: r for r in ranked[1:]}
    assert not any(r.ok for r in flagged.values())
    assert flagged[0].reason == "no face found" and flagged[0].similarity is None
    assert "too small" in flagged[1].reason and flagged[1].similarity > 0.9  # still scored, just flagged
    assert flagged[3].face_count == 2 and "2 faces" in flagged[3].reason
    assert [r.index for r in ranked][-1] == 0  # no face at all goes last
    # a looser size rule accepts the small face
    loose = rank_images([small], ref, analyzer=analyzer, min_face_fraction=0.05)
    assert loose[0].ok
