"""Every "how to get it" hint is a command that parses and fetches the right thing.

The errors are produced through the real code paths (the model store for every registry model,
``facechain generate`` for every shipped style's base model and style LoRA, the pose model files,
missing identities and datasets), never by grepping the source. Each quoted ``facechain …``
command in a message goes through the real CLI parser and must name the model that was missing.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from facechain.cli.main import build_parser
from facechain.errors import FacechainError, ModelNotFoundError
from facechain.models.api import _specs_for
from facechain.models.registry import MODELS, ModelSpec
from facechain.models.store import ModelRef, ModelStore, default_store
from facechain.styles import list_styles
from tests.cli_helpers import run_cli

HUB_SPECS = [s for s in MODELS.values() if not s.bundled and s.fetch is None]
_COMMAND = re.compile(r"'(facechain [^']*)'")


def hinted_commands(message: str) -> list[list[str]]:
    """The ``'facechain …'`` commands quoted in an error message, split as a POSIX shell would."""
    return [shlex.split(c) for c in _COMMAND.findall(message)]


def parse(argv: list[str]):
    assert argv[0] == "facechain"
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit as e:  # argparse rejected it
        raise AssertionError(f"hint {shlex.join(argv)!r} does not parse (exit {e.code})") from None


def download_targets(message: str) -> list[str]:
    """Parse every hinted command; return what the ``models download`` ones would fetch (canonical references)."""
    commands = hinted_commands(message)
    assert commands, f"no command in hint: {message}"
    targets = []
    for argv in commands:
        args = parse(argv)
        if args.verb == "models" and args.action == "download":
            assert len(args.names) == 1, argv
            [spec] = _specs_for(args.names)
            targets.append(spec.reference if isinstance(spec, ModelSpec) else str(ModelRef.parse(spec)))
    return targets


def canonical(reference: str) -> str:
    return str(ModelRef.parse(reference))


def missing_model_error(fn, *args, **kwargs) -> ModelNotFoundError:
    with pytest.raises(ModelNotFoundError) as e:
        fn(*args, **kwargs)
    return e.value


# --- every registry model --------------------------------------------------------------------------

@pytest.mark.parametrize("spec", HUB_SPECS, ids=[s.name for s in HUB_SPECS])
@pytest.mark.parametrize("label", [None, "base model", "style LoRA of 'polaroid'"])
def test_store_hint_fetches_the_missing_registry_model(spec, label):
    err = missing_model_error(default_store().resolve, spec.reference, name=label)
    assert [canonical(t) for t in download_targets(str(err))] == [canonical(spec.reference)]
    assert err.command is not None and err.command in str(err)
    assert shlex.split(err.command)[-1] == spec.name  # the registry name, not a label or the raw reference


@pytest.mark.parametrize("group", ["body-pose", "hands", "face-mesh", "selfie-segmentation"])
def test_pose_model_hints_name_their_registry_entry(group, monkeypatch):
    from facechain.pose import model_files

    monkeypatch.setattr(model_files, "locate", lambda name=group: None)
    err = missing_model_error(model_files.require, group)
    [argv] = hinted_commands(str(err))
    args = parse(argv)
    assert (args.verb, args.action, args.names) == ("models", "download", [group])
    assert MODELS[group].fetch is not None and MODELS[group].locate is not None


def test_controlnet_loader_hint(monkeypatch):
    from facechain.diffusion.loading import load_controlnet

    for name in ("openpose-controlnet", "canny-controlnet"):
        err = missing_model_error(load_controlnet, MODELS[name].reference, name=name)
        assert download_targets(str(err)) == [MODELS[name].reference]


def test_raw_reference_hints_quote_what_needs_quoting():
    ref = "ms:someone/loras@v2#Moon Witch v1.1.safetensors"  # a user's own style: not in the registry
    err = missing_model_error(default_store().resolve, ref, name="style LoRA of 'mine'")
    assert download_targets(str(err)) == [canonical(ref)]
    assert '"ms:someone/loras@v2#Moon Witch v1.1.safetensors"' in str(err)


# --- every shipped style, through `facechain generate` ------------------------------------------

#: A valid .safetensors file holding no tensors (LoRA files are header-checked before any model loads).
EMPTY_SAFETENSORS = b"\x02\x00\x00\x00\x00\x00\x00\x00{}"

@pytest.fixture
def identity(tmp_path) -> Path:
    folder = tmp_path / "me"
    folder.mkdir()
    (folder / "facechain.json").write_text(json.dumps({"name": "me", "base_model": MODELS["base-sd15-portrait"].reference,
                                                        "trigger_word": "a handsome man"}))
    (folder / "pytorch_lora_weights.safetensors").write_bytes(EMPTY_SAFETENSORS)
    return folder


def mark_complete(spec_or_ref: ModelSpec | str) -> None:
    """Pretend a download finished (generation then goes on to its next model)."""
    store = default_store()
    ref = ModelRef.parse(spec_or_ref.reference if isinstance(spec_or_ref, ModelSpec) else spec_or_ref)
    patterns = spec_or_ref.allow_patterns if isinstance(spec_or_ref, ModelSpec) else (ref.subfolder,)
    folder = store.local_dir(ref)
    folder.mkdir(parents=True, exist_ok=True)
    if ref.subfolder and ref.subfolder.endswith(".safetensors"):
        (folder / ref.subfolder).write_bytes(EMPTY_SAFETENSORS)  # the style LoRA file itself
    store._mark_complete(folder, ref, tuple(patterns), detected=None)


SHIPPED = list_styles(include_user=False)


@pytest.mark.parametrize("style", SHIPPED, ids=[s.name for s in SHIPPED])
def test_generate_hints_for_each_shipped_style(style, identity):
    """Each missing model of the style is hinted in turn (whatever order generate resolves them in)."""
    expected = {canonical(r) for r in (style.base_model, style.style_lora) if r}
    while expected:
        code, _, err = run_cli("generate", "--person", identity, "--style", style.name, "--offline")
        assert code == 2 and err.count("\n") == 1
        [target] = download_targets(err)
        assert target in expected, err
        expected.discard(target)
        mark_complete(next(s for s in MODELS.values() if canonical(s.reference) == target))
        assert "facechain models download " + next(s.name for s in MODELS.values() if canonical(s.reference) == target) in err


def test_styles_download_offline_hint_names_the_model(identity):
    code, _, err = run_cli("styles", "download", "cyberpunk", "--offline")
    assert code == 2 and download_targets(err) == [MODELS["base-sd15-portrait"].reference]


# --- missing inputs ------------------------------------------------------------------------------

def test_identity_and_dataset_hints_parse(tmp_path, identity):
    code, _, err = run_cli("generate", "--person", "nobody", "--style", "cyberpunk", "--offline")
    assert code == 2
    [argv] = hinted_commands(err)
    assert parse(argv).verb == "train"
    with pytest.raises(FacechainError) as e:
        from facechain.identity import resolve_identity

        resolve_identity(None, root=tmp_path / "none")
    assert parse(hinted_commands(str(e.value))[0]).verb == "train"
    empty = tmp_path / "not prepared"
    empty.mkdir()
    from facechain.preprocess.result import PrepareResult
    from facechain.training.data import read_prepared

    for fn in (read_prepared, PrepareResult.load):
        with pytest.raises(FacechainError) as e:
            fn(empty)
        args = parse(hinted_commands(str(e.value))[0])
        assert args.verb == "prepare" and Path(args.output) == empty
    code, _, err = run_cli("generate", "--person", identity, "--style", "no-such-style", "--offline")
    assert code == 2
    for argv in hinted_commands(err):
        assert parse(argv).verb == "styles"


def test_every_hub_model_error_carries_its_command():
    store = ModelStore(offline=True)
    for spec in HUB_SPECS:
        err = missing_model_error(store.resolve, spec.reference)
        assert err.command == f"facechain models download {spec.name}"


def test_abpn_retoucher_asks_for_the_torch_model():
    from facechain.perception.retouch import get_retoucher

    err = missing_model_error(get_retoucher, "abpn")
    assert err.name == "abpn-retouch" and "cv_unet_skin_retouching_torch" in err.reference
    assert download_targets(str(err)) == [MODELS["abpn-retouch"].reference]
