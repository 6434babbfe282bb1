"""``train.amp`` / ``train.channels_last`` resolution: every branch, with the hardware probes
monkeypatched (so the CUDA branches run on a machine without a GPU)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tdsa.engine import precision as prec
from tdsa.engine.precision import Precision, resolve_precision


@pytest.fixture
def cpu_bf16(monkeypatch: pytest.MonkeyPatch):
    def set_(native: bool) -> None:
        monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: native)

    return set_


@pytest.fixture
def cuda_bf16(monkeypatch: pytest.MonkeyPatch):
    def set_(native: bool) -> None:
        monkeypatch.setattr(prec, "cuda_has_bf16", lambda device: native)

    return set_


def test_cpu_with_native_bf16_resolves_auto_to_bf16_channels_last(cpu_bf16) -> None:
    cpu_bf16(True)
    p = resolve_precision("cpu")
    assert p == Precision("bf16", True) and p.label == "bf16+channels_last"


def test_cpu_without_native_bf16_resolves_auto_to_fp32_contiguous(cpu_bf16) -> None:
    cpu_bf16(False)
    p = resolve_precision(torch.device("cpu"), "auto", "auto")
    assert p == Precision("none", False) and p.label == "fp32"


def test_cuda_with_bf16_resolves_auto_to_bf16_channels_last(cuda_bf16, cpu_bf16) -> None:
    cuda_bf16(True)
    cpu_bf16(False)  # the CPU's capability must not matter on CUDA
    assert resolve_precision("cuda:0") == Precision("bf16", True)


def test_cuda_without_bf16_resolves_auto_to_fp16_channels_last(cuda_bf16, cpu_bf16) -> None:
    cuda_bf16(False)
    cpu_bf16(True)
    p = resolve_precision("cuda")
    assert p == Precision("fp16", True) and p.label == "fp16+channels_last"


@pytest.mark.parametrize("native", [True, False])
def test_explicit_values_are_kept_whatever_the_hardware(cpu_bf16, cuda_bf16, native) -> None:
    cpu_bf16(native)
    cuda_bf16(native)
    assert resolve_precision("cpu", "none", False) == Precision("none", False)
    assert resolve_precision("cpu", "fp16", True) == Precision("fp16", True)
    assert resolve_precision("cuda", "none", False) == Precision("none", False)
    assert resolve_precision("cuda", "bf16", False) == Precision("bf16", False)


def test_channels_last_auto_follows_the_resolved_amp_on_the_cpu(cpu_bf16) -> None:
    cpu_bf16(False)
    assert resolve_precision("cpu", "bf16", "auto") == Precision("bf16", True)
    assert resolve_precision("cpu", "none", "auto") == Precision("none", False)
    assert resolve_precision("cpu", "fp16", "auto") == Precision("fp16", False)
    cpu_bf16(True)
    assert resolve_precision("cpu", "none", "auto") == Precision("none", False)
    assert resolve_precision("cpu", "auto", False) == Precision("bf16", False)


def test_bad_values_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"amp='fp8' is invalid: expected one of auto, none, "):
        resolve_precision("cpu", "fp8")
    with pytest.raises(ValueError,
                       match=r"channels_last='yes' is invalid: expected true, false or auto"):
        resolve_precision("cpu", "none", "yes")


def _cpu_flags() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file() or platform.machine() != "x86_64":
        pytest.skip("needs /proc/cpuinfo on x86_64")
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    return cpuinfo.read_text()


def _capped() -> bool:
    """Whether this process runs with the kernels capped below AVX-512 (make test's AVX2 pass)."""
    return (os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith(("AVX2", "SSE"))
            or os.environ.get("ATEN_CPU_CAPABILITY", "").lower() in ("avx2", "default"))


def test_the_real_cpu_probe_agrees_with_cpuinfo() -> None:
    """The probe matches the CPU flags on x86 Linux (AVX-512 BF16 or AMX BF16), unless the
    kernels of this process are capped below AVX-512 (then it says no)."""
    flags = _cpu_flags()
    has_flag = "avx512_bf16" in flags or "amx_bf16" in flags
    assert prec.cpu_has_native_bf16() == (has_flag and not _capped())


@pytest.mark.parametrize("env", [{"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
                                 {"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"ATEN_CPU_CAPABILITY": "avx2"}])
def test_auto_resolves_to_fp32_when_the_kernels_are_capped_at_avx2(env: dict[str, str]) -> None:
    """A CPU with AVX-512 BF16 made to run its AVX2 kernels (either variable, read when torch
    starts) trains in fp32, as a CPU without the instructions would."""
    _cpu_flags()
    code = ("from tdsa.engine.precision import resolve_precision; "
            "print(resolve_precision('cpu').label)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "fp32"


def test_fp64_runs_float64_without_autocast() -> None:
    p = resolve_precision("cpu", "fp64", "auto")
    assert p == Precision("fp64", False) and p.label == "fp64" and p.dtype == torch.float64
    assert resolve_precision("cpu", "none", False).dtype == torch.float32
    assert resolve_precision("cpu", "bf16", False).dtype == torch.float32  # autocast inside
