"""``python -m tdsa bench [loss|step|data|memory|precision|epoch|compile ...] [--json P]``: run
the benchmarks, print each target's figure and write them all to a JSON file (the benchmarks
and their targets are :mod:`tdsa.experiments.bench`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from tdsa.errors import ConfigError
from tdsa.experiments.bench import BENCHES, EPOCH_PHASES, STEP_NETWORKS, TARGETS, run_benchmarks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tdsa bench``.
    """
    parser.add_argument(
        "which",
        nargs="*",
        metavar="BENCH",
        help=f"benchmarks to run, from {', '.join(BENCHES)} (default: all)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--repeats", type=int, help="timed repeats per arm (median is reported)")
    parser.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: torch's own choice)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per arm first")
    parser.add_argument(
        "--amp",
        default="auto",
        help="precision of the loss/step/memory benchmarks: auto (default), none, bf16, fp16",
    )
    parser.add_argument(
        "--channels-last",
        default="auto",
        choices=("auto", "true", "false"),
        help="memory format of the same benchmarks (auto: as training resolves it)",
    )
    parser.add_argument(
        "--workers", type=int,
        help="epoch: loader worker processes (default: the config's data.workers; 0 counts "
             "decoding in this process's CPU time)",
    )
    parser.add_argument(
        "--data-root", type=Path,
        help="epoch: the synthetic dataset's root, generated there when missing and reused "
             "after (default: a temporary folder, generated each time)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny shapes: checks that the benchmarks run, numbers mean nothing",
    )
    parser.add_argument(
        "--note",
        help="free text stored as 'note' in the results (for example what else ran meanwhile)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``tdsa bench``: the chosen benchmarks, their summary on stdout, the JSON file.
    """
    which = _selection(args.which)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_benchmarks(
        which,
        device=args.device,
        quick=args.quick,
        repeats=args.repeats,
        warmup=args.warmup,
        amp=args.amp,
        channels_last={"true": True, "false": False}.get(args.channels_last, "auto"),
        workers=args.workers,
        data_root=args.data_root,
    )
    if sys.argv[1:2] == ["bench"]:  # run from the command line (not cli.main in a test)
        result["command"] = "python -m tdsa " + shlex.join(sys.argv[1:])
    if args.note:
        result["note"] = args.note
    _print_summary(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _selection(names: list[str]) -> tuple[str, ...]:
    """The benchmarks named on the command line, in order and once each (none or ``all``:
    every one); an unknown name is a :class:`~tdsa.errors.ConfigError`."""
    unknown = sorted(set(names) - {*BENCHES, "all"})
    if unknown:
        raise ConfigError(
            f"unknown benchmark {unknown[0]!r}: expected one of {', '.join(BENCHES)}, all"
        )
    return BENCHES if not names or "all" in names else tuple(dict.fromkeys(names))


def _print_summary(result: dict[str, Any]) -> None:
    """Each measured target with its bound and verdict, then the CPU-time ratios, the memory
    method and the book's epoch and compile figures that were measured."""
    for key, (op, bound) in TARGETS.items():
        if key in result:
            status = "ok" if result["targets_met"][key] else "MISSED"
            print(f"{key:34s} {result[key]:8.4f}   target {op} {bound}   {status}")
    for name, *_ in STEP_NETWORKS:
        row = result.get("step", {}).get(name, {})
        if "ratio_quartiles" in row:
            q1, q2, q3 = row["ratio_quartiles"]
            print(f"{name + ' ratio, per repeat':34s} {q2:8.4f}   quartiles {q1:.4f} - {q3:.4f}")
        if row.get("cpu_time"):
            print(f"{name + ' ratio, CPU time':34s} {row['cpu_time']['ratio']:8.4f}")
    for key in ("peak_mem_method", "book_epoch_seconds", "compile_seconds", "compiled_step_ms"):
        if key in result:
            print(f"{key:34s} {result[key]}")
    if "epoch" in result:
        _print_phases(result["epoch"])
    if "compile" in result:
        print(f"{'compile for the book':34s} {result['compile']['arithmetic']}")


def _print_phases(epoch: dict[str, Any]) -> None:
    """The last epoch's phases: wall and CPU seconds and each one's share of the CPU time."""
    phases = epoch["phases"]
    total = phases["total"]
    print(f"epoch {phases['epoch']} ({epoch['precision']}, {epoch['threads']} thread(s), "
          f"workers {epoch['workers']}): wall s, CPU s, share of CPU")
    for name in (*EPOCH_PHASES, "total"):
        wall, cpu = phases[name]["wall_s"], phases[name]["cpu_s"]
        share = cpu / total["cpu_s"] if total["cpu_s"] > 0 else float("nan")
        print(f"  {name:16s} {wall:8.2f} {cpu:8.2f} {share:7.1%}")
