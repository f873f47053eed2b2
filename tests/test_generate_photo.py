"""Train-free portraits: ``facechain generate --photo`` runs the FACT adapter instead of a face LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facechain.fact.testing import tiny_fact_model
from tests.cli_helpers import run_cli

TINY = ["--size", "64", "--steps", "2", "--prompt", "{trigger}, studio portrait", "--seed", "3", "-n", "1"]



@pytest.fixture(scope="module")
def tiny_adapter_dir(tmp_path_factory, tiny_sd_dir) -> Path:
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_sd_dir, subfolder="unet")
    return tiny_fact_model(unet, seed=4, open_gates=0.8).save(tmp_path_factory.mktemp("fact") / "tiny-fact")


def _portrait(out: Path) -> tuple[np.ndarray, dict]:
    from PIL import Image

    meta = json.loads((out / "portraits.json").read_text())
    return np.asarray(Image.open(out / "0001.png").convert("RGB"), dtype=np.int16), meta


def test_generate_photo_uses_the_adapter_and_records_it(tiny_sd_dir, tiny_adapter_dir, faces_dir, tmp_path):
    photo = faces_dir / "obama" / "obama_small.jpg"
    base = ["generate", "--photo", photo, "--base-model", tiny_sd_dir, "--adapter", tiny_adapter_dir, "--no-fusion", *TINY]
    code, out, err = run_cli(*base, "--adapter-scale", "1.0", "-o", tmp_path / "a")
    assert code == 0, err
    img_face, meta = _portrait(tmp_path / "a")
    settings = meta["settings"]
    fact = settings["fact"]
    assert fact["adapter_scale"] == 1.0 and fact["face_tokens"] == 16
    assert str(tiny_adapter_dir) in fact["fact_adapter"] and fact["face_photos"][0].endswith("obama_small.jpg")
    assert meta["portraits"][0]["fact"] == fact  # every image carries it too
    assert settings["face_lora"] is None
    assert settings["trigger_word"].endswith(" man")  # from the photo's attributes (the paper's table)

    # scale 0 is the base model exactly; scale 1 with open gates moves the output
    code, _, err = run_cli(*base, "--adapter-scale", "0", "-o", tmp_path / "b")
    assert code == 0, err
    img_base, _ = _portrait(tmp_path / "b")
    assert np.abs(img_face - img_base).mean() > 0.5


def test_generate_photo_errors_are_one_line(tiny_sd_dir, tiny_adapter_dir, tmp_path, faces_dir):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((160, 160, 3), 180, np.uint8)).save(blank)
    code, _, err = run_cli("generate", "--photo", blank, "--base-model", tiny_sd_dir, "--adapter", tiny_adapter_dir, *TINY,
                           "-o", tmp_path / "x")
    assert code == 2 and "blank.png" in err and "no face" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    # the default adapter is a hub model: offline it is a one-line "download it" error
    code, _, err = run_cli("generate", "--photo", faces_dir / "obama" / "obama_small.jpg", "--base-model", tiny_sd_dir, *TINY,
                           "-o", tmp_path / "y")
    assert code == 2 and "fact-adapter" in err and "facechain models download" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("generate", "--photo", blank, "--person", "alice", *TINY, "-o", tmp_path / "z")
    assert code == 2 and "--photo" in err
