"""Checkpoints: atomic writes, RNG round trip, incompatible checkpoints, load_model."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tdsa.config import apply_overrides
from tdsa.engine import checkpoint as ck
from tdsa.engine.trainer import train
from tdsa.errors import CheckpointError, ConfigError

from .conftest import tiny_config


def test_crash_during_write_leaves_previous_file_intact(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    ck.atomic_save({"w": torch.arange(5)}, path)
    before = path.read_bytes()
    real_save = torch.save

    def crashing_save(obj, f, *a, **kw):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        ck.atomic_save({"w": torch.zeros(5)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path], "the temporary file is removed"
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(5))


def test_rng_state_round_trips_through_weights_only_load(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(1), np.random.seed(2), random.seed(4)
    ck.atomic_save({"rng": ck.capture_rng(gen)}, tmp_path / "r.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    gen.manual_seed(9)
    ck.restore_rng(torch.load(tmp_path / "r.pt", weights_only=True)["rng"], gen)
    got = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and torch.equal(got[3], expected[3])


def test_unreadable_or_foreign_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*junk\.pt"):
        ck.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="missing key"):
        ck.load_checkpoint(tmp_path / "other.pt")


@pytest.fixture(scope="module")
def one_epoch_run(tiny_root: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ck") / "run"
    train(tiny_config(tiny_root, "train.epochs=1"), out)
    return out


def test_checkpoint_from_another_model_or_class_count_is_a_clear_error(
    one_epoch_run: Path, tiny_root: Path
) -> None:
    ckpt = ck.load_checkpoint(one_epoch_run / "last.pt")
    stored = ck.checkpoint_config(ckpt, "last.pt")
    cfg = tiny_config(tiny_root)
    with pytest.raises(CheckpointError, match=r"num_classes 4 in the checkpoint vs 7 now"):
        ck.check_compatible(ckpt, stored, cfg, 7, "last.pt")
    other = apply_overrides(cfg, ["model.name=tdsa_resnet18", "model.options={}"])
    with pytest.raises(CheckpointError, match=r"model\.name 'tdsa_vgg16' in the checkpoint vs "
                                              r"'tdsa_resnet18' now"):
        ck.check_compatible(ckpt, stored, other, 4, "last.pt")
    wider = apply_overrides(cfg, ["model.options.width=0.5"])
    with pytest.raises(ConfigError, match=r"model\.options: run has \{'width': 0\.25\}, "
                                          r"command gives \{'width': 0\.5\}"):
        train(wider, one_epoch_run, overrides=["train.epochs=2"])


def test_load_model_rebuilds_the_trained_network(one_epoch_run: Path) -> None:
    model, cfg = ck.load_model(one_epoch_run / "last.pt")
    state = torch.load(one_epoch_run / "last.pt", weights_only=True)
    assert not model.training and cfg.model.num_classes == 4
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["model"][k]), k
    assert set(state) >= {"model", "optimizer", "scheduler", "scaler", "ema", "epoch", "metrics",
                          "config", "version", "rng"}
    assert state["rng"]["loader_seed_scheme"]
