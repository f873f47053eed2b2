"""Where facechain keeps things: ``FACECHAIN_HOME`` (models cache, identities, user styles)."""

from __future__ import annotations

import os
from pathlib import Path


def facechain_home() -> Path:
    """``$FACECHAIN_HOME``, else ``$XDG_CACHE_HOME/facechain``, else ``~/.cache/facechain``."""
    env = os.environ.get("FACECHAIN_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "facechain"


def models_dir() -> Path:
    return facechain_home() / "models"


def identities_dir() -> Path:
    return facechain_home() / "identities"


def user_styles_dir() -> Path:
    return facechain_home() / "styles"


def builtin_configs_dir() -> Path:
    """The shipped ``configs/`` folder (repository checkout or installed package data)."""
    here = Path(__file__).resolve().parent
    candidates = [here.parent / "configs", here / "configs"]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]
