"""tdsa: TDSA-Loss (top-down spatial attention loss) for fine-grained visual classification.

Chang et al., "Fine-Grained Visual Classification via Simultaneously Learning of
Multi-regional Multi-grained Features", arXiv 2102.00367. The names below are imported on
first use, so ``import tdsa`` stays cheap.

Where things live (``tests/unit/test_layout.py`` checks what can be checked):

- **The library**: ``losses``, ``models/``, ``data/``, ``engine/``, ``metrics``,
  ``attribution``, ``viz/``, ``runfiles``, ``console``, ``validation``, ``errors``,
  ``resources``, ``config``. It imports nothing from the three layers below.
- **The experiments layer**: ``experiments/`` (``budget``: the budget curve and the
  converged budget), ``ablate``, ``evidence``, ``calibration``, ``localisation``,
  ``counterfactual``, ``bench``. The grids are YAML files under ``configs/ablations/``: lever
  pairs, table columns and part names live in the grid files or the chapter, not the package.
- **The book layer**: ``tdsa.book``, what the notebooks share.
- **The commands**: ``tdsa/cli.py`` and ``tdsa/commands/``, one module per command. A command
  module parses arguments, calls the library and prints; it holds no logic another module
  needs.
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
    "from_config": "tdsa.data",
    "resolve_data_config": "tdsa.data",
    "train": "tdsa.engine",
    "evaluate": "tdsa.engine",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tdsa' has no attribute {name!r}")
