"""Which code and which machine made a result: :func:`code_version`, recorded in every run's
``summary.json`` and named in the header of every results file, and :func:`cpu_kind`, the CPU
as results headers, benchmarks and the book's build table name it; :func:`checkout_relative`
keeps the machine's folders out of the commands a results file records.
"""

from __future__ import annotations

import contextlib
import platform
import subprocess
from pathlib import Path

from tdsa import __version__

__all__ = ["checkout_relative", "code_version", "cpu_kind", "cpu_name"]

_CHECKOUT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(_CHECKOUT), *args], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def checkout_relative(path: str) -> str:
    """``path`` relative to the git checkout (or worktree) that holds it, when it is an absolute
    path inside one: ``/home/me/tdsa/results/x`` -> ``results/x``; else ``path`` unchanged."""
    given = Path(path)
    if not given.is_absolute():
        return path
    for folder in given.parents:
        if (folder / ".git").exists():
            return given.relative_to(folder).as_posix()
    return path


def code_version() -> str:
    """The code this process runs: ``"commit <sha>"`` in a clean git checkout of the
    repository, ``"commit <sha> + uncommitted changes to tdsa/ or configs/"`` in a modified
    one, else ``"tdsa <version> (not a git checkout)"`` (an installed wheel)."""
    if not (_CHECKOUT / "pyproject.toml").is_file() or _git("rev-parse", "--show-toplevel") \
            != str(_CHECKOUT):
        return f"tdsa {__version__} (not a git checkout)"
    sha = _git("rev-parse", "--short=12", "HEAD")
    if sha is None:
        return f"tdsa {__version__} (not a git checkout)"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "tdsa", "configs")
    return f"commit {sha}" + (" + uncommitted changes to tdsa/ or configs/" if dirty else "")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else :func:`platform.processor`."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_kind() -> str:
    """:func:`cpu_name` and how this process computes bf16: ``"... (native bf16)"``, ``"...
    (no native bf16: fp32)"``, or, for a CPU with AVX-512 BF16 or AMX whose process is capped
    below them (``ATEN_CPU_CAPABILITY`` / ``ONEDNN_MAX_CPU_ISA``), ``"... (bf16 in hardware,
    capped to ... kernels: fp32)"``."""
    import torch

    from tdsa.hardware import cpu_hardware_bf16, cpu_has_native_bf16

    if cpu_has_native_bf16():
        how = "native bf16"
    elif cpu_hardware_bf16():
        how = (f"bf16 in hardware, capped to {torch.backends.cpu.get_cpu_capability()} kernels "
               "by ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA: fp32")
    else:
        how = "no native bf16: fp32"
    return f"{cpu_name()} ({how})"
