"""All benchmarks in one call (:func:`run_benchmarks`): the device, the precision and the
shapes, each chosen benchmark's result, and the targets met."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tdsa.engine.allocator import keep_freed_memory
from tdsa.engine.precision import Precision, resolve_precision
from tdsa.errors import ConfigError
from tdsa.experiments.bench.arms import book_setup
from tdsa.experiments.bench.compile import bench_compile
from tdsa.experiments.bench.cpu_precision import bench_precision
from tdsa.experiments.bench.data import bench_data
from tdsa.experiments.bench.epoch import bench_epoch
from tdsa.experiments.bench.loss import bench_loss
from tdsa.experiments.bench.memory import bench_memory
from tdsa.experiments.bench.step import STEP_NETWORKS, bench_step, extra_time_note
from tdsa.experiments.bench.targets import targets_met
from tdsa.hardware import cpu_hardware_bf16, cpu_has_native_bf16
from tdsa.provenance import cpu_name

BENCHES = ("loss", "step", "data", "memory", "precision", "epoch", "compile")
"""The benchmarks :func:`run_benchmarks` knows, in the order it runs them."""


def cpu_kernels() -> dict[str, Any]:
    """Which CPU kernels this process runs: ATen's capability (``ATEN_CPU_CAPABILITY`` caps
    it), ``ONEDNN_MAX_CPU_ISA`` as set, and whether the hardware and the process have native
    bf16 (:func:`tdsa.hardware.cpu_has_native_bf16`)."""
    return {
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
        "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "hardware_bf16": cpu_hardware_bf16(),
        "native_bf16_in_this_process": cpu_has_native_bf16(),
    }


def _resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when there is one, else the CPU), ``cpu`` or ``cuda[:N]``; CUDA asked for
    on a machine without it is a :class:`~tdsa.errors.ConfigError`."""
    dev = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else ("cpu" if device == "auto" else device)
    )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    return dev


def _shapes(
    quick: bool, on_gpu: bool
) -> tuple[dict[str, int], dict[str, int], int, tuple[int, int]]:
    """The network shapes (``tdsa_vgg16``, ``tdsa_resnet50``), the data benchmark's image count
    and source size: tiny with ``quick``, else the published ones (batches sized to the device).
    """
    if quick:
        return ({"num_classes": 4, "size": 64, "batch": 2},
                {"resnet_size": 64, "resnet_batch": 2}, 8, (160, 120))
    return ({"num_classes": 200, "size": 224, "batch": 32 if on_gpu else 8},
            {"resnet_size": 448, "resnet_batch": 16 if on_gpu else 2}, 64, (500, 375))


def _add_step(
    result: dict[str, Any], step: dict[str, Any], precision: Precision, on_gpu: bool
) -> None:
    """Put the step benchmark into ``result``: its ratios at the top level, the note on where
    the extra time goes (when the loss benchmark ran too) and, on a GPU, images per second."""
    result["step"] = step
    for key in ("step_ratio_tdsa_over_ce", "step_ratio_tdsa_over_ce_resnet50",
                "step_ratio_tdsa_over_ce_resnet50_widen"):
        result[key] = step[key]
    if "loss" in result:
        step["where_the_extra_time_goes"] = extra_time_note(step, result["loss"], precision)
    if on_gpu:
        for name, *_ in STEP_NETWORKS:
            row = step[name]
            row["ce_images_per_s"] = row["batch"] / row["ce_ms"] * 1e3
            row["tdsa_images_per_s"] = row["batch"] / row["tdsa_ms"] * 1e3


def _add_book_benches(
    result: dict[str, Any], which: tuple[str, ...], *, quick: bool, warmup: int, repeats: int,
    epoch: dict[str, Any] | None = None,
) -> None:
    """Run the chosen ones of ``precision``, ``epoch`` (with the keyword arguments ``epoch``
    of :func:`bench_epoch`) and ``compile`` (the book's network on the CPU) into ``result``."""
    if not {"precision", "epoch", "compile"} & set(which):
        return
    book = book_setup(quick)
    if "precision" in which:
        result["cpu_precision"] = bench_precision(book, warmup=warmup, repeats=repeats)
        result["cpu_precision_speedup"] = result["cpu_precision"]["cpu_precision_speedup"]
    if "epoch" in which:
        result["epoch"] = bench_epoch(book, quick=quick, **(epoch or {}))
        result["book_epoch_seconds"] = result["epoch"]["book_epoch_seconds"]
    if "compile" in which:
        result["compile"] = bench_compile(book, warmup=warmup, repeats=repeats)
        for key in ("compile_seconds", "compiled_step_ms", "compile_wins_for_book"):
            result[key] = result["compile"][key]


def run_benchmarks(
    which: tuple[str, ...] = BENCHES,
    *,
    device: str = "auto",
    quick: bool = False,
    repeats: int | None = None,
    warmup: int = 1,
    amp: str = "auto",
    channels_last: bool | str = "auto",
    workers: int | None = None,
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """Run the chosen benchmarks and return one JSON-ready dict (the keys of ``TARGETS`` at the
    top level). ``quick`` uses tiny shapes: it exercises the code, its numbers mean nothing.
    ``amp`` (auto, none, bf16, fp16; ``channels_last`` auto follows it as in training) is the
    precision of ``loss``, ``step``, ``memory`` and ``epoch``; ``precision`` and ``compile``
    measure the book's network on the CPU in the auto precision whatever ``device`` and
    ``amp`` are, ``epoch`` on the CPU whatever ``device`` is. ``workers`` (loader processes)
    and ``data_root`` (a synthetic root to reuse) are :func:`bench_epoch`'s.
    """
    dev = _resolve_device(device)
    on_gpu = dev.type == "cuda"
    try:
        precision = resolve_precision(dev, amp, channels_last)
    except ValueError as exc:
        raise ConfigError(f"--amp: {exc}") from None
    shape, resnet, images, source = _shapes(quick, on_gpu)
    reps = repeats or (2 if quick else 6)
    kept = keep_freed_memory()  # as the trainer does (tdsa.engine.build.configure_runtime)
    result: dict[str, Any] = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if on_gpu else cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_kernels": cpu_kernels(),
        "precision": precision.label,
        "freed_memory_kept": kept,
        "settings": {**shape, **resnet, "images": images, "source_size": list(source),
                     "repeats": reps, "warmup": warmup, "quick": quick},
    }
    if "loss" in which:
        result["loss"] = bench_loss(dev, precision, **shape, warmup=warmup, repeats=reps)
        result["loss_head_fraction"] = result["loss"]["loss_head_fraction"]
    if "step" in which:
        step = bench_step(dev, precision, **shape, **resnet, warmup=warmup, repeats=reps)
        _add_step(result, step, precision, on_gpu)
    if "data" in which:
        result["data"] = bench_data(images=images, source_size=source, repeats=reps)
        result["data_speedup_over_pil"] = result["data"]["data_speedup_over_pil"]
    if "memory" in which:
        result["memory"] = bench_memory(dev, precision, **shape)
        result["peak_mem_ratio"] = result["memory"]["peak_mem_ratio"]
        result["peak_mem_method"] = result["memory"]["method"]
    _add_book_benches(result, which, quick=quick, warmup=warmup, repeats=reps,
                      epoch={"amp": amp, "channels_last": channels_last, "workers": workers,
                             "data_root": data_root})
    result["targets_met"] = targets_met(result)
    return result
