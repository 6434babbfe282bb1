"""The shortened demonstration of chapters 4 and 6
(``tdsa.experiments.book.run_plan(..., shorten=...)``): where training runs in fp32 on a CPU
without native bf16, the cpu profile's two runs train ``SHORT_EPOCHS`` epochs into their own
folders, with a note that says so and how to train the full runs; elsewhere, and whenever
``epochs`` is given, nothing changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tdsa.config import apply_overrides, load_config
from tdsa.experiments import book

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("arm", ["ce", "tdsa"])
def test_shortened_cpu_runs_scale_the_schedule_and_have_their_own_folder(arm: str) -> None:
    n = book.SHORT_EPOCHS
    plan = book.run_plan("training", "cpu", arm=arm, shorten=True)
    full = book.run_plan("training", "cpu", arm=arm)
    assert plan.config == full.config
    assert plan.overrides == [*full.overrides, f"train.epochs={n}",
                              f"schedule.warmup_epochs={0.3 * n:g}",
                              f"loss.ramp_epochs={n / 3:.4g}"]
    assert plan.run_dir == full.run_dir.with_name(f"training-{arm}-seed0-short{n}")
    full_epochs = load_config(plan.config).train.epochs
    assert f"{n} of the config's {full_epochs} epochs" in plan.note
    assert "shorten = False" in plan.note and f"epochs = {full_epochs}" in plan.note
    profile = json.loads((book.results_path() / book.AVX2_EPOCH_PROFILE).read_text())
    epoch = next(iter(profile["runs"].values()))["epoch"]["phases"]["total"]["wall_s"]
    assert (f"an fp32 epoch took {epoch:.0f} s on two cores in the committed profile" in plan.note
            and f"would take about {2 * full_epochs * epoch / 60:.0f} minutes" in plan.note)
    assert full.note == ""
    cfg = apply_overrides(load_config(plan.config), plan.overrides)
    assert cfg.train.epochs == n < full_epochs


def test_shorten_applies_to_the_cpu_profile_training_runs_without_epochs_only() -> None:
    for profile in ("smoke", "gpu"):
        for arm in ("ce", "tdsa"):
            assert (book.run_plan("training", profile, arm=arm, shorten=True)
                    == book.run_plan("training", profile, arm=arm))
    given = book.run_plan("training", "cpu", epochs=16, shorten=True)
    assert given == book.run_plan("training", "cpu", epochs=16) and given.note == ""
    assert (book.run_plan("channel_constraint", "cpu", shorten=True)
            == book.run_plan("channel_constraint", "cpu"))


@pytest.mark.parametrize("slow", [True, False])
def test_shorten_none_asks_whether_training_is_slow(monkeypatch: pytest.MonkeyPatch,
                                                      slow: bool) -> None:
    monkeypatch.setattr(book, "training_is_slow", lambda: slow)
    plan = book.run_plan("training", "cpu", arm="ce", shorten=None)
    assert plan == book.run_plan("training", "cpu", arm="ce", shorten=slow)
    assert bool(plan.note) == slow


def test_training_is_slow_under_the_avx2_kernel_caps() -> None:
    """The two variables that make a CPU with AVX-512/AMX run its AVX2 kernels make training
    fp32, so the demonstration is shortened (unless a GPU trains it)."""
    code = "from tdsa.experiments.book import training_is_slow; print(training_is_slow())"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == str(not torch.cuda.is_available())


def test_load_or_train_prints_the_note_once(tmp_path: Path, capsys) -> None:
    plan = book.RunPlan(tmp_path / "missing.yaml", [], tmp_path / "run",
                        note=f"Shortened demonstration (test {tmp_path.name})")
    plan.run_dir.mkdir()
    (plan.run_dir / "best.pt").write_bytes(b"")
    (plan.run_dir / "summary.json").write_text('{"final_top1": 12.5}')
    assert book.load_or_train(plan) == {"final_top1": 12.5}
    assert book.load_or_train(plan) == {"final_top1": 12.5}
    assert capsys.readouterr().out == plan.note + "\n"
    quiet = book.RunPlan(plan.config, [], plan.run_dir)
    book.load_or_train(quiet)
    assert capsys.readouterr().out == ""
