"""Styles are validated data: shipped catalogue, user styles, ad-hoc styles, prompt assembly, ``facechain styles``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facechain.errors import ConfigError, InputError
from facechain.generation.prompt import build_prompt
from facechain.paths import user_styles_dir
from facechain.styles import Style, find_style, list_styles, load_style_file, parse_size, resolve_style
from tests.cli_helpers import run_cli

REQUIRED = ["id_photo", "business_suit", "cyberpunk", "hanfu", "cheongsam", "kimono", "wedding_dress", "cowboy", "christmas",
            "school_uniform", "fairy", "witch", "snow_white", "polaroid", "sci_fi", "oil_painting", "cartoon", "anime",
            "watercolour", "film_noir"]


def test_shipped_catalogue_is_valid_and_covers_the_range():
    styles = list_styles(include_user=False, strict=True)
    names = {s.name for s in styles}
    assert len(styles) >= 30
    assert set(REQUIRED) <= names
    with_lora = [s for s in styles if s.style_lora]
    assert len(with_lora) >= 20 and len(styles) - len(with_lora) >= 5
    for s in styles:
        assert "{trigger}" in s.prompt, s.name
        # the reference's styles live on ModelScope; the SDXL ones on the official SDXL base (Hugging Face)
        sdxl = s.name.startswith("sdxl_")
        assert s.base_model == ("stabilityai/stable-diffusion-xl-base-1.0" if sdxl else s.base_model) and (
            sdxl or s.base_model.startswith("ms:")), s.name
        assert 0 < s.face_weight <= 1 and 0 < s.style_weight <= 1, s.name
        if s.style_lora:  # hub LoRAs name their file after '#'
            assert (sdxl or s.style_lora.startswith("ms:")) and s.style_lora.endswith(".safetensors"), s.name
            assert "#" in s.style_lora, s.name
    # the reference's data made it across, e.g. the polaroid LoRA and its weight
    polaroid = find_style("polaroid")
    assert polaroid.style_lora == "ms:YorickHe/polaroid_lora@v1.0.0#InstantPhotoX3.safetensors" and polaroid.style_weight == 0.4


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_style_files_are_data_and_validated(tmp_path):
    bad_key = _write(tmp_path / "bad.yaml", "name: x\nprompt: '{trigger}'\nlora_scale: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'lora_scale'"):
        load_style_file(bad_key)
    code = _write(tmp_path / "code.yaml", "!!python/object/apply:os.system ['touch /tmp/facechain-pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_style_file(code)
    assert not Path("/tmp/facechain-pwned").exists()
    for text, needle in [("name: x\n", "'prompt' is required"), ("prompt: '{trigger}'\nface_weight: 7\n", "between 0.0 and 2.0"),
                         ("prompt: '{trigger}'\nsize: 500\n", "multiples of 8"), ("prompt: '{who}'\n", "unknown placeholder"),
                         ("prompt: '{trigger}'\nsampler: warp\n", "sampler"), ("prompt: '{trigger}'\nsteps: 2.5\n", "integer")]:
        with pytest.raises(ConfigError, match=needle):
            load_style_file(_write(tmp_path / "s.yaml", text))
    with pytest.raises(InputError, match="YAML"):
        load_style_file(_write(tmp_path / "s.json", "{}"))


def test_user_styles_folder_adds_and_shadows_styles(tmp_path):
    lora = _write(user_styles_dir() / "loras" / "mine.safetensors", "x")
    _write(user_styles_dir() / "my-look.yaml", "title: Mine\nprompt: 'photo of {trigger}, red scarf'\nstyle_lora: loras/mine.safetensors\n")
    _write(user_styles_dir() / "cyberpunk.yaml", "name: cyberpunk\nprompt: 'my own {trigger} cyberpunk'\n")
    by_name = {s.name: s for s in list_styles()}
    assert by_name["my-look"].origin == "user" and by_name["my-look"].style_lora == str(lora.resolve())
    assert by_name["cyberpunk"].prompt == "my own {trigger} cyberpunk"  # the user's file wins
    assert find_style("my_look").name == "my-look"  # '-' and '_' are interchangeable
    assert by_name["cyberpunk"].base_model is None  # -> the identity's base model at generation time
    # a broken user file does not break listing, only that style
    _write(user_styles_dir() / "broken.yaml", "prompt: [\n")
    assert "broken" not in {s.name for s in list_styles()}


def test_resolve_style_adhoc_and_overrides(tmp_path):
    adhoc = resolve_style(None, prompt="{trigger} as an astronaut")
    assert adhoc.prompt_only and adhoc.origin == "adhoc" and adhoc.face_weight == 0.95 and adhoc.base_model is None
    with_lora = resolve_style(None, prompt="{trigger}", style_lora="ms:owner/repo#x.safetensors", style_weight=0.5)
    assert with_lora.style_lora == "ms:owner/repo#x.safetensors" and with_lora.style_weight == 0.5
    replaced = resolve_style("cowboy", style_weight=0.3)
    assert replaced.style_weight == 0.3 and replaced.style_lora == find_style("cowboy").style_lora
    from_file = resolve_style(str(_write(tmp_path / "x.yml", "prompt: '{trigger}'\n")))
    assert from_file.name == "x" and from_file.origin == "file"
    assert resolve_style(None, default="id_photo").name == "id_photo"
    with pytest.raises(ConfigError, match="needs --prompt"):
        resolve_style(None, style_lora="a.safetensors")
    with pytest.raises(InputError, match="did you mean cowboy"):
        resolve_style("cowbo")


def test_prompt_puts_identity_first_and_tags_once():
    style = Style(name="s", prompt="{trigger}, white hair, neon")
    p = build_prompt(style, "a handsome man", ["short hair", "white hair", "smile"])
    assert p.prompt == "a handsome man, short hair, smile, white hair, neon"  # 'white hair' is the style's already
    assert p.negative_prompt.endswith("children")  # adults stay adults, as in the reference
    no_placeholder = build_prompt(Style(name="s", prompt="oil painting"), "a girl, children", ["smile"])
    assert no_placeholder.prompt == "a girl, children, smile, oil painting"
    assert "children" not in no_placeholder.negative_prompt.split(", ")[-1]
    explicit = build_prompt(Style(name="s", prompt="painting of {trigger} ({tags}), gold frame"), "a man", ["beard"],
                            negative_prompt="blurry")
    assert explicit.prompt == "painting of a man (beard), gold frame" and explicit.negative_prompt == "blurry, children"


def test_parse_size():
    assert parse_size(512) == (512, 512) and parse_size("768x512") == (768, 512) and parse_size("640 X 480") == (640, 480)
    for bad in ("big", "513", "0x512", True, "1x2x3"):
        with pytest.raises(ConfigError):
            parse_size(bad)


def test_styles_cli_lists_shows_and_reports_presence(tmp_path):
    _write(user_styles_dir() / "mine.yaml", f"prompt: '{{trigger}}'\nbase_model: {tmp_path}\n")
    code, out, err = run_cli("styles")
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip() and not line.startswith(" ")}
    assert "prompt-only" in lines["cyberpunk"] and "LoRA 0.4" in lines["polaroid"]
    assert "missing" in lines["polaroid"]  # offline, nothing downloaded
    assert "present" in lines["mine"] and "user" in lines["mine"]
    code, out, _ = run_cli("styles", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["mine"]["ready"] is True and rows["polaroid"]["ready"] is False and rows["polaroid"]["lora_present"] is False
    code, out, _ = run_cli("styles", "show", "snow_white")
    assert code == 0 and "blancanievesV2.safetensors" in out
    code, _, err = run_cli("styles", "show", "nosuch")
    assert code == 2 and "no such style" in err
    code, _, err = run_cli("styles", "download", "polaroid")  # offline: a clear error naming the model
    assert code == 2 and "polaroid" in err and "offline" in err
