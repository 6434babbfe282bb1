"""The training loop: exact resume, interruption, NaN guard, AMP, the eval command."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tdsa.config import Config, dump_config
from tdsa.engine import checkpoint as ck
from tdsa.engine.trainer import train
from tdsa.errors import TdsaError
from tdsa.losses import TDSALoss
from tdsa.runfiles import TIME_KEYS, read_metrics
from tdsa.viz import plot_training_curves

from .conftest import REPO, tiny_config


def _strip_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in rows]


def _assert_same_state(a: dict, b: dict, where: str = "") -> None:
    assert a.keys() == b.keys(), where
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), f"{where}.{k}"
        elif isinstance(a[k], dict):
            _assert_same_state(a[k], b[k], f"{where}.{k}")
        elif isinstance(a[k], list) and a[k] and isinstance(a[k][0], dict | torch.Tensor):
            for i, (x, y) in enumerate(zip(a[k], b[k], strict=True)):
                _assert_same_state({"": x}, {"": y}, f"{where}.{k}[{i}]")
        elif k not in TIME_KEYS and k not in ("time",):
            assert a[k] == b[k], f"{where}.{k}"


def test_resume_is_bit_identical_to_an_uninterrupted_run(tiny_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_root, "train.ema=true", "train.grad_clip=5.0")
    straight = train(cfg, tmp_path / "straight")
    first = train(cfg, tmp_path / "resumed", overrides=["runtime.stop_after_epoch=1"])
    assert first["stopped"] == "stop_after_epoch" and first["epochs_completed"] == 1
    resumed = train(cfg, tmp_path / "resumed")  # picks up last.pt automatically
    assert resumed["resumed_from"].endswith("last.pt")
    a = torch.load(tmp_path / "straight/last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed/last.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "ema"):
        _assert_same_state({key: a[key]}, {key: b[key]})
    _assert_same_state({"rng": a["rng"]}, {"rng": b["rng"]})
    assert _strip_times(a["metrics"]) == _strip_times(b["metrics"])
    assert _strip_times(read_metrics(tmp_path / "straight/metrics.jsonl")) == _strip_times(
        read_metrics(tmp_path / "resumed/metrics.jsonl"))
    assert straight["best_top1"] == resumed["best_top1"]
    assert straight["final_top1"] == resumed["final_top1"]
    rows = straight["metrics"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r["test_images"] == 20 for r in rows), "every test image is counted"
    assert rows[0]["aux_scale"] == 0 and rows[1]["aux_scale"] == 1
    csv_head = (tmp_path / "straight/metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("train_ce", "train_dis_mid", "train_div_mid", "train_dis_high", "train_div_high",
                "train_top1", "test_top1", "test_top5", "lr", "lr_head", "epoch_time",
                "images_per_s"):
        assert col in csv_head
    assert rows[0]["lr_head"] == pytest.approx(2 * rows[0]["lr"])
    a_ = a["metrics"][-1]
    best = max(r["test_top1"] for r in rows)
    assert straight["best_top1"] == best and straight["final_top1"] == a_["test_top1"]
    assert "test set" in straight["selection_note"]
    # the plotting helper reads the trainer's own metrics file: every loss term is drawn
    curves = plot_training_curves(tmp_path / "straight")
    assert sorted(line.get_label() for line in curves.axes[0].lines) == sorted(
        ["total", "ce", "dis_mid", "div_mid", "dis_high", "div_high"])


def test_a_run_derives_its_config_once_and_reads_its_checkpoint_once(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(tiny_root, "train.epochs=1", "model.xi=[6, 3]")
    given = copy.deepcopy(cfg)
    path = tmp_path / "run.yaml"
    dump_config(cfg, path)
    seen: dict[str, int] = {"validate": 0, "parse": 0, "copy": 0, "load": 0}
    validate, from_dict = Config.validate, Config.from_dict.__func__
    deepcopy, load = copy.deepcopy, torch.load

    def counted_validate(self: Config, source: str = "config") -> None:
        seen["validate"] += 1
        validate(self, source)

    def counted_from_dict(cls: type[Config], *args, **kwargs) -> Config:
        seen["parse"] += 1
        return from_dict(cls, *args, **kwargs)

    def counted_deepcopy(x, memo=None):
        seen["copy"] += isinstance(x, Config)
        return deepcopy(x, memo)

    def counted_load(*args, **kwargs):
        seen["load"] += 1
        return load(*args, **kwargs)

    monkeypatch.setattr(Config, "validate", counted_validate)
    monkeypatch.setattr(Config, "from_dict", classmethod(counted_from_dict))
    monkeypatch.setattr(copy, "deepcopy", counted_deepcopy)
    monkeypatch.setattr(torch, "load", counted_load)
    train(path, tmp_path / "run", overrides=["runtime.seed=0"])
    # Validated after the overrides and after the dataset filled in num_classes; never copied.
    assert seen == {"validate": 2, "parse": 1, "copy": 0, "load": 0}
    seen.update(validate=0, parse=0, copy=0, load=0)
    summary = train(None, tmp_path / "run", overrides=["train.epochs=2"])
    assert summary["epochs_completed"] == 2 and summary["resumed_from"].endswith("last.pt")
    # The checkpoint read and its config parsed once; validated as read, after the overrides
    # (on apply_overrides' own copy) and with num_classes.
    assert seen == {"validate": 3, "parse": 1, "copy": 1, "load": 1}
    seen.update(validate=0, parse=0, copy=0, load=0)
    summary = train(cfg, tmp_path / "run", overrides=["train.epochs=3"])
    assert summary["epochs_completed"] == 3
    assert seen == {"validate": 3, "parse": 1, "copy": 1, "load": 1}
    assert cfg == given and cfg.model.num_classes is None, "the caller's config is unchanged"
    stored = ck.checkpoint_config(ck.load_checkpoint(tmp_path / "run/last.pt"), "last.pt")
    assert stored.model.xi == [6, 3] and stored.model.num_classes == 4
    assert stored.data.root == os.path.abspath(cfg.data.root)


def test_nan_loss_names_the_term_and_keeps_last_good_checkpoint(
    tiny_root: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "run"
    real_forward = TDSALoss.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kw):
        res = real_forward(self, *args, **kw)
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2, step 2
            res["div_mid"] = res["div_mid"] * float("nan")
            res["total"] = res["total"] + res["div_mid"]
        return res

    monkeypatch.setattr(TDSALoss, "forward", poisoned)
    with pytest.raises(TdsaError) as err:
        train(tiny_config(tiny_root), out)
    msg = str(err.value)
    assert "'div_mid'" in msg and "epoch 2, step 2" in msg and "last.pt keeps epoch 1" in msg
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_bf16_autocast_training_runs_on_cpu(tiny_root: Path, tmp_path: Path) -> None:
    summary = train(tiny_config(tiny_root, "train.epochs=1", "train.amp=bf16",
                                "train.channels_last=true", "train.accum_steps=2"), tmp_path)
    row = summary["metrics"][0]
    assert torch.isfinite(torch.tensor(row["train_total"]))
    assert row["test_images"] == 20
    assert row["precision"] == summary["precision"] == "bf16+channels_last"
    assert json.loads((tmp_path / "summary.json").read_text())["precision"] == "bf16+channels_last"


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_resolved_and_recorded(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    """The defaults (amp auto, channels_last auto) follow the CPU's bf16 support; the resolved
    precision is what the model, the metrics rows and summary.json say."""
    from tdsa.engine import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    cfg = tiny_config(tiny_root, "train.epochs=1")
    assert (cfg.train.amp, cfg.train.channels_last) == ("auto", "auto")
    summary = train(cfg, tmp_path)
    label = "bf16+channels_last" if native else "fp32"
    assert summary["metrics"][0]["precision"] == summary["precision"] == label
    assert read_metrics(tmp_path)[0]["precision"] == label
    assert json.loads((tmp_path / "summary.json").read_text())["precision"] == label


def _cli_train(cfg_path: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tdsa", "train", "--config", str(cfg_path), "--out", str(out),
         *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_during_training_leaves_a_loadable_last_pt(tiny_root: Path, tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.yaml"
    dump_config(tiny_config(tiny_root, "train.epochs=50"), cfg_path)
    proc = _cli_train(cfg_path, tmp_path / "run")
    _wait_for(tmp_path / "run/last.pt", proc)
    time.sleep(0.7)  # somewhere in a later epoch, possibly mid-write
    proc.kill()
    proc.wait()
    state = ck.load_checkpoint(tmp_path / "run/last.pt")
    assert state["epoch"] >= 1
    model, _ = ck.load_model(tmp_path / "run/last.pt")
    assert model.num_classes == 4


@pytest.mark.slow
def test_sigterm_saves_last_pt_mid_epoch_and_resume_continues(
    tiny_root: Path, tmp_path: Path
) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg = tiny_config(tiny_root, "train.epochs=40", "train.batch_size=4")
    dump_config(cfg, cfg_path)
    proc = _cli_train(cfg_path, tmp_path / "run")
    _wait_for(tmp_path / "run/last.pt", proc)
    proc.send_signal(signal.SIGTERM)
    out, errs = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, errs
    assert "stopped by SIGTERM" in out and "Traceback" not in errs
    state = ck.load_checkpoint(tmp_path / "run/last.pt")
    assert state["epoch"] < 40 and 0 <= state["batch"] < 8
    assert (state["partial"] is not None) == (state["batch"] > 0)


def test_signal_mid_epoch_saves_position_and_resume_is_exact(
    tiny_root: Path, tmp_path: Path, monkeypatch
) -> None:
    cfg = tiny_config(tiny_root, "train.epochs=2")
    straight = train(cfg, tmp_path / "straight")
    real_forward = TDSALoss.forward
    calls = {"n": 0}

    def interrupting(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 6:  # during epoch 2, step 2
            os.kill(os.getpid(), signal.SIGTERM)
        return real_forward(self, *args, **kw)

    monkeypatch.setattr(TDSALoss, "forward", interrupting)
    stopped = train(cfg, tmp_path / "resumed")
    assert stopped["stopped"] == "SIGTERM" and stopped["epochs_completed"] == 1
    state = ck.load_checkpoint(tmp_path / "resumed/last.pt")
    assert (state["epoch"], state["batch"]) == (1, 2)
    monkeypatch.setattr(TDSALoss, "forward", real_forward)
    resumed = train(cfg, tmp_path / "resumed")
    a = torch.load(tmp_path / "straight/last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed/last.pt", weights_only=True)
    _assert_same_state({"model": a["model"]}, {"model": b["model"]})
    _assert_same_state({"optimizer": a["optimizer"]}, {"optimizer": b["optimizer"]})
    assert _strip_times(straight["metrics"]) == _strip_times(resumed["metrics"])


def test_eval_command_prints_the_stored_accuracy(tiny_root: Path, tmp_path: Path) -> None:
    summary = train(tiny_config(tiny_root, "train.epochs=2"), tmp_path / "run")
    proc = subprocess.run(
        [sys.executable, "-m", "tdsa", "eval", "--checkpoint", str(tmp_path / "run/best.pt")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    best = summary["best_top1"]
    assert f"top-1 {best:.2f}%" in proc.stdout
    assert f"stored test top-1 of this checkpoint (epoch {summary['best_epoch']}): {best:.2f}%" \
        in proc.stdout
    import json

    report = json.loads((tmp_path / "run/eval.json").read_text())
    assert report["images"] == 20 and report["top1"] == pytest.approx(best)
    assert report["precision"] == summary["precision"]  # auto resolves alike on the same CPU
    assert f"epoch {summary['best_epoch']}, {summary['precision']})" in proc.stdout
    rows = (tmp_path / "run/confusion.csv").read_text().splitlines()
    counts = [list(map(int, r.split(",")[1:])) for r in rows[1:]]
    assert len(counts) == 4 and sum(map(sum, counts)) == 20
    assert sum(counts[i][i] for i in range(4)) / 20 * 100 == pytest.approx(best)
    assert all(sum(r) == 5 for r in counts), "rows are true classes, 5 test images each"


def test_fp16_with_grad_scaler_runs_on_cpu_and_checkpoints_the_scaler(
    tiny_root: Path, tmp_path: Path
) -> None:
    summary = train(tiny_config(tiny_root, "train.epochs=1", "train.amp=fp16"), tmp_path)
    assert torch.isfinite(torch.tensor(summary["metrics"][0]["train_total"]))
    assert summary["precision"] == "fp16"  # channels_last auto: on with bf16 only, on a CPU
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["scaler"] and state["scaler"]["scale"] > 0


def test_torch_compile_training_runs_on_cpu(tiny_root: Path, tmp_path: Path) -> None:
    summary = train(tiny_config(tiny_root, "train.epochs=1", "train.compile=true"), tmp_path)
    row = summary["metrics"][0]
    assert torch.isfinite(torch.tensor(row["train_total"])) and row["test_images"] == 20
    # the checkpoint holds the plain module's names: an eager model loads it
    model, _ = ck.load_model(tmp_path / "last.pt")
    assert not any("_orig_mod" in k for k in model.state_dict())
