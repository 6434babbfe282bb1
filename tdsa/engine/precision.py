"""Which precision a run uses: ``train.amp`` and ``train.channels_last`` resolved for a device,
and the autocast context that computes in it.

``amp: auto`` is bf16 autocast where the hardware computes bf16 natively (a CPU whose oneDNN
reports bf16 support, i.e. AVX-512 BF16 or AMX; a GPU with ``torch.cuda.is_bf16_supported()``),
fp16 with the GradScaler on a GPU without bf16, and fp32 on any other CPU.
``channels_last: auto`` is on on CUDA and wherever bf16 runs on the CPU (measured faster there:
one step of the book's network 355 ms in bf16, 271 ms in bf16 + channels_last), off otherwise.
``amp: fp64`` runs without autocast with float64 parameters and inputs: for numerical checks
(two code paths compared in float64 agree to ~1e-15, whatever the CPU's kernels).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from tdsa.errors import ConfigError
from tdsa.hardware import cpu_has_native_bf16, cuda_has_bf16
from tdsa.validation import check_choice

AMP_CHOICES = ("auto", "none", "fp64", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``amp`` in {bf16, fp16, none, fp64} and the memory format."""

    amp: str
    channels_last: bool

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the parameters and inputs: float64 for ``fp64``, else float32 (the
        autocast modes compute in bf16/fp16 inside :func:`autocast` only)."""
        return torch.float64 if self.amp == "fp64" else torch.float32

    @property
    def label(self) -> str:
        """``bf16+channels_last``, ``fp16``, ``fp32``, ``fp64`` ...: what a run folder records."""
        name = "fp32" if self.amp == "none" else self.amp
        return f"{name}+channels_last" if self.channels_last else name


def resolve_precision(
    device: torch.device | str, amp: str = "auto", channels_last: bool | str = "auto"
) -> Precision:
    """The concrete precision for ``device``: ``amp`` auto/none/bf16/fp16 and ``channels_last``
    true/false/auto (see the module docstring for what auto picks).
    """
    device = torch.device(device)
    check_choice("amp", amp, AMP_CHOICES)
    if channels_last not in (True, False, "auto"):
        raise ConfigError(f"channels_last={channels_last!r} is invalid: expected true, false or "
                          "auto")
    if amp == "auto":
        if device.type == "cuda":
            amp = "bf16" if cuda_has_bf16(device) else "fp16"
        elif device.type == "cpu" and cpu_has_native_bf16():
            amp = "bf16"
        else:
            amp = "none"
    if channels_last == "auto":
        channels_last = device.type == "cuda" or (device.type == "cpu" and amp == "bf16")
    return Precision(amp, bool(channels_last))


def autocast(device: torch.device, amp: str) -> Any:
    """``torch.autocast`` for ``amp`` in {bf16, fp16} on ``device``; a null context for none
    and fp64.
    """
    if amp in ("none", "fp64"):
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
