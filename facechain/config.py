"""Typed configuration: dataclass defaults < YAML config file < keyword arguments / CLI flags.

Each stage owns a dataclass (``PrepareConfig``, ``TrainConfig``, ...). A config file is YAML
with one mapping per stage (``prepare:``, ``train:``, ...); see ``configs/default.yaml``.
Unknown keys are errors that name the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError, InputError
from .textfiles import read_text

T = TypeVar("T")


def read_yaml(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping safely (``yaml.safe_load``: data only, never code)."""
    path = Path(path)
    try:
        text = read_text(path)
    except InputError as e:
        raise ConfigError(str(e)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}") from None
    except RecursionError:  # deeply nested flow collections
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check and gently convert a YAML value to a dataclass field's declared type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(number):  # nan/inf would slip through every range check and break JSON
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return str(value)
    if annotation is Path:
        return Path(str(value))
    return value


#: The same checks for any caller that takes option values from outside (the job service's params).
coerce = _coerce


def build_config(cls: type[T], values: dict[str, Any], source: str) -> T:
    """Make ``cls`` from a mapping, rejecting unknown keys and ill-typed values."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{source}: unknown key '{key}' (known: {', '.join(sorted(names))})")
        kwargs[key] = _coerce(value, hints[key], f"{source}: key '{key}'")
    return cls(**kwargs)


def load_config(
    cls: type[T],
    section: str,
    config_file: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
) -> T:
    """Resolve a stage's configuration.

    Precedence: ``overrides`` (keyword arguments / CLI flags; ``None`` values mean "not given")
    > ``config_file``'s ``section`` mapping > the dataclass defaults.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        data = read_yaml(config_file)
        unknown = set(data) - KNOWN_SECTIONS
        if unknown:
            raise ConfigError(
                f"{config_file}: unknown section '{sorted(unknown)[0]}' (known: {', '.join(sorted(KNOWN_SECTIONS))})"
            )
        sec = data.get(section) or {}
        if not isinstance(sec, dict):
            raise ConfigError(f"{config_file}: section '{section}' must be a mapping")
        values.update(sec)
    source = f"{config_file}: [{section}]" if config_file else section
    base = build_config(cls, values, str(source))
    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        base = dataclasses.replace(base, **{k: v for k, v in _validate_overrides(cls, given).items()})
    return base


def _validate_overrides(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    out = {}
    for k, v in given.items():
        if k not in names:
            raise ConfigError(f"unknown option '{k}' for {cls.__name__}")
        out[k] = _coerce(v, hints[k], f"option '{k}'")
    return out


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-friendly dict of a config dataclass (Paths become strings)."""

    def conv(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return {k: conv(v) for k, v in dataclasses.asdict(cfg).items()}


#: Sections a config file may have; each stage module registers its own.
KNOWN_SECTIONS: set[str] = {"prepare", "train", "train_style", "generate", "inpaint", "adapter", "models", "tryon"}
