"""The benchmark harness runs every benchmark and reports consistent numbers (tiny shapes:
the speed targets themselves are measured by `make bench`, not by unit tests)."""

from __future__ import annotations

import json

import pytest

from tdsa import cli
from tdsa.engine.precision import resolve_precision
from tdsa.experiments.bench import (
    TARGETS,
    paired_ratio_quartiles,
    peak_allocated_bytes,
    run_benchmarks,
    time_interleaved,
)


def test_time_interleaved_alternates_which_arm_goes_first():
    import torch

    calls: list[str] = []
    ms = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                          torch.device("cpu"), warmup=1, repeats=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then AB BA AB
    assert set(ms) == {"a", "b"} and all(v >= 0 for v in ms.values())


def test_time_interleaved_cpu_time_counts_work_not_waiting():
    """A call that sleeps 30 ms takes 30 ms of wall time and almost no CPU time; a call that
    spins for 30 ms takes about 30 ms of both."""
    import time

    import torch

    def spin() -> None:
        end = time.perf_counter() + 0.03
        while time.perf_counter() < end:
            pass

    cpu: dict[str, float] = {}
    wall = time_interleaved({"sleep": lambda: time.sleep(0.03), "spin": spin},
                            torch.device("cpu"), warmup=0, repeats=3, cpu_ms=cpu)
    assert set(cpu) == {"sleep", "spin"}
    assert wall["sleep"] >= 29 and wall["spin"] >= 29
    assert cpu["sleep"] < 10 <= cpu["spin"] <= wall["spin"] + 1


def test_time_interleaved_samples_hold_every_repeat_in_order(monkeypatch):
    """With ``samples``, each arm's list has one wall time per repeat, in order: a call that
    takes 10 ms more on each repeat (on a fake clock, so a loaded machine cannot blur it) gives
    10, 20, 30, 40 ms whichever arm went first."""
    import time

    import torch

    clock = {"now": 0.0}
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    n = {"a": 0}

    def growing() -> None:
        n["a"] += 1
        clock["now"] += 0.01 * n["a"]

    samples: dict[str, list[float]] = {}
    time_interleaved({"a": growing, "b": lambda: None}, torch.device("cpu"), warmup=0,
                     repeats=4, samples=samples)
    assert samples["a"] == pytest.approx([10.0, 20.0, 30.0, 40.0])
    assert samples["b"] == [0.0] * 4


def test_paired_ratio_quartiles_against_a_sorted_list_by_hand():
    """Ratios 1.0, 1.1, 1.3, 2.0 (given out of order): inclusive quartiles are the values at
    positions 0.75, 1.5 and 2.25 of the sorted list, interpolated linearly."""
    num = [13.0, 10.0, 22.0, 20.0]
    den = [10.0, 10.0, 20.0, 10.0]  # ratios 1.3, 1.0, 1.1, 2.0
    q1, q2, q3 = paired_ratio_quartiles(num, den)
    assert q1 == pytest.approx(1.0 + 0.75 * 0.1)
    assert q2 == pytest.approx(1.2)
    assert q3 == pytest.approx(1.3 + 0.25 * 0.7)
    assert paired_ratio_quartiles([3.0], [2.0]) == [1.5, 1.5, 1.5]
    with pytest.raises(ValueError, match="equal, non-zero length"):
        paired_ratio_quartiles([1.0, 2.0], [1.0])


def test_peak_allocated_bytes_matches_a_hand_computed_peak():
    """1 MB and 2 MB held (3 MB), 1 MB freed, 0.5 MB more (2.5 MB), all freed: peak 3 MB."""
    import torch

    def toy() -> None:
        a = torch.empty(250_000)  # 1,000,000 bytes
        b = torch.empty(500_000, dtype=torch.float32)  # 2,000,000
        del a
        c = torch.empty(62_500, dtype=torch.float64)  # 500,000
        del b, c

    assert peak_allocated_bytes(toy, torch.device("cpu")) == 3_000_000


def test_peak_allocated_bytes_follows_the_time_order_of_a_random_sequence():
    """Against a plain running sum over the same sequence of allocations and frees; a block that
    existed before the measurement and is freed inside it does not lower the peak."""
    import random

    import torch

    rng = random.Random(0)
    plan = [(rng.randrange(1, 200_000), rng.random() < 0.5) for _ in range(30)]
    old = [torch.empty(300_000)]
    held_sizes: list[int] = []
    expected = held = 0
    for numel, free_one in plan:
        held += 4 * numel
        held_sizes.append(4 * numel)
        expected = max(expected, held)
        if free_one:
            held -= held_sizes.pop(0)

    def run() -> None:
        old.clear()  # allocated before: its free is not seen
        live: list[torch.Tensor] = []
        for numel, free_one in plan:
            live.append(torch.empty(numel))
            if free_one:
                live.pop(0)

    assert peak_allocated_bytes(run, torch.device("cpu")) == expected


@pytest.mark.slow
def test_quick_benchmarks_report_every_key(tmp_path):
    out = tmp_path / "bench.json"
    which = ["loss", "step", "data", "memory", "precision", "epoch"]
    assert cli.main(["bench", *which, "--quick", "--repeats", "1", "--json", str(out),
                     "--note", "two trainings alongside"]) == 0
    result = json.loads(out.read_text())
    for key in TARGETS:
        assert result[key] > 0, key
        assert isinstance(result["targets_met"][key], bool)
    loss = result["loss"]
    assert loss["loss_head_fraction"] == pytest.approx(loss["head_ms"] / loss["step_ms"])
    for name in ("tdsa_vgg16", "tdsa_resnet50", "tdsa_resnet50_widen"):
        step = result["step"][name]
        assert step["ratio"] == pytest.approx(step["tdsa_ms"] / step["ce_ms"])
        assert step["ratio_over_ce_without_mid_tap"] == pytest.approx(
            step["tdsa_ms"] / step["ce_logits_ms"])
        assert step["ce_mid_ms"] > 0
        gflops = step["gflops"]
        assert step["flop_ratio"] == pytest.approx(gflops["tdsa"] / gflops["ce"])
        assert gflops["ce"] > 0 and gflops["tdsa"] >= gflops["ce_mid"] >= gflops["ce"]
        q1, q2, q3 = step["ratio_quartiles"]
        assert 0 < q1 <= q2 <= q3
        cpu = step["cpu_time"]
        assert cpu["ratio"] == pytest.approx(cpu["tdsa_ms"] / cpu["ce_ms"]) and cpu["ce_mid_ms"] > 0
    # the 1x1 adapter's training is the only arithmetic TDSA adds; a trunk-output mid map adds none
    flop_ratios = {name: row["flop_ratio"] for name, row in result["step"].items()
                   if isinstance(row, dict) and "flop_ratio" in row}
    assert flop_ratios["tdsa_vgg16"] == pytest.approx(1.0)
    assert flop_ratios["tdsa_resnet50_widen"] == pytest.approx(1.0)
    assert flop_ratios["tdsa_resnet50"] > 1.0
    assert (result["step_ratio_tdsa_over_ce_resnet50_widen"]
            == result["step"]["tdsa_resnet50_widen"]["ratio"])
    note = result["step"]["where_the_extra_time_goes"]
    vgg = result["step"]["tdsa_vgg16"]["cpu_time"]
    assert f"TDSA - CE = {vgg['tdsa_ms'] - vgg['ce_ms']:.0f} ms" in note
    assert result["note"] == "two trainings alongside"
    assert result["step_ratio_tdsa_over_ce_resnet50"] == result["step"]["tdsa_resnet50"]["ratio"]
    auto = resolve_precision("cpu").label
    assert result["precision"] == result["cpu_precision"]["auto_precision"] == auto
    prec = result["cpu_precision"]
    assert prec["cpu_precision_speedup"] == pytest.approx(prec["fp32_ms"] / prec["auto_ms"])
    assert result["peak_mem_method"].startswith("torch.profiler profile_memory")
    memory = result["memory"]
    assert memory["peak_mem_ratio"] == pytest.approx(memory["tdsa_peak_mb"] / memory["ce_peak_mb"])
    epoch = result["epoch"]
    assert epoch["precision"] == auto and epoch["steps_per_epoch"] == 4  # 16 images, batch 4
    assert result["book_epoch_seconds"] == epoch["book_epoch_seconds"] > 0
    assert {"device", "torch", "settings"} <= set(result)


@pytest.mark.slow
def test_compile_benchmark_reports_its_arithmetic():
    result = run_benchmarks(("compile",), quick=True, repeats=1)
    comp = result["compile"]
    assert result["compile_seconds"] == comp["compile_seconds"] >= 0
    assert comp["compiled_step_ms"] > 0 and comp["eager_step_ms"] > 0
    saved = (comp["book_steps_at_112px"] * (comp["eager_step_ms"] - comp["compiled_step_ms"])
             / 1e3 - comp["book_compiles"] * comp["compile_seconds"])
    assert comp["book_seconds_saved_with_compile"] == pytest.approx(saved)
    assert result["compile_wins_for_book"] == (saved > 0)
    # chapter 4: 2 runs x 16 epochs x 60 steps; chapters 2-3: 8 x 5 steps at a third the cost
    assert comp["book_steps_at_112px"] == pytest.approx(1920 + 40 / 3)


def test_loss_only_selection():
    result = run_benchmarks(("loss",), quick=True, repeats=1)
    assert "loss_head_fraction" in result and "step_ratio_tdsa_over_ce" not in result
    assert result["precision"] == resolve_precision("cpu").label


def test_amp_option_sets_the_precision_and_rejects_a_bad_value(capsys):
    assert run_benchmarks(("loss",), quick=True, repeats=1, amp="none")["precision"] == "fp32"
    assert cli.main(["bench", "loss", "--quick", "--amp", "fp8"]) == 2
    assert "--amp: amp='fp8' is invalid: expected one of" in capsys.readouterr().err


def test_unknown_benchmark_is_a_one_line_error(capsys):
    assert cli.main(["bench", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nope'" in err
    assert "loss, step, data, memory, precision, epoch, compile, all" in err


def test_extra_time_note_splits_the_difference_and_names_an_arithmetic_floor():
    from tdsa.engine.precision import Precision
    from tdsa.experiments.bench.step import extra_time_note

    def row(ce, ce_mid, tdsa, flop_ratio):
        times = {"ce_ms": ce, "ce_mid_ms": ce_mid, "tdsa_ms": tdsa}
        return {"input": 224, "batch": 2, **times, "flop_ratio": flop_ratio,
                "cpu_time": {**times, "ratio": tdsa / ce}}

    step = {"tdsa_vgg16": row(1000.0, 1010.0, 1040.0, 1.0),
            "tdsa_resnet50": row(500.0, 540.0, 550.0, 1.057),
            "tdsa_resnet50_widen": row(400.0, 402.0, 412.0, 1.0)}
    loss = {"head_ms": 30.0, "head_profile_ms": {"aten::_softmax": 9.0}}
    note = extra_time_note(step, loss, Precision("bf16", True))
    assert "CPU time" in note
    assert "TDSA - CE = 40 ms of a 1000 ms CE step (ratio 1.040)" in note
    assert "mid tap's backward 10 ms (1.0% of the CE step) and the loss head 30 ms" in note
    assert "TDSA - CE = 50 ms of a 500 ms CE step (ratio 1.100)" in note
    assert ("On tdsa_resnet50 the mid tap's backward adds 5.7% to the step's convolution and "
            "matmul arithmetic (at any batch size) and measures 8.0% of the CE step") in note
    assert "tdsa_resnet50_widen (input 224, batch 2): TDSA - CE = 12 ms of a 400 ms CE step" in note
    assert "On tdsa_vgg16" not in note and "On tdsa_resnet50_widen" not in note


def test_phase_clock_sums_wall_and_cpu_per_phase_and_times_a_loader():
    """A spinning call counts in both clocks, a sleeping one in wall time only; the timed
    loader counts its batches (and its start) as the data phase and yields them unchanged."""
    import time

    from tdsa.experiments.bench.phases import PhaseClock, TimedBatches

    def spin() -> None:  # 20 ms of this process's CPU time, however busy the machine is
        end = time.process_time() + 0.02
        while time.process_time() < end:
            pass

    clock = PhaseClock()
    clock.timed("spin", spin)()
    clock.timed("spin", spin)()
    with clock.phase("sleep"):
        time.sleep(0.02)
    wall, cpu = clock.get("spin")
    assert 0.04 <= cpu <= wall + 0.005
    wall, cpu = clock.get("sleep")
    assert wall >= 0.019 and cpu < 0.01
    assert list(TimedBatches([1, 2, 3], clock)) == [1, 2, 3]
    assert clock.get("data")[0] > 0


@pytest.mark.slow
def test_epoch_phases_add_up_to_the_epoch_and_follow_the_options(tmp_path):
    """The breakdown in fp32 without workers: every phase measured, the phases sum to the
    epoch (backward, train_other and other are the remainders), the trainer's rows kept, and
    chapter 4's projection is two runs of the config's 16 epochs."""
    from tdsa.experiments.bench import EPOCH_PHASES

    result = run_benchmarks(("epoch",), quick=True, amp="none", workers=0,
                            data_root=tmp_path / "synthetic")
    epoch = result["epoch"]
    assert epoch["precision"] == "fp32" and epoch["workers"] == 0
    assert result["cpu_kernels"]["aten_capability"]
    assert len(epoch["phases_per_epoch"]) == len(epoch["metrics"]) == 2
    for row in epoch["phases_per_epoch"]:
        for clock in ("wall_s", "cpu_s"):
            total = row["total"][clock]
            assert sum(row[name][clock] for name in EPOCH_PHASES) == pytest.approx(total)
            for name in ("data", "forward", "loss_head", "backward", "optimizer", "eval_val",
                         "eval_test", "checkpoint"):
                assert row[name]["wall_s"] > 0, name
        assert row["trainer_epoch_time"] <= row["total"]["wall_s"]
    assert epoch["phases"] == epoch["phases_per_epoch"][-1]
    assert set(epoch["phase_notes"]) == set(EPOCH_PHASES)
    assert epoch["chapter4_seconds"]["cpu_s"] == pytest.approx(
        2 * 16 * epoch["phases"]["total"]["cpu_s"])
    assert "test_top1" in epoch["metrics"][-1] and "epoch_time" not in epoch["metrics"][-1]
    # the data root was generated once and is reused
    assert (tmp_path / "synthetic" / "tdsa_synthetic.json").is_file()
    again = run_benchmarks(("epoch",), quick=True, amp="none", workers=0,
                           data_root=tmp_path / "synthetic")
    assert again["epoch"]["metrics"] == epoch["metrics"], "same seed, same numbers"
