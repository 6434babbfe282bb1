"""The phases of a training epoch and the clock that times them (wall and process CPU
seconds per phase)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

EPOCH_PHASES = ("data", "forward", "loss_head", "backward", "optimizer", "train_other",
                "eval_val", "eval_test", "checkpoint", "metrics_files", "other")
"""The phases of :func:`~tdsa.experiments.bench.epoch.epoch_phases`, in the order an epoch runs
them."""
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


class TimedBatches:
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


def phase_row(clock: PhaseClock, metrics: dict[str, Any], epoch: int) -> dict[str, Any]:
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
