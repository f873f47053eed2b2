"""The whole user journey on tiny models: photos -> train -> generate (newest identity) -> eval."""

from __future__ import annotations

import json

from tests.cli_helpers import run_cli


def test_photos_to_identity_to_portraits_to_eval(faces_dir, tiny_sd_dir, isolated_home, tmp_path):
    code, out, err = run_cli("train", faces_dir / "obama", "--name", "barack", "--base-model", tiny_sd_dir,
                             "--size", 64, "--steps", 4, "--no-retouch", "-q")
    assert code == 0, err
    identity = isolated_home / "identities" / "barack"
    assert (identity / "pytorch_lora_weights.safetensors").is_file()

    # generate without --person takes the newest identity; its trigger word leads the prompt
    out_dir = tmp_path / "portraits"
    code, out, err = run_cli("generate", "--prompt", "{trigger}, studio portrait", "--size", 64, "--steps", 2,
                             "-n", 2, "--seed", 7, "-o", out_dir)
    assert code == 0, err
    meta = json.loads((out_dir / "portraits.json").read_text())
    assert meta["settings"]["identity"] == "barack" and meta["settings"]["seeds"] == [7, 8]
    trigger = json.loads((identity / "facechain.json").read_text())["trigger_word"]
    assert meta["settings"]["prompt"].startswith(trigger)
    assert sorted(p.name for p in out_dir.iterdir()) == ["0001.png", "0002.png", "contact_sheet.jpg", "portraits.json"]
    # random tiny weights draw no face: flagged, kept, never a crash or a silent empty result
    assert all(p["ok"] is False and p["reason"] for p in meta["portraits"])

    code, out, err = run_cli("eval", out_dir, "--person", "barack")
    assert code == 0, err
    assert "detection" in out.lower()
