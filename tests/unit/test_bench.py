"""The benchmark harness runs every benchmark and reports consistent numbers (tiny shapes:
the speed targets themselves are measured by `make bench`, not by unit tests)."""

from __future__ import annotations

import json

import pytest

from tdsa import cli
from tdsa.bench import TARGETS, run_benchmarks, time_interleaved


def test_time_interleaved_alternates_which_arm_goes_first():
    import torch

    calls: list[str] = []
    ms = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                          torch.device("cpu"), warmup=1, repeats=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then AB BA AB
    assert set(ms) == {"a", "b"} and all(v >= 0 for v in ms.values())


@pytest.mark.slow
def test_quick_benchmarks_report_every_key(tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in TARGETS:
        assert result[key] > 0, key
        assert isinstance(result["targets_met"][key], bool)
    loss = result["loss"]
    assert loss["loss_head_fraction"] == pytest.approx(loss["head_ms"] / loss["step_ms"])
    step = result["step"]["tdsa_vgg16"]
    assert step["ratio"] == pytest.approx(step["tdsa_ms"] / step["ce_ms"])
    assert {"device", "torch", "settings"} <= set(result)


def test_loss_only_selection():
    result = run_benchmarks(("loss",), quick=True, repeats=1)
    assert "loss_head_fraction" in result and "step_ratio_tdsa_over_ce" not in result


def test_unknown_benchmark_is_a_one_line_error(capsys):
    assert cli.main(["bench", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nope'" in err and "loss, step, data, memory" in err
