"""``facechain faces TEMPLATE``: numbered faces (what ``inpaint --face-index`` takes) and a preview."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from facechain.image_io import load_image, save_png
from facechain.inpainting.testing import side_by_side
from tests.cli_helpers import run_cli


def test_faces_numbers_a_group_photo_left_to_right_and_saves_a_preview(faces_dir, tmp_path, monkeypatch):
    group = side_by_side([faces_dir / "obama/obama_2012_official_portrait.jpg",
                          faces_dir / "biden/biden_official_portrait_unverified.jpg"])
    save_png(tmp_path / "group.png", group)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("faces", tmp_path / "group.png")
    assert code == 0, err
    lines = out.splitlines()
    assert "2 faces" in lines[0]
    rows = [ln.split() for ln in lines if ln.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1"]
    x_left = [int(r[1].split(",")[0]) for r in rows]
    assert x_left[0] < x_left[1]
    preview = tmp_path / "group.faces.png"
    assert f"preview: {preview.name}" in out
    shown = np.asarray(Image.open(preview).convert("RGB"))
    assert shown.shape == group.shape and (shown != group).any()  # boxes and numbers drawn

    # Running again replaces its own preview, but never someone else's file.
    assert run_cli("faces", tmp_path / "group.png")[0] == 0
    Image.fromarray(group).save(tmp_path / "mine.png")
    code, _, err = run_cli("faces", tmp_path / "group.png", "-o", tmp_path / "mine.png")
    assert code == 2 and "mine.png: already exists" in err and len(err.strip().splitlines()) == 1

    code, out, _ = run_cli("faces", tmp_path / "group.png", "--no-preview", "--json")
    data = json.loads(out)
    assert [f["index"] for f in data["faces"]] == [0, 1] and data["preview"] is None
    assert all(f["redrawable"] for f in data["faces"])


def test_faces_marks_a_face_too_small_to_redraw_and_reports_no_faces(faces_dir, tmp_path):
    code, out, _ = run_cli("faces", faces_dir / "codait_bryan/Bryan.png", "--no-preview")
    assert code == 0 and "1 face" in out and "too small to redraw" in out
    empty = load_image(faces_dir / "eileen_collins/astronaut.png")[:240, 330:]
    save_png(tmp_path / "no_face.png", empty)
    code, out, _ = run_cli("faces", tmp_path / "no_face.png", "--no-preview")
    assert code == 0 and "0 faces" in out
    code, _, err = run_cli("faces", tmp_path / "missing.png")
    assert code == 2 and "missing.png: file not found" in err
