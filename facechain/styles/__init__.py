"""Infinite styles (paper section 2.6): each style is a small validated YAML file, never code.

Shipped styles live in ``configs/styles``; users add their own in ``$FACECHAIN_HOME/styles``, pass
a file with ``--style path.yaml``, or describe one ad hoc with ``--style-prompt`` (+ ``--style-lora``).
"""

from .catalog import (
    BrokenStyle,
    StyleStatus,
    builtin_styles_dir,
    download_style_models,
    find_style,
    list_styles,
    resolve_style,
    scan_styles,
    style_status,
)
from .models import resolve_style_lora
from .style import DEFAULT_NEGATIVE_PROMPT, SAMPLERS, Style, load_style_file, parse_size, style_from_mapping

__all__ = [
    "BrokenStyle",
    "DEFAULT_NEGATIVE_PROMPT",
    "SAMPLERS",
    "Style",
    "StyleStatus",
    "builtin_styles_dir",
    "download_style_models",
    "find_style",
    "list_styles",
    "load_style_file",
    "parse_size",
    "resolve_style",
    "resolve_style_lora",
    "scan_styles",
    "style_from_mapping",
    "style_status",
]
