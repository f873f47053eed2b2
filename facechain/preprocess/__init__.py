"""Preprocessing (paper section 2.1): personal photos → a folder to train the face LoRA on.

``prepare`` (also ``facechain.prepare`` and ``facechain prepare``) runs the chain;
``PrepareResult.load(folder)`` reads a prepared folder back.
"""

from .config import PrepareConfig
from .pipeline import prepare
from .result import AcceptedPhoto, PrepareResult

__all__ = ["prepare", "PrepareResult", "PrepareConfig", "AcceptedPhoto"]
