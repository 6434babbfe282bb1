"""Gradient norms per stage in the epoch record: correct by hand, free of side effects, resumable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tdsa.engine import step as step_mod
from tdsa.engine.distributed import cleanup, init_distributed
from tdsa.engine.step import GRAD_NORM_KEYS, TERMS, RunningSums
from tdsa.engine.trainer import Trainer, train
from tdsa.models import create_model
from tdsa.runfiles import TIME_KEYS, MetricsWriter, read_metrics
from tdsa.viz import plot_training_curves

from .conftest import tiny_config


def _by_hand_stage(name: str) -> str:
    """The compact VGG16's stages, read off its layer list: features 0..32 end with the ReLU of
    conv4_3 (the mid tap: 2 + 2 + 3 + 3 convs of three layers each and three pools)."""
    if name.startswith("head."):
        return "head"
    return "mid" if int(name.split(".")[1]) <= 32 else "high"


def test_the_hand_written_split_matches_the_model() -> None:
    net = create_model("tdsa_vgg16", 4, width=0.25, input_size=32)
    assert net.mid_index == 32
    for stage, named in net.stage_parameters().items():
        assert all(_by_hand_stage(n) == stage for n, _ in named), stage


def test_epoch_row_is_the_mean_of_the_norms_computed_by_hand(tiny_root: Path,
                                                             tmp_path: Path) -> None:
    """Before every optimiser step, each stage's gradients are flattened into one float64
    vector and measured; the row holds the mean over the epoch's four steps."""
    info = init_distributed("cpu")
    try:
        trainer = Trainer(tiny_config(tiny_root, "train.epochs=1"), tmp_path / "run", info)
        net = trainer.model.net
        seen: list[dict[str, float]] = []

        def by_hand(*_: object) -> None:
            flat: dict[str, list[torch.Tensor]] = {"mid": [], "high": [], "head": []}
            for name, param in net.named_parameters():
                assert param.grad is not None, name
                flat[_by_hand_stage(name)].append(param.grad.double().flatten())
            norms = {k: float(torch.cat(v).norm()) for k, v in flat.items()}
            seen.append(norms | {"total": math.sqrt(sum(v * v for v in norms.values()))})

        trainer.model.optimizer.register_step_pre_hook(by_hand)
        row = trainer.fit()["metrics"][0]
    finally:
        cleanup(info)
    assert len(seen) == 4
    for stage in ("mid", "high", "head", "total"):
        want = sum(s[stage] for s in seen) / len(seen)
        assert row[f"grad_norm/{stage}"] == pytest.approx(want, rel=1e-5), stage
        assert want > 0


@pytest.mark.parametrize("extra", [
    ("train.ema=true", "train.grad_clip=0.5", "train.accum_steps=2"),
    ("train.amp=fp16", "train.epochs=1"),
], ids=["fp32-clip-accum-ema", "fp16-scaler"])
def test_training_is_bit_identical_without_the_norms(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...]
) -> None:
    cfg = tiny_config(tiny_root, "train.epochs=2", *extra)
    measured = train(cfg, tmp_path / "measured")
    with monkeypatch.context() as patch:
        patch.setattr(step_mod, "stage_grad_norms",
                      lambda stages, device: torch.zeros(3, device=device))
        patch.setattr(RunningSums, "add_grad_norms", lambda self, norms: None)
        plain = train(cfg, tmp_path / "plain")
    a = torch.load(tmp_path / "measured/last.pt", weights_only=True)
    b = torch.load(tmp_path / "plain/last.pt", weights_only=True)
    for key in ("model", "optimizer", "scaler", "ema"):
        assert _same(a[key], b[key]), key
    skip = {*TIME_KEYS, *GRAD_NORM_KEYS}
    assert [{k: v for k, v in r.items() if k not in skip} for r in measured["metrics"]] == \
        [{k: v for k, v in r.items() if k not in skip} for r in plain["metrics"]]
    assert all(math.isfinite(r[k]) and r[k] > 0 for r in measured["metrics"]
               for k in GRAD_NORM_KEYS)
    assert all(math.isnan(r[k]) for r in plain["metrics"] for k in GRAD_NORM_KEYS)


def _same(a: object, b: object) -> bool:
    """Equal nested state: tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def test_skipped_steps_are_not_counted_and_old_partial_sums_restore() -> None:
    sums = RunningSums(torch.device("cpu"))
    sums.add_grad_norms(torch.tensor([3.0, 4.0, 12.0]))
    sums.add_grad_norms(torch.tensor([float("inf"), 1.0, 1.0]))
    sums.add_grad_norms(torch.tensor([1.0, 0.0, 0.0]))
    assert sums.grad_norms() == {"grad_norm/mid": 2.0, "grad_norm/high": 2.0,
                                 "grad_norm/head": 6.0, "grad_norm/total": 7.0}
    assert all(math.isnan(v) for v in RunningSums(torch.device("cpu")).grad_norms().values())
    saved = RunningSums(torch.device("cpu"), sums.tolist())
    assert torch.equal(saved.vector, sums.vector)
    old = [0.5 * (i + 1) for i in range(len(TERMS))] + [3.0, 4.0]  # a partial epoch's sums
    restored = RunningSums(torch.device("cpu"), old)
    assert restored.seen == 4.0 and restored.means()["top1"] == 75.0
    assert restored.means()["ce"] == 0.25


def test_old_metrics_files_without_the_norms_still_load(tmp_path: Path) -> None:
    old = {"epoch": 1, "lr": 0.1, "aux_scale": 1.0,
           **{f"train_{k}": 1.0 for k in TERMS}, "train_top1": 50.0, "epoch_time": 1.0,
           "images_per_s": 10.0, "test_top1": 25.0, "test_top5": 100.0}
    new = old | {"epoch": 2} | dict.fromkeys(GRAD_NORM_KEYS, 1.5)
    (tmp_path / "old").mkdir()
    (tmp_path / "old/metrics.jsonl").write_text(json.dumps(old) + "\n")
    assert read_metrics(tmp_path / "old") == [old]
    plot_training_curves(tmp_path / "old")
    MetricsWriter(tmp_path).write([old, new])  # a run resumed from a checkpoint made before
    assert read_metrics(tmp_path) == [old, new]
    header, first, second = (tmp_path / "metrics.csv").read_text().splitlines()
    assert header.split(",")[-len(GRAD_NORM_KEYS):] == list(GRAD_NORM_KEYS)
    assert first.endswith("," * len(GRAD_NORM_KEYS)) and second.endswith("1.5")
