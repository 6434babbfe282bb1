"""A grid of loss variants x seeds, trained and tabulated (the command
``python -m tdsa ablate`` is :mod:`tdsa.commands.ablate`).

A grid file (YAML) names a base config, the seeds, overrides applied to every run and the
variants, each with its own overrides::

    base: configs/synthetic_tdsa.yaml
    seeds: [0, 1, 2]
    note: "anything the results header must say (e.g. a shortened schedule)"
    split: test          # or val: report val numbers (the runs need data.val_split)
    counterfactual: true # also score the counterfactual twins (synthetic data only)
    overrides: [train.epochs=20]
    variants:
      ce: {description: "cross-entropy only", overrides: [loss.alpha_mid=0, ...]}
      tdsa: {description: "full TDSA", overrides: [], baseline: ce, lever: "the loss"}
      ce_tuned: {config: configs/synthetic_ce.yaml, overrides: []}  # another base config
      published: {overrides: [...], eligible: false}  # reported, never chosen from the grid
      pointer: {overrides: [...], seeds: [0]}  # its own seeds instead of the grid's

Each ``(variant, seed)`` trains with :func:`tdsa.engine.train` into ``OUT/<variant>/seed<k>``
(``runtime.seed=k``), then the final-epoch weights (``last.pt``) are scored with
:func:`tdsa.experiments.localisation.evaluate_localisation` on the grid's ``split`` (test
unless the grid says ``split: val``: tuning and calibration grids read val only; their runs set
``data.val_split`` and, to leave test unread, ``train.eval_test=never``). A run whose
``summary.json`` (complete) and ``localisation.json`` exist is not redone, so a killed sweep
continues where it stopped; a run that fails (e.g. a NaN loss) is recorded as failed
(``failed.json``) and shown in the tables, never dropped. The results are
``RESULTS.csv`` (one row per run, with the code, CPU and precision that ran it), ``RESULTS.md``
(mean ± std per variant over seeds), ``RESULTS/configs/<variant>.yaml`` (the resolved config of
each variant) and ``RESULTS/curves.csv`` (every run's epoch records); they cover every
finished run of the grid under ``OUT``, whatever ``--only``/``--seeds`` selected to run. Delete a
run's ``failed.json`` to try it again. With ``counterfactual: true`` every run is also scored by
:func:`tdsa.experiments.counterfactual.counterfactual_report` on the same split
(``counterfactual.json``; columns ``cf/<all|fine|coarse>/<measure>``).

The results CSV is also the record of the runs: a run whose folder is gone (a fresh clone)
but whose row is in ``RESULTS.csv``, under a variant whose resolved config still equals
``RESULTS/configs/<variant>.yaml``, is taken from that row (and its curve) and not trained
again.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tdsa.config import Config, apply_overrides, dump_config, load_config
from tdsa.errors import ConfigError, DataError, TdsaError
from tdsa.provenance import code_version, cpu_kind
from tdsa.resources import resolve_config
from tdsa.runfiles import TIME_KEYS

__all__ = [
    "Grid",
    "RunResult",
    "lever_pairs",
    "load_grid",
    "markdown_report",
    "read_curves",
    "recorded_commands",
    "recorded_results",
    "report_header",
    "run_grid",
    "write_results",
]

SUMMARY_KEYS = ("final_top1", "final_train_top1", "best_top1", "best_epoch", "epochs",
                "final_val_top1", "test_top1_at_best", "test_best_top1", "test_best_epoch")
"""Training numbers copied from each run's ``summary.json`` into the results (``final_top1``
is of the grid's split, ``best_top1`` of the split that selected the best epoch; the last four,
NaN for a run without a val split, are the val numbers beside test and the field's
best-on-test)."""
PROVENANCE_KEYS = ("code", "cpu", "precision")
"""The text columns of the results CSV that say what ran each run (:class:`RunResult`)."""
SPLITS = ("test", "val")
GRID_KEYS = ("base", "seeds", "overrides", "variants", "note", "split", "counterfactual")
VARIANT_KEYS = ("description", "overrides", "baseline", "lever", "config", "eligible", "seeds")

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class SweepStopped(TdsaError):
    """A run's training was stopped by a signal (its ``last.pt`` is saved): the sweep stops
    and the same command continues it (exit code 130).
    """

    exit_code = 130


@dataclass
class Variant:
    """One arm of a grid: a name, a description and its config overrides; a method arm also
    names its ``baseline`` (the cross-entropy arm it is compared with, in this grid or
    another) and the ``lever`` the pair tests (:func:`lever_pairs`). ``config``, when set,
    replaces the grid's ``base`` for this arm (e.g. an arm whose tuned settings are a config
    of their own). ``eligible`` false marks a labelled point outside a tuning grid: trained
    and reported, never chosen (:func:`tdsa.experiments.joint_tuning.joint_candidates`).
    ``seeds``, when set, replaces the grid's seeds for this arm (a one-seed pointer beside
    the arms a claim rests on).
    """

    name: str
    description: str
    overrides: list[str]
    baseline: str = ""
    lever: str = ""
    config: Path | None = None
    eligible: bool = True
    seeds: list[int] | None = None


@dataclass
class Grid:
    """A parsed grid file (see the module docstring for the format).
    """

    path: Path
    base: Path
    seeds: list[int]
    overrides: list[str]
    variants: dict[str, Variant]
    note: str = ""
    split: str = "test"
    counterfactual: bool = False

    def config(self, variant: str, seed: int) -> Config:
        """The resolved config of one run (base + grid overrides + variant + seed).
        """
        v = self.variants[variant]
        cfg = load_config(v.config or self.base)
        return apply_overrides(cfg, [*self.overrides, *v.overrides, f"runtime.seed={seed}"])

    def variant_seeds(self, variant: str) -> list[int]:
        """The seeds ``variant`` runs: its own ``seeds`` where it has them, else the grid's."""
        own = self.variants[variant].seeds
        return self.seeds if own is None else own

    def seed_order(self, variants: Sequence[str] | None = None) -> list[int]:
        """Every seed that ``variants`` (default: all) run: the grid's seeds in their order,
        then the variants' own, ascending."""
        used = {s for v in (variants or self.variants) for s in self.variant_seeds(v)}
        return [s for s in dict.fromkeys([*self.seeds, *sorted(used)]) if s in used]

    @property
    def runs(self) -> int:
        """How many ``(variant, seed)`` runs the grid has."""
        return sum(len(self.variant_seeds(v)) for v in self.variants)


@dataclass
class RunResult:
    """The outcome of one ``(variant, seed)``: ``status`` is ``ok`` or ``failed`` (``error``
    says why); ``values`` holds the training summary numbers, ``seconds`` (training wall
    time), ``loc_seconds`` and every localisation key. ``code`` (the commit,
    :func:`tdsa.provenance.code_version`), ``cpu`` (:func:`tdsa.provenance.cpu_kind`) and
    ``precision`` (the resolved label) are what the run's ``summary.json`` records, kept in the
    results CSV so a page rewritten elsewhere still names them; empty for runs trained before
    runs recorded them. ``curve`` holds the run's epoch records (``metrics.jsonl`` without
    its timings: losses per term, gradient norms per stage, train and eval top-1), kept in
    ``RESULTS/curves.csv`` for the same reason.
    """

    variant: str
    seed: int
    status: str
    values: dict[str, float] = field(default_factory=dict)
    error: str = ""
    code: str = ""
    cpu: str = ""
    precision: str = ""
    curve: list[dict[str, float]] = field(default_factory=list)


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of key=value strings, got {value!r}")
    return list(value)


def _read_grid_file(path: Path) -> Mapping[str, Any]:
    """The grid file's mapping, its keys checked."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"grid file not found: {path}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the grid ({exc})".replace("\n", " ")) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping with base, seeds, overrides, variants")
    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"valid keys: {', '.join(GRID_KEYS)}")
    if not isinstance(data.get("counterfactual", False), bool):
        raise ConfigError(f"{path}: 'counterfactual' must be true or false, got "
                          f"{data['counterfactual']!r}")
    return data


def _grid_base(path: Path, base_given: Any, key: str = "base") -> Path:
    """``base`` relative to the current directory, else the grid's folder, else shipped."""
    if not isinstance(base_given, str):
        raise ConfigError(f"{path}: {key!r} must be the path of a config YAML, "
                          f"got {base_given!r}")
    base = Path(base_given)
    if not base.is_file() and (path.parent / base).is_file():
        base = path.parent / base
    if not base.is_file():
        base = resolve_config(base)
    if not base.is_file():
        raise ConfigError(f"{path}: {key} config {base_given!r} not found")
    return base


def _grid_seeds(path: Path, seeds: Any, key: str = "seeds") -> list[int]:
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
            or len(set(seeds)) != len(seeds)):
        raise ConfigError(f"{path}: '{key}' must be a non-empty list of distinct integers >= 0, "
                          f"got {seeds!r}")
    return list(seeds)


def _grid_variants(path: Path, variants_raw: Any) -> dict[str, Variant]:
    if not isinstance(variants_raw, Mapping) or not variants_raw:
        raise ConfigError(f"{path}: 'variants' must be a non-empty mapping of name -> "
                          f"{{description, overrides}}")
    variants: dict[str, Variant] = {}
    for name, spec in variants_raw.items():
        name = str(name)
        if not set(name) <= _NAME_CHARS:
            raise ConfigError(f"{path}: variant name {name!r} must use only letters, digits, "
                              f"'_', '-' and '.' (it names a folder)")
        if not isinstance(spec, Mapping) or set(spec) - set(VARIANT_KEYS):
            raise ConfigError(f"{path}: variant {name!r} must be a mapping with "
                              f"{', '.join(map(repr, VARIANT_KEYS))}, got {spec!r}")
        if bool(spec.get("baseline")) != bool(spec.get("lever")):
            raise ConfigError(f"{path}: variant {name!r} needs both 'baseline' (the arm it is "
                              f"compared with) and 'lever' (what the pair tests), or neither")
        eligible = spec.get("eligible", True)
        if not isinstance(eligible, bool):
            raise ConfigError(f"{path}: variants.{name}.eligible must be true or false, "
                              f"got {eligible!r}")
        config = spec.get("config")
        seeds = spec.get("seeds")
        variants[name] = Variant(name, str(spec.get("description", "")),
                                 _string_list(spec.get("overrides"),
                                              f"{path}: variants.{name}.overrides"),
                                 str(spec.get("baseline") or ""), str(spec.get("lever") or ""),
                                 None if config is None
                                 else _grid_base(path, config, f"variants.{name}.config"),
                                 eligible,
                                 None if seeds is None
                                 else _grid_seeds(path, seeds, f"variants.{name}.seeds"))
    return variants


def lever_pairs(grids: Sequence[Grid]) -> list[tuple[str, str, str]]:
    """``(lever, baseline arm, method arm)`` of every variant of ``grids`` that names a
    baseline, in grid and variant order (the pairs :func:`tdsa.experiments.evidence.check_levers`
    tests). A baseline found in none of the grids raises ConfigError."""
    known = {name for g in grids for name in g.variants}
    pairs = []
    for grid in grids:
        for v in grid.variants.values():
            if not v.baseline:
                continue
            if v.baseline not in known:
                raise ConfigError(f"{grid.path}: variant {v.name!r} names baseline "
                                  f"{v.baseline!r}, which no grid of the sweep has")
            pairs.append((v.lever, v.baseline, v.name))
    return pairs


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file; every variant's config is resolved once, so a bad key or
    value fails here, before anything trains.

    ``path`` is a file or the name of a shipped grid (``ablations/levers``). ``base`` is
    relative to the current directory (like ``--config`` of ``tdsa train``), falling back to
    the grid file's folder, then to the shipped configs (``configs/synthetic_tdsa.yaml``).
    """
    path = resolve_config(path)
    data = _read_grid_file(path)
    split = data.get("split", "test")
    if split not in SPLITS:
        raise ConfigError(f"{path}: 'split' must be one of {', '.join(SPLITS)}, got {split!r}")
    base = _grid_base(path, data.get("base"))
    seeds = _grid_seeds(path, data.get("seeds", [0]))
    variants = _grid_variants(path, data.get("variants"))
    note = data.get("note", "")
    grid = Grid(path, base, seeds, _string_list(data.get("overrides"), f"{path}: overrides"),
                variants, "" if note is None else str(note).strip(), split,
                bool(data.get("counterfactual", False)))
    for name in variants:
        try:
            cfg = grid.config(name, seeds[0])
        except ConfigError as exc:
            raise ConfigError(f"{path}: variant {name!r}: {exc}") from None
        if split == "val" and not cfg.data.val_split:
            raise ConfigError(f"{path}: variant {name!r}: 'split: val' needs data.val_split "
                              f"in the runs' config (e.g. data.val_split=val)")
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
    return summary is not None and summary.get("stopped") is None and (
        summary.get("epochs_completed") == summary.get("epochs"))


def _split_name(data: Any, split: str) -> str:
    """The dataset split a grid's ``split`` names for a run's data config."""
    return str(data.val_split) if split == "val" else "test"


def _localise(run_dir: Path, split: str, batch_size: int, gradcam: bool) -> dict[str, float]:
    from tdsa.data import from_config
    from tdsa.engine.checkpoint import load_model
    from tdsa.experiments.localisation import evaluate_localisation

    model, cfg = load_model(run_dir / "last.pt")
    if cfg.runtime.threads:
        import torch

        torch.set_num_threads(cfg.runtime.threads)
    dataset = from_config(cfg.data, _split_name(cfg.data, split))
    return evaluate_localisation(model, dataset, batch_size=batch_size, gradcam=gradcam)


def _counterfactual(run_dir: Path, split: str, gradcam: bool) -> dict[str, float]:
    """The counterfactual measures of ``last.pt`` on ``split``, flattened to
    ``cf/<all|granularity>/<measure>`` (written in full to ``counterfactual.json``)."""
    from tdsa.engine.checkpoint import checkpoint_config, load_checkpoint
    from tdsa.experiments.counterfactual import counterfactual_report

    path = run_dir / "last.pt"
    data = checkpoint_config(load_checkpoint(path), path).data
    report = counterfactual_report(run_dir, _split_name(data, split),
                                   checkpoint="last.pt", gradcam=gradcam,
                                   out=run_dir / "counterfactual.json")
    groups = {"all": report["all"], **report["granularity"]}
    return {f"cf/{group}/{key}": float(value) for group, measures in groups.items()
            for key, value in measures.items() if value is not None}


def _scores(grid: Grid, run_dir: Path, loc_batch_size: int, gradcam: bool
            ) -> dict[str, Any] | None:
    """Localisation (and counterfactual) numbers of a trained run, computed once and kept in
    ``localisation.json``; None while a part is missing and may not be computed."""
    loc = _read_json(run_dir / "localisation.json")
    if loc is None:
        t0 = time.perf_counter()
        values = _localise(run_dir, grid.split, loc_batch_size, gradcam)
        loc = {"loc_seconds": time.perf_counter() - t0, **values}
        _write_json(run_dir / "localisation.json", loc)
    if grid.counterfactual and "cf_seconds" not in loc:
        t0 = time.perf_counter()
        values = _counterfactual(run_dir, grid.split, gradcam)
        loc |= {"cf_seconds": time.perf_counter() - t0, **values}
        _write_json(run_dir / "localisation.json", loc)
    return loc


def _scored(loc: Mapping[str, Any] | None, grid: Grid) -> bool:
    return loc is not None and (not grid.counterfactual or "cf_seconds" in loc)


def run_one(grid: Grid, variant: str, seed: int, out: Path, *, loc_batch_size: int = 64,
            gradcam: bool = True, train_missing: bool = True,
            recorded: Mapping[tuple[str, int], RunResult] | None = None) -> RunResult | None:
    """Train (unless done) and localise one run; None when it has not run and
    ``train_missing`` is false (``--report-only``), or when another process is training it
    (:class:`~tdsa.engine.run_lock.RunBusyError`: two lanes given the same runs share them).
    A run with no folder that ``recorded`` holds (:func:`recorded_results`) is taken from there.
    """
    from tdsa.engine import train
    from tdsa.engine.run_lock import RunBusyError, run_folder_lock

    run_dir = out / variant / f"seed{seed}"
    failed = _read_json(run_dir / "failed.json")
    if failed is not None:
        return RunResult(variant, seed, "failed", error=str(failed.get("error", "")))
    summary = _read_json(run_dir / "summary.json")
    if summary is None and recorded and (variant, seed) in recorded:
        return recorded[(variant, seed)]
    if not train_missing and not (_complete(summary)
                                  and _scored(_read_json(run_dir / "localisation.json"), grid)):
        return None
    try:
        # held over training and scoring: a lane that finds the lock taken leaves the run to
        # the process that holds it
        with run_folder_lock(run_dir) if train_missing else nullcontext():
            summary = _read_json(run_dir / "summary.json")  # another lane may have finished it
            timing = _read_json(run_dir / "timing.json") or {"train_seconds": 0.0}
            if not _complete(summary):
                t0 = time.perf_counter()
                summary = train(grid.config(variant, seed), run_dir)
                timing["train_seconds"] += time.perf_counter() - t0
                _write_json(run_dir / "timing.json", timing)
            if summary is None or not _complete(summary):
                stopped = summary["stopped"] if summary else None
                raise SweepStopped(f"{run_dir}: training stopped early ({stopped}); "
                                   f"run the same command again to continue")
            loc = _scores(grid, run_dir, loc_batch_size, gradcam)
    except SweepStopped:
        raise
    except RunBusyError:
        return None
    except TdsaError as exc:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / "failed.json", {"error": str(exc)})
        return RunResult(variant, seed, "failed", error=str(exc))
    return _result(grid, variant, seed, summary, timing, loc or {}, _curve(run_dir))


def _curve(run_dir: Path) -> list[dict[str, float]]:
    """The epoch records of ``run_dir/metrics.jsonl``: every number but the timings."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [{k: float(v) for k, v in row.items()
             if isinstance(v, int | float) and k not in TIME_KEYS} for row in rows]


def _result(grid: Grid, variant: str, seed: int, summary: Mapping[str, Any],
            timing: Mapping[str, Any], loc: Mapping[str, Any],
            curve: list[dict[str, float]]) -> RunResult:
    """The :class:`RunResult` of a finished, scored run."""
    values = {k: float(summary.get(k, math.nan)) for k in SUMMARY_KEYS}
    if grid.split == "val":
        values["final_top1"] = float(summary["final_val_top1"])
    values["seconds"] = float(timing["train_seconds"] or summary["seconds"])
    values.update({k: float(v) for k, v in loc.items()})
    if not all(math.isfinite(values[k]) for k in ("final_top1", "best_top1")):
        return RunResult(variant, seed, "failed", values, f"non-finite {grid.split} accuracy")
    return RunResult(variant, seed, "ok", values, code=str(summary.get("code", "")),
                     cpu=str(summary.get("cpu", "")), precision=str(summary.get("precision", "")),
                     curve=curve)


def _config_text(text: str) -> str:
    """A config dump without its comment lines (the header names the seeds)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.startswith("#"))


def recorded_results(grid: Grid, results_path: str | Path) -> dict[tuple[str, int], RunResult]:
    """The runs that ``RESULTS.csv`` records, by ``(variant, seed)``, for the variants whose
    resolved config still equals ``RESULTS/configs/<variant>.yaml`` (a changed variant is
    trained again). Empty when there is no results file."""
    base = Path(results_path)
    csv_path = base.with_suffix(".csv")
    if not csv_path.is_file():
        return {}
    current = {}
    for name in grid.variants:
        stored = base / "configs" / f"{name}.yaml"
        if stored.is_file() and _config_text(stored.read_text(encoding="utf-8")) == \
                _config_text(dump_config(grid.config(name, grid.seeds[0]))):
            current[name] = True
    curves = read_curves(base, required=False)
    out: dict[tuple[str, int], RunResult] = {}
    with csv_path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("variant") not in current:
                continue
            values = {k: float(v) for k, v in row.items()
                      if k not in ("variant", "seed", "status", "error", *PROVENANCE_KEYS)
                      and v not in ("", None)}
            res = RunResult(row["variant"], int(row["seed"]), row["status"], values,
                            row.get("error") or "",
                            **{k: row.get(k) or "" for k in PROVENANCE_KEYS},
                            curve=curves.get((row["variant"], int(row["seed"])), []))
            out[(res.variant, res.seed)] = res
    return out


def run_grid(grid: Grid, out: str | Path, *, seeds: Sequence[int] | None = None,
             only: Sequence[str] | None = None, report_only: bool = False,
             loc_batch_size: int = 64, gradcam: bool = True, log: Any = None,
             recorded: Mapping[tuple[str, int], RunResult] | None = None) -> list[RunResult]:
    """Every ``(variant, seed)`` of the grid (restricted by ``only``/``seeds``), seed-major
    (all variants of seed 0 first), so a sweep stopped early still compares the arms; runs
    without a folder come from ``recorded`` when it holds them. ``seeds`` may name seeds
    outside the grid's; a variant with seeds of its own runs only those (of ``seeds``).
    """
    out = Path(out)
    names = list(only) if only else list(grid.variants)
    missing = [n for n in names if n not in grid.variants]
    if missing:
        raise ConfigError(f"{grid.path}: no variant(s) {', '.join(map(repr, missing))}; "
                          f"variants: {', '.join(grid.variants)}")
    results: list[RunResult] = []
    order = list(seeds) if seeds else grid.seed_order(names)
    for seed in order:
        for name in names:
            own = grid.variants[name].seeds is not None
            if (own or not seeds) and seed not in grid.variant_seeds(name):
                continue
            t0 = time.perf_counter()
            res = run_one(grid, name, seed, out, loc_batch_size=loc_batch_size,
                          gradcam=gradcam, train_missing=not report_only, recorded=recorded)
            if res is None:
                if log is not None and not report_only:
                    print(f"[ablate] {name} seed {seed}: another process is training it, "
                          "skipped", file=log, flush=True)
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


ACCURACY_TABLES = {
    "test": ("Test accuracy", "Top-1 (%) on every test image; *best* is selected on the test "
             "set (the field's convention), *final* is the last epoch. Seconds: training wall "
             "time of one run.",
             [("final top-1", "final_top1", ""), ("best top-1", "best_top1", ""),
              ("best epoch", "best_epoch", ""), ("seconds/run", "seconds", "")]),
    "test, selected on val": (
        "Test accuracy", "Top-1 (%) on every test image at the final epoch, and on every val "
        "image; the *best epoch* is selected on val and *test at best* is that epoch's test "
        "top-1; *best on test* is the field's number (the epoch selected on the test set), "
        "labelled, never used to choose. Seconds: training wall time of one run.",
        [("final test top-1", "final_top1", ""), ("final val top-1", "final_val_top1", ""),
         ("best epoch (val)", "best_epoch", ""), ("test at best", "test_top1_at_best", ""),
         ("best on test (field)", "test_best_top1", ""), ("seconds/run", "seconds", "")]),
    "val": ("Validation accuracy", "Top-1 (%) on every val image (the test split was not "
            "read); *best* is the epoch with the highest val top-1, *final* the last epoch; "
            "*train* is the running top-1 over the last training epoch. Seconds: training wall "
            "time of one run.",
            [("final val top-1", "final_top1", ""), ("final train top-1", "final_train_top1", ""),
             ("best val top-1", "best_top1", ""), ("best epoch", "best_epoch", ""),
             ("seconds/run", "seconds", "")]),
}

TABLES: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    ("Fine parts: pointing game, high stage",
     "Share (%) of peaks that land within the radius of a fine part. true = the true class's "
     "channels; wrong = the channels of class (y+1) mod K (control); Grad-CAM = of the true "
     "logit at the high tap; chance = a uniform cell of the same grid; centre = the box centre.",
     _pointing_columns("fine")),
    ("Coarse parts: pointing game, high stage", "As above, coarse parts.",
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


def _counterfactual_tables(keys: Sequence[str]
                           ) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """The counterfactual-twin tables (fine and coarse parts) when the runs have them."""
    columns = (("reliance", "reliance"), ("evidence true", "evidence/high/true"),
               ("evidence unused", "evidence/high/unused"),
               ("Grad-CAM evidence", "evidence/gradcam/true"), ("where high", "where/high/true"),
               ("where control", "where/high/control"), ("where Grad-CAM", "where/gradcam/true"),
               ("where chance", "where/high/true_chance"),
               ("mid in high", "nesting/mid_in_high"), ("nesting chance", "nesting/chance"))
    return [(f"Counterfactual twins, {group} parts",
             "Each image against its twins (one part's attribute changed; "
             "`tdsa.experiments.counterfactual`), in %. reliance = correct predictions that "
             "change; evidence = relative drop of the true class's high-stage group response "
             "when its own attribute is swapped (true) or an attribute it does not use "
             "(unused); where = peaks of the true class's response difference on the swapped "
             "part, beside a control class's and chance; mid in high = mid difference peaks "
             "inside their gating high region.",
             [(label, f"cf/{group}/{key}", _PCT) for label, key in columns])
            for group in ("fine", "coarse") if f"cf/{group}/reliance" in keys]


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


def _precisions(grid: Grid, results: Sequence[RunResult], variants: Sequence[str]) -> str:
    """The precision of each variant's runs: what they recorded (:attr:`RunResult.precision`),
    else what the variant's config resolves to on this machine (its ``train.amp`` and
    ``train.channels_last``, as the trainer resolves them), said so."""
    import torch

    from tdsa.engine.precision import resolve_precision

    labels: dict[str, list[str]] = {}
    for v in variants:
        runs = [r for r in results if r.variant == v]
        cfg = grid.config(v, grid.seeds[0])
        if runs and all(r.precision for r in runs):
            label = " / ".join(sorted({r.precision for r in runs}))
            label += f" (train.amp={cfg.train.amp}; as the runs recorded)"
        else:
            device = cfg.runtime.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            label = (f"{resolve_precision(device, cfg.train.amp, cfg.train.channels_last).label}"
                     f" (train.amp={cfg.train.amp}, on {device}; resolved on the machine that "
                     "wrote this page)")
        labels.setdefault(label, []).append(v)
    if len(labels) == 1:
        return next(iter(labels))
    return "; ".join(f"{label}: {', '.join(vs)}" for label, vs in labels.items())


def _cpu_text(results: Sequence[RunResult]) -> str:
    """The CPUs the runs recorded (:attr:`RunResult.cpu`) and, where some recorded none, the
    one that wrote the page."""
    recorded = sorted({r.cpu for r in results if r.cpu})
    missing = len([r for r in results if not r.cpu])
    if not recorded:
        return f"{cpu_kind()} (the machine that wrote this page; the runs recorded none)"
    text = "; ".join(recorded)
    if missing:
        text += (f" ({missing} of {len(results)} runs recorded none; this page was written "
                 f"on {cpu_kind()})")
    return text


def _code_text(results: Sequence[RunResult]) -> str:
    """The code behind a results page: what its runs recorded (:attr:`RunResult.code`) and
    what wrote the page (:func:`tdsa.provenance.code_version`)."""
    recorded = sorted({r.code for r in results if r.code})
    missing = len([r for r in results if not r.code])
    if not recorded:
        runs = "runs trained before runs recorded their code (see the note)"
    else:
        runs = "runs trained at " + "; ".join(f"`{c}`" for c in recorded)
        if missing:
            runs += f" ({missing} of {len(results)} runs recorded none)"
    return f"{runs}; page written at `{code_version()}`"


def _command_text(commands: Sequence[str]) -> str:
    """The commands that made a grid's results, first to last, as the header shows them."""
    return "`" + commands[0] + "`" + "".join(f"; resumed with `{c}`" for c in commands[1:])


def report_header(grid: Grid, results: Sequence[RunResult], command: str | Sequence[str]
                  ) -> dict[str, str]:
    """The facts at the top of the results page, label -> Markdown text: ``Command`` (every
    command that made the grid's runs, first to last, when ``command`` is a list: a grid
    resumed with ``--only`` or ``--seeds`` keeps the calls before), ``Written`` (date, runs,
    seeds), ``Machine`` (that wrote the page), ``CPU`` (:func:`tdsa.provenance.cpu_kind` of
    the runs), ``Code`` (:func:`tdsa.provenance.code_version` of the runs and of the page),
    ``Precision`` (of each variant's runs), ``Base config`` (with the grid's overrides),
    ``Numbers``, ``Split`` and, when the grid has one, ``Note``. ``write_results`` also saves
    them as ``RESULTS.json`` (read back by :func:`tdsa.experiments.evidence.read_header`).
    """
    import torch

    commands = [command] if isinstance(command, str) else list(command)
    variants = [v for v in grid.variants if any(r.variant == v for r in results)]
    seeds = sorted({r.seed for r in results})
    threads = sorted({str(grid.config(v, 0).runtime.threads or "default") for v in variants})
    header = {
        "Command": _command_text(commands),
        "Written": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{len([r for r in results if r.status == 'ok'])} runs finished, "
        f"{len([r for r in results if r.status == 'failed'])} failed; seeds {seeds}",
        "Machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"runtime.threads={'/'.join(threads)}, Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        "CPU": _cpu_text(results),
        "Code": _code_text(results),
        "Precision": _precisions(grid, results, variants) if variants else "n/a",
        "Base config": f"`{grid.base}`; overrides for every run: "
        + (", ".join(f"`{o}`" for o in grid.overrides) or "none"),
        "Numbers": "mean ± sample standard deviation over seeds; localisation on the final-epoch "
        f"weights (`last.pt`) over every {grid.split} image; hit radius 12% of the image side.",
        "Split": "val: every number on this page is from the validation split (test was not "
        "read)" if grid.split == "val" else "test (the field's convention: see each table)",
    }
    if grid.note:
        header["Note"] = grid.note
    return header


def recorded_commands(results_path: str | Path) -> list[str]:
    """The commands recorded in an earlier ``RESULTS.json`` of the same grid (its
    ``commands`` list, or the single ``Command`` of its header for files written before the
    list existed); ``[]`` when there is none."""
    path = Path(results_path).with_suffix(".json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    listed = data.get("commands")
    if isinstance(listed, list) and all(isinstance(c, str) for c in listed):
        return list(listed)
    single = (data.get("header") or {}).get("Command") if isinstance(data.get("header"),
                                                                      dict) else None
    return [single.strip("`")] if isinstance(single, str) and single else []


def markdown_report(grid: Grid, results: Sequence[RunResult], command: str | Sequence[str],
                    header: Mapping[str, str] | None = None) -> str:
    """The results page: a header (:func:`report_header`), the variants, and mean ± sample
    std over seeds per variant (``n`` = seeds that finished).
    """
    variants = [v for v in grid.variants if any(r.variant == v for r in results)]
    header = report_header(grid, results, command) if header is None else header
    lines = [f"# Ablation grid `{grid.path.stem}`", "",
             *(f"- {label}: {text}" for label, text in header.items())]
    lines += ["", "## Variants", "", "| variant | description | overrides |", "|---|---|---|"]
    for name in variants:
        v = grid.variants[name]
        changes = ([f"config `{v.config}`"] if v.config else []) + [f"`{o}`" for o in v.overrides]
        lines.append(f"| {name} | {v.description} | {', '.join(changes) or '(base)'} |")
    keys = list(dict.fromkeys(k for r in results for k in r.values))
    on_val = grid.split == "test" and any(
        math.isfinite(r.values.get("final_val_top1", math.nan)) for r in results)
    accuracy = ACCURACY_TABLES["test, selected on val" if on_val else grid.split]
    tables = [accuracy, *TABLES, *_counterfactual_tables(keys),
              *_part_tables(keys)]
    for title, text, columns in tables:
        lines += ["", f"## {title}", "", text, "", *_table(results, variants, columns)]
    failed = [r for r in results if r.status == "failed"]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {r.variant} seed {r.seed}: {r.error}" for r in failed]
    return "\n".join(lines) + "\n"


def read_curves(results_path: str | Path, *, required: bool = True
                ) -> dict[tuple[str, int], list[dict[str, float]]]:
    """The epoch records of a grid's runs, ``results_path/curves.csv`` (``results_path`` is
    ``results/<grid>`` without a suffix), by ``(variant, seed)``, each in epoch order. A
    missing file is a DataError, or no curves when not ``required``."""
    path = Path(results_path) / "curves.csv"
    if not path.is_file():
        if not required:
            return {}
        raise DataError(f"{path}: no such curves file (written by python -m tdsa ablate)")
    curves: dict[tuple[str, int], list[dict[str, float]]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            curves.setdefault((row["variant"], int(row["seed"])), []).append(
                {k: float(v) for k, v in row.items() if k not in ("variant", "seed") and v})
    return {key: sorted(rows, key=lambda r: r["epoch"]) for key, rows in curves.items()}


def _write_curves(results: Sequence[RunResult], path: Path) -> None:
    """``RESULTS/curves.csv``: one row per epoch of every run that has a curve."""
    keys = list(dict.fromkeys(k for r in results for row in r.curve for k in row))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["variant", "seed", *keys])
        for r in results:
            for row in r.curve:
                writer.writerow([r.variant, r.seed, *(row.get(k, "") for k in keys)])


def write_results(grid: Grid, results: Sequence[RunResult], results_path: str | Path,
                  command: str) -> tuple[Path, Path]:
    """Write ``RESULTS.csv``, ``RESULTS.md``, ``RESULTS.json`` (the page's header, as data,
    and ``commands``: every command that wrote these results, the earlier ones read back from
    the previous ``RESULTS.json`` by :func:`recorded_commands`, so a grid resumed with
    ``--only`` or ``--seeds`` keeps the command that made the rest),
    ``RESULTS/configs/<variant>.yaml`` and ``RESULTS/curves.csv`` (every run's epoch records).
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
    numbers = [*SUMMARY_KEYS, "seconds", *extra]
    csv_path = base.with_suffix(".csv")
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["variant", "seed", "status", *numbers, *PROVENANCE_KEYS, "error"])
        for r in results:
            row: list[Any] = [r.variant, r.seed, r.status]
            row += [r.values.get(k, "") for k in numbers]
            writer.writerow([*row, r.code, r.cpu, r.precision, r.error])
    _write_curves(results, cfg_dir.parent / "curves.csv")
    commands = recorded_commands(base)
    if command not in commands:
        commands.append(command)
    page_header = report_header(grid, results, commands)
    base.with_suffix(".json").write_text(
        json.dumps({"header": page_header, "commands": commands}, indent=2, ensure_ascii=False)
        + "\n", encoding="utf-8")
    md_path = base.with_suffix(".md")
    md_path.write_text(markdown_report(grid, results, command, page_header), encoding="utf-8")
    return csv_path, md_path

