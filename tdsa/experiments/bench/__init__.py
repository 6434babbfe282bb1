"""Benchmarks: loss, step, data, memory, precision, epoch, compile (:func:`run_benchmarks`; the
command ``python -m tdsa bench`` is :mod:`tdsa.commands.bench`). One module per benchmark
(``loss``, ``step``, ``data``, ``memory``, ``cpu_precision``, ``epoch`` with the epoch's
``phases``, ``compile``); ``timing`` holds how they time, ``arms`` what they time, ``targets``
the bounds and ``run`` runs the chosen ones into one result.

Every comparison runs side by side in one process, with warm-up and the median of several
timed repeats, arms interleaved so that a noisy shared machine slows both alike. Each step runs
in the precision ``train.amp: auto`` / ``train.channels_last: auto`` resolve to on the device
(:func:`tdsa.engine.precision.resolve_precision`; on a CPU with native bf16: bf16 autocast +
channels_last). The CE arm of every step comparison runs the same network the TDSA arm does
(both taps, as the trainer computes them for a CE config), so the ratio is the cost of the loss.
Memory is the peak of the bytes allocated by tensors during one training step (CPU: the
allocator events of ``torch.profiler`` with ``profile_memory=True``, summed in time order; CUDA:
``torch.cuda.max_memory_allocated``). Targets (issues "Evidence beyond the paper" and "Speed"):
``loss_head_fraction`` <= 0.03, ``step_ratio_tdsa_over_ce`` <= 1.05 on both networks,
``data_speedup_over_pil`` >= 1.5, ``peak_mem_ratio`` <= 1.15, ``cpu_precision_speedup`` >= 2.
"""

from __future__ import annotations

from tdsa.experiments.bench.compile import bench_compile
from tdsa.experiments.bench.cpu_precision import bench_precision
from tdsa.experiments.bench.data import bench_data
from tdsa.experiments.bench.epoch import bench_epoch, epoch_phases
from tdsa.experiments.bench.loss import bench_loss
from tdsa.experiments.bench.memory import bench_memory, peak_allocated_bytes
from tdsa.experiments.bench.phases import EPOCH_PHASES, PhaseClock
from tdsa.experiments.bench.run import BENCHES, cpu_kernels, run_benchmarks
from tdsa.experiments.bench.step import STEP_NETWORKS, bench_step
from tdsa.experiments.bench.targets import TARGETS
from tdsa.experiments.bench.timing import count_flops, paired_ratio_quartiles, time_interleaved

__all__ = [
    "BENCHES",
    "EPOCH_PHASES",
    "STEP_NETWORKS",
    "TARGETS",
    "PhaseClock",
    "bench_compile",
    "bench_data",
    "bench_epoch",
    "bench_loss",
    "bench_memory",
    "bench_precision",
    "bench_step",
    "count_flops",
    "cpu_kernels",
    "epoch_phases",
    "paired_ratio_quartiles",
    "peak_allocated_bytes",
    "run_benchmarks",
    "time_interleaved",
]
