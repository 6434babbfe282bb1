"""The CUDA tests (``pytest -m cuda``, run by ``make gpu-check``): every test here is marked
``cuda`` and skips with a reason on a machine without a GPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tdsa.data.synthetic import generate

# Deterministic cuBLAS for the bit-exact resume test: read when CUDA starts, so set it before
# any test touches the GPU (the trainer sets it too, but only when it is the first).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
NO_CUDA = "needs a CUDA GPU: run `make gpu-check` on a machine with one"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.cuda)
            if not torch.cuda.is_available():
                item.add_marker(pytest.mark.skip(reason=NO_CUDA))


@pytest.fixture(scope="session")
def tiny_cuda_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes x (8 train + 5 test) synthetic birds at 48 px, in CUB format."""
    root = tmp_path_factory.mktemp("synth_cuda") / "tiny"
    generate(root, num_classes=4, train_per_class=8, test_per_class=5, image_size=48, seed=0)
    return root
