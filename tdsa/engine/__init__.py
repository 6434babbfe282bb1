"""The training engine: :func:`train` (the loop, checkpoints, resume, AMP, DDP) and
:func:`evaluate` (every test image counted).

Book: chapter 4, *Train, or load the finished runs*.
"""

from __future__ import annotations

from tdsa.engine.checkpoint import load_model
from tdsa.engine.evaluate import evaluate
from tdsa.engine.trainer import Trainer, train

__all__ = ["Trainer", "evaluate", "load_model", "train"]
