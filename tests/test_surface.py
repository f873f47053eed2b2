"""One surface: every verb's CLI options and Python keywords share one vocabulary (facechain.options).

The consistency test walks every verb's parser and the matching Python function: a flag's dest is a
keyword of the function with the same default, a concept is spelled one way and defaulted one way
across verbs, old spellings only survive as hidden, warning aliases, and ``dir(facechain)`` is the API.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import subprocess
import sys

import pytest

import facechain
from facechain import options
from facechain.cli.main import build_parser
from facechain.errors import ConfigError
from facechain.options import OPTIONS, OptionError
from tests.cli_helpers import run_cli

#: verb -> the Python function the CLI calls with the same keywords
VERB_FUNCTIONS = {
    "prepare": lambda: facechain.prepare,
    "train": lambda: facechain.train,
    "train-style": lambda: facechain.train_style,
    "list": lambda: __import__("facechain.identity", fromlist=["x"]).list_identities,
    "styles": lambda: facechain.styles,
    "generate": lambda: facechain.generate,
    "eval": lambda: facechain.evaluate,
    "faces": lambda: facechain.faces,
    "inpaint": lambda: facechain.inpaint,
    "train-adapter": lambda: facechain.train_adapter,
    "models": lambda: facechain.models,
    "talk": lambda: facechain.talk,
    "export": lambda: facechain.export,
    "serve": lambda: facechain.serve,
    "batch": lambda: facechain.batch,
    "tryon": lambda: facechain.tryon,
}
#: the old spellings of one concept: none may be a live option (flag or keyword) anywhere
SYNONYMS = {
    "guidance_scale": {"guidance"},
    "size": {"resolution"},
    "dtype": {"mixed_precision"},
    "quiet": {"no_progress", "progress"},
    "config": {"config_file"},
    "prompt": {"style_prompt"},
    "fusion": {"fuse_faces"},
    "learning_rate": {"lr"},
}
OLD_NAMES = set().union(*SYNONYMS.values())
#: positionals that select a sub-action; they map to the function's ``download`` keyword
ACTION_SELECTORS = {"action"}


def _verb_parsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    seen, out = set(), {}
    for name, parser in sub.choices.items():
        if id(parser) not in seen:  # aliases ("infer") share the parser
            seen.add(id(parser))
            out[name] = parser
    return out


def _live_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Options a user sees: not --help, not the hidden deprecated aliases."""
    return [a for a in parser._actions
            if not isinstance(a, argparse._HelpAction) and a.help is not argparse.SUPPRESS]


def _main_action(action: argparse.Action) -> bool:
    """The declared flags of an option (not a shorthand like --no-fusion that sets one of its values)."""
    option = OPTIONS.get(action.dest)
    return option is None or not action.option_strings or tuple(action.option_strings) == option.cli_flags


VERBS = _verb_parsers()


def test_every_verb_has_a_python_function():
    assert set(VERBS) == set(VERB_FUNCTIONS)


@pytest.mark.parametrize("verb", sorted(VERB_FUNCTIONS))
def test_every_flag_is_a_keyword_of_the_verbs_function_with_the_same_default(verb):
    params = inspect.signature(VERB_FUNCTIONS[verb]()).parameters
    for action in _live_actions(VERBS[verb]):
        if action.dest in options.CLI_ONLY:
            continue
        if action.dest in ACTION_SELECTORS:
            assert "download" in params, f"{verb}: 'download' is what the sub-action selects"
            continue
        assert action.dest in params, f"{verb}: {'/'.join(action.option_strings) or action.dest} is not a keyword"
        default = params[action.dest].default
        if _main_action(action) and action.default is not None and not action.required:
            assert default == action.default, f"{verb}: {action.dest} defaults to {action.default!r} in the CLI, {default!r} in Python"


def test_every_live_option_is_declared_once_and_spelled_as_declared():
    for verb, parser in VERBS.items():
        for action in _live_actions(parser):
            if not action.option_strings:
                continue
            option = OPTIONS.get(action.dest)
            assert option is not None, f"{verb}: {action.option_strings} is not declared in facechain.options"
            allowed = {option.cli_flags} | {(s.flag,) for s in option.shorthands}
            assert tuple(action.option_strings) in allowed, f"{verb}: {action.option_strings} for {action.dest}"


def test_across_verbs_one_concept_has_one_spelling_and_one_default():
    flags, defaults = {}, {}
    for verb, parser in VERBS.items():
        for action in _live_actions(parser):
            assert action.dest not in OLD_NAMES, f"{verb}: old spelling {action.dest} is a live option"
            for flag in action.option_strings:
                assert flag.lstrip("-").replace("-", "_") not in OLD_NAMES, f"{verb}: live flag {flag}"
                flags.setdefault(flag, set()).add(action.dest)
            if action.option_strings and _main_action(action):
                defaults.setdefault(action.dest, set()).add(repr(action.default))
    assert {f: d for f, d in flags.items() if len(d) > 1} == {}, "a flag means different things in different verbs"
    assert {d: v for d, v in defaults.items() if len(v) > 1} == {}, "an option has different defaults in different verbs"


def test_python_keywords_use_the_same_names_and_defaults_across_the_api():
    defaults: dict[str, set] = {}
    for name in facechain.__all__:
        if name in ("export",) or name[0].isupper():
            continue
        for param in inspect.signature(getattr(facechain, name)).parameters.values():
            assert param.name not in OLD_NAMES, f"facechain.{name}({param.name}=...) uses an old spelling"
            if param.default is not inspect.Parameter.empty and param.default is not None:
                defaults.setdefault(param.name, set()).add(repr(param.default))
    assert {k: v for k, v in defaults.items() if len(v) > 1} == {}


SHARED_IMAGE_OPTIONS = ["-o", "--output", "-c", "--config", "--seed", "--steps", "--guidance-scale", "--size", "-n",
                        "--num-images", "--negative-prompt", "--prompt", "--base-model", "--device", "--dtype", "-q",
                        "--quiet", "--json", "--overwrite", "--verbose", "--offline", "--style", "--person", "--photo",
                        "--adapter", "--adapter-scale", "--face-weight", "--fusion", "--no-fusion"]


def test_generate_and_inpaint_help_offer_the_shared_options_under_the_same_names():
    helps = {}
    for verb in ("generate", "inpaint"):
        code, out, _ = run_cli(verb, "--help")
        assert code == 0
        helps[verb] = out
    for flag in SHARED_IMAGE_OPTIONS:
        for verb, text in helps.items():
            assert f" {flag} " in text or f" {flag}," in text or f"{flag}\n" in text, f"{verb} --help lacks {flag}"
    for old in ("--guidance ", "--resolution", "--style-prompt", "--mixed-precision", "--no-progress"):
        assert old not in helps["generate"] and old not in helps["inpaint"]


def _parse(*argv: str) -> tuple[argparse.Namespace, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        args = build_parser().parse_args(list(argv))
    return args, err.getvalue()


DEPRECATED = [  # (old argv, new argv, dest): same value, and the old one warns
    (["generate", "--guidance", "5"], ["generate", "--guidance-scale", "5"], "guidance_scale"),
    (["generate", "--style-prompt", "{trigger}, x"], ["generate", "--prompt", "{trigger}, x"], "prompt"),
    (["inpaint", "t.png", "--resolution", "256"], ["inpaint", "t.png", "--size", "256"], "size"),
    (["prepare", "p", "-o", "o", "--resolution", "256"], ["prepare", "p", "-o", "o", "--size", "256"], "size"),
    (["train", "p", "--resolution", "256"], ["train", "p", "--size", "256"], "size"),
    (["train-style", "d", "--resolution", "256"], ["train-style", "d", "--size", "256"], "size"),
    (["train-adapter", "d", "--resolution", "256"], ["train-adapter", "d", "--size", "256"], "size"),
    (["train", "p", "--mixed-precision", "no"], ["train", "p", "--dtype", "fp32"], "dtype"),
    (["train", "p", "--mixed-precision", "bf16"], ["train", "p", "--dtype", "bf16"], "dtype"),
    (["prepare", "p", "-o", "o", "--no-progress"], ["prepare", "p", "-o", "o", "-q"], "quiet"),
    (["train-adapter", "d", "--no-progress"], ["train-adapter", "d", "--quiet"], "quiet"),
    (["train-adapter", "d", "--lr", "0.01"], ["train-adapter", "d", "--learning-rate", "0.01"], "learning_rate"),
    (["train", "p", "--lr", "0.01"], ["train", "p", "--learning-rate", "0.01"], "learning_rate"),
    (["faces", "t.png", "--preview", "x.png"], ["faces", "t.png", "-o", "x.png"], "output"),
]


@pytest.mark.parametrize("old, new, dest", DEPRECATED, ids=[" ".join(d[0][:1] + d[0][-2:]) for d in DEPRECATED])
def test_deprecated_spellings_still_parse_and_warn_in_one_line(old, new, dest):
    old_args, old_err = _parse(*old)
    new_args, new_err = _parse(*new)
    assert getattr(old_args, dest) == getattr(new_args, dest)
    assert new_err == ""
    old_flag = next(a for a in old if a.startswith("-") and a not in new)
    assert old_err.count("\n") == 1 and "deprecated" in old_err and old_flag in old_err


@pytest.mark.parametrize("verb", ["generate", "inpaint"])
def test_no_fusion_is_a_documented_shorthand_for_fusion_none(verb):
    extra = ["t.png"] if verb == "inpaint" else []
    args, err = _parse(verb, *extra, "--no-fusion")
    assert args.fusion == "none" and err == ""
    assert _parse(verb, *extra)[0].fusion == "landmark"


# --- values a user can get wrong: checked before any model loads, named as the caller spelled them ----


@pytest.mark.parametrize("argv, message", [
    (["generate", "--guidance-scale", "nan"], "--guidance-scale must be a finite number"),
    (["generate", "--sampler", "eulr"], "did you mean euler"),
    (["generate", "--size", "500"], "--size"),
    (["generate", "--device", "gpu"], "did you mean cpu"),
    (["generate", "--dtype", "fp61"], "did you mean fp16"),
    (["generate", "--fusion", "lanmark"], "did you mean landmark"),
    (["generate", "--style", "cyberpnk"], "--style cyberpnk: no such style (did you mean cyberpunk"),
    (["inpaint", "t.png", "--size", "512x768"], "--size must be one number here"),
    (["inpaint", "t.png", "--strength", "0"], "--strength must be greater than 0 and at most 1, got 0.0"),
    (["train", "p", "--size", "512x768"], "--size must be one number here"),
    (["train", "p", "--learning-rate", "inf"], "--learning-rate must be a finite number"),
    (["eval", "o", "--threshold", "1.5"], "--threshold must be between 0 and 1, got 1.5"),
    (["generate", "--fusion-strength", "2"], "--fusion-strength must be between 0 and 1"),
    (["generate", "-n", "0"], "--num-images must be at least 1"),
])
def test_cli_refuses_bad_values_in_one_line_naming_the_flag(argv, message):
    code, out, err = run_cli(*argv)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert message in err


def test_every_float_option_of_every_verb_refuses_nan_and_inf():
    checked = 0
    for verb, parser in VERBS.items():
        for action in _live_actions(parser):
            if action.type is float:
                for bad in ("nan", "inf", "-inf"):
                    args = argparse.Namespace(**{action.dest: float(bad), "_uses": [options.use(action.dest)]})
                    with pytest.raises(OptionError, match=f"{action.option_strings[-1]} must be a finite number"):
                        options.validate_args(args)
                checked += 1
    assert checked >= 15


def test_python_errors_name_keywords_not_flags():
    with pytest.raises(OptionError, match=r"^guidance_scale must be a finite number"):
        options.validate({"guidance_scale": float("nan")})
    with pytest.raises(OptionError, match=r"^size must be one number here"):
        facechain.train("no-such-photos", size="512x768")  # before the photos are even looked at
    with pytest.raises(OptionError, match=r"^sampler 'eulr' is not a choice \(did you mean euler"):
        options.validate({"sampler": "eulr"})
    with pytest.raises(OptionError, match=r"^threshold must be a finite number"):
        facechain.evaluate("nowhere", threshold=float("nan"))
    with pytest.raises(OptionError, match=r"^steps must be a whole number"):
        options.validate({"steps": "many"})
    with pytest.raises(OptionError, match=r"^steps must be a whole number, got 2.5"):
        options.validate({"steps": 2.5})
    with options.cli_door():
        with pytest.raises(OptionError, match=r"^--steps must be at least 1"):
            options.validate({"steps": 0})


def test_validate_normalises_sizes_and_passes_unknown_keywords_through():
    v = options.validate({"size": (768, 512), "steps": 30.0, "analyzer": object, "photo": ["a.jpg", "b.jpg"]})
    assert v["size"] == "768x512" and v["steps"] == 30 and v["analyzer"] is object and v["photo"] == ["a.jpg", "b.jpg"]
    assert options.validate({"size": "512x512"}, square_size=True)["size"] == 512
    assert options.validate({"size": "512"})["size"] == 512


# --- the top-level API --------------------------------------------------------------------------


def test_dir_of_facechain_is_exactly_the_api():
    expected = {"prepare", "train", "train_style", "generate", "inpaint", "faces", "evaluate", "styles", "models",
                "train_adapter", "export", "talk", "tryon", "serve", "batch", "Client", "Portraits", "Portrait", "Identity",
                "PrepareResult", "BatchSummary", "PortraitPipeline", "TemplatePipeline"}
    assert set(facechain.__all__) == expected
    assert set(dir(facechain)) == expected | {"__version__"}
    importlib.import_module("facechain.config")  # imported sub-modules do not show up either

    assert set(dir(facechain)) == expected | {"__version__"}


def test_import_facechain_loads_no_torch():
    code = "import sys, facechain; facechain.models; facechain.styles; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_verb_named_subpackages_are_callable_and_still_packages():
    from facechain.models import ModelStore

    assert facechain.models.ModelStore is ModelStore  # the sub-package ...
    assert "download" in inspect.signature(facechain.models).parameters  # ... is also the verb
    rows = facechain.models()
    code, out, _ = run_cli("models", "--json")
    assert code == 0 and json.loads(out) == rows and any(r["name"] == "dlib-landmarks-68" for r in rows)
    assert facechain.models("dlib-landmarks-68")[0]["name"] == "dlib-landmarks-68"
    with pytest.raises(ConfigError, match="did you mean dlib-landmarks-68"):
        facechain.models("dlib-landmark-68")


def test_styles_returns_what_the_cli_prints_as_json():
    rows = facechain.styles()
    code, out, _ = run_cli("styles", "--json")
    assert code == 0 and json.loads(out) == rows
    assert [r["name"] for r in facechain.styles("cyberpunk")] == ["cyberpunk"]
    assert facechain.styles.find_style("cyberpunk").name == "cyberpunk"  # still the sub-package


def test_reprs_leave_bulky_fields_out(tmp_path):
    from facechain.inpainting.api import TemplateFacesReport
    from facechain.preprocess.result import PrepareResult

    ident = facechain.Identity(name="ann", base_model="base", trigger_word="a woman", path=tmp_path,
                               template_embedding=[0.123456789] * 128, training={"settings": {"x": 1} })
    text = repr(ident)
    assert "ann" in text and "a woman" in text and "0.1234" not in text and "settings" not in text and len(text) < 300
    prep = PrepareResult(tmp_path, "a woman", [], [], tmp_path / "t.png", template_embedding=[0.123456789] * 128)
    assert "0.1234" not in repr(prep) and "accepted=0" in repr(prep)
    report = TemplateFacesReport(tmp_path / "t.png", (640, 480), [], 48, None)
    assert repr(report).startswith("TemplateFacesReport(") and "640x480" in repr(report)


def test_the_option_table_in_the_docs_is_current():
    from pathlib import Path

    from facechain.cli.vocabulary import options_table

    page = Path(__file__).resolve().parents[1] / "docs" / "options.md"
    assert page.read_text(encoding="utf-8") == options_table(), \
        "docs/options.md is stale: python -m facechain.cli.vocabulary > docs/options.md"


def test_hints_name_an_option_as_the_caller_writes_it():
    from facechain.errors import OutputExistsError

    assert str(OutputExistsError("out")) == "out: already exists; pass overwrite=True to replace it"
    assert options.spell_value("dtype", "fp32") == "dtype='fp32'"
    with options.cli_door():
        assert str(OutputExistsError("out")) == "out: already exists; pass --overwrite to replace it"
        assert options.spell_value("dtype", "fp32") == "--dtype fp32" and options.spell("retouch") == "--no-retouch"
