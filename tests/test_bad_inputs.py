"""Bad inputs and faults, every verb: the promised exit code, exactly one line on stderr, no
traceback, and every file the user owned unchanged afterwards (docs/reliability.md).

The bad files are generated here: decompression bombs (a PNG header declaring 50000x50000, a
valid 1-bit PNG of 19000x19000), file names that are not UTF-8, text that is not UTF-8, JSON of
the wrong shape, truncated and garbage ``.safetensors``, pickles holding objects. Read-only and
full locations are real mounts (a read-only tmpfs, a tiny full tmpfs) when the tests run as root;
otherwise a ``chmod 555`` folder stands in for read-only and the full-disk cases are skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from facechain.cli.main import main
from facechain.identity import Identity
from facechain.image_io import load_image, save_png

BIG = ["--size", "64", "--steps", "1", "-n", "1"]


# --- running the CLI and checking the promise -----------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def cli(*argv, quiet: bool = True) -> Run:
    """The real CLI in-process; log records (warnings) land on the captured stderr as they would on a terminal.

    ``quiet``: with ``-q`` (no progress lines), so stderr holds exactly what went wrong."""
    if quiet and len(argv) > 0 and argv[0] != "list" and "-q" not in argv and "--help" not in argv:  # list has no -q
        argv = (argv[0], "-q", *argv[1:])
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([a if isinstance(a, str) else os.fsdecode(a) for a in map(_arg, argv)])
            except SystemExit as e:  # argparse
                code = int(e.code or 0)
    finally:
        root.removeHandler(handler)
    return Run(code, out.getvalue(), err.getvalue())


def _arg(a):
    return a if isinstance(a, (str, bytes)) else str(a)


def assert_fails(run: Run, code: int, *needles: str) -> str:
    """Exit ``code``, exactly one line on stderr naming what is wrong, no traceback."""
    assert run.code == code, run.err
    assert len(run.err_lines) == 1, run.err
    line = run.err_lines[0]
    assert "Traceback" not in run.err and "internal error" not in line, run.err
    assert line.startswith("facechain "), line
    for needle in needles:
        assert needle in line, (needle, line)
    assert "weights_only" not in line  # never advise loading a pickle unsafely
    return line


def checksums(*roots: Path) -> dict[str, str]:
    """sha256 of every file (and the set of folders) under ``roots``: what the user owned."""
    sums = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for d in dirnames:
                sums[os.path.join(dirpath, d)] = "dir"
            for f in filenames:
                p = os.path.join(dirpath, f)
                sums[p] = "link" if os.path.islink(p) else hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return sums


class Owned:
    """Snapshot of the user's files; ``unchanged()`` asserts that a run left every one of them as it was."""

    def __init__(self, *roots: Path):
        self.roots = roots
        self.before = checksums(*roots)

    def unchanged(self, allow_new: tuple[Path, ...] = ()) -> None:
        after = checksums(*self.roots)
        new = {p for p in set(after) - set(self.before) if not any(Path(p).is_relative_to(a) for a in allow_new)}
        assert not new, f"left behind: {sorted(new)}"
        assert {p: after.get(p) for p in self.before} == self.before


# --- generated bad files ----------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, bit_depth: int = 8, color: int = 2, idat: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + (_chunk(b"IDAT", idat) if idat else b"")
            + _chunk(b"IEND", b""))


def valid_1bit_png(side: int) -> bytes:
    """A complete, decodable black 1-bit PNG of side x side pixels (a few KB for 19000)."""
    row = b"\0" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    return png_declaring(side, side, 1, 0, b"".join(z.compress(row) for _ in range(side)) + z.flush())


NON_UTF8 = b"caf\xe9"  # a Latin-1 name: valid on Linux, not UTF-8


def non_utf8(folder: Path, suffix: str) -> Path:
    """A path whose last part is not valid UTF-8 (as Python sees it: surrogate escapes)."""
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), NON_UTF8 + suffix.encode())))


@pytest.fixture(scope="module")
def bad(tmp_path_factory, faces_dir):
    root = tmp_path_factory.mktemp("bad")
    (root / "bomb.png").write_bytes(png_declaring(50000, 50000, idat=zlib.compress(b"\0" * 1000)))
    (root / "big.png").write_bytes(valid_1bit_png(19000))
    (root / "garbage.png").write_bytes(os.urandom(3000))
    (root / "latin1.yaml").write_bytes(b"generate:\n  negative_prompt: caf\xe9\n")
    good = root / "good.jpg"
    shutil.copy(faces_dir / "obama" / "obama_2012_official_portrait.jpg", good)
    return type("Bad", (), {"root": root, "bomb": root / "bomb.png", "big": root / "big.png", "garbage": root / "garbage.png",
                            "latin1_yaml": root / "latin1.yaml", "good": good})


@pytest.fixture(scope="module")
def kit(tmp_path_factory, faces_dir):
    """Tiny SD + ControlNets (random weights) and a tiny identity: models load in a second."""
    from facechain.inpainting.testing import save_tiny_identity, save_tiny_inpaint_models

    root = tmp_path_factory.mktemp("kit")
    models = save_tiny_inpaint_models(root / "models")
    ident = save_tiny_identity(root / "alice", "alice", faces_dir / "obama" / "obama_2012_official_portrait.jpg",
                               base_model=str(models["base_model"]))
    return type("Kit", (), {"models": models, "identity": ident.path, "sd": models["base_model"]})


def truncated_copy(src: Path, dest: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest


def copy_identity(kit, dest: Path) -> Path:
    shutil.copytree(kit.identity, dest)
    return dest


# --- real read-only and full locations ----------------------------------------------------------


def _mount_tmpfs(where: Path, options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return res.returncode == 0


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nothing can be written into: a read-only tmpfs as root, else a chmod 555 folder."""
    d = tmp_path / "readonly"
    d.mkdir()
    if _mount_tmpfs(d, "ro,size=64k"):
        yield d
        subprocess.run(["umount", str(d)], check=False)
        return
    if os.geteuid() == 0:
        pytest.skip("running as root but cannot mount a read-only tmpfs here (root ignores chmod)")
    d.chmod(0o555)
    yield d
    d.chmod(0o755)


@contextlib.contextmanager
def _tmpfs(where: Path, size: str):
    where.mkdir()
    if not _mount_tmpfs(where, f"size={size}"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount): the full-disk case is not testable")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


@pytest.fixture
def full_dir(tmp_path):
    """A tiny tmpfs filled to the last byte (needs root to mount)."""
    with _tmpfs(tmp_path / "full", "256k") as d:
        with contextlib.suppress(OSError), open(d / ".filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        yield d


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs, mostly empty: room for the pre-checks, not for big outputs."""
    with _tmpfs(tmp_path / "small", "1m") as d:
        yield d


# === prepare ==================================================================================


def _photos(tmp_path: Path, faces_dir: Path, names=("obama_2012_official_portrait.jpg", "obama_2010_blue_room_crop.jpg")) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in names:
        shutil.copy(faces_dir / "obama" / n, photos / n)
    return photos


FAST_PREPARE = ["--segmenter", "none", "--no-retouch", "--tagger", "none", "-q"]


@pytest.mark.parametrize("extra", [["--overwrite"], []])
def test_prepare_output_on_its_photos_is_refused_whatever_the_flags(tmp_path, faces_dir, extra):
    photos = _photos(tmp_path, faces_dir)
    owned = Owned(tmp_path)
    for out in (photos, photos / "prepared", tmp_path):  # is / lies inside / contains the input
        assert_fails(cli("prepare", photos, "-o", out, *extra), 2, "never writes over or into its inputs")
    owned.unchanged()


def test_prepare_overwrite_keeps_a_folder_facechain_did_not_write(tmp_path, faces_dir):
    photos = _photos(tmp_path, faces_dir)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    owned = Owned(tmp_path)
    assert_fails(cli("prepare", photos, "-o", mine, "--overwrite"), 2, "is not a facechain prepared folder")
    assert_fails(cli("prepare", photos, "-o", mine), 2, "already exists")
    owned.unchanged()


def test_prepare_small_mistakes_exit_2_and_blame_the_option(tmp_path, faces_dir):
    photos = _photos(tmp_path, faces_dir)
    (tmp_path / "cfg.yaml").write_bytes(b"prepare:\n  trigger: caf\xe9\n")
    owned = Owned(tmp_path)
    assert_fails(cli("prepare", tmp_path / "nope", "-o", tmp_path / "out"), 2, "nope: not found")
    line = assert_fails(cli("prepare", photos, "-o", tmp_path / "out", "--size", "0"), 2, "--size")
    assert "photo" not in line and "obama" not in line
    assert_fails(cli("prepare", photos, "-o", tmp_path / "out", "--identity-threshold", "nan"), 2, "finite number")
    assert_fails(cli("prepare", photos, "-o", tmp_path / "out", "-c", tmp_path / "cfg.yaml"), 2, "cfg.yaml", "not UTF-8")
    (tmp_path / "model.onnx").write_bytes(os.urandom(2000))
    owned = Owned(tmp_path)
    assert_fails(cli("prepare", photos, "-o", tmp_path / "out", "--orientation", "onnx", "--orientation-model",
                     tmp_path / "model.onnx"), 2, "model.onnx: not a valid ONNX model")  # was an internal error
    owned.unchanged()


def test_prepare_where_every_photo_is_a_bomb_is_one_line(tmp_path, bad):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(bad.bomb, photos / "bomb.png")
    shutil.copy(bad.big, photos / "big.png")
    owned = Owned(tmp_path)
    line = assert_fails(cli("prepare", photos, "-o", tmp_path / "out", *FAST_PREPARE), 1, "no usable photo")
    assert "image too large to decode safely" in line
    owned.unchanged()


def test_prepare_keeps_going_past_bombs_and_non_utf8_names_and_writes_valid_json(tmp_path, faces_dir, bad):
    photos = _photos(tmp_path, faces_dir)
    shutil.copy(bad.bomb, photos / "bomb.png")
    shutil.copy(bad.big, photos / "big.png")
    shutil.copy(faces_dir / "obama" / "obama_2009_congress_address.jpg", non_utf8(photos, ".jpg"))
    owned = Owned(photos)
    out = tmp_path / "out"
    run = cli("prepare", photos, "-o", out, *FAST_PREPARE)
    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    report = json.loads((out / "report.json").read_bytes().decode("utf-8"))  # strict UTF-8, valid JSON
    reasons = {Path(r["source"]).name: r["reason"] for r in report["rejected"]}
    assert "image too large" in reasons["bomb.png"] and "image too large" in reasons["big.png"]
    sources = [Path(a["source"]).name for a in report["accepted"]] + list(reasons)
    assert non_utf8(photos, ".jpg").name in sources  # processed or rejected, never fatal
    assert "caf\\xe9" in run.out or non_utf8(photos, ".jpg").name in run.out
    owned.unchanged()


def test_prepare_checks_a_read_only_location_before_the_work(tmp_path, faces_dir, readonly_dir):
    photos = _photos(tmp_path, faces_dir)
    owned = Owned(photos)
    assert_fails(cli("prepare", photos, "-o", readonly_dir / "out", *FAST_PREPARE), 2, str(readonly_dir / "out"))
    owned.unchanged()


def test_prepare_on_a_full_disk_fails_before_the_work(tmp_path, faces_dir, full_dir):
    photos = _photos(tmp_path, faces_dir)
    owned = Owned(photos)
    assert_fails(cli("prepare", photos, "-o", full_dir / "out", *FAST_PREPARE), 2, str(full_dir / "out"))
    owned.unchanged()
    assert sorted(p.name for p in full_dir.iterdir()) == [".filler"]


# === train / train-style / train-adapter =========================================================


@pytest.fixture
def prepared(tmp_path, faces_dir) -> Path:
    from tests.test_train import write_prepared

    return write_prepared(tmp_path / "user" / "prepared", faces_dir)


TRAIN = ["--size", "64", "--steps", "2", "-q"]


def test_train_never_writes_onto_its_inputs(tmp_path, prepared, kit):
    owned = Owned(tmp_path / "user")
    for out in (prepared, prepared / "images" / "x", prepared.parent):
        assert_fails(cli("train", prepared, "--output", out, "--overwrite", "--base-model", kit.sd, *TRAIN), 2,
                     "never writes over or into its inputs")
    owned.unchanged()


def test_train_refuses_a_work_folder_it_did_not_create(tmp_path, prepared, kit):
    user_work = tmp_path / "user" / "runs" / "me.work"
    user_work.mkdir(parents=True)
    (user_work / "thesis.tex").write_text("years of work")
    owned = Owned(tmp_path / "user")
    for extra in ([], ["--resume"]):
        assert_fails(cli("train", prepared, "--output", tmp_path / "user" / "runs" / "me", "--base-model", kit.sd,
                         *TRAIN, *extra), 2, "me.work", "did not create it")
    owned.unchanged()


def test_second_train_into_the_same_output_fails_at_once_naming_the_running_one(tmp_path, prepared, kit):
    from facechain.locking import output_lock

    out = tmp_path / "runs" / "me"
    holder = subprocess.Popen(  # a real other process holding the output's lock
        [sys.executable, "-c", "import sys, time; from facechain.locking import output_lock\n"
                               "with output_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert holder.stdout.readline().strip() == "locked"
        owned = Owned(tmp_path / "user")
        assert_fails(cli("train", prepared, "--output", out, "--base-model", kit.sd, *TRAIN), 2,
                     "another facechain run is writing it", f"pid {holder.pid}")
        owned.unchanged()
        assert not out.exists() and not Path(str(out) + ".work").exists()
    finally:
        holder.kill()
        holder.wait()
    with output_lock(out):  # the kernel released the dead holder's lock: stale, taken over
        pass


def test_train_overwrite_replaces_only_an_identity_and_says_so(tmp_path, prepared, kit):
    out = tmp_path / "runs" / "me"
    first = cli("train", prepared, "--output", out, "--base-model", kit.sd, *TRAIN)
    assert first.code == 0, first.err
    assert not Path(str(out) + ".work").exists() and not (out.parent / ".me.lock").exists()
    second = cli("train", prepared, "--output", out, "--base-model", kit.sd, "--overwrite",
                 "--size", "64", "--steps", "2", quiet=False)
    assert second.code == 0, second.err
    assert f"replacing the identity in {out} (--overwrite)" in second.err
    Identity.load(out)
    mine = tmp_path / "user" / "mine"
    mine.mkdir()
    (mine / "a.txt").write_text("mine")
    owned = Owned(tmp_path / "user")
    assert_fails(cli("train", prepared, "--output", mine, "--overwrite", "--base-model", kit.sd, *TRAIN), 2,
                 "is not a facechain identity")
    owned.unchanged()


def test_sigterm_during_training_saves_a_checkpoint_and_resumes(tmp_path, prepared, kit, monkeypatch):
    import signal

    from facechain.training.trainer import LoraTrainer

    original = LoraTrainer.training_step

    def step_then_sigterm(self):  # what `kill`, docker stop or a batch scheduler sends
        loss = original(self)
        if self.state.step == 1 and self.state.resumed_from is None:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    monkeypatch.setattr(LoraTrainer, "training_step", step_then_sigterm)
    out = tmp_path / "runs" / "me"
    args = ["train", prepared, "--output", out, "--base-model", kit.sd, "--size", "64", "--steps", "3", "-q"]
    run = cli(*args)
    assert run.code == 130 and "interrupted at step 2/3" in run.err and "Traceback" not in run.err, run.err
    assert (Path(str(out) + ".work") / "checkpoint-000002").is_dir() and not (out.parent / ".me.lock").exists()
    assert cli(*args, "--resume").code == 0
    assert Identity.load(out).training["resumed_from_step"] == 2


def _checkpoint(work: Path, kit) -> Path:
    """A resumable work folder of ours with one checkpoint (contents filled in by the test)."""
    from facechain.outputs import claim_work_dir

    claim_work_dir(work, work.with_suffix(""))
    ckpt = work / "checkpoint-000001"
    ckpt.mkdir()
    (ckpt / "state.json").write_text(json.dumps({"step": 1, "settings": {}}))
    shutil.copy(kit.identity / "pytorch_lora_weights.safetensors", ckpt / "lora.safetensors")
    import torch

    torch.save({"optimizer": {}}, ckpt / "training_state.pt")
    return ckpt


@pytest.mark.parametrize("damage, needle", [
    ("truncated-lora", "lora.safetensors: not a valid .safetensors file: truncated"),
    ("pickle-objects", "training_state.pt: holds Python objects besides tensors"),
    ("truncated-state", "training_state.pt: not a valid PyTorch file"),
    ("state-list", "state.json: not a valid checkpoint state"),
    ("state-latin1", "state.json: not UTF-8"),
])
def test_resume_from_a_damaged_checkpoint_is_one_line(tmp_path, prepared, kit, damage, needle):
    out = tmp_path / "runs" / "me"
    ckpt = _checkpoint(Path(str(out) + ".work"), kit)
    if damage == "truncated-lora":
        truncated_copy(ckpt / "lora.safetensors", ckpt / "lora.safetensors", 0.6)
    elif damage == "pickle-objects":
        import pickle

        (ckpt / "training_state.pt").write_bytes(pickle.dumps({"optimizer": os.system}))
    elif damage == "truncated-state":
        truncated_copy(ckpt / "training_state.pt", ckpt / "training_state.pt", 0.3)
    elif damage == "state-list":
        (ckpt / "state.json").write_text("[1, 2]")
    else:
        (ckpt / "state.json").write_bytes(b'{"step": 1, "note": "caf\xe9"}')
    owned = Owned(tmp_path)
    line = assert_fails(cli("train", prepared, "--output", out, "--base-model", kit.sd, "--resume", *TRAIN), 2, needle)
    assert "train without --resume" in line
    owned.unchanged()


@pytest.mark.parametrize("damage, needle", [
    ("metadata-latin1", "metadata.jsonl: not UTF-8"),
    ("report-list", "report.json: not a valid prepare report"),
    ("report-latin1", "report.json: not UTF-8"),
])
def test_train_on_a_damaged_prepared_folder_is_one_line(tmp_path, prepared, kit, damage, needle):
    if damage == "metadata-latin1":
        with open(prepared / "metadata.jsonl", "ab") as f:
            f.write(b'{"file_name": "images/000.png", "text": "caf\xe9"}\n')
    elif damage == "report-list":
        (prepared / "report.json").write_text("[]")
    else:
        (prepared / "report.json").write_bytes(b'{"trigger_word": "caf\xe9"}')
    owned = Owned(tmp_path)
    assert_fails(cli("train", prepared, "--output", tmp_path / "out", "--base-model", kit.sd, *TRAIN), 2, needle)
    owned.unchanged()


def test_train_small_mistakes(tmp_path, prepared, kit):
    owned = Owned(tmp_path)
    assert_fails(cli("train", tmp_path / "nope", "--base-model", kit.sd, *TRAIN), 2, "nope")
    assert_fails(cli("train", prepared, "--base-model", kit.sd, "--learning-rate", "nan", *TRAIN), 2, "finite number")
    assert_fails(cli("train", prepared, "--base-model", kit.sd, "--alpha", "inf", *TRAIN), 2, "finite number")
    owned.unchanged()


def test_train_style_bad_captions_and_output_on_input(tmp_path, kit, bad):
    styles = tmp_path / "user" / "style"
    styles.mkdir(parents=True)
    shutil.copy(bad.good, styles / "a.jpg")
    (styles / "a.txt").write_bytes(b"neon, caf\xe9")
    owned = Owned(tmp_path / "user")
    assert_fails(cli("train-style", styles, "--output", tmp_path / "o", "--base-model", kit.sd, *TRAIN), 2,
                 "a.txt: not UTF-8")
    (styles / "a.txt").write_text("neon")
    owned = Owned(tmp_path / "user")
    assert_fails(cli("train-style", styles, "--output", styles, "--overwrite", "--base-model", kit.sd, *TRAIN), 2,
                 "never writes over or into its inputs")
    assert_fails(cli("train-style", tmp_path / "nope", "--base-model", kit.sd, *TRAIN), 2, "nope")
    owned.unchanged()


def test_train_adapter_never_writes_onto_its_dataset(tmp_path, bad):
    data = tmp_path / "user" / "people"
    (data / "a").mkdir(parents=True)
    shutil.copy(bad.good, data / "a" / "1.jpg")
    owned = Owned(tmp_path / "user")
    assert_fails(cli("train-adapter", data, "-o", data / "a", "--overwrite"), 2, "never writes over or into its inputs")
    assert_fails(cli("train-adapter", tmp_path / "nope"), 2, "nope: not found")
    assert_fails(cli("train-adapter", data, "--learning-rate", "nan"), 2, "finite number")
    owned.unchanged()


# === generate ======================================================================================


def _gen(kit, *extra) -> list:
    return ["generate", "--person", kit.identity, "--base-model", kit.sd, "--prompt", "{trigger}, photo", *BIG, *extra]


@pytest.mark.parametrize("value", ["nan", "inf", "1e999"])
def test_generate_rejects_non_finite_numbers(tmp_path, kit, value):
    for flag in ("--guidance-scale", "--pose-strength", "--min-face-fraction"):
        assert_fails(cli(*_gen(kit, flag, value, "-o", tmp_path / "o")), 2, "finite number")
    assert not (tmp_path / "o").exists()


def test_generate_damaged_loras_fail_in_one_line_before_loading(tmp_path, kit, bad):
    user = tmp_path / "user"
    trunc = truncated_copy(kit.identity / "pytorch_lora_weights.safetensors", user / "face.safetensors")
    (user / "garbage.safetensors").write_bytes(os.urandom(4000))
    (user / "empty.safetensors").write_bytes(b"")
    broken_identity = copy_identity(kit, user / "bob")
    truncated_copy(kit.identity / "pytorch_lora_weights.safetensors", broken_identity / "pytorch_lora_weights.safetensors", 0.9)
    owned = Owned(user)
    out = tmp_path / "o"
    assert_fails(cli(*_gen(kit, "--face-lora", trunc, "-o", out)), 2, "face.safetensors: not a valid .safetensors file")
    assert_fails(cli(*_gen(kit, "--style-lora", user / "garbage.safetensors", "-o", out)), 2, "garbage.safetensors")
    assert_fails(cli(*_gen(kit, "--style-lora", user / "empty.safetensors", "-o", out)), 2, "empty.safetensors")
    assert_fails(cli("generate", "--person", broken_identity, "--base-model", kit.sd, "--prompt", "x", *BIG, "-o", out),
                 2, "pytorch_lora_weights.safetensors: not a valid .safetensors file: truncated")
    owned.unchanged()
    assert not out.exists()


def test_generate_damaged_base_model_is_one_line(tmp_path, kit):
    base = tmp_path / "user" / "sd"
    shutil.copytree(kit.sd, base)
    unet = base / "unet" / "diffusion_pytorch_model.safetensors"
    truncated_copy(unet, unet, 0.7)
    owned = Owned(tmp_path / "user")
    assert_fails(cli("generate", "--person", kit.identity, "--base-model", base, "--prompt", "x", *BIG,
                     "-o", tmp_path / "o"), 2, "diffusion_pytorch_model.safetensors: not a valid .safetensors file")
    owned.unchanged()
    (base / "model_index.json").write_bytes(b"\xff\xfe{")
    owned = Owned(tmp_path / "user")
    assert_fails(cli("generate", "--person", kit.identity, "--base-model", base, "--prompt", "x", *BIG,
                     "-o", tmp_path / "o"), 2, "model_index.json: not UTF-8")
    owned.unchanged()


def test_generate_bombs_and_bad_text_files(tmp_path, kit, bad):
    user = tmp_path / "user"
    user.mkdir()
    (user / "style.yaml").write_bytes(b"name: x\nprompt: caf\xe9\n")
    listed = copy_identity(kit, user / "listy")
    (listed / "facechain.json").write_text("[]")
    owned = Owned(user, bad.root)
    out = tmp_path / "o"
    assert_fails(cli(*_gen(kit, "--pose", bad.bomb, "-o", out)), 2, "bomb.png: image too large to decode safely")
    assert_fails(cli("generate", "--photo", bad.bomb, "--base-model", kit.sd, "--prompt", "x", *BIG, "-o", out), 2,
                 "bomb.png: image too large")
    assert_fails(cli(*_gen(kit, "-c", bad.latin1_yaml, "-o", out)), 2, "latin1.yaml: not UTF-8")
    assert_fails(cli("generate", "--person", kit.identity, "--base-model", kit.sd, "--style", user / "style.yaml", *BIG,
                     "-o", out), 2, "style.yaml: not UTF-8")
    assert_fails(cli("generate", "--person", listed, "--base-model", kit.sd, "--prompt", "x", *BIG, "-o", out), 2,
                 "facechain.json: not a valid identity manifest")
    owned.unchanged()
    assert not out.exists()


def test_generate_read_only_and_full_locations_fail_before_sampling(tmp_path, kit, readonly_dir, full_dir):
    assert_fails(cli(*_gen(kit, "-o", readonly_dir / "o")), 2, str(readonly_dir / "o"))
    line = assert_fails(cli(*_gen(kit, "-o", full_dir / "o")), 2, str(full_dir / "o"))
    assert "not enough free space" in line or "no space left" in line


def test_generate_with_non_utf8_names_saves_and_writes_valid_json(tmp_path, kit, faces_dir):
    pose = non_utf8(tmp_path, ".jpg")
    shutil.copy(faces_dir / "obama" / "obama_2012_official_portrait.jpg", pose)
    out = non_utf8(tmp_path, "-out")
    run = cli(*_gen(kit, "--pose", pose, "--openpose-controlnet", kit.models["openpose_controlnet"], "-o", out, "--json"))
    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    summary = json.loads((out / "portraits.json").read_bytes().decode("utf-8"))
    assert os.fsdecode(os.fsencode(summary["settings"]["pose"])) == str(pose)
    json.loads(run.out)


# === inpaint / faces ===============================================================================


def _inpaint_models(kit) -> list:
    m = kit.models
    return ["--base-model", m["base_model"], "--openpose-controlnet", m["openpose_controlnet"],
            "--canny-controlnet", m["canny_controlnet"], "--size", "64", "--steps", "2", "-n", "1"]


def test_inpaint_bad_inputs_fail_before_sampling(tmp_path, kit, bad, readonly_dir):
    user = tmp_path / "user"
    broken = copy_identity(kit, user / "bob")
    truncated_copy(kit.identity / "pytorch_lora_weights.safetensors", broken / "pytorch_lora_weights.safetensors", 0.5)
    owned = Owned(user, bad.root)
    out = tmp_path / "o"
    assert_fails(cli("inpaint", bad.bomb, "--person", kit.identity, "-o", out, *_inpaint_models(kit)), 2,
                 "bomb.png: image too large")
    assert_fails(cli("inpaint", bad.good, "--photo", bad.bomb, "-o", out, *_inpaint_models(kit)), 2, "bomb.png")
    assert_fails(cli("inpaint", bad.good, "--person", broken, "-o", out, *_inpaint_models(kit)), 2,
                 "pytorch_lora_weights.safetensors: not a valid .safetensors file")
    assert_fails(cli("inpaint", bad.good, "--person", kit.identity, "-o", out, "--guidance-scale", "nan",
                     *_inpaint_models(kit)), 2, "finite number")
    assert_fails(cli("inpaint", bad.good, "--person", kit.identity, "-o", out, *_inpaint_models(kit), "--steps", "1"), 2,
                 "steps x strength must leave at least one denoising step")  # was an internal error after loading
    assert_fails(cli("inpaint", tmp_path / "nope.jpg", "--person", kit.identity, "-o", out, *_inpaint_models(kit)), 2,
                 "nope.jpg: file not found")
    assert_fails(cli("inpaint", bad.good, "--person", kit.identity, "-o", kit.identity / "out", *_inpaint_models(kit)), 2,
                 "never writes over or into its inputs")
    assert_fails(cli("inpaint", bad.good, "--person", kit.identity, "-o", readonly_dir / "o", *_inpaint_models(kit)), 2,
                 str(readonly_dir / "o"))
    owned.unchanged()
    assert not out.exists()


def test_inpaint_template_with_a_non_utf8_name_saves_its_portraits(tmp_path, kit, faces_dir):
    template = non_utf8(tmp_path, ".png")
    save_png(template, load_image(faces_dir / "eileen_collins" / "astronaut.png"))
    out = tmp_path / "out"
    run = cli("inpaint", template, "--person", kit.identity, "-o", out, *_inpaint_models(kit))
    assert run.code == 0, run.err
    summary = json.loads((out / "portraits.json").read_bytes().decode("utf-8"))
    assert os.fsencode(summary["settings"]["template"]) == os.fsencode(template)
    from PIL import Image

    with Image.open(out / "0001.png") as im:
        assert "Template: " in im.text["parameters"] and "caf\\xe9" in im.text["parameters"]


def test_faces_bombs_devices_and_preview_locations(tmp_path, bad, readonly_dir):
    owned = Owned(bad.root)
    assert_fails(cli("faces", bad.bomb, "--no-preview"), 2, "bomb.png: image too large to decode safely")
    assert_fails(cli("faces", bad.big, "--no-preview"), 2, "big.png: image too large", "19000x19000")
    assert_fails(cli("faces", bad.garbage, "--no-preview"), 2, "garbage.png: not an image")
    assert_fails(cli("faces", "/dev/zero", "--no-preview"), 2, "not a regular file")
    assert_fails(cli("faces", bad.good, "-o", readonly_dir / "p.png"), 2, str(readonly_dir / "p.png"))
    assert_fails(cli("faces", bad.good, "-o", bad.good, "--overwrite"), 2, "never writes over or into its inputs")
    owned.unchanged()


def test_pixel_limit_is_ours_and_can_be_raised(tmp_path, bad, monkeypatch):
    from facechain.errors import InputError

    with pytest.raises(InputError, match="19000x19000 = 361 megapixels; the limit is 150"):
        _header_check(bad.big)
    monkeypatch.setenv("FACECHAIN_MAX_PIXELS", "10000")
    with pytest.raises(InputError, match="the limit is 0.01, raise it with FACECHAIN_MAX_PIXELS"):
        load_image(bad.good)
    monkeypatch.setenv("FACECHAIN_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="FACECHAIN_MAX_PIXELS"):
        load_image(bad.good)


def _header_check(path: Path) -> None:
    from facechain.image_io import check_pixel_limit, image_size

    check_pixel_limit(path, image_size(path))


# === eval / list / styles ==========================================================================


def test_eval_of_only_unreadable_images_exits_1(tmp_path, kit, bad):
    folder = tmp_path / "outs"
    folder.mkdir()
    shutil.copy(bad.bomb, folder / "0001.png")
    shutil.copy(bad.garbage, folder / "0002.png")
    owned = Owned(folder)
    assert_fails(cli("eval", folder, "--person", kit.identity), 1, "none of the 2 image(s) could be read")
    assert_fails(cli("eval", tmp_path / "nope", "--person", kit.identity), 2, "nope: not found")
    owned.unchanged()


def test_list_and_styles_show_broken_entries_with_their_reason(isolated_home, kit):
    root = isolated_home / "identities"
    copy_identity(kit, root / "good")
    (copy_identity(kit, root / "listy") / "facechain.json").write_text("[1]")
    (copy_identity(kit, root / "latin") / "facechain.json").write_bytes(b'{"name": "caf\xe9"}')
    styles = isolated_home / "styles"
    styles.mkdir()
    (styles / "ok.yaml").write_text("name: ok\nprompt: '{trigger}, fine'\n")
    (styles / "latin.yaml").write_bytes(b"name: latin\nprompt: caf\xe9\n")
    (styles / "listy.yaml").write_text("- a\n")
    owned = Owned(isolated_home)

    run = cli("list")
    assert run.code == 0 and not run.err_lines, run.err
    lines = {ln.split()[0]: ln for ln in run.out.splitlines()[1:]}
    assert "BROKEN" not in lines["alice"]  # the good one, listed by its manifest's name
    assert "BROKEN" in lines["listy"] and "expected an object" in lines["listy"]
    assert "BROKEN" in lines["latin"] and "not UTF-8" in lines["latin"]
    rows = [json.loads(ln) for ln in cli("list", "--json").out.splitlines()]
    assert {r["name"]: bool(r.get("broken")) for r in rows} == {"alice": False, "listy": True, "latin": True}

    run = cli("styles")
    assert run.code == 0 and not run.err_lines, run.err
    assert "BROKEN" in next(ln for ln in run.out.splitlines() if ln.startswith("latin")) and "not UTF-8" in run.out
    assert "cyberpunk" in run.out and any(ln.startswith("ok ") for ln in run.out.splitlines())
    assert_fails(cli("styles", "show", "latin"), 2, "latin.yaml: not UTF-8")
    owned.unchanged()


def test_output_into_a_closed_pipe_is_quiet():
    # the reader is gone before facechain writes a byte: every write meets a broken pipe
    proc = subprocess.run(f"{sys.executable} -m facechain styles --json | true", shell=True, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                          timeout=300)
    assert proc.stderr.strip() == "", proc.stderr


# === the mechanisms, one by one ======================================================================


def _raised(fn):
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - we want the library's own exception object
        return e
    raise AssertionError("did not raise")


def _pil_bomb(bad):
    from PIL import Image

    return lambda: Image.open(bad.bomb)


def _diffusers_style_wrap(bad):
    from safetensors.torch import load_file

    def load():
        try:
            load_file(str(bad.garbage))
        except Exception as e:
            raise OSError(f"Unable to load weights from checkpoint file for '{bad.garbage}'") from e
    return load


def _pickle_with_objects(tmp):
    import pickle

    import torch

    def load():
        (tmp / "evil.pt").write_bytes(pickle.dumps({"f": os.system}))
        torch.load(tmp / "evil.pt", weights_only=True)
    return load


@pytest.mark.parametrize("make, kind, reason", [
    (lambda bad, tmp: _pil_bomb(bad), "InputError", "image too large to decode safely (2500 megapixels)"),
    (lambda bad, tmp: lambda: __import__("safetensors.torch").torch.load_file(str(bad.garbage)), "InputError",
     "not a valid .safetensors file"),
    (lambda bad, tmp: _diffusers_style_wrap(bad), "InputError", "not a valid .safetensors file"),
    (lambda bad, tmp: _pickle_with_objects(tmp), "InputError", "holds Python objects besides tensors"),
    (lambda bad, tmp: lambda: __import__("yaml").safe_load("a: [1,\nb"), "InputError", "invalid YAML at line"),
    (lambda bad, tmp: lambda: __import__("yaml").safe_load("!!python/object/apply:os.system ['true']"), "InputError",
     "invalid YAML"),
    (lambda bad, tmp: lambda: json.loads("{"), "InputError", "invalid JSON"),
    (lambda bad, tmp: lambda: b"caf\xe9".decode("utf-8"), "InputError", "not UTF-8 text (byte 0xE9 at position 3)"),
    (lambda bad, tmp: lambda: open(tmp / "missing"), "InputError", "not found"),
    (lambda bad, tmp: lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")), "OutputError",
     "no space left on the device"),
    (lambda bad, tmp: lambda: (_ for _ in ()).throw(OSError(30, "Read-only file system")), "OutputError",
     "read-only file system"),
    (lambda bad, tmp: lambda: (_ for _ in ()).throw(MemoryError()), "ResourceError", "out of memory"),
    (lambda bad, tmp: lambda: (_ for _ in ()).throw(__import__("torch").cuda.OutOfMemoryError("CUDA out of memory")),
     "ResourceError", "out of GPU memory"),
])
def test_translate_turns_library_errors_into_one_line_naming_the_file(bad, tmp_path, make, kind, reason):
    from facechain.errors import translate

    err = translate(_raised(make(bad, tmp_path)), tmp_path / "the-file")
    assert type(err).__name__ == kind and reason in str(err), err
    assert "\n" not in str(err) and "weights_only" not in str(err)
    if kind != "ResourceError":
        assert str(tmp_path) in str(err)  # the file: ours, or the one the OS error names


def test_translate_leaves_bugs_alone_and_the_cli_reports_them_as_such(monkeypatch):
    from facechain.cli import cmd_list
    from facechain.errors import translate

    assert translate(ValueError("a bug"), "x") is None and translate(KeyError("k")) is None
    monkeypatch.setattr(cmd_list, "identity_rows", lambda: (_ for _ in ()).throw(KeyError("oops")))
    run = cli("list")
    assert run.code == 1 and len(run.err_lines) == 1 and "internal error: KeyError" in run.err
    monkeypatch.setattr(cmd_list, "identity_rows", lambda: (_ for _ in ()).throw(OSError(28, "No space", "/x/y")))
    assert_fails(cli("list"), 2, "/x/y: no space left on the device")  # an unwrapped library error, still one line


def test_sigterm_is_an_interrupt_with_exit_130(monkeypatch):
    import signal

    from facechain.cli import cmd_list

    monkeypatch.setattr(cmd_list, "identity_rows", lambda: os.kill(os.getpid(), signal.SIGTERM) or [])
    before = signal.getsignal(signal.SIGTERM)
    run = cli("list")
    assert run.code == 130 and run.err_lines == ["facechain list: interrupted"]
    assert signal.getsignal(signal.SIGTERM) == before  # main() put the previous handler back


def test_atomic_writers_on_a_disk_that_fills_up_leave_nothing_half_written(small_disk):
    from facechain.atomic import atomic_directory, atomic_write_bytes
    from facechain.errors import OutputError

    dest = small_disk / "result"
    with atomic_directory(dest) as tmp:  # a complete earlier version
        (tmp / "old.txt").write_text("version 1")
    with pytest.raises(OutputError, match=f"{dest}: no space left on the device"):
        with atomic_directory(dest, overwrite=True) as tmp:
            (tmp / "big.bin").write_bytes(b"\0" * 4 * 2**20)
    assert sorted(p.name for p in small_disk.iterdir()) == ["result"]  # no .partial left
    assert (dest / "old.txt").read_text() == "version 1"  # the earlier version is intact
    with pytest.raises(OutputError, match="big.bin: no space left on the device"):
        atomic_write_bytes(small_disk / "big.bin", b"\0" * 4 * 2**20)
    assert sorted(p.name for p in small_disk.iterdir()) == ["result"]


def test_lock_conflict_and_stale_locks(tmp_path, caplog, monkeypatch):
    from facechain import locking
    from facechain.locking import OutputLockedError, lock_path, output_lock

    out = tmp_path / "runs" / "me"
    with output_lock(out):
        with pytest.raises(OutputLockedError, match=rf"another facechain run is writing it \(pid {os.getpid()} on "):
            with output_lock(out):
                pass
    assert not lock_path(out).exists()  # released and removed

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(dead.stdout), "host": locking.socket.gethostname(), "started": "2020-01-01T00:00:00+00:00"}
    lock_path(out).write_text(json.dumps(stale))  # left by a killed run (no flock held)
    with caplog.at_level(logging.WARNING), output_lock(out):
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    assert "taking over the stale lock" in caplog.text

    def no_flock(fd, op):  # a network file system without flock: exclusive files and pid checks
        raise OSError(37, "No locks available")

    monkeypatch.setattr(locking.fcntl, "flock", no_flock)
    lock_path(out).write_text(json.dumps(stale))
    with output_lock(out):  # dead pid on this host: stale
        pass
    lock_path(out).write_text(json.dumps({**stale, "pid": os.getpid()}))  # a live one
    with pytest.raises(OutputLockedError):
        with output_lock(out):
            pass


def test_output_checks_before_the_work(tmp_path):
    from facechain.errors import OutputError
    from facechain.outputs import check_output, guard_inputs

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    (tmp_path / "file").write_text("x")
    for out in (photos, photos / "sub", tmp_path, photos / "a.jpg"):
        with pytest.raises(Exception, match="never writes over or into its inputs"):
            guard_inputs(out, [photos])
    guard_inputs(tmp_path / "elsewhere", [photos, "not-a-path-style-name", None])
    with pytest.raises(OutputError, match="exists and is not a folder"):
        check_output(tmp_path / "file")
    with pytest.raises(OutputError, match="is not a folder"):
        check_output(tmp_path / "file" / "out")
    with pytest.raises(OutputError, match="file name too long"):
        check_output(tmp_path / ("n" * 250))
