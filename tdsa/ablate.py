"""``python -m tdsa ablate``: a grid of loss variants x seeds, trained and tabulated.

A grid file (YAML) names a base config, the seeds, overrides applied to every run and the
variants, each with its own overrides::

    base: configs/synthetic_tdsa.yaml
    seeds: [0, 1, 2]
    note: "anything the results header must say (e.g. a shortened schedule)"
    overrides: [train.epochs=20]
    variants:
      ce: {description: "cross-entropy only", overrides: [loss.alpha_mid=0, ...]}

Each ``(variant, seed)`` trains with :func:`tdsa.engine.train` into ``OUT/<variant>/seed<k>``
(``runtime.seed=k``), then the final-epoch weights (``last.pt``) are scored with
:func:`tdsa.localisation.evaluate_localisation` on the test split. A run whose
``summary.json`` (complete) and ``localisation.json`` exist is not redone, so a killed sweep
continues where it stopped; a run that fails (e.g. a NaN loss) is recorded as failed
(``failed.json``) and shown in the tables, never dropped. The results are
``RESULTS.csv`` (one row per run), ``RESULTS.md`` (mean ± std per variant over seeds) and
``RESULTS/configs/<variant>.yaml`` (the resolved config of each variant); they cover every
finished run of the grid under ``OUT``, whatever ``--only``/``--seeds`` selected to run. Delete a
run's ``failed.json`` to try it again.

Book: chapter 5, *Ablations*.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tdsa.config import Config, apply_overrides, dump_config, load_config
from tdsa.errors import ConfigError, TdsaError
from tdsa.resources import resolve_config

__all__ = [
    "Grid",
    "RunResult",
    "add_arguments",
    "load_grid",
    "markdown_report",
    "report_header",
    "run",
    "run_grid",
    "write_results",
]

SUMMARY_KEYS = ("final_top1", "best_top1", "best_epoch", "epochs")
"""Training numbers copied from each run's ``summary.json`` into the results."""

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class SweepStopped(TdsaError):
    """A run's training was stopped by a signal (its ``last.pt`` is saved): the sweep stops
    and the same command continues it (exit code 130).

    Book: chapter 5, *Ablations*.
    """

    exit_code = 130


@dataclass
class Variant:
    """One arm of a grid: a name, a description and its config overrides.

    Book: chapter 5, *Ablations*.
    """

    name: str
    description: str
    overrides: list[str]


@dataclass
class Grid:
    """A parsed grid file (see the module docstring for the format).

    Book: chapter 5, *Ablations*.
    """

    path: Path
    base: Path
    seeds: list[int]
    overrides: list[str]
    variants: dict[str, Variant]
    note: str = ""

    def config(self, variant: str, seed: int) -> Config:
        """The resolved config of one run (base + grid overrides + variant + seed).

        Book: chapter 5, *Ablations*.
        """
        v = self.variants[variant]
        cfg = load_config(self.base)
        return apply_overrides(cfg, [*self.overrides, *v.overrides, f"runtime.seed={seed}"])


@dataclass
class RunResult:
    """The outcome of one ``(variant, seed)``: ``status`` is ``ok`` or ``failed`` (``error``
    says why); ``values`` holds the training summary numbers, ``seconds`` (training wall
    time), ``loc_seconds`` and every localisation key.

    Book: chapter 5, *Ablations*.
    """

    variant: str
    seed: int
    status: str
    values: dict[str, float] = field(default_factory=dict)
    error: str = ""


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of key=value strings, got {value!r}")
    return list(value)


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file; every variant's config is resolved once, so a bad key or
    value fails here, before anything trains.

    ``path`` is a file or the name of a shipped grid (``ablations/levers``). ``base`` is
    relative to the current directory (like ``--config`` of ``tdsa train``), falling back to
    the grid file's folder, then to the shipped configs (``configs/synthetic_tdsa.yaml``).

    Book: chapter 5, *Ablations*.
    """
    path = resolve_config(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"grid file not found: {path}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the grid ({exc})".replace("\n", " ")) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping with base, seeds, overrides, variants")
    unknown = sorted(set(data) - {"base", "seeds", "overrides", "variants", "note"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"valid keys: base, seeds, overrides, variants, note")
    if not isinstance(data.get("base"), str):
        raise ConfigError(f"{path}: 'base' must be the path of a config YAML, "
                          f"got {data.get('base')!r}")
    base = Path(data["base"])
    if not base.is_file() and (path.parent / base).is_file():
        base = path.parent / base
    if not base.is_file():
        base = resolve_config(base)
    if not base.is_file():
        raise ConfigError(f"{path}: base config {data['base']!r} not found")
    seeds = data.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ConfigError(f"{path}: 'seeds' must be a non-empty list of integers >= 0, "
                          f"got {seeds!r}")
    variants_raw = data.get("variants")
    if not isinstance(variants_raw, Mapping) or not variants_raw:
        raise ConfigError(f"{path}: 'variants' must be a non-empty mapping of name -> "
                          f"{{description, overrides}}")
    variants: dict[str, Variant] = {}
    for name, spec in variants_raw.items():
        name = str(name)
        if not set(name) <= _NAME_CHARS:
            raise ConfigError(f"{path}: variant name {name!r} must use only letters, digits, "
                              f"'_', '-' and '.' (it names a folder)")
        if not isinstance(spec, Mapping) or set(spec) - {"description", "overrides"}:
            raise ConfigError(f"{path}: variant {name!r} must be a mapping with 'description' "
                              f"and 'overrides', got {spec!r}")
        variants[name] = Variant(name, str(spec.get("description", "")),
                                 _string_list(spec.get("overrides"),
                                              f"{path}: variants.{name}.overrides"))
    note = data.get("note", "")
    grid = Grid(path, base, list(seeds), _string_list(data.get("overrides"),
                                                      f"{path}: overrides"),
                variants, "" if note is None else str(note).strip())
    for name in variants:
        try:
            grid.config(name, seeds[0])
        except ConfigError as exc:
            raise ConfigError(f"{path}: variant {name!r}: {exc}") from None
    return grid


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _complete(summary: Mapping[str, Any] | None) -> bool:
    return bool(summary) and summary.get("stopped") is None and (
        summary.get("epochs_completed") == summary.get("epochs"))


def _localise(run_dir: Path, batch_size: int, gradcam: bool) -> dict[str, float]:
    from tdsa.data import build_dataset, build_transforms
    from tdsa.engine.checkpoint import load_model
    from tdsa.localisation import evaluate_localisation

    model, cfg = load_model(run_dir / "last.pt")
    if cfg.runtime.threads:
        import torch

        torch.set_num_threads(cfg.runtime.threads)
    d = cfg.data
    transform = build_transforms(d.regime, d.image_size, train=False, resize=d.resize)
    dataset = build_dataset(d.dataset, d.root, "test", transform=transform, **d.options)
    return evaluate_localisation(model, dataset, batch_size=batch_size, gradcam=gradcam)


def run_one(grid: Grid, variant: str, seed: int, out: Path, *, loc_batch_size: int = 64,
            gradcam: bool = True, train_missing: bool = True) -> RunResult | None:
    """Train (unless done) and localise one run; None when it has not run and
    ``train_missing`` is false (``--report-only``).

    Book: chapter 5, *Ablations*.
    """
    from tdsa.engine import train

    run_dir = out / variant / f"seed{seed}"
    failed = _read_json(run_dir / "failed.json")
    if failed is not None:
        return RunResult(variant, seed, "failed", error=str(failed.get("error", "")))
    summary = _read_json(run_dir / "summary.json")
    loc = _read_json(run_dir / "localisation.json")
    if not train_missing and not (_complete(summary) and loc is not None):
        return None
    timing = _read_json(run_dir / "timing.json") or {"train_seconds": 0.0}
    try:
        if not _complete(summary):
            t0 = time.perf_counter()
            summary = train(grid.config(variant, seed), run_dir)
            timing["train_seconds"] += time.perf_counter() - t0
            _write_json(run_dir / "timing.json", timing)
        if not _complete(summary):
            raise SweepStopped(f"{run_dir}: training stopped early ({summary['stopped']}); "
                               f"run the same command again to continue")
        if loc is None:
            t0 = time.perf_counter()
            values = _localise(run_dir, loc_batch_size, gradcam)
            loc = {"loc_seconds": time.perf_counter() - t0, **values}
            _write_json(run_dir / "localisation.json", loc)
    except SweepStopped:
        raise
    except TdsaError as exc:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / "failed.json", {"error": str(exc)})
        return RunResult(variant, seed, "failed", error=str(exc))
    assert summary is not None
    values = {k: float(summary[k]) for k in SUMMARY_KEYS}
    values["seconds"] = float(timing["train_seconds"] or summary["seconds"])
    values.update({k: float(v) for k, v in loc.items()})
    if not all(math.isfinite(values[k]) for k in ("final_top1", "best_top1")):
        return RunResult(variant, seed, "failed", values, "non-finite test accuracy")
    return RunResult(variant, seed, "ok", values)


def run_grid(grid: Grid, out: str | Path, *, seeds: Sequence[int] | None = None,
             only: Sequence[str] | None = None, report_only: bool = False,
             loc_batch_size: int = 64, gradcam: bool = True,
             log: Any = None) -> list[RunResult]:
    """Every ``(variant, seed)`` of the grid (restricted by ``only``/``seeds``), seed-major
    (all variants of seed 0 first), so a sweep stopped early still compares the arms.

    Book: chapter 5, *Ablations*.
    """
    out = Path(out)
    names = list(only) if only else list(grid.variants)
    missing = [n for n in names if n not in grid.variants]
    if missing:
        raise ConfigError(f"{grid.path}: no variant(s) {', '.join(map(repr, missing))}; "
                          f"variants: {', '.join(grid.variants)}")
    results: list[RunResult] = []
    for seed in (list(seeds) if seeds else grid.seeds):
        for name in names:
            t0 = time.perf_counter()
            res = run_one(grid, name, seed, out, loc_batch_size=loc_batch_size,
                          gradcam=gradcam, train_missing=not report_only)
            if res is None:
                continue
            results.append(res)
            if log is not None:
                shown = (f"final {res.values['final_top1']:.2f} best {res.values['best_top1']:.2f}"
                         if res.status == "ok" else f"FAILED: {res.error}")
                print(f"[ablate] {name} seed {seed}: {shown} "
                      f"({time.perf_counter() - t0:.0f} s)", file=log, flush=True)
    return results


# ------------------------------------------------------------------------------ tables

_PCT = "pct"


def _pointing_columns(granularity: str) -> list[tuple[str, str, str]]:
    """Columns of a pointing-game table: true class, wrong class, Grad-CAM and the baselines."""
    return [
        (label, f"hit_rate/{src}/granularity:{granularity}", _PCT)
        for label, src in (("true", "high"), ("wrong", "wrong_high"), ("Grad-CAM", "gradcam"),
                           ("chance", "chance_high"), ("centre", "centre"))
    ]


TABLES: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    ("Test accuracy", "Top-1 (%) on every test image; *best* is selected on the test set "
     "(the field's convention), *final* is the last epoch. Seconds: training wall time of one run.",
     [("final top-1", "final_top1", ""), ("best top-1", "best_top1", ""),
      ("best epoch", "best_epoch", ""), ("seconds/run", "seconds", "")]),
    ("Fine parts (eye, beak): pointing game, high stage",
     "Share (%) of peaks that land within the radius of a fine part. true = the true class's "
     "channels; wrong = the channels of class (y+1) mod K (control); Grad-CAM = of the true "
     "logit at the high tap; chance = a uniform cell of the same grid; centre = the box centre.",
     _pointing_columns("fine")),
    ("Coarse parts (wing, tail): pointing game, high stage", "As above, coarse parts.",
     _pointing_columns("coarse")),
    ("Mid stage and nesting",
     "Mid-stage pointing (%) on fine / coarse parts, true vs wrong class vs chance; coverage = "
     "distinct parts hit per image by the class's high channels; nesting (%) = mid peaks inside "
     "the region of the high channel that gates them, with its chance level.",
     [("mid fine", "hit_rate/mid/granularity:fine", _PCT),
      ("wrong mid fine", "hit_rate/wrong_mid/granularity:fine", _PCT),
      ("chance mid fine", "hit_rate/chance_mid/granularity:fine", _PCT),
      ("mid coarse", "hit_rate/mid/granularity:coarse", _PCT),
      ("chance mid coarse", "hit_rate/chance_mid/granularity:coarse", _PCT),
      ("coverage high", "coverage/high", ""),
      ("nesting", "nesting/mid_in_high", _PCT),
      ("wrong nesting", "nesting/wrong_mid_in_high", _PCT),
      ("nesting chance", "nesting/chance", _PCT)]),
]


def _part_tables(keys: Sequence[str]) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """One table per scored part: pointing (%) of each source on that part."""
    parts = [k.split("part:", 1)[1] for k in keys if k.startswith("hit_rate/high/part:")]
    sources = (("true high", "high"), ("wrong high", "wrong_high"), ("true mid", "mid"),
               ("wrong mid", "wrong_mid"), ("Grad-CAM", "gradcam"),
               ("chance high", "chance_high"), ("chance mid", "chance_mid"),
               ("centre", "centre"))
    return [(f"Part: {part}", f"Share (%) of peaks that hit the {part} (images where it is "
             f"visible).", [(label, f"hit_rate/{src}/part:{part}", _PCT)
                            for label, src in sources])
            for part in parts]


def _fmt(values: list[float], scale: float) -> str:
    vals = [v * scale for v in values if not math.isnan(v)]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.1f}"
    return f"{statistics.fmean(vals):.1f} ± {statistics.stdev(vals):.1f}"


def _table(results: Sequence[RunResult], variants: Sequence[str],
           columns: Sequence[tuple[str, str, str]]) -> list[str]:
    head = ["variant", "n", *[c[0] for c in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in variants:
        ok = [r for r in results if r.variant == name and r.status == "ok"]
        failed = [r for r in results if r.variant == name and r.status == "failed"]
        if not ok and not failed:
            continue
        n = f"{len(ok)}" + (f" (+{len(failed)} failed)" if failed else "")
        cells = [_fmt([r.values.get(key, math.nan) for r in ok], 100.0 if kind == _PCT else 1.0)
                 for _, key, kind in columns]
        lines.append("| " + " | ".join([name, n, *cells]) + " |")
    return lines


def report_header(grid: Grid, results: Sequence[RunResult], command: str) -> dict[str, str]:
    """The facts at the top of the results page, label -> Markdown text: ``Command``,
    ``Written`` (date, runs, seeds), ``Machine``, ``Base config`` (with the grid's overrides),
    ``Numbers`` and, when the grid has one, ``Note``. ``write_results`` also saves them as
    ``RESULTS.json`` (read back by :func:`tdsa.evidence.read_header`).
    """
    import torch

    variants = [v for v in grid.variants if any(r.variant == v for r in results)]
    seeds = sorted({r.seed for r in results})
    threads = sorted({str(grid.config(v, 0).runtime.threads or "default") for v in variants})
    header = {
        "Command": f"`{command}`",
        "Written": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{len([r for r in results if r.status == 'ok'])} runs finished, "
        f"{len([r for r in results if r.status == 'failed'])} failed; seeds {seeds}",
        "Machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"runtime.threads={'/'.join(threads)}, Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        "Base config": f"`{grid.base}`; overrides for every run: "
        + (", ".join(f"`{o}`" for o in grid.overrides) or "none"),
        "Numbers": "mean ± sample standard deviation over seeds; localisation on the final-epoch "
        "weights (`last.pt`) over every test image; hit radius 12% of the image side.",
    }
    if grid.note:
        header["Note"] = grid.note
    return header


def markdown_report(grid: Grid, results: Sequence[RunResult], command: str,
                    header: Mapping[str, str] | None = None) -> str:
    """The results page: a header (:func:`report_header`), the variants, and mean ± sample
    std over seeds per variant (``n`` = seeds that finished).

    Book: chapter 5, *Ablations*.
    """
    variants = [v for v in grid.variants if any(r.variant == v for r in results)]
    header = report_header(grid, results, command) if header is None else header
    lines = [f"# Ablation grid `{grid.path.stem}`", "",
             *(f"- {label}: {text}" for label, text in header.items())]
    lines += ["", "## Variants", "", "| variant | description | overrides |", "|---|---|---|"]
    for name in variants:
        v = grid.variants[name]
        lines.append(f"| {name} | {v.description} | "
                     + (", ".join(f"`{o}`" for o in v.overrides) or "(base)") + " |")
    keys = list(dict.fromkeys(k for r in results for k in r.values))
    for title, text, columns in [*TABLES, *_part_tables(keys)]:
        lines += ["", f"## {title}", "", text, "", *_table(results, variants, columns)]
    failed = [r for r in results if r.status == "failed"]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {r.variant} seed {r.seed}: {r.error}" for r in failed]
    return "\n".join(lines) + "\n"


def write_results(grid: Grid, results: Sequence[RunResult], results_path: str | Path,
                  command: str) -> tuple[Path, Path]:
    """Write ``RESULTS.csv``, ``RESULTS.md``, ``RESULTS.json`` (the page's header, as data)
    and ``RESULTS/configs/<variant>.yaml``.

    Book: chapter 5, *Ablations*.
    """
    base = Path(results_path)
    base.parent.mkdir(parents=True, exist_ok=True)
    cfg_dir = base / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    for name in grid.variants:
        if any(r.variant == name for r in results):
            text = dump_config(grid.config(name, grid.seeds[0]))
            (cfg_dir / f"{name}.yaml").write_text(
                f"# ablation {grid.path.stem}, variant {name}: the resolved config; "
                f"runtime.seed is set per run (seeds {sorted({r.seed for r in results})})\n"
                + text, encoding="utf-8")
    extra: list[str] = []
    for r in results:
        extra += [k for k in r.values if k not in extra and k not in SUMMARY_KEYS
                  and k != "seconds"]
    header = ["variant", "seed", "status", *SUMMARY_KEYS, "seconds", *extra, "error"]
    csv_path = base.with_suffix(".csv")
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for r in results:
            row: list[Any] = [r.variant, r.seed, r.status]
            row += [r.values.get(k, "") for k in header[3:-1]]
            writer.writerow([*row, r.error])
    header = report_header(grid, results, command)
    base.with_suffix(".json").write_text(json.dumps({"header": header}, indent=2,
                                                    ensure_ascii=False) + "\n", encoding="utf-8")
    md_path = base.with_suffix(".md")
    md_path.write_text(markdown_report(grid, results, command, header), encoding="utf-8")
    return csv_path, md_path


# -------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tdsa ablate``.

    Book: chapter 5, *Ablations*.
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

    Book: chapter 5, *Ablations*.
    """
    grid = load_grid(args.grid)
    if args.loc_batch_size < 1:
        raise ConfigError(f"--loc-batch-size must be >= 1, got {args.loc_batch_size}")
    results_path = Path(args.results) if args.results else Path("results") / grid.path.stem
    argv = sys.argv[1:] if sys.argv[1:2] == ["ablate"] else ["ablate", *_argv(args)]
    command = "python -m tdsa " + shlex.join(a for a in argv if a != "--report-only")
    if args.report_only:
        command += "` (runs); tables rewritten from the finished runs with `--report-only"
    run_grid(grid, args.out, seeds=args.seeds, only=args.only, report_only=args.report_only,
             loc_batch_size=args.loc_batch_size, gradcam=not args.no_gradcam, log=sys.stdout)
    # The tables cover every finished run of the grid, not only this call's selection.
    seeds = sorted({*grid.seeds, *(args.seeds or [])})
    results = run_grid(grid, args.out, seeds=seeds, report_only=True)
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
