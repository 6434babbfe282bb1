"""tdsa: TDSA-Loss (top-down spatial attention loss) for fine-grained visual classification.

Chang et al., "Fine-Grained Visual Classification via Simultaneously Learning of
Multi-regional Multi-grained Features", arXiv 2102.00367. The book (``book/``) explains
every public function; each docstring names its chapter. The names below are imported on
first use, so ``import tdsa`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "TDSALoss": "tdsa.losses",
    "channel_constraint": "tdsa.losses",
    "top_down_gate": "tdsa.losses",
    "create_model": "tdsa.models",
    "list_models": "tdsa.models",
    "build_dataset": "tdsa.data",
    "build_transforms": "tdsa.data",
    "train": "tdsa.engine",
    "evaluate": "tdsa.engine",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tdsa' has no attribute {name!r}")
