"""``python -m tdsa ablate --grid G --out runs/ablate/X``: train the missing runs of a grid,
then write its results files (the grid, the runs and the tables are :mod:`tdsa.experiments.grid`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tdsa.errors import ConfigError, TdsaError
from tdsa.experiments.grid import load_grid, recorded_results, run_grid, write_results
from tdsa.provenance import checkout_relative


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tdsa ablate``.
    """
    parser.add_argument("--grid", required=True,
                        help="grid YAML (configs/ablations/X.yaml) or a shipped grid's name "
                             "(ablations/levers)")
    parser.add_argument("--out", required=True, help="runs folder (runs/ablate/X)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the grid's)")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    parser.add_argument("--results", help="results path without suffix (default: results/X)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: tabulate the runs that have finished")
    parser.add_argument("--no-gradcam", action="store_true",
                        help="skip the Grad-CAM baseline (one backward pass per test batch)")
    parser.add_argument("--loc-batch-size", type=int, default=64,
                        help="batch size of the localisation pass (default 64)")


def run(args: argparse.Namespace) -> int:
    """Run ``tdsa ablate``: train the missing runs, then write the results files.
    """
    grid = load_grid(args.grid)
    if args.loc_batch_size < 1:
        raise ConfigError(f"--loc-batch-size must be >= 1, got {args.loc_batch_size}")
    results_path = Path(args.results) if args.results else Path("results") / grid.path.stem
    argv = sys.argv[1:] if sys.argv[1:2] == ["ablate"] else ["ablate", *_argv(args)]
    command = "python -m tdsa " + shlex.join(checkout_relative(a) for a in argv
                                             if a != "--report-only")
    if args.report_only:
        command += "` (runs); tables rewritten from the finished runs with `--report-only"
    recorded = recorded_results(grid, results_path)
    run_grid(grid, args.out, seeds=args.seeds, only=args.only, report_only=args.report_only,
             loc_batch_size=args.loc_batch_size, gradcam=not args.no_gradcam, log=sys.stdout,
             recorded=recorded)
    # The tables cover every finished run of the grid, not only this call's selection.
    seeds = sorted({*grid.seed_order(), *(args.seeds or [])})
    results = run_grid(grid, args.out, seeds=seeds, report_only=True, recorded=recorded)
    if not results:
        raise TdsaError(f"no finished runs under {args.out} for grid {grid.path}")
    csv_path, md_path = write_results(grid, results, results_path, command)
    print(f"wrote {csv_path}, {md_path}, {csv_path.with_suffix('.json')} and "
          f"{results_path / 'configs'}/")
    return 0 if all(r.status == "ok" for r in results) else 1


def _argv(args: argparse.Namespace) -> list[str]:
    """The arguments of ``args`` as a command line (when not run from ``sys.argv``)."""
    argv = ["--grid", str(args.grid), "--out", str(args.out)]
    if args.seeds:
        argv += ["--seeds", *map(str, args.seeds)]
    if args.only:
        argv += ["--only", *args.only]
    if args.results:
        argv += ["--results", str(args.results)]
    if args.report_only:
        argv.append("--report-only")
    if args.no_gradcam:
        argv.append("--no-gradcam")
    return argv
