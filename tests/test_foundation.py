"""Foundation: configuration, model store, image loading, atomic outputs, CLI error handling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facechain.atomic import atomic_directory
from facechain.config import load_config
from facechain.errors import ConfigError, InputError, ModelNotFoundError, OutputExistsError
from facechain.image_io import load_image
from facechain.models.store import ModelRef, ModelStore
from tests.cli_helpers import run_cli


@dataclass
class _Cfg:
    steps: int = 10
    lr: float = 1e-4
    name: str = "x"
    flip: bool = True
    sizes: list[int] = field(default_factory=lambda: [1, 2])


def test_config_precedence_default_file_override(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  steps: 20\n  lr: 0.5\n")
    assert load_config(_Cfg, "train").steps == 10
    cfg = load_config(_Cfg, "train", f, {"lr": None, "name": "y"})
    assert (cfg.steps, cfg.lr, cfg.name) == (20, 0.5, "y")
    assert load_config(_Cfg, "train", f, {"steps": 7}).steps == 7


def test_config_rejects_unknown_key_and_bad_type(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  stepz: 20\n")
    with pytest.raises(ConfigError, match=r"c.yaml.*unknown key 'stepz'"):
        load_config(_Cfg, "train", f)
    f.write_text("train:\n  steps: many\n")
    with pytest.raises(ConfigError, match="steps.*integer"):
        load_config(_Cfg, "train", f)
    f.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(_Cfg, "train", f)


def test_model_ref_parsing():
    assert ModelRef.parse("runwayml/stable-diffusion-v1-5").source == "hf"
    r = ModelRef.parse("ms:ly261666/cv_portrait_model@v2.0#film/film")
    assert (r.source, r.id, r.revision, r.subfolder) == ("modelscope", "ly261666/cv_portrait_model", "v2.0", "film/film")
    assert str(r) == "ms:ly261666/cv_portrait_model@v2.0#film/film"
    assert ModelRef.parse("./models/x").source == "local"
    assert ModelRef.parse("model.safetensors").source == "local"


def test_model_store_offline_error_names_model_and_fix(tmp_path):
    store = ModelStore(cache_dir=tmp_path, offline=True)
    with pytest.raises(ModelNotFoundError) as e:
        store.resolve("lllyasviel/control_v11p_sd15_openpose", name="openpose-controlnet")
    msg = str(e.value)
    assert "openpose-controlnet" in msg and "facechain models download openpose-controlnet" in msg and "offline" in msg
    with pytest.raises(ModelNotFoundError, match="no such file"):
        store.resolve(tmp_path / "missing-folder")
    (tmp_path / "here").mkdir()
    assert store.resolve(tmp_path / "here") == tmp_path / "here"


def test_model_store_uses_a_completed_download_offline(tmp_path):
    # A download counts once its completion marker is written; a bare folder (or huggingface_hub's
    # own cache layout from older versions) does not.
    store = ModelStore(cache_dir=tmp_path, offline=True)
    folder = store.local_dir("org/name")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert not store.is_present("org/name", allow_patterns=["config.json"])
    store._mark_complete(folder, ModelRef.parse("org/name"), ("config.json",), detected=None)
    assert store.resolve("org/name", allow_patterns=["config.json"]) == folder
    assert store.is_present("org/name", allow_patterns=["config.json"])
    assert not store.is_present("org/name")  # a layout-detecting request asks for more than config.json


def test_models_cli_lists_and_download_fails_cleanly_offline():
    code, out, err = run_cli("models")
    assert code == 0 and "dlib-landmarks-68" in out and "present" in out and "openpose-controlnet" in out
    code, out, err = run_cli("models", "download", "canny-controlnet")
    assert code == 2 and err.count("\n") == 1 and "canny-controlnet" in err and "Traceback" not in err


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK", "I;16"])
def test_load_image_converts_modes(tmp_path, mode):
    arr = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(arr).convert(mode) if mode != "I;16" else Image.fromarray((arr[..., 0].astype(np.uint16) * 257), "I;16")
    p = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    img.save(p)
    out = load_image(p)
    assert out.dtype == np.uint8 and out.shape == (40, 50, 3)


def test_load_image_applies_exif_orientation(tmp_path):
    arr = np.zeros((40, 80, 3), np.uint8)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = tmp_path / "r.jpg"
    img.save(p, exif=exif)
    assert load_image(p).shape == (80, 40, 3)


def test_load_image_bad_inputs(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello, not a picture")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "tiny.png")
    good = tmp_path / "good.jpg"
    Image.fromarray((np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8)).save(good, quality=95)
    (tmp_path / "trunc.jpg").write_bytes(good.read_bytes()[:600])
    for name, reason in [("empty.jpg", "empty"), ("text.jpg", "not an image"), ("tiny.png", "too small"), ("trunc.jpg", "truncated")]:
        with pytest.raises(InputError, match=reason) as e:
            load_image(tmp_path / name)
        assert name in str(e.value)


def test_load_image_downscales_large(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (3000, 1000)).save(p)
    assert load_image(p, max_side=600).shape == (200, 600, 3)


def test_atomic_directory_commits_or_leaves_nothing(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_directory(dest) as d:
            (d / "a.txt").write_text("half")
            raise RuntimeError("boom")
    assert not dest.exists() and list(tmp_path.iterdir()) == []
    with atomic_directory(dest) as d:
        (d / "a.txt").write_text("done")
    assert (dest / "a.txt").read_text() == "done"
    with pytest.raises(OutputExistsError):
        with atomic_directory(dest):
            pass
    with atomic_directory(dest, overwrite=True) as d:
        (d / "b.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt"]


def test_cli_help_for_every_verb():
    from facechain.cli.main import build_parser

    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "models" in verbs
    for verb in verbs:
        code, out, _ = run_cli(verb, "--help")
        assert code == 0 and "usage: facechain" in out


def test_cli_unknown_verb_is_one_line_exit_2():
    code, out, err = run_cli("frobnicate")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_tiny_models_have_real_architectures(tiny_sd_dir):
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_dir, safety_checker=None, requires_safety_checker=False)
    assert type(pipe.unet).__name__ == "UNet2DConditionModel" and pipe.unet.config.cross_attention_dim == 32
    ids = pipe.tokenizer("a photo of a handsome man, ünïcode", return_tensors="pt").input_ids
    assert ids.shape[1] > 5
    img = pipe("a photo", num_inference_steps=2, height=64, width=64, output_type="np",
               generator=torch.Generator().manual_seed(0)).images
    assert img.shape == (1, 64, 64, 3) and np.isfinite(img).all()


def test_pyproject_lists_every_package_and_ships_configs():
    import tomllib

    from facechain.paths import builtin_configs_dir

    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    listed = set(data["tool"]["setuptools"]["packages"])
    root = Path(__file__).resolve().parents[1]
    found = {str(p.parent.relative_to(root)).replace("/", ".") for p in (root / "facechain").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"
    assert data["tool"]["setuptools"]["package-dir"]["facechain.configs"] == "configs"
    assert len(list((builtin_configs_dir() / "styles").glob("*.yaml"))) >= 30


def test_modelscope_cache_counts_only_the_requested_files(tmp_path):
    store = ModelStore(cache_dir=tmp_path, offline=True)
    repo = store.local_dir("ms:owner/loras")
    repo.mkdir(parents=True)
    (repo / "a.safetensors").write_bytes(b"x")
    (repo / "b.safetensors").write_bytes(b"x")  # on disk, but its download never finished
    store._mark_complete(repo, ModelRef.parse("ms:owner/loras"), ("a.safetensors",), detected=None)
    assert store.is_present("ms:owner/loras", allow_patterns=["a.safetensors"])
    assert store.is_present("ms:owner/loras#a.safetensors")
    assert not store.is_present("ms:owner/loras", allow_patterns=["b.safetensors"])
    with pytest.raises(ModelNotFoundError, match="offline"):
        store.resolve("ms:owner/loras", allow_patterns=["b.safetensors"])