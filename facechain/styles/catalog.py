"""Finding styles: shipped ones, the user's own, a YAML path, or an ad-hoc prompt (+ LoRA).

Search order for ``--style NAME``: the user styles folder (``$FACECHAIN_HOME/styles``, so users
can shadow a shipped style without touching code), then the shipped ``configs/styles``. A value
that names an existing ``.yaml``/``.yml`` file is loaded from that file.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .. import progress
from ..errors import ConfigError, FacechainError, InputError, ModelNotFoundError
from ..models.store import ModelStore, default_store
from ..paths import builtin_configs_dir, user_styles_dir
from .style import Style, load_style_file, style_from_mapping

log = logging.getLogger(__name__)


def builtin_styles_dir() -> Path:
    return builtin_configs_dir() / "styles"


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _style_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".yaml", ".yml") and not p.name.startswith("."))


@dataclass
class BrokenStyle:
    """A user style file that cannot be used, and why (shown by ``facechain styles``)."""

    path: Path
    reason: str

    @property
    def name(self) -> str:
        return self.path.stem


def scan_styles(include_user: bool = True) -> tuple[list[Style], list[BrokenStyle]]:
    """Every usable style by name (user styles shadow shipped ones with the same name), and the broken user files.

    One broken user style never hides the others; shipped style files must be valid.
    """
    found: dict[str, Style] = {}
    broken: list[BrokenStyle] = []
    for path in _style_files(builtin_styles_dir()):
        style = load_style_file(path, origin="builtin")
        found[_key(style.name)] = style
    if include_user:
        for path in _style_files(user_styles_dir()):
            try:
                style = load_style_file(path, origin="user")
            except FacechainError as e:
                broken.append(BrokenStyle(path, _reason(e, path)))
                continue
            found[_key(style.name)] = style
    return sorted(found.values(), key=lambda s: _key(s.name)), broken


def _reason(error: FacechainError, path: Path) -> str:
    text = error.reason if isinstance(error, InputError) else str(error)
    return text.removeprefix(f"{path}: ").removeprefix(f"{path.resolve()}: ")


def list_styles(include_user: bool = True, strict: bool = False) -> list[Style]:
    """Every usable style by name, sorted; a broken user style file is skipped with a warning unless ``strict``."""
    styles, broken = scan_styles(include_user)
    if broken and strict:
        raise ConfigError(f"{broken[0].path}: {broken[0].reason}")
    for b in broken:
        log.warning("skipping style file %s: %s", b.path, b.reason)
    return styles


def find_style(name_or_path: str | Path) -> Style:
    """A style by name (user folder first, then shipped) or from a YAML file path."""
    text = str(name_or_path)
    p = Path(text).expanduser()
    if p.suffix.lower() in (".yaml", ".yml") or p.is_file():
        return load_style_file(p, origin="file")
    wanted = _key(text)
    for origin, folder in (("user", user_styles_dir()), ("builtin", builtin_styles_dir())):
        for path in _style_files(folder):
            if _key(path.stem) == wanted:
                return load_style_file(path, origin=origin)
    styles = scan_styles()[0]
    for style in styles:
        if _key(style.name) == wanted:
            return style
    names = [s.name for s in styles]
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "run 'facechain styles' to list them"
    raise InputError(text, f"no such style ({hint})")


def resolve_style(
    style: str | Path | Style | None = None,
    *,
    prompt: str | None = None,
    style_lora: str | Path | None = None,
    style_weight: float | None = None,
    default: str | None = None,
) -> Style:
    """The style a run uses: ``style`` (name, file or :class:`Style`) with the overrides applied.

    ``prompt`` replaces the style's prompt; without ``style`` it makes an ad-hoc style (prompt-only,
    or with ``style_lora``); with neither, the ``default`` style name is used.
    """
    style_prompt = prompt
    if isinstance(style, Style):
        base = style
    elif style is not None:
        base = find_style(style)
    elif style_prompt is not None:
        base = style_from_mapping({"name": "custom", "prompt": style_prompt}, "--prompt", origin="adhoc")
    elif style_lora is not None:
        raise ConfigError("--style-lora needs --prompt (an ad-hoc style) or --style (to replace that style's LoRA)")
    elif default:
        base = find_style(default)
    else:
        raise ConfigError("no style given: pass --style NAME|FILE or --prompt TEXT")
    changes: dict[str, Any] = {}
    if style_prompt is not None and base.prompt != style_prompt:
        changes["prompt"] = style_from_mapping({"name": base.name, "prompt": style_prompt}, "--prompt").prompt
    if style_lora is not None:
        lora = str(style_lora)
        if Path(lora).expanduser().exists():
            lora = str(Path(lora).expanduser().resolve())
        changes["style_lora"] = lora
    if style_weight is not None:
        changes["style_weight"] = float(style_weight)
    return dataclasses.replace(base, **changes) if changes else base


# --- what `facechain styles` shows --------------------------------------------------------------


@dataclass
class StyleStatus:
    style: Style
    base_present: bool | None  # None: the style uses the identity's base model
    lora_present: bool | None  # None: prompt-only

    @property
    def ready(self) -> bool:
        return self.base_present is not False and self.lora_present is not False

    def to_json(self) -> dict[str, Any]:
        return {**self.style.to_json(), "base_present": self.base_present, "lora_present": self.lora_present, "ready": self.ready}


def reference_present(reference: str, store: ModelStore | None = None) -> bool:
    """Whether a model reference resolves to local files without downloading."""
    store = store or default_store()
    try:
        return store.resolve(reference, download=False).exists()
    except (ModelNotFoundError, ValueError):
        return False


def style_status(styles: list[Style] | None = None, store: ModelStore | None = None) -> list[StyleStatus]:
    store = store or default_store()
    rows = []
    for s in styles if styles is not None else scan_styles()[0]:
        base = None if s.base_model is None else reference_present(s.base_model, store)
        lora = None if s.style_lora is None else reference_present(s.style_lora, store)
        rows.append(StyleStatus(s, base, lora))
    return rows


def download_style_models(names: list[str], store: ModelStore | None = None) -> list[tuple[str, Path]]:
    """Fetch the base model and style LoRA of each named style (nothing is fetched at start-up)."""
    from .models import resolve_style_lora

    store = store or default_store()
    done = []
    for name in names:
        s = find_style(name)
        if s.base_model:
            done.append((f"{s.name} base model", store.resolve(s.base_model, name=f"{s.name} base model")))
        if s.style_lora:
            done.append((f"{s.name} style LoRA", resolve_style_lora(s.style_lora, store, label=f"{s.name} style LoRA")))
    return done


def styles(names: str | Sequence[str] | None = None, *, download: bool = False, quiet: bool = False) -> list[dict[str, Any]]:
    """The ``facechain styles`` verb: one row per style (what ``facechain styles --json`` prints).

    ``names``: only these styles (names or .yaml files; default: every shipped and user style).
    ``download``: fetch the named styles' base models and LoRAs first (nothing is fetched at start-up).
    Each row is the style's fields plus ``base_present``, ``lora_present`` and ``ready``. Listing every
    style, a broken user style file is a row too (``name``, ``path``, ``broken``: the reason, ``ready``
    False): one bad file never hides the others.
    """
    names = [names] if isinstance(names, str) else list(names or [])
    if download and not names:
        raise ConfigError("name the styles whose models to download")
    chosen = [find_style(n) for n in names] if names else None
    with progress.reporting(quiet=quiet):
        if download:
            for label, path in download_style_models(names):
                progress.say(f"{label}: {path}")
        rows = style_status(chosen)
    broken = [] if names else scan_styles()[1]
    return [r.to_json() for r in rows] + [{"name": b.name, "path": str(b.path), "origin": "user", "broken": b.reason,
                                           "ready": False} for b in broken]
