"""The lazy NaN/Inf check: flags stay on the device between checks, the first bad term is
named, and nothing is saved after the last good checkpoint; the run records its input spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tdsa.engine import step as step_mod
from tdsa.engine.distributed import DistInfo
from tdsa.engine.step import TERMS, FiniteGuard, NonFiniteLossError, RunningSums
from tdsa.engine.trainer import Trainer, train
from tdsa.losses import TDSALoss

from .conftest import tiny_config

READS = ("__bool__", "__float__", "__int__", "item", "tolist")


def _values(**bad: float) -> torch.Tensor:
    return torch.tensor([bad.get(k, 1.0) for k in TERMS])


def _no_read(*args, **kw):
    raise AssertionError("a tensor was read on the host")


def test_an_optimiser_step_reads_nothing_from_the_device(
    tiny_root: Path, tmp_path: Path, monkeypatch
) -> None:
    cfg = tiny_config(tiny_root, "train.grad_clip=1.0", "train.ema=true", "train.accum_steps=2")
    trainer = Trainer(cfg, tmp_path / "run", DistInfo())
    loader = iter(trainer.loop.loaders.train(trainer.data, 0, 0))
    batches = iter([next(loader) for _ in range(4)])  # decoding reads its own CPU RNG draws
    sums = RunningSums(trainer.device)
    with monkeypatch.context() as m:
        for name in READS:
            m.setattr(torch.Tensor, name, _no_read)
        for step in range(2):
            trainer.loop.step(batches, 1.0, sums, 0, step)
    assert sums.seen == 16


def test_guard_names_the_first_bad_term_and_step_without_reading_the_device(monkeypatch):
    guard = FiniteGuard(torch.device("cpu"), DistInfo(), saved_epoch=3)
    with monkeypatch.context() as m:
        for name in READS:
            m.setattr(torch.Tensor, name, _no_read)
        guard.observe(_values(), 4, 0)
        guard.observe(_values(div_mid=float("nan"), total=float("nan")), 4, 1)
        guard.observe(_values(ce=float("inf")), 4, 2)
    with pytest.raises(NonFiniteLossError) as err:
        guard.check()
    msg = str(err.value)
    assert msg.startswith("loss term 'div_mid' became nan at epoch 5, step 2: stopped "
                          "(last.pt keeps epoch 3; nothing was saved after it)")
    only_total = FiniteGuard(torch.device("cpu"), DistInfo())
    only_total.observe(_values(total=float("-inf")), 0, 0)
    with pytest.raises(NonFiniteLossError, match=r"'total' became -inf at epoch 1, step 1: "
                                                 r"stopped \(no checkpoint was written yet"):
        only_total.check()
    fine = FiniteGuard(torch.device("cpu"), DistInfo())
    fine.observe(_values(), 0, 0)
    fine.check()
    assert [fine.due(s) for s in range(2 * fine.every)].count(True) == 2


def test_nan_found_at_epoch_end_keeps_last_pt_of_the_previous_epoch(
    tiny_root: Path, tmp_path: Path, monkeypatch
) -> None:
    good = train(tiny_config(tiny_root, "runtime.stop_after_epoch=1"), tmp_path / "good")
    assert good["stopped"] == "stop_after_epoch"
    monkeypatch.setattr(step_mod, "FINITE_CHECK_EVERY", 1000)  # read at the epoch end only
    real_forward = TDSALoss.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kw):
        res = real_forward(self, *args, **kw)
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 2, step 1: the next three steps train on NaN weights
            res["dis_high"] = res["dis_high"] * float("nan")
            res["total"] = res["total"] + res["dis_high"]
        return res

    monkeypatch.setattr(TDSALoss, "forward", poisoned)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"'dis_high' became nan at epoch 2, step 1: "
                                                 r"stopped \(last.pt keeps epoch 1;"):
        train(tiny_config(tiny_root), out)
    assert calls["n"] == 8  # the whole epoch ran before the check
    kept = torch.load(out / "last.pt", weights_only=True)
    ref = torch.load(tmp_path / "good/last.pt", weights_only=True)
    assert kept["epoch"] == 1
    for key, value in ref["model"].items():
        assert torch.equal(kept["model"][key], value), key
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_summary_records_the_resolved_input_spec(tiny_root: Path, tmp_path: Path) -> None:
    summary = train(tiny_config(tiny_root, "train.epochs=1"), tmp_path / "run")
    want = {"regime": "scratch", "input_size": [3, 32, 32], "resize": [32, 32],
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    assert summary["data_spec"] == want
    assert json.loads((tmp_path / "run/summary.json").read_text())["data_spec"] == want
