"""Benchmarks: loss, step, data, memory, precision, epoch, compile (:func:`run_benchmarks`; the
command ``python -m tdsa bench`` is :mod:`tdsa.commands.bench`).

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

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from tdsa.engine.allocator import keep_freed_memory
from tdsa.engine.build import Taps
from tdsa.engine.precision import (
    Precision,
    autocast,
    cpu_hardware_bf16,
    cpu_has_native_bf16,
    resolve_precision,
)
from tdsa.errors import ConfigError
from tdsa.losses import TDSALoss
from tdsa.models import create_model
from tdsa.models.base import TdsaNet
from tdsa.provenance import cpu_name

BENCHES = ("loss", "step", "data", "memory", "precision", "epoch", "compile")
TARGETS = {
    "loss_head_fraction": ("<=", 0.03),
    "step_ratio_tdsa_over_ce": ("<=", 1.05),
    "step_ratio_tdsa_over_ce_resnet50": ("<=", 1.05),
    "data_speedup_over_pil": (">=", 1.5),
    "peak_mem_ratio": ("<=", 1.15),
    "cpu_precision_speedup": (">=", 2.0),
}
BOOK_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "synthetic_tdsa.yaml"
# The book's CPU training (profile cpu): chapter 4 trains two 25-epoch runs of
# configs/synthetic_{tdsa,ce}.yaml; chapters 2 and 3 share one run of 8 epochs x 5 steps at
# 64 px (6 classes x 30 images, batch 32), about a third of a 112-px step each.
BOOK_RUNS = 3
BOOK_SHORT_STEPS_AT_112 = 8 * 5 / 3
PEAK_MEM_METHOD = {
    "cpu": "torch.profiler profile_memory: running sum of allocator events, max over one step",
    "cuda": "torch.cuda.max_memory_allocated over one step (after reset_peak_memory_stats)",
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: Mapping[str, Callable[[], None]],
    device: torch.device,
    *,
    warmup: int,
    repeats: int,
    cpu_ms: dict[str, float] | None = None,
    samples: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """Median wall time (ms) of each function after warm-up, calls interleaved A B, B A, A B ...
    (the order flips every repeat so that neither arm always runs first). A dict passed as
    ``cpu_ms`` also receives each function's median process CPU time (ms) over the same calls:
    on a CPU shared with other work it counts only the time this process ran, where wall time
    also counts the time it waited for a core. A dict passed as ``samples`` receives every
    repeat's wall time (ms) per function, in repeat order (for :func:`paired_ratio_quartiles`).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    cpu_times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else reversed(names):
            fn = fns[name]
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
            cpu_times[name].append((time.process_time() - c0) * 1e3)
    if cpu_ms is not None:
        cpu_ms.update({name: statistics.median(ts) for name, ts in cpu_times.items()})
    if samples is not None:
        samples.update(times)
    return {name: statistics.median(ts) for name, ts in times.items()}


def paired_ratio_quartiles(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """First quartile, median and third quartile of the per-repeat ratios ``num[i] / den[i]``:
    two arms timed side by side in each repeat share that repeat's machine load, so the spread
    of their ratio shows how far a single ratio of medians can be trusted."""
    if len(num) != len(den) or not num:
        raise ValueError(f"paired samples of equal, non-zero length expected: got {len(num)} "
                         f"and {len(den)}")
    ratios = sorted(a / b for a, b in zip(num, den, strict=True))
    if len(ratios) == 1:
        return ratios * 3
    q1, q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return [q1, q2, q3]


class _StepArm:
    """One training step (forward, loss, backward, optimiser update) in ``precision``.

    ``mode``: ``tdsa`` (the TDSA loss on both taps), ``ce`` (cross-entropy on the logits of the
    same network: ``forward_features`` computes both taps, as the trainer does for a CE
    config), ``ce_mid`` (``ce`` plus ``0 * sum(mid)``: the mid tap's backward runs, as in
    ``tdsa``, without the loss head) or ``ce_logits`` (cross-entropy through ``model(x)``,
    which skips the mid tap).
    """

    def __init__(
        self,
        model: TdsaNet,
        mode: str,
        x: torch.Tensor,
        y: torch.Tensor,
        precision: Precision,
        taps: torch.nn.Module | None = None,
    ):
        self.model, self.mode, self.x, self.y, self.precision = model, mode, x, y, precision
        self.taps = taps if taps is not None else Taps(model)
        self.device = x.device
        self.criterion = TDSALoss(model.num_classes, xi_mid=model.xi[0], xi_high=model.xi[1])
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        self.generator = torch.Generator(device=self.device).manual_seed(0)

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision.amp):
            if self.mode == "ce_logits":
                loss = F.cross_entropy(self.model(self.x), self.y)
            else:
                logits, mid, high = self.taps(self.x)
                if self.mode == "ce":
                    loss = F.cross_entropy(logits, self.y)
                elif self.mode == "ce_mid":
                    loss = F.cross_entropy(logits, self.y) + 0.0 * mid.float().sum()
                else:
                    loss = self.criterion(logits, mid, high, self.y, generator=self.generator)[
                        "total"
                    ]
        loss.backward()
        self.opt.step()


def _model_and_batch(
    name: str,
    num_classes: int,
    size: int,
    batch: int,
    device: torch.device,
    precision: Precision,
    **kw: Any,
) -> tuple[TdsaNet, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model(name, num_classes, input_size=size, **kw).to(device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), device=device)
    return model, x, y


def bench_loss(
    device: torch.device,
    precision: Precision,
    *,
    num_classes: int,
    size: int,
    batch: int,
    warmup: int,
    repeats: int,
) -> dict[str, Any]:
    """The loss head alone (gate + both channel-constraint stages + CE, forward + backward) vs a
    full ``tdsa_vgg16`` TDSA training step on the same shapes, both in ``precision``."""
    model, x, y = _model_and_batch("tdsa_vgg16", num_classes, size, batch, device, precision)
    with torch.no_grad(), autocast(device, precision.amp):
        feats = model.forward_features(x)
        logits = model.forward_head(feats["high"])
    mid0, high0, logits0 = feats["mid"].detach(), feats["high"].detach(), logits.detach()
    criterion = TDSALoss(num_classes)
    generator = torch.Generator(device=device).manual_seed(0)

    def head() -> None:
        mid = mid0.clone().requires_grad_()
        high = high0.clone().requires_grad_()
        lg = logits0.clone().requires_grad_()
        with autocast(device, precision.amp):
            out = criterion(lg, mid, high, y, generator=generator)
        out["total"].backward()

    step = _StepArm(model, "tdsa", x, y, precision)
    ms = time_interleaved({"head": head, "step": step}, device, warmup=warmup, repeats=repeats)
    return {
        "shapes": {"mid": list(mid0.shape), "high": list(high0.shape)},
        "head_ms": ms["head"],
        "step_ms": ms["step"],
        "loss_head_fraction": ms["head"] / ms["step"],
        "head_profile_ms": profile_ops(head, device),
    }


def profile_ops(fn: Callable[[], Any], device: torch.device, top: int = 8) -> dict[str, float]:
    """Self time (ms) of the ``top`` most expensive operators of one call of ``fn``
    (``torch.profiler``; CUDA time on a GPU, CPU time otherwise)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    rows = sorted(prof.key_averages(), key=lambda e: getattr(e, attr), reverse=True)[:top]
    return {e.key: getattr(e, attr) / 1e3 for e in rows}


# The step benchmark's networks: (key in the JSON, registered name, its options, which sizes).
# tdsa_resnet50 is the 1x1-adapter port (pretrained layer3/layer4 kept); its widened variant's
# stages emit the class channels themselves, so its mid map is a trunk output, as in VGG16.
STEP_NETWORKS: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("tdsa_vgg16", "tdsa_vgg16", {}, "vgg"),
    ("tdsa_resnet50", "tdsa_resnet50", {}, "resnet"),
    ("tdsa_resnet50_widen", "tdsa_resnet50", {"adapter": "widen"}, "resnet"),
)


def bench_step(
    device: torch.device,
    precision: Precision,
    *,
    num_classes: int,
    size: int,
    batch: int,
    warmup: int,
    repeats: int,
    resnet_size: int,
    resnet_batch: int,
) -> dict[str, Any]:
    """Training-step time CE vs TDSA on the same network, for each of :data:`STEP_NETWORKS`:
    ``tdsa_vgg16``, ``tdsa_resnet50`` (1x1 adapters) and ``tdsa_resnet50_widen`` (widened
    stages, ``adapter="widen"``). ``ce_logits_ms`` is CE through ``model(x)``, which skips the
    mid adapter: ``tdsa_ms / ce_logits_ms`` is what the comparison measured before both arms ran
    the same network, the mid adapter's forward and backward counted against the loss.
    ``ce_mid_ms`` (CE plus the mid tap's backward, no loss head) splits TDSA - CE into the mid
    tap's backward and the loss head. On the CPU ``cpu_time`` repeats the figures in process CPU
    time over the same calls (see :func:`time_interleaved`). ``gflops`` counts each arm's
    convolution and matmul arithmetic (:func:`count_flops`): ``flop_ratio`` - 1 is what the TDSA
    step adds to it (the mid tap's backward), which no cheaper loss head removes.
    ``ratio_quartiles`` are those of the per-repeat TDSA/CE ratios
    (:func:`paired_ratio_quartiles`): the noise a ratio carries on a shared machine."""
    out: dict[str, Any] = {}
    sizes = {"vgg": (size, batch), "resnet": (resnet_size, resnet_batch)}
    for name, model_name, options, family in STEP_NETWORKS:
        sz, bs = sizes[family]
        model, x, y = _model_and_batch(model_name, num_classes, sz, bs, device, precision,
                                       **options)
        modes = ("ce", "ce_mid", "tdsa", "ce_logits")
        arms = {mode: _StepArm(model, mode, x, y, precision) for mode in modes}
        cpu: dict[str, float] = {}
        raw: dict[str, list[float]] = {}
        on_cpu = device.type == "cpu"
        ms = time_interleaved(
            arms, device, warmup=warmup, repeats=repeats, cpu_ms=cpu if on_cpu else None,
            samples=raw,
        )
        out[name] = {
            "input": sz,
            "batch": bs,
            "ce_ms": ms["ce"],
            "ce_mid_ms": ms["ce_mid"],
            "tdsa_ms": ms["tdsa"],
            "ce_logits_ms": ms["ce_logits"],
            "ratio": ms["tdsa"] / ms["ce"],
            "ratio_quartiles": paired_ratio_quartiles(raw["tdsa"], raw["ce"]),
            "ratio_over_ce_without_mid_tap": ms["tdsa"] / ms["ce_logits"],
        }
        flops = {mode: count_flops(arms[mode]) for mode in ("ce", "ce_mid", "tdsa")}
        out[name]["gflops"] = {mode: v / 1e9 for mode, v in flops.items()}
        out[name]["flop_ratio"] = flops["tdsa"] / flops["ce"]
        if cpu:
            out[name]["cpu_time"] = {
                "ce_ms": cpu["ce"],
                "ce_mid_ms": cpu["ce_mid"],
                "tdsa_ms": cpu["tdsa"],
                "ratio": cpu["tdsa"] / cpu["ce"],
            }
    out["step_ratio_tdsa_over_ce"] = out["tdsa_vgg16"]["ratio"]
    out["step_ratio_tdsa_over_ce_resnet50"] = out["tdsa_resnet50"]["ratio"]
    out["step_ratio_tdsa_over_ce_resnet50_widen"] = out["tdsa_resnet50_widen"]["ratio"]
    out["note"] = (
        "ce_ms: cross-entropy on the same network (both taps computed, as the trainer runs a CE "
        "config); ce_mid_ms: the same plus 0 * sum(mid), so that the mid tap's backward runs "
        "as in the TDSA arm, without the loss head; ce_logits_ms: cross-entropy through "
        "model(x), which skips the mid tap (the bench's earlier CE arm). The mid tap's forward "
        "costs little; its backward (on tdsa_resnet50 the 1x1 adapter 1024 -> K*xi_mid + BN and "
        "the gradient it sends into layer3; on tdsa_vgg16 and tdsa_resnet50_widen, whose mid "
        "map is a trunk output, only a sum of gradients) runs only in the TDSA arm, whose "
        "auxiliary terms train it. cpu_time (CPU runs): the same calls in process CPU time, "
        "which a machine shared with other work disturbs less than wall time; "
        "ratio_quartiles: quartiles of the per-repeat TDSA/CE ratios (the two arms' calls of "
        "one repeat run back to back), the spread a single ratio of medians carries"
    )
    return out


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of the convolutions and matmuls in one call of ``fn``
    (``torch.utils.flop_counter``; elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _mid_share(row: dict[str, Any]) -> float:
    """The mid tap's backward as a fraction of the CE step (CPU time where measured)."""
    times = row.get("cpu_time", row)
    return (times["ce_mid_ms"] - times["ce_ms"]) / times["ce_ms"]


def _extra_time_note(step: dict[str, Any], loss: dict[str, Any], precision: Precision) -> str:
    """Where TDSA - CE goes, from the step and loss benchmarks' own figures (process CPU time
    where measured, else wall time)."""
    clock = "CPU time" if "cpu_time" in step["tdsa_vgg16"] else "wall time"
    bound = TARGETS["step_ratio_tdsa_over_ce"][1]
    parts = []
    for name, *_ in STEP_NETWORKS:
        row = step[name].get("cpu_time", step[name])
        parts.append(
            f"{name} (input {step[name]['input']}, batch {step[name]['batch']}): TDSA - CE = "
            f"{row['tdsa_ms'] - row['ce_ms']:.0f} ms of a {row['ce_ms']:.0f} ms CE step "
            f"(ratio {row['tdsa_ms'] / row['ce_ms']:.3f}), of which the mid tap's backward "
            f"{row['ce_mid_ms'] - row['ce_ms']:.0f} ms "
            f"({_mid_share(step[name]):.1%} of the CE step) and the "
            f"loss head {row['tdsa_ms'] - row['ce_mid_ms']:.0f} ms; convolution and matmul "
            f"arithmetic TDSA/CE {step[name]['flop_ratio']:.3f}"
        )
    ops = ", ".join(f"{k} {v:.0f} ms" for k, v in list(loss["head_profile_ms"].items())[:5])
    return (
        f"{precision.label}, {clock}: " + "; ".join(parts) + ". The loss head alone at "
        f"tdsa_vgg16's shapes takes {loss['head_ms']:.0f} ms (wall), its largest operators "
        f"{ops}. It runs block by block in buffers that stay in the cache, with no full-size "
        "float32 temporary and nothing large saved for the backward; what it still costs is "
        "the softmax's exp over every element twice (the backward recomputes it rather than "
        "keep a full-size float32 map), the first-maximum one-hot of each class group (ties "
        "go to the first channel), and for channels_last features one transposing copy of the "
        "features per pass and one of the gradient, into the [K, xi, H*W] order in which the "
        "maximum over a group vectorises. The mid tap's backward is the price of training the "
        "mid tap at all, which the CE arm does not do: on tdsa_resnet50 the 1x1 adapter "
        "1024 -> K*xi_mid + BN (its convolution's input and weight gradients at the mid "
        "resolution) and the gradient it adds into layer3; on tdsa_vgg16 (serial stages, the "
        "mid map is conv4_3's own output) and tdsa_resnet50_widen (layer3 itself emits the "
        "class channels) only the sum of two gradients. That part is the "
        "network's, not the loss's: a cheaper loss cannot remove it"
        + "".join(
            f". On {name} the mid tap's backward adds {step[name]['flop_ratio'] - 1:.1%} to the "
            "step's convolution and matmul arithmetic (at any batch size) and measures "
            f"{_mid_share(step[name]):.1%} of the CE step here: more than the "
            f"{bound - 1:.0%} the target allows, so with this network the TDSA/CE ratio cannot "
            f"reach {bound}, whatever the loss costs"
            for name, *_ in STEP_NETWORKS
            if step[name]["flop_ratio"] > bound
        )
    )


def peak_allocated_bytes(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak bytes held by tensors allocated while ``fn()`` runs, above what was held before it
    (CPU: ``torch.profiler`` allocator events summed in time order, the running maximum; CUDA:
    ``max_memory_allocated`` minus ``memory_allocated`` at the start).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    )
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak


def bench_memory(
    device: torch.device, precision: Precision, *, num_classes: int, size: int, batch: int
) -> dict[str, Any]:
    """Peak tensor memory of a TDSA step vs a CE step on ``tdsa_vgg16`` (same network), each
    measured by :func:`peak_allocated_bytes` on a step after a warm-up step (so the optimiser's
    state already exists), its gradients freed just before (so that every block the step frees
    was allocated inside the measurement)."""
    peaks: dict[str, int] = {}
    for mode in ("ce", "tdsa"):
        model, x, y = _model_and_batch("tdsa_vgg16", num_classes, size, batch, device, precision)
        arm = _StepArm(model, mode, x, y, precision)
        arm()
        arm.opt.zero_grad(set_to_none=True)
        peaks[mode] = peak_allocated_bytes(arm, device)
        del model, arm, x, y
    return {
        "method": PEAK_MEM_METHOD[device.type],
        "ce_peak_mb": peaks["ce"] / 2**20,
        "tdsa_peak_mb": peaks["tdsa"] / 2**20,
        "peak_mem_ratio": peaks["tdsa"] / peaks["ce"],
    }


def _book_setup(quick: bool) -> dict[str, Any]:
    """The book's default network and batch (configs/synthetic_tdsa.yaml); tiny when quick."""
    from tdsa.config import load_config

    if not BOOK_CONFIG.is_file():
        raise ConfigError(
            f"{BOOK_CONFIG}: not found (the book benchmarks read the repository's configs/)"
        )
    cfg = load_config(BOOK_CONFIG)
    setup = {
        "config": cfg,
        "name": cfg.model.name,
        "num_classes": int(cfg.data.synthetic["num_classes"]),
        "size": cfg.data.image_size,
        "batch": cfg.train.batch_size,
        "options": dict(cfg.model.options),
        "xi": tuple(cfg.model.xi),
    }
    if quick:
        setup.update(num_classes=4, size=32, batch=2)
    return setup


def _book_arm(book: dict[str, Any], precision: Precision) -> _StepArm:
    model, x, y = _model_and_batch(
        book["name"],
        book["num_classes"],
        book["size"],
        book["batch"],
        torch.device("cpu"),
        precision,
        xi=book["xi"],
        **book["options"],
    )
    return _StepArm(model, "tdsa", x, y, precision)


def bench_precision(book: dict[str, Any], *, warmup: int, repeats: int) -> dict[str, Any]:
    """One TDSA training step of the book's network on the CPU in fp32 (contiguous) vs the auto
    precision; ``cpu_precision_speedup`` = fp32 time / auto time (> 1: auto is faster)."""
    auto = resolve_precision("cpu")
    arms = {"fp32": _book_arm(book, Precision("none", False)), "auto": _book_arm(book, auto)}
    ms = time_interleaved(arms, torch.device("cpu"), warmup=warmup, repeats=repeats)
    return {
        "network": {k: book[k] for k in ("name", "num_classes", "size", "batch", "options")},
        "auto_precision": auto.label,
        "fp32_ms": ms["fp32"],
        "auto_ms": ms["auto"],
        "cpu_precision_speedup": ms["fp32"] / ms["auto"],
    }


def bench_epoch(book: dict[str, Any], *, quick: bool, amp: str = "auto",
                channels_last: bool | str = "auto", workers: int | None = None,
                data_root: str | Path | None = None, epochs: int = 2) -> dict[str, Any]:
    """Seconds per training epoch of the book's default regime (configs/synthetic_tdsa.yaml:
    its data, network, batch, optimiser, evaluation of val and test, loader workers) on the
    CPU, in ``amp`` / ``channels_last`` (auto: what training resolves them to), and where it
    goes (:func:`epoch_phases`, wall and process CPU seconds per phase): the last of
    ``epochs`` epochs the trainer runs (the first pays one-off start-up costs). The synthetic
    dataset is generated into a temporary folder, or read from (generated into) ``data_root``.
    ``workers`` replaces ``data.workers`` (0: decoding counted in this process's CPU time).
    ``chapter4_seconds`` projects the last epoch onto chapter 4's two runs of
    ``train.epochs`` epochs each (configs/synthetic_{ce,tdsa}.yaml; the CE arm computes the
    same network, its loss head is cheaper)."""
    from tdsa.config import apply_overrides

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(data_root) if data_root is not None else Path(tmp) / "synthetic"
        overrides = [
            f"data.root={root}",
            f"train.epochs={epochs}",
            "schedule.warmup_epochs=0",
            f"train.amp={amp}",
            f"train.channels_last={str(channels_last).lower()}",
            "runtime.device=cpu",
            "runtime.progress=false",
            f"runtime.threads={torch.get_num_threads()}",
        ]
        if workers is not None:
            overrides.append(f"data.workers={workers}")
        if quick:
            overrides += [
                "data.synthetic={num_classes: 4, train_per_class: 4, val_per_class: 2, "
                "test_per_class: 2, image_size: 48, seed: 0}",
                "data.image_size=32",
                "data.workers=0",
                "train.batch_size=4",
            ]
        cfg = apply_overrides(book["config"], overrides)
        deterministic = torch.are_deterministic_algorithms_enabled()
        try:
            run = epoch_phases(cfg, Path(tmp) / "run")
        finally:  # the trainer switches deterministic algorithms on for the whole process
            torch.use_deterministic_algorithms(deterministic)
    rows, last = run["metrics"], run["phases"][-1]
    synth = cfg.data.synthetic
    book_epochs = book["config"].train.epochs
    return {
        "precision": run["precision"],
        "batch": cfg.train.batch_size,
        "image_size": cfg.data.image_size,
        "workers": cfg.data.workers,
        "threads": torch.get_num_threads(),
        "eval_test": cfg.train.eval_test,
        "first_epoch_seconds": rows[0]["epoch_time"],
        "book_epoch_seconds": rows[-1]["epoch_time"],
        "eval_seconds": rows[-1]["eval_time"],
        "images_per_s": rows[-1]["images_per_s"],
        "steps_per_epoch": synth["num_classes"] * synth["train_per_class"] // cfg.train.batch_size,
        "phases": last,
        "phases_per_epoch": run["phases"],
        "phase_notes": PHASE_NOTES,
        "chapter4_seconds": {
            clock: 2 * book_epochs * last["total"][clock] for clock in ("wall_s", "cpu_s")
        },
        "metrics": [{k: r[k] for k in r if k not in ("epoch_time", "eval_time", "images_per_s")}
                    for r in rows],
    }


EPOCH_PHASES = ("data", "forward", "loss_head", "backward", "optimizer", "train_other",
                "eval_val", "eval_test", "checkpoint", "metrics_files", "other")
"""The phases of :func:`epoch_phases`, in the order an epoch runs them."""
PHASE_NOTES = {
    "data": "the training loader: sampling, decode, augmentation, collation (in this process "
            "with data.workers=0; with workers, the wait for them and their start)",
    "forward": "the network's forward (both taps and the head)",
    "loss_head": "the loss (cross-entropy and, where weighted, the TDSA terms), forward only",
    "backward": "the backward through loss and network, plus the step's bookkeeping (finite "
                "check, running sums): the step minus every other step phase",
    "optimizer": "the optimiser's update (zeroing the gradients and the schedule's update, "
                 "microseconds, fall in backward)",
    "train_other": "the training epoch minus its steps (loader creation, progress bar, finite "
                   "check reads)",
    "eval_val": "evaluation of the val split (every image)",
    "eval_test": "evaluation of the test split (every image)",
    "checkpoint": "writing last.pt (and best.pt when val improved)",
    "metrics_files": "rewriting metrics.jsonl and metrics.csv",
    "other": "the epoch minus every phase above (the epoch log line, selection)",
}


class PhaseClock:
    """Wall and process CPU seconds summed per named phase (:meth:`phase` as a context
    manager, :meth:`timed` to wrap a callable)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0, time.process_time() - c0)

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return fn(*args, **kwargs)
        return call

    def hook_module(self, name: str, module: torch.nn.Module) -> None:
        """Time every forward call of ``module`` (forward pre- and post-hooks)."""
        start: list[tuple[float, float]] = []
        module.register_forward_pre_hook(
            lambda *_: start.append((time.perf_counter(), time.process_time())))

        def done(*_: Any) -> None:
            t0, c0 = start.pop()
            self.add(name, time.perf_counter() - t0, time.process_time() - c0)

        module.register_forward_hook(done)

    def get(self, name: str) -> tuple[float, float]:
        return self.wall.get(name, 0.0), self.cpu.get(name, 0.0)


class _TimedBatches:
    """A loader whose iterator creation and every ``next`` count as the ``data`` phase."""

    def __init__(self, loader: Any, clock: PhaseClock) -> None:
        self.loader, self.clock = loader, clock

    def __iter__(self) -> Iterator[Any]:
        with self.clock.phase("data"):
            it = iter(self.loader)
        while True:
            with self.clock.phase("data"):
                try:
                    batch = next(it)
                except StopIteration:
                    return
            yield batch


def epoch_phases(cfg: Any, out_dir: Path) -> dict[str, Any]:
    """Train ``cfg`` (every epoch of ``cfg.train.epochs``) into ``out_dir`` through the real
    trainer (:class:`tdsa.engine.trainer.Trainer`, one epoch at a time as :meth:`fit` runs
    them), timing each of :data:`EPOCH_PHASES` in wall and process CPU seconds: hooks on the
    network's training forward and on the loss, the optimiser's step hooks, a timed training
    loader, and timed evaluation, checkpoint and metrics writes. Returns ``precision`` (the
    label the run resolved), ``metrics`` (the trainer's rows) and ``phases``, one dict per
    epoch: ``{phase: {"wall_s", "cpu_s"}}`` plus ``epoch``, ``total`` and the trainer's own
    ``trainer_epoch_time`` and ``trainer_eval_time``. Process CPU time counts this process's
    threads only: with ``data.workers > 0`` the decoding in the workers is not in it."""
    import tdsa.engine.loop as loop_mod
    from tdsa.engine.distributed import init_distributed
    from tdsa.engine.trainer import Trainer
    from tdsa.runfiles import MetricsWriter

    clock = PhaseClock()
    info = init_distributed(cfg.runtime.device)
    trainer = Trainer(cfg, out_dir, info)
    m, data = trainer.model, trainer.data
    clock.hook_module("forward", m.taps)
    clock.hook_module("loss_head", m.criterion)
    opt_start: list[tuple[float, float]] = []
    m.optimizer.register_step_pre_hook(
        lambda *_: opt_start.append((time.perf_counter(), time.process_time())))

    def opt_done(*_: Any) -> None:
        t0, c0 = opt_start.pop()
        clock.add("optimizer", time.perf_counter() - t0, time.process_time() - c0)

    m.optimizer.register_step_post_hook(opt_done)
    loop = trainer.loop
    loop.step = clock.timed("step", loop.step)  # type: ignore[assignment]
    train_loader = loop.loaders.train
    loop.loaders.train = lambda *a: _TimedBatches(train_loader(*a), clock)  # type: ignore
    loop.train = clock.timed("train", loop.train)  # type: ignore[method-assign]
    trainer._save = clock.timed("checkpoint", trainer._save)  # type: ignore[method-assign]
    real_evaluate = loop_mod.evaluate

    def timed_evaluate(model: Any, loader: Any, *args: Any, **kwargs: Any) -> Any:
        split = "eval_val" if loader.dataset is data.val else "eval_test"
        with clock.phase(split):
            return real_evaluate(model, loader, *args, **kwargs)

    (out_dir).mkdir(parents=True, exist_ok=True)
    writer = MetricsWriter(out_dir)
    writer.write = clock.timed("metrics_files", writer.write)  # type: ignore[method-assign]
    phases: list[dict[str, Any]] = []
    loop_mod.evaluate = timed_evaluate
    try:
        for epoch in range(cfg.train.epochs):
            clock.wall.clear()
            clock.cpu.clear()
            with clock.phase("epoch"):
                trainer._epoch(epoch, writer)
            phases.append(_phase_row(clock, trainer.metrics[-1], epoch))
    finally:
        loop_mod.evaluate = real_evaluate
        writer.close()
    return {"precision": trainer.precision.label, "metrics": list(trainer.metrics),
            "phases": phases}


def _phase_row(clock: PhaseClock, metrics: dict[str, Any], epoch: int) -> dict[str, Any]:
    """One epoch's phases from ``clock``: the step minus its parts is ``backward``, the
    training epoch minus its steps ``train_other``, the epoch minus everything ``other``."""
    wall, cpu = dict(clock.wall), dict(clock.cpu)

    def rest(name: str, whole: str, parts: Sequence[str]) -> None:
        wall[name] = wall.get(whole, 0.0) - sum(wall.get(p, 0.0) for p in parts)
        cpu[name] = cpu.get(whole, 0.0) - sum(cpu.get(p, 0.0) for p in parts)

    in_step = ("forward", "loss_head", "optimizer")
    # the data phase runs inside the step (TrainStep draws the batch)
    rest("backward", "step", ("data", *in_step))
    rest("train_other", "train", ("step",))
    rest("other", "epoch", ("train", "eval_val", "eval_test", "checkpoint", "metrics_files"))
    row: dict[str, Any] = {"epoch": epoch + 1}
    for name in EPOCH_PHASES:
        row[name] = {"wall_s": wall.get(name, 0.0), "cpu_s": cpu.get(name, 0.0)}
    row["total"] = {"wall_s": wall["epoch"], "cpu_s": cpu["epoch"]}
    row["trainer_epoch_time"] = metrics["epoch_time"]
    row["trainer_eval_time"] = metrics["eval_time"]
    return row


def bench_compile(book: dict[str, Any], *, warmup: int, repeats: int) -> dict[str, Any]:
    """``torch.compile`` of the book's network (the trainer's ``(logits, mid, high)`` module)
    on the CPU in the auto precision: compile time (first compiled step minus an eager step)
    and step time eager vs compiled, and whether a whole CPU book run (chapter 4's two runs plus
    chapters 2 and 3's shorter one, each compiling once) is faster with compile included. The
    count favours compile: each run also compiles its eval graph (and the last, smaller batch)."""
    import os

    import torch._dynamo

    precision = resolve_precision("cpu")
    eager = _book_arm(book, precision)
    model, x, y = eager.model, eager.x, eager.y
    torch._dynamo.reset()
    taps = cast(torch.nn.Module, torch.compile(Taps(model)))  # compile returns a callable
    compiled = _StepArm(model, "tdsa", x, y, precision, taps=taps)
    # A cold compile, as on a fresh clone: an empty inductor cache folder for the first step.
    old_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            t0 = time.perf_counter()
            compiled()
            first = time.perf_counter() - t0
        finally:
            if old_cache is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = old_cache
    ms = time_interleaved(
        {"eager": eager, "compiled": compiled}, torch.device("cpu"), warmup=warmup, repeats=repeats
    )
    compile_s = max(first - ms["eager"] / 1e3, 0.0)
    cfg = book["config"]
    steps_per_epoch = cfg.data.synthetic["num_classes"] * cfg.data.synthetic[
        "train_per_class"
    ] // cfg.train.batch_size
    book_steps = 2 * cfg.train.epochs * steps_per_epoch + BOOK_SHORT_STEPS_AT_112
    saved = book_steps * (ms["eager"] - ms["compiled"]) / 1e3 - BOOK_RUNS * compile_s
    torch._dynamo.reset()
    return {
        "precision": precision.label,
        "compile_seconds": compile_s,
        "eager_step_ms": ms["eager"],
        "compiled_step_ms": ms["compiled"],
        "book_steps_at_112px": book_steps,
        "book_compiles": BOOK_RUNS,
        "book_seconds_saved_with_compile": saved,
        "compile_wins_for_book": saved > 0,
        "arithmetic": (
            f"{book_steps:.0f} steps x ({ms['eager']:.0f} - {ms['compiled']:.0f}) ms - "
            f"{BOOK_RUNS} x {compile_s:.1f} s compile = {saved:.1f} s"
        ),
    }


def _write_jpegs(root: Path, count: int, size: tuple[int, int], classes: int = 4) -> None:
    """Photo-like JPEGs (smooth gradients, shapes and noise) in ImageFolder layout root/train."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(count):
        base = (np.sin(xx / rng.uniform(20, 60)) + np.cos(yy / rng.uniform(20, 60))) * 60 + 128
        arr = np.stack([base + rng.normal(0, 12, base.shape) for _ in range(3)], axis=-1)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            draw.ellipse(
                (x0, y0, x0 + 40, y0 + 30), fill=tuple(int(v) for v in rng.integers(0, 255, 3))
            )
        folder = root / "train" / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:05d}.jpg", quality=90)
    for c in range(classes):
        (root / "test" / f"class{c}").mkdir(parents=True, exist_ok=True)


def _images_per_second(dataset: Any, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        rates.append(len(dataset) / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_data(*, images: int, source_size: tuple[int, int], repeats: int) -> dict[str, Any]:
    """The data pipeline (decode + augment, one process) in images/s against a plain
    torchvision ``ImageFolder`` + PIL pipeline with the same augmentations."""
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    from tdsa.config import DataConfig
    from tdsa.data import from_config

    plain = {
        ("scratch", 224): T.Compose(
            [
                T.Resize((224, 224)),
                T.RandomCrop(224, padding=4),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize([0.5] * 3, [0.5] * 3),
            ]
        ),
        ("pretrained", 448): T.Compose(
            [
                T.Resize(512),
                T.RandomCrop(448),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        ),
    }
    out: dict[str, Any] = {"source_size": list(source_size), "images": images}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_jpegs(root, images, source_size)
        for (regime, size), transform in plain.items():
            data = DataConfig(dataset="imagefolder", root=str(root), regime=regime,
                              image_size=size, resize=512 if size == 448 else None)
            ours = from_config(data, "train", train=True)
            baseline = ImageFolder(str(root / "train"), transform=transform)
            ours_ips = _images_per_second(ours, repeats)
            base_ips = _images_per_second(baseline, repeats)
            out[f"{regime}_{size}"] = {
                "tdsa_images_per_s": ours_ips,
                "pil_images_per_s": base_ips,
                "speedup": ours_ips / base_ips,
            }
    out["data_speedup_over_pil"] = out["scratch_224"]["speedup"]
    return out


def cpu_kernels() -> dict[str, Any]:
    """Which CPU kernels this process runs: ATen's capability (``ATEN_CPU_CAPABILITY`` caps
    it), ``ONEDNN_MAX_CPU_ISA`` as set, and whether the hardware and the process have native
    bf16 (:func:`tdsa.engine.precision.cpu_has_native_bf16`)."""
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
        step["where_the_extra_time_goes"] = _extra_time_note(step, result["loss"], precision)
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
    book = _book_setup(quick)
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


def _targets_met(result: dict[str, Any]) -> dict[str, bool]:
    """Whether each measured key of :data:`TARGETS` meets its bound."""
    return {
        key: (result[key] <= bound if op == "<=" else result[key] >= bound)
        for key, (op, bound) in TARGETS.items()
        if key in result
    }


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
    result["targets_met"] = _targets_met(result)
    return result
