"""``facechain eval``: detection rate and likeness of a folder of real photos vs an identity trained on obama."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from facechain.errors import FacechainError
from facechain.identity import Identity
from facechain.paths import identities_dir
from facechain.postprocess.evaluate import evaluate
from tests.cli_helpers import run_cli


@pytest.fixture
def obama_identity(faces_dir):
    """An identity whose dataset holds obama photos (the LoRA file only has to exist for eval)."""
    folder = identities_dir() / "obama"
    (folder / "dataset" / "images").mkdir(parents=True)
    (folder / "pytorch_lora_weights.safetensors").write_bytes(b"unused by eval")
    for name in ("obama_2012_official_portrait.jpg", "obama_2010_blue_room_crop.jpg"):
        shutil.copy(faces_dir / "obama" / name, folder / "dataset" / "images" / name)
    Identity(name="obama", base_model="unused", trigger_word="a mature man", path=folder, dataset={"path": "dataset"}).save()
    return folder


@pytest.fixture
def portraits(faces_dir, tmp_path):
    out = tmp_path / "portraits"
    out.mkdir()
    shutil.copy(faces_dir / "obama" / "obama_2009_congress_address.jpg", out / "0001.jpg")
    shutil.copy(faces_dir / "obama" / "obama_small.jpg", out / "0002.jpg")
    shutil.copy(faces_dir / "biden" / "biden_official_portrait_unverified.jpg", out / "0003.jpg")
    shutil.copy(faces_dir / "biden" / "biden_2010_blue_room_crop.jpg", out / "0004.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(out / "0005.png")
    Image.new("RGB", (200, 100)).save(out / "contact_sheet.jpg")  # ignored: not a portrait
    return out


def test_eval_reports_detection_and_likeness(obama_identity, portraits):
    report = evaluate(portraits, "obama", threshold=0.9)
    assert report.images == 5 and report.reference_images == 2 and "identity dataset" in report.reference_source
    assert report.detection_rate == pytest.approx(0.8)
    by_file = {s.path.rsplit("/", 1)[-1]: s for s in report.scores}
    assert by_file["0005.png"].similarity is None and not by_file["0005.png"].face_found
    obama = [by_file[f].similarity for f in ("0001.jpg", "0002.jpg")]
    biden = [by_file[f].similarity for f in ("0003.jpg", "0004.jpg")]
    assert min(obama) > 0.9 > max(biden)
    assert report.best_similarity == pytest.approx(max(obama))
    assert report.mean_similarity == pytest.approx(np.mean(obama + biden))
    assert report.share_above == pytest.approx(2 / 5)  # faceless portraits count as misses


def test_eval_cli(obama_identity, portraits):
    code, out, err = run_cli("eval", portraits, "--person", "obama")
    assert code == 0, err
    assert "face detection:     80%" in out and "above 0.90:         40%" in out
    code, out, err = run_cli("eval", portraits, "--person", obama_identity, "--json", "--threshold", "0.8")
    data = json.loads(out)
    assert code == 0 and data["detection_rate"] == 0.8 and data["share_above_threshold"] == 0.8
    assert len(data["per_image"]) == 5
    code, _, err = run_cli("eval", portraits / "nothing-here", "--person", "obama")
    assert code == 2 and "not found" in err
    code, _, err = run_cli("eval", portraits, "--person", "nobody")
    assert code == 2 and "no such identity" in err


def test_eval_without_training_photos_falls_back_to_the_template(obama_identity, portraits, faces_dir):
    shutil.rmtree(obama_identity / "dataset")
    with pytest.raises(FacechainError, match="no face found in its reference photos"):
        evaluate(portraits, "obama")  # no photos, no template: nothing to compare with
    shutil.copy(faces_dir / "obama" / "obama_small.jpg", obama_identity / "template_face.png")
    report = evaluate(portraits, "obama")
    assert report.reference_source.startswith("template face") and report.share_above == pytest.approx(2 / 5)
