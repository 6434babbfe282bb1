"""Shared fixtures of the engine tests: one tiny synthetic dataset and a tiny config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdsa.config import Config, apply_overrides
from tdsa.data.synthetic import generate

REPO = Path(__file__).resolve().parents[2]
SYNTH = {"num_classes": 4, "train_per_class": 8, "test_per_class": 5, "image_size": 48, "seed": 0}


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes x (8 train + 5 test) images at 48 px, in CUB format (trained at 32 px)."""
    root = tmp_path_factory.mktemp("synth") / "tiny"
    generate(root, **SYNTH)
    return root


def tiny_config(root: Path, *extra: str) -> Config:
    """The compact VGG16 at 32 px on ``root``: 4 optimiser steps of 8 images per epoch."""
    return apply_overrides(
        Config(),
        [
            "data.dataset=synthetic", f"data.root={root}", "data.image_size=32",
            "data.workers=0", "model.options={width: 0.25}", "optim.name=sgd",
            "optim.lr=0.05", "optim.head_lr=0.1", "schedule.name=cosine",
            "schedule.warmup_epochs=0.5", "train.epochs=3", "train.batch_size=8",
            "loss.alpha_mid=0.15", "loss.beta_mid=1.5", "loss.alpha_high=0.15",
            "loss.beta_high=1.5", "loss.ramp_epochs=1", "runtime.threads=1",
            "runtime.progress=false", *extra,
        ],
    )
