"""What this machine computes natively: bf16 on the CPU (and whether this process's kernels
use it) or on a CUDA device. :mod:`tdsa.engine.precision` resolves ``amp: auto`` from it and
:func:`tdsa.provenance.cpu_kind` names it in every results header.
"""

from __future__ import annotations

import platform

import torch

__all__ = ["cpu_hardware_bf16", "cpu_has_native_bf16", "cuda_has_bf16"]


def cpu_hardware_bf16() -> bool:
    """True when the CPU has AVX-512 BF16 or AMX, whatever kernels this process may run."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_has_native_bf16() -> bool:
    """True when the kernels this process runs compute bf16 in hardware: on x86 the CPU has
    AVX-512 BF16 or AMX (oneDNN's own bf16 check also accepts plain AVX-512, where bf16 is
    emulated and not faster) *and* neither kernel family is capped below it
    (``ONEDNN_MAX_CPU_ISA=AVX2`` turns oneDNN's bf16 off, ``ATEN_CPU_CAPABILITY=avx2`` makes
    ATen run its AVX2 kernels): such a process runs fp32, like a CPU without the instructions.
    Elsewhere oneDNN's check (ARM BF16)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
            hardware = cpu_hardware_bf16()
            aten = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
            return bool(hardware and onednn_bf16 and aten)
        return onednn_bf16
    except (AttributeError, RuntimeError):
        return False


def cuda_has_bf16(device: torch.device) -> bool:
    """True when the CUDA device ``device`` supports bf16."""
    with torch.cuda.device(device):
        return bool(torch.cuda.is_bf16_supported())
