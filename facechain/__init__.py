"""facechain: identity-preserving portraits from a few personal photos.

The public API is the CLI's verbs, with the same names and keywords (``facechain train PHOTOS
--steps 400`` is ``facechain.train(PHOTOS, steps=400)``; see :mod:`facechain.options`)::

    prepare, train, train_style, generate, inpaint, faces, evaluate, styles, models, train_adapter, export,
    talk, tryon, serve, batch

plus the types they return or take: ``Portraits``, ``Portrait``, ``Identity``, ``PrepareResult``,
``BatchSummary``, ``PortraitPipeline``, ``TemplatePipeline``. Nothing is imported until used:
``import facechain`` loads no torch or diffusers.

``facechain.models``, ``facechain.styles``, ``facechain.batch`` and ``facechain.export`` are also
sub-packages/modules (``from facechain.models import ModelStore``); calling them runs the verb, so
both uses work.
"""

from __future__ import annotations

import importlib as _importlib
import sys as _sys
import types as _types
from typing import TYPE_CHECKING as _TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> (module, attribute) that defines it
_API: dict[str, tuple[str, str]] = {
    "prepare": ("facechain.preprocess.pipeline", "prepare"),
    "train": ("facechain.training.api", "train"),
    "train_style": ("facechain.training.api", "train_style"),
    "generate": ("facechain.generation.api", "generate"),
    "inpaint": ("facechain.inpainting.api", "inpaint"),
    "faces": ("facechain.inpainting.api", "template_faces"),
    "evaluate": ("facechain.postprocess.evaluate", "evaluate"),
    "styles": ("facechain.styles.catalog", "styles"),
    "models": ("facechain.models.api", "models"),
    "train_adapter": ("facechain.fact.training", "train_adapter"),
    "export": ("facechain.training.export", "export"),
    "talk": ("facechain.apps.talking_head.api", "talk"),
    "tryon": ("facechain.apps.tryon.api", "tryon"),
    "serve": ("facechain.service", "serve"),
    "batch": ("facechain.batch.api", "batch"),
    "Client": ("facechain.service.client", "Client"),
    "Portraits": ("facechain.results", "Portraits"),
    "Portrait": ("facechain.results", "Portrait"),
    "Identity": ("facechain.identity", "Identity"),
    "PrepareResult": ("facechain.preprocess.result", "PrepareResult"),
    "BatchSummary": ("facechain.batch.runner", "BatchSummary"),
    "PortraitPipeline": ("facechain.pipelines", "PortraitPipeline"),
    "TemplatePipeline": ("facechain.pipelines", "TemplatePipeline"),
}
__all__ = list(_API)

#: Verbs whose name is also a sub-package or module of facechain: the module itself is made callable.
_MODULE_VERBS = {"models", "styles", "batch"}


def _target(name: str):
    module, attribute = _API[name]
    try:
        return getattr(_importlib.import_module(module), attribute)
    except ModuleNotFoundError as e:
        if e.name is not None and module.startswith(e.name):
            raise AttributeError(f"facechain.{name} is not available in this version of facechain") from None
        raise


class _VerbModule(_types.ModuleType):
    """A sub-package that is also a verb: ``facechain.models()`` runs the verb, ``facechain.models.ModelStore`` still works."""

    def __call__(self, *args, **kwargs):
        return _target(self.__name__.rsplit(".", 1)[1])(*args, **kwargs)

    @property
    def __wrapped__(self):  # inspect.signature() and help tools show the verb's keywords
        return _target(self.__name__.rsplit(".", 1)[1])


class _Package(_types.ModuleType):
    """The facechain package: its verb-named sub-modules become callable as soon as they are imported."""

    def __setattr__(self, name: str, value) -> None:
        if name in _MODULE_VERBS and type(value) is _types.ModuleType:
            value.__class__ = _VerbModule
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _MODULE_VERBS:
        try:
            return _importlib.import_module(f"{__name__}.{name}")  # the import makes it callable (see _Package)
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                raise AttributeError(f"facechain.{name} is not available in this version of facechain") from None
            raise
    if name in _API:
        return _target(name)
    raise AttributeError(f"module 'facechain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])


if _TYPE_CHECKING:  # what editors and type checkers see (nothing of this is imported at run time)
    from .batch.api import batch  # noqa: F401
    from .batch.runner import BatchSummary  # noqa: F401
    from .fact.training import train_adapter  # noqa: F401
    from .generation.api import generate  # noqa: F401
    from .identity import Identity  # noqa: F401
    from .inpainting.api import inpaint  # noqa: F401
    from .inpainting.api import template_faces as faces  # noqa: F401
    from .models.api import models  # noqa: F401
    from .pipelines import PortraitPipeline, TemplatePipeline  # noqa: F401
    from .postprocess.evaluate import evaluate  # noqa: F401
    from .preprocess.pipeline import prepare  # noqa: F401
    from .preprocess.result import PrepareResult  # noqa: F401
    from .results import Portrait, Portraits  # noqa: F401
    from .styles.catalog import styles  # noqa: F401
    from .training.api import train, train_style  # noqa: F401
    from .export import export  # noqa: F401
