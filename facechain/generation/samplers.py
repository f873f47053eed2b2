"""Sampler names (as styles and ``--sampler`` spell them) -> diffusers schedulers.

``default`` keeps the base model's own scheduler. Every other sampler is built from the base
model's scheduler config, so its noise schedule (betas, prediction type) is kept.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..styles.style import SAMPLERS

_TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "dpm_singlestep": ("DPMSolverSinglestepScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "dpm++2m": ("DPMSolverMultistepScheduler", {}),
    "dpm++2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
}
assert set(_TABLE) | {"default"} == set(SAMPLERS)


def check_sampler(name: str) -> str:
    """One line with a "did you mean" for an unknown sampler name (before any model loads)."""
    if name not in SAMPLERS:
        import difflib

        close = difflib.get_close_matches(name, SAMPLERS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        from ..options import spell

        raise ConfigError(f"{spell('sampler')} '{name}' is unknown ({hint}known: {', '.join(SAMPLERS)})")
    return name


def set_sampler(pipe, name: str) -> None:
    """Switch ``pipe`` to sampler ``name`` (the original scheduler is remembered for ``default``)."""
    check_sampler(name)
    original = getattr(pipe, "_facechain_original_scheduler", None)
    if original is None:
        original = pipe.scheduler
        pipe._facechain_original_scheduler = original
    if name == "default":
        pipe.scheduler = original
        return
    import diffusers

    cls_name, extra = _TABLE[name]
    pipe.scheduler = getattr(diffusers, cls_name).from_config(original.config, **extra)
