"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


def _train_tiny_tdsa(root: Path, out: Path) -> Path:
    """A compact TDSA run on the synthetic root ``root``: one epoch at 32 px, a quarter-width
    network, SGD, the auxiliary weights at a tenth of the paper's, one thread; its folder."""
    import torch

    from tdsa.config import Config, apply_overrides
    from tdsa.engine import train

    torch.set_num_threads(1)
    cfg = apply_overrides(Config(), [
        "data.dataset=synthetic", f"data.root={root}", "data.image_size=32", "data.workers=0",
        "model.options={width: 0.25}", "optim.name=sgd", "optim.lr=0.05",
        "schedule.name=constant", "train.epochs=1", "train.batch_size=8", "loss.alpha_mid=0.15",
        "loss.beta_mid=1.5", "loss.alpha_high=0.15", "loss.beta_high=1.5", "runtime.threads=1",
        "runtime.progress=false"])
    train(cfg, out)
    return out


@pytest.fixture(scope="session")
def train_tiny_tdsa() -> Callable[[Path, Path], Path]:
    """``train_tiny_tdsa(root, out)``: a one-epoch compact TDSA run into ``out``."""
    return _train_tiny_tdsa
