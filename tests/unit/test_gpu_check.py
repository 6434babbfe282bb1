"""``make gpu-check`` without a GPU: the CUDA tests skip with a reason and the benchmarks run
their tiny CPU dry run, so CI proves the script works (the GPU run itself needs a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

from tdsa.commands import gpu_check


def test_gpu_check_dry_run_skips_the_cuda_tests_and_benches_on_the_cpu(
    tmp_path: Path, capsys
) -> None:
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    report = (tmp_path / "gpu-check.txt").read_text()
    assert "no CUDA device (dry run)" in report
    assert "skipped" in report and "needs a CUDA GPU" in report, report[-2000:]
    assert "passed" not in report and "failed" not in report
    result = json.loads((tmp_path / "bench-gpu-dryrun.json").read_text())
    assert result["device"] == "cpu" and result["settings"]["quick"] is True
    for key in ("loss_head_fraction", "step_ratio_tdsa_over_ce",
                "step_ratio_tdsa_over_ce_resnet50", "peak_mem_ratio"):
        assert result[key] > 0, key
    assert "need CUDA" in printed and "tdsa_resnet50 64 px batch 2" in printed
    assert not (tmp_path / "bench-gpu.json").exists(), "a dry run never writes the GPU file"
