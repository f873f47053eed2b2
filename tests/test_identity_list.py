"""`facechain list` and the identity manifest helpers (no training needed)."""

from __future__ import annotations

import json
import os

from facechain.identity import LORA_FILE, Identity, list_identities, resolve_identity
from tests.cli_helpers import run_cli


def make_identity(root, name, photos, mtime, base="ms:ly261666/cv_portrait_model@v2.0#film/film"):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / LORA_FILE).write_bytes(b"")
    ident = Identity(name=name, base_model=base, trigger_word="a beautiful woman", path=folder,
                     dataset={"photos": photos}, created="2026-01-02T03:04:05+00:00", base_model_sha256="ab" * 32)
    manifest = ident.save()
    os.utime(manifest, (mtime, mtime))
    return folder


def test_list_shows_identities_newest_first(isolated_home):
    code, out, _ = run_cli("list")
    assert code == 0 and out.startswith("no identities in ") and "facechain train" in out

    root = isolated_home / "identities"
    make_identity(root, "alice", 5, 1_000_000)
    make_identity(root, "bob", 3, 2_000_000, base="/models/sd15")
    (root / "bob.work").mkdir()  # an unfinished run's work folder is not an identity
    (root / ".alice.partial-x").mkdir()
    code, out, _ = run_cli("list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0].split() == ["NAME", "BASE", "MODEL", "PHOTOS", "TRIGGER", "CREATED"]
    assert lines[1].split()[:4] == ["bob", "/models/sd15", "3", "a"]
    assert lines[2].split()[:3] == ["alice", "ms:ly261666/cv_portrait_model@v2.0#film/film", "5"]
    assert lines[1].endswith("2026-01-02 03:04")

    code, out, _ = run_cli("list", "--json")
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["name"] for r in rows] == ["bob", "alice"] and rows[0]["photos"] == 3
    assert resolve_identity(None).name == "bob"  # generate's default: the newest identity


def test_manifest_round_trip_keeps_base_model_hash(tmp_path):
    folder = make_identity(tmp_path, "carol", 4, 1_000_000)
    loaded = Identity.load(folder)
    assert loaded.base_model_sha256 == "ab" * 32 and loaded.dataset == {"photos": 4}
    assert [i.name for i in list_identities(tmp_path)] == ["carol"]
