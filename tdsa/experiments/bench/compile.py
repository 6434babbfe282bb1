"""The compile benchmark: ``torch.compile`` of the book's network, its cost and what it saves
over a CPU book run."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, cast

from tdsa.engine.build import Taps
from tdsa.engine.precision import resolve_precision
from tdsa.experiments.bench.arms import StepArm, book_arm
from tdsa.experiments.bench.timing import time_interleaved

# The book's CPU training (profile cpu): chapter 4 trains two 25-epoch runs of
# configs/synthetic_{tdsa,ce}.yaml; chapters 2 and 3 share one run of 8 epochs x 5 steps at
# 64 px (6 classes x 30 images, batch 32), about a third of a 112-px step each.
BOOK_RUNS = 3
BOOK_SHORT_STEPS_AT_112 = 8 * 5 / 3


def _cold_step_seconds(arm: StepArm) -> float:
    """Seconds of the first call of ``arm`` with an empty inductor cache folder: a cold compile,
    as on a fresh clone (``TORCHINDUCTOR_CACHE_DIR`` is restored afterwards)."""
    old_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            t0 = time.perf_counter()
            arm()
            return time.perf_counter() - t0
        finally:
            if old_cache is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = old_cache


def _book_steps_at_112(cfg: Any) -> float:
    """Training steps of a CPU book run in 112-px steps: chapter 4's two runs of ``cfg`` plus
    chapters 2 and 3's shorter one."""
    steps_per_epoch = cfg.data.synthetic["num_classes"] * cfg.data.synthetic[
        "train_per_class"
    ] // cfg.train.batch_size
    return 2 * cfg.train.epochs * steps_per_epoch + BOOK_SHORT_STEPS_AT_112


def bench_compile(book: dict[str, Any], *, warmup: int, repeats: int) -> dict[str, Any]:
    """``torch.compile`` of the book's network (the trainer's ``(logits, mid, high)`` module)
    on the CPU in the auto precision: compile time (first compiled step minus an eager step)
    and step time eager vs compiled, and whether a whole CPU book run (chapter 4's two runs plus
    chapters 2 and 3's shorter one, each compiling once) is faster with compile included. The
    count favours compile: each run also compiles its eval graph (and the last, smaller batch)."""
    import torch._dynamo

    precision = resolve_precision("cpu")
    eager = book_arm(book, precision)
    model, x, y = eager.model, eager.x, eager.y
    torch._dynamo.reset()
    taps = cast(torch.nn.Module, torch.compile(Taps(model)))  # compile returns a callable
    compiled = StepArm(model, "tdsa", x, y, precision, taps=taps)
    first = _cold_step_seconds(compiled)
    ms = time_interleaved(
        {"eager": eager, "compiled": compiled}, torch.device("cpu"), warmup=warmup, repeats=repeats
    )
    compile_s = max(first - ms["eager"] / 1e3, 0.0)
    book_steps = _book_steps_at_112(book["config"])
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
