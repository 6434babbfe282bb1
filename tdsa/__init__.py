"""tdsa: TDSA-Loss (top-down spatial attention loss) for fine-grained visual classification.

Chang et al., "Fine-Grained Visual Classification via Simultaneously Learning of
Multi-regional Multi-grained Features", arXiv 2102.00367. The names below are imported on
first use, so ``import tdsa`` stays cheap.

Where things live: the folder says the layer (``tests/unit/test_layout.py`` checks, by folder,
that no layer imports a layer above it and that no modules of ``tdsa`` import each other in a
cycle):

- **The library**: every module outside ``experiments/``, ``commands/``, ``cli.py`` and
  ``__main__.py``: ``losses``, ``models/``, ``data/``, ``engine/``, ``metrics``,
  ``attribution``, ``viz/``, ``runfiles``, ``console``, ``validation``, ``errors``,
  ``resources``, ``hardware``, ``provenance``, ``config``. It imports nothing from the two
  layers above.
- **The experiments**: ``experiments/``, what composes the library into evidence: ``grid``
  (a grid of variants x seeds, trained and tabulated), ``evidence`` (results files read back,
  the claim tested seed by seed), ``calibration`` (the synthetic benchmark's calibration map),
  ``localisation``, ``counterfactual``, ``budget`` (the budget curve), ``stalls`` (seeds that
  end far below the others, and their recorded curves), ``bench/`` (the benchmarks, one module
  per measure), ``book`` (what the notebooks share) and ``readme`` (the README's status
  numbers, computed from the results). The grids are YAML files under
  ``configs/ablations/``: lever pairs, table columns and part names live in the grid files or
  the chapter, not the package. It imports the library, never the commands.
- **The commands**: ``cli.py``, ``__main__.py`` and ``commands/``, one module per command. A
  command module parses arguments, calls the library and the experiments and prints; it holds
  no logic another module needs.
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
