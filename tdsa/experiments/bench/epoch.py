"""The epoch benchmark: seconds per epoch of the book's training regime on the CPU, phase by
phase, through the real trainer."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tdsa.experiments.bench.phases import PHASE_NOTES, PhaseClock, TimedBatches, phase_row

if TYPE_CHECKING:
    from tdsa.engine.trainer import Trainer


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
        overrides = _epoch_overrides(root, quick=quick, amp=amp, channels_last=channels_last,
                                     workers=workers, epochs=epochs)
        cfg = apply_overrides(book["config"], overrides)
        deterministic = torch.are_deterministic_algorithms_enabled()
        try:
            run = epoch_phases(cfg, Path(tmp) / "run")
        finally:  # the trainer switches deterministic algorithms on for the whole process
            torch.use_deterministic_algorithms(deterministic)
    return _epoch_summary(cfg, run, book_epochs=book["config"].train.epochs)


def _epoch_overrides(root: Path, *, quick: bool, amp: str, channels_last: bool | str,
                     workers: int | None, epochs: int) -> list[str]:
    """The overrides of the book's config that :func:`bench_epoch` trains: ``epochs`` epochs
    on the CPU without warm-up or progress bar, data in ``root``; tiny data when ``quick``."""
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
    return overrides


def _epoch_summary(cfg: Any, run: dict[str, Any], *, book_epochs: int) -> dict[str, Any]:
    """:func:`bench_epoch`'s result from the trained ``cfg`` and its :func:`epoch_phases`
    ``run``; ``book_epochs`` is the epochs of each of chapter 4's two runs."""
    rows, last = run["metrics"], run["phases"][-1]
    synth = cfg.data.synthetic
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


def epoch_phases(cfg: Any, out_dir: Path) -> dict[str, Any]:
    """Train ``cfg`` (every epoch of ``cfg.train.epochs``) into ``out_dir`` through the real
    trainer (:class:`tdsa.engine.trainer.Trainer`, one epoch at a time as :meth:`fit` runs
    them), timing each of :data:`~tdsa.experiments.bench.phases.EPOCH_PHASES` in wall and
    process CPU seconds: hooks on the network's training forward and on the loss, the
    optimiser's step hooks, a timed training loader, and timed evaluation, checkpoint and
    metrics writes. Returns ``precision`` (the
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
    data = trainer.data
    _instrument(trainer, clock)
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
            phases.append(phase_row(clock, trainer.metrics[-1], epoch))
    finally:
        loop_mod.evaluate = real_evaluate
        writer.close()
    return {"precision": trainer.precision.label, "metrics": list(trainer.metrics),
            "phases": phases}


def _instrument(trainer: Trainer, clock: PhaseClock) -> None:
    """Time ``trainer``'s training phases on ``clock``: hooks on the network's training forward,
    the loss and the optimiser's step; a timed step, training loader, training pass and
    checkpoint write."""
    m = trainer.model
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
    loop.loaders.train = lambda *a: TimedBatches(train_loader(*a), clock)  # type: ignore
    loop.train = clock.timed("train", loop.train)  # type: ignore[method-assign]
    trainer._save = clock.timed("checkpoint", trainer._save)  # type: ignore[method-assign]
