"""What the book's notebooks share: where things are, and which run a chapter opens.

- :func:`setup`: once at the top of a chapter (progress lines of the trainer as cell output,
  the plot defaults).
- :func:`repo_root`, :func:`data_root`, :func:`default_runs_root`, :func:`dataset_root`:
  the folders a chapter reads and writes. In a checkout of the repository they are under
  it; with only the installed package (Colab, a wheel) under the working folder. The shipped
  configs and results come from :mod:`tdsa.resources` (:func:`config_path`,
  :func:`results_path`), which finds them in both cases.
- :func:`run_plan`: profile -> run settings -> run folder, for the runs that more than one
  chapter opens (chapters 2 and 3 share one; chapter 6 opens chapter 4's two). A chapter
  that finds the run folder complete loads it; otherwise it trains, resuming from
  ``last.pt`` when an earlier session stopped (a Colab VM restart: rerun the notebook).

Book: chapter 4, *Two configs: the loss, and what each arm chose on val*.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tdsa.config import Config
from tdsa.errors import DataError
from tdsa.experiments.evidence import (
    CLAIM_PARTS,
    LeverCheck,
    Row,
    check_levers,
    column_stats,
    format_difference,
    format_mean_std,
    lever_table,
    paired,
    read_sweep,
    verdict,
)
from tdsa.resources import config_path, resource_root, results_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

    from tdsa.experiments.budget import Budget
    from tdsa.experiments.calibration import Candidate
    from tdsa.experiments.grid import Grid
    from tdsa.experiments.joint_tuning import Crossing, LateRise

__all__ = [
    "ARM_NAMES",
    "BOOK_GRIDS",
    "COMPARISON_GRID",
    "FOLLOW_UP_GRIDS",
    "FRESH_DRAW_GRID",
    "JOINT_GRID",
    "PROFILES",
    "RUNS",
    "RUN_SETTINGS",
    "SYNTHETIC_SETS",
    "VERDICT_COLOURS",
    "GridResults",
    "JointTuning",
    "RunPlan",
    "check_profile",
    "choice_carried",
    "choice_differences",
    "claim_summary",
    "class_count_table",
    "comparison_summary",
    "config_path",
    "converged_e",
    "data_regime",
    "data_root",
    "dataset_root",
    "default_runs_root",
    "demonstration_note",
    "display_path",
    "epoch_budget",
    "first_test_images",
    "flat_config",
    "grid_regime",
    "grid_results",
    "joint_tuning",
    "joint_tuning_status",
    "joint_tuning_summary",
    "lever_pairs",
    "load_or_train",
    "measured_effect",
    "on_colab",
    "plot_lever_differences",
    "plot_paired_seeds",
    "recipe_differences",
    "repo_root",
    "resolve_runs_root",
    "results_path",
    "results_provenance",
    "run_plan",
    "run_provenance",
    "setup",
    "stall_summary",
    "sweep_summary",
    "synthetic_data",
    "tuned_candidates",
    "tuned_choice",
    "tuned_overrides",
    "versus",
]

PROFILES = ("smoke", "cpu", "gpu")
"""``smoke``: seconds, for the tests; ``cpu``: the embedded synthetic data on a laptop;
``gpu``: a real dataset."""

RUNS = ("channel_constraint", "training")
"""The shared runs of :func:`run_plan`: chapters 2 and 3's short run, chapters 4 and 6's
two arms."""

SYNTHETIC_SETS: dict[str, dict[str, int]] = {
    "smoke": dict(num_classes=4, train_per_class=8, val_per_class=4, test_per_class=4,
                  image_size=48),
    "cpu": dict(num_classes=6, train_per_class=30, test_per_class=10, image_size=64),
}
"""The small generated datasets the chapters share, by name: each lives in its own root
``data/synthetic-book-<name>`` (:func:`synthetic_data`), so no two chapters ask one root for
different data."""

# Chapters 2 and 3: overrides of configs/smoke.yaml (AdamW, the paper's weights x 0.1,
# ramped in) for one short TDSA run, on the profile's dataset of SYNTHETIC_SETS.
_SHORT: dict[str, dict[str, Any]] = {
    "smoke": dict(size=48, epochs=1),
    "cpu": dict(size=64, epochs=8),
    "gpu": dict(size=224, epochs=30),
}
# Chapters 4 and 6: "cpu" runs configs/synthetic_{ce,tdsa}.yaml as they are (16 epochs);
# "smoke" shrinks everything (on SYNTHETIC_SETS["smoke"]); "gpu" runs the paper's recipe on a
# real dataset. A given `epochs` also scales the warm-up (30%) and the auxiliary ramp (a
# third) of the synthetic configs.
_TRAINING: dict[str, dict[str, Any]] = {
    "smoke": dict(config="synthetic_{arm}", epochs=2, batch=8, size=48, synthetic="smoke"),
    "cpu": dict(config="synthetic_{arm}", epochs=None, batch=None, size=None, synthetic=None),
    "gpu": dict(config="cub_vgg16_{arm}_scratch", epochs=None, batch=None, size=None,
                synthetic=None),
}
ARM_NAMES = {"ce": "cross-entropy", "tdsa": "TDSA"}
"""The two arms of every comparison, as the book names them."""
_ARMS = tuple(ARM_NAMES)

SHORT_EPOCHS = 5
"""Epochs of each of chapter 4's cpu-profile runs where the demonstration is shortened
(:func:`run_plan` with ``shorten``; ``shorten=None`` shortens where
:func:`training_is_slow`). Without native bf16 an epoch of the default regime runs in fp32:
on the 2-core AMD EPYC of the issue that asked for it (AVX2 only) about 39 s of training plus
5 s of evaluation, so the configs' two 16-epoch runs took 23 of the book's 31 minutes; the
committed profile (:data:`AVX2_EPOCH_PROFILE`) measured 32 s per epoch on AVX2 kernels and
``make book`` took under 10 minutes with two runs of 5 epochs (results/book-build-avx2.md)."""
AVX2_EPOCH_PROFILE = "bench-cpu-avx2.json"
"""The committed epoch profile without native bf16 (``python -m tdsa bench epoch`` on AVX2
kernels, under :func:`tdsa.resources.results_path`), which the shortened run's note quotes."""
_SHOWN_NOTES: set[str] = set()


def on_colab() -> bool:
    """Whether the code runs in a Google Colab kernel."""
    return "google.colab" in sys.modules


def repo_root() -> Path | None:
    """The checkout of the repository the package runs from, or None (an installed copy)."""
    root = resource_root()
    return root if (root / "pyproject.toml").is_file() else None


def _base() -> Path:
    return repo_root() or Path.cwd().resolve()


def data_root() -> Path:
    """Where the book's datasets live: ``<repo>/data`` in a checkout, else ``./data``."""
    return _base() / "data"


def default_runs_root() -> Path:
    """Where the book's run folders go by default: ``<repo>/runs/book`` in a checkout, else
    ``./runs/book`` in the working folder (on Colab pass a Google Drive folder instead)."""
    return _base() / "runs" / "book"


def resolve_runs_root(runs_root: str | Path | None = None) -> Path:
    """A chapter's ``runs_root`` parameter as a folder (``~`` expanded); None gives
    :func:`default_runs_root`."""
    return Path(runs_root).expanduser() if runs_root is not None else default_runs_root()


def display_path(path: str | Path) -> str:
    """``path`` as a reader would type it: relative to the checkout (or, with only the
    installed package, the working folder) when inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(_base()))
    except ValueError:
        return str(path)


def dataset_root(dataset: str, root: str | Path | None = None) -> Path:
    """``root`` if given, else the default root of a real dataset under :func:`data_root`
    (``CUB_200_2011`` for ``cub``, the dataset's name otherwise)."""
    if root is not None:
        return Path(root)
    return data_root() / ("CUB_200_2011" if dataset == "cub" else dataset)


def synthetic_data(name: str, root: str | Path | None = None) -> list[str]:
    """The overrides that select the book's generated dataset ``name`` of
    :data:`SYNTHETIC_SETS`: ``data.root`` (``root``, else ``data/synthetic-book-<name>``) and
    every ``data.synthetic`` argument (on a config with ``data.dataset: synthetic`` and
    ``data.generate: true``). Every chapter that uses one of these datasets asks here, so a
    root always holds the data its callers ask for."""
    if name not in SYNTHETIC_SETS:
        raise ValueError(f"synthetic set must be one of {sorted(SYNTHETIC_SETS)}, got {name!r}")
    folder = root or data_root() / f"synthetic-book-{name}"
    return [f"data.root={folder}",
            *(f"data.synthetic.{k}={v}" for k, v in SYNTHETIC_SETS[name].items())]


def check_profile(profile: str) -> str:
    """``profile`` itself; anything but ``smoke``, ``cpu``, ``gpu`` raises ValueError."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    return profile


def setup(rc: Mapping[RcKeyType, Any] | None = None) -> None:
    """Start a chapter: the ``tdsa`` logger prints to the cell output (one line per epoch of
    training), matplotlib gets the book's defaults (``figure.dpi`` 90, updated by ``rc``) and,
    in a notebook kernel, the inline backend, so a figure a package function returns is shown
    as an image whether or not the chapter drew with pyplot before. Idempotent."""
    import matplotlib.pyplot as plt

    from tdsa.console import configure_logging, in_notebook

    configure_logging(stream=sys.stdout)
    if in_notebook():
        from IPython import get_ipython

        get_ipython().run_line_magic("matplotlib", "inline")
    plt.rcParams.update({"figure.dpi": 90, **(rc or {})})


@dataclass(frozen=True)
class RunPlan:
    """One run a chapter opens: the config, the overrides it trains with, its folder."""

    config: Path
    overrides: list[str]
    run_dir: Path
    note: str = ""
    """Non-empty for a shortened demonstration run: what was shortened, why, and how to train
    the full run (:func:`load_or_train` prints it)."""

    def complete(self) -> bool:
        """Whether the run has finished (``best.pt`` and ``summary.json`` are there)."""
        return (self.run_dir / "best.pt").is_file() and (self.run_dir / "summary.json").is_file()


def _short_run(profile: str, seed: int, dataset: str, root: str | Path | None,
               epochs: int | None) -> tuple[str, list[str], str]:
    s = dict(_SHORT[profile])
    if epochs is not None:
        s["epochs"] = int(epochs)
    if profile == "gpu":
        dataset = "cub" if dataset == "synthetic" else dataset
        data = [f"data.dataset={dataset}", f"data.root={root or dataset_root(dataset)}",
                "data.generate=false", "model.options.width=1.0", "data.workers=4"]
    else:
        data = synthetic_data(profile, root)
    overrides = [*data, f"data.image_size={s['size']}", f"train.epochs={s['epochs']}",
                 f"runtime.seed={seed}"]
    return "smoke", overrides, f"channel_constraint-seed{seed}"


def training_is_slow() -> bool:
    """Whether chapter 4's cpu-profile runs would train in fp32 on the CPU here: no CUDA GPU,
    and a CPU without native bf16 (no AVX-512 BF16 or AMX, or a process capped below them by
    ``ATEN_CPU_CAPABILITY`` / ``ONEDNN_MAX_CPU_ISA``:
    :func:`tdsa.hardware.cpu_has_native_bf16`). There an epoch costs about 2.6 times
    the bf16 one, and ``run_plan(..., shorten=None)`` shortens the demonstration."""
    import torch

    from tdsa.hardware import cpu_has_native_bf16

    return not torch.cuda.is_available() and not cpu_has_native_bf16()


def _fp32_epoch_seconds() -> float | None:
    """Seconds of one fp32 epoch of the default regime, evaluation included, in the committed
    profile's first run (:data:`AVX2_EPOCH_PROFILE`); None where it is missing."""
    try:
        runs = json.loads((results_path() / AVX2_EPOCH_PROFILE).read_text(encoding="utf-8"))
        first = next(iter(runs["runs"].values()))
        return float(first["epoch"]["phases"]["total"]["wall_s"])
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return None


def _short_note(arm: str, full: int) -> str:
    epoch = _fp32_epoch_seconds()
    cost = (f": an fp32 epoch took {epoch:.0f} s on two cores in the committed profile "
            f"(results/{AVX2_EPOCH_PROFILE}), so the two {full}-epoch runs would take about "
            f"{2 * full * epoch / 60:.0f} minutes" if epoch else "")
    return (f"Shortened demonstration ({arm}): {SHORT_EPOCHS} of the config's {full} epochs, "
            f"because this machine trains in fp32 (no native bf16 on its CPU, no GPU){cost}. "
            f"The numbers of this chapter come from these {SHORT_EPOCHS}-epoch runs, not the "
            f"configs' {full}-epoch ones; the committed results are unaffected. For the full "
            f"runs set shorten = False (or epochs = {full}).")


def _training_run(profile: str, arm: str, seed: int, dataset: str, root: str | Path | None,
                  epochs: int | None) -> tuple[str, list[str], str]:
    if arm not in _ARMS:
        raise ValueError(f"arm must be one of {list(_ARMS)}, got {arm!r}")
    s = dict(_TRAINING[profile])
    if epochs is not None:
        s["epochs"] = int(epochs)
    overrides = [f"runtime.seed={seed}"]
    if profile == "gpu":
        dataset = "cub" if dataset == "synthetic" else dataset
        overrides += [f"data.dataset={dataset}", f"data.root={root or dataset_root(dataset)}"]
    else:
        if s["synthetic"] is None:
            overrides += [f"data.root={root or data_root() / 'synthetic'}"]
        else:
            overrides += synthetic_data(s["synthetic"], root)
    if s["size"]:
        overrides += [f"data.image_size={s['size']}", "data.workers=0"]
    if s["batch"]:
        overrides += [f"train.batch_size={s['batch']}"]
    if s["epochs"]:
        e = s["epochs"]
        overrides += [f"train.epochs={e}"]
        if profile != "gpu":  # the synthetic configs warm up for 30% and ramp over a third
            overrides += [f"schedule.warmup_epochs={0.3 * e:g}", f"loss.ramp_epochs={e / 3:.4g}"]
    return s["config"].format(arm=arm), overrides, f"training-{arm}-seed{seed}"


def run_plan(run: str, profile: str, *, arm: str = "tdsa", seed: int = 0,
             dataset: str = "synthetic", root: str | Path | None = None,
             epochs: int | None = None, runs_root: str | Path | None = None,
             shorten: bool | None = False) -> RunPlan:
    """The config, overrides and run folder of a run shared by chapters.

    ``run`` is ``"channel_constraint"`` (chapters 2 and 3: one short TDSA run of
    ``configs/smoke.yaml``) or ``"training"`` (chapters 4 and 6: ``arm`` ``"ce"`` or
    ``"tdsa"`` of ``configs/synthetic_{arm}.yaml``, or of the paper's recipe in the gpu
    profile). ``dataset`` and ``root`` choose the data of the gpu profile (``synthetic``
    there means CUB-200-2011) or the root of the synthetic data; ``epochs`` replaces the
    profile's. The folder is ``runs_root/<profile>/<run>-...-seed<seed>`` with ``runs_root``
    defaulting to :func:`default_runs_root`.

    ``shorten`` (cpu profile, training runs, no ``epochs`` given): True trains
    :data:`SHORT_EPOCHS` epochs (warm-up and ramp scaled) into the folder
    ``training-<arm>-seed<seed>-short<N>``, with a :attr:`RunPlan.note` that says so; None
    shortens only where :func:`training_is_slow` (fp32 on a CPU without native bf16); False
    (the default) never. The committed evidence is never shortened.

    Book: chapter 2, *A short training run and its per-class channels*.
    """
    check_profile(profile)
    if run == "channel_constraint":
        name, overrides, folder = _short_run(profile, seed, dataset, root, epochs)
    elif run == "training":
        short = (training_is_slow() if shorten is None else bool(shorten)) and (
            profile == "cpu" and epochs is None)
        name, overrides, folder = _training_run(profile, arm, seed, dataset, root,
                                                SHORT_EPOCHS if short else epochs)
        if short:  # its own folder: never opened as the full run
            from tdsa.config import load_config

            full = load_config(config_path(name)).train.epochs
            return RunPlan(config_path(name), overrides,
                           resolve_runs_root(runs_root) / profile / f"{folder}-short{SHORT_EPOCHS}",
                           _short_note(arm, full))
    else:
        raise ValueError(f"run must be one of {list(RUNS)}, got {run!r}")
    return RunPlan(config_path(name), overrides, resolve_runs_root(runs_root) / profile / folder)


def load_or_train(plan: RunPlan) -> dict[str, Any]:
    """The summary of a complete run; trains it first when it is not (resuming from its
    ``last.pt`` if an interrupted session left one). A shortened run's :attr:`RunPlan.note`
    is printed first (once per process).

    Book: chapter 4, *Train, or load the finished runs*.
    """
    if plan.note and plan.note not in _SHOWN_NOTES:
        _SHOWN_NOTES.add(plan.note)
        print(plan.note)
    if not plan.complete():
        from tdsa.engine import train

        train(plan.config, plan.run_dir, overrides=plan.overrides)
    return json.loads((plan.run_dir / "summary.json").read_text(encoding="utf-8"))


def first_test_images(cfg: Config, limit: int = 400) -> tuple[Any, Any]:
    """The first ``limit`` images of the test split of a run's dataset, built as the run builds
    it (:func:`tdsa.data.from_config` of ``cfg.data``: its test transform and its ``options``),
    as one ``[N, 3, H, W]`` tensor, and their labels ``[N]``: the batch chapters 2 and 3 feed to
    ``forward_features``."""
    import torch

    from tdsa.data import from_config

    dataset = from_config(cfg.data, "test")
    n = min(len(dataset), limit)
    return torch.stack([dataset[i][0] for i in range(n)]), torch.tensor(dataset.targets[:n])


def flat_config(tree: Config | Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config (or its nested dict) as ``{"section.key": value}``, e.g. to list the keys in
    which two configs differ."""
    items = tree.to_dict() if isinstance(tree, Config) else tree
    out: dict[str, Any] = {}
    for key, value in items.items():
        if isinstance(value, Mapping):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


BOOK_GRIDS = ("synthetic", "levers")
"""The grids of the book's lever sweep at the previous default (40 training images per
class; ``configs/ablations/<name>.yaml``, results in ``results/<name>.csv``): the levers arms
are compared with the synthetic grid's ``ce``."""

COMPARISON_GRID = "comparison"
"""The grid of the comparison at the default regime (``configs/ablations/comparison.yaml``:
each arm at its settings chosen on val, five seeds, results in ``results/comparison.csv``,
on test)."""


def lever_pairs(grids: Sequence[str] = BOOK_GRIDS) -> list[tuple[str, str, str]]:
    """``(lever, baseline arm, method arm)`` as the shipped grid files ``grids`` declare them
    (:func:`tdsa.experiments.grid.lever_pairs`)."""
    from tdsa.experiments.grid import lever_pairs as pairs_of
    from tdsa.experiments.grid import load_grid

    return pairs_of([load_grid(f"ablations/{name}") for name in grids])


def claim_summary(checks: Sequence[LeverCheck]) -> str:
    """One paragraph (Markdown) stating whether any lever gives the paper's result, which
    levers beat cross-entropy in accuracy, and which rest on fewer than 3 seeds.

    Book: chapter 5, *TDSA against cross-entropy, lever by lever (previous default)*.
    """
    found = [c for c in checks if c.holds]
    gains = [c for c in checks if verdict(*c.diffs[0]) == "higher"]
    losses = [c for c in checks if verdict(*c.diffs[0]) == "lower"]
    few = [c.arm for c in checks if c.seeds < 3]

    def names(cs: Sequence[LeverCheck]) -> str:
        return "; ".join(f"{c.arm} ({c.lever})" for c in cs)

    if found:
        text = f"**A regime where TDSA does what the paper claims:** {names(found)}."
    else:
        text = (f"**No lever here gives the paper's result.** In none of the {len(checks)} "
                "levers does the method arm both beat cross-entropy on the same network and put "
                "its true-class channels on the fine parts more often than a wrong class's "
                "channels, than chance and than CE's Grad-CAM.")
    text += (" Test accuracy against its cross-entropy arm, by "
             f"tdsa.experiments.evidence.verdict: higher in {names(gains)}." if gains
             else " In no lever does tdsa.experiments.evidence.verdict call the method arm's "
             "test accuracy higher than its CE arm's.")
    if losses:
        text += f" Lower: {names(losses)}."
    if few:
        text += f" Fewer than 3 seeds (provisional): {', '.join(few)}."
    return text


VERDICT_COLOURS = {"higher": "#228833", "lower": "#cc3311", "borderline higher": "#99cc99",
                   "borderline lower": "#ee9988", "no clear difference": "#888888"}
"""The colour of each word of :func:`~tdsa.experiments.evidence.verdict` in the book's
figures: green higher, red lower, pale for borderline, grey no clear difference."""


def plot_lever_differences(checks: Sequence[LeverCheck], title: str = "") -> Figure:
    """The four paired differences of :data:`~tdsa.experiments.evidence.CLAIM_PARTS` per lever,
    one panel each (two to a row): mean ± std over seeds (no bar for one seed), one row per
    lever in the order of ``checks``, coloured by their verdict (:data:`VERDICT_COLOURS`), with
    zero as a vertical line; above the panels ``title`` and the key of the colours.

    Book: chapter 5, *TDSA against cross-entropy, lever by lever (previous default)*.
    """
    from textwrap import shorten

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9.5, 2 * (0.3 * len(checks) + 1.3)), sharey=True)
    for ax, (p, part) in zip(axes.flat, enumerate(CLAIM_PARTS), strict=True):
        for y, c in enumerate(checks):
            mean, std, n = c.diffs[p]
            if n:
                ax.errorbar(mean, y, xerr=std if n > 1 else 0.0, fmt="o", ms=4, capsize=2,
                            color=VERDICT_COLOURS[verdict(mean, std, n)])
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(part, fontsize=10)
        ax.set_xlabel("method − reference (points)", fontsize=9)
    axes[0, 0].set_yticks(range(len(checks)), [
        f"{shorten(c.lever, 36, placeholder='…')} ({c.arm})" for c in checks])
    for ax in axes[:, 0]:
        ax.tick_params(axis="y", labelsize=8)
    axes[0, 0].invert_yaxis()
    key = "green higher, red lower, pale: borderline, grey no clear difference"
    fig.suptitle(f"{title}\n{key}" if title else key, fontsize=10)
    fig.tight_layout()
    return fig


def sweep_summary(parts: Sequence[str] = CLAIM_PARTS) -> str:
    """Markdown: the lever table of the committed sweep (``results/synthetic.csv`` and
    ``levers.csv``, through :func:`tdsa.experiments.evidence.read_sweep`) with the comparisons
    ``parts``, its :func:`claim_summary` and where the numbers come from
    (:func:`results_provenance`); where the results files are missing, one sentence saying so
    (chapter 5 shows them)."""
    try:
        sweep = read_sweep(results_path(), BOOK_GRIDS)
    except DataError as error:
        return f"The sweep's results are not in this copy ({error}); chapter 5 shows them."
    checks = check_levers(sweep, lever_pairs())
    return (lever_table(sweep, checks, parts=parts) + "\n\n" + claim_summary(checks) + "\n\n"
            + "\n".join(f"- {results_provenance(grid)}" for grid in BOOK_GRIDS))


FRESH_DRAW_GRID = "fresh_draw"
"""The comparison repeated on a fresh draw of the synthetic birds (``data.synthetic.seed=1``,
``configs/ablations/fresh_draw.yaml``): CE and TDSA at the settings chosen on val on the
committed draw, five seeds, on test; nothing was chosen from it."""


def comparison_summary(column: str = "final_top1", grid: str = COMPARISON_GRID) -> str:
    """Markdown, one paragraph: each method arm of the committed comparison ``grid``
    (:data:`COMPARISON_GRID` by default; :data:`FRESH_DRAW_GRID` for its replication on a
    fresh draw of the data) against its cross-entropy arm in ``column`` (final test top-1 by
    default): both means ± std and the difference paired by seed, with
    :func:`~tdsa.experiments.evidence.verdict`, then where the numbers come from
    (:func:`results_provenance`). Where the results file is missing, a sentence saying so.

    Book: chapter 4, *Over five seeds*; chapter 5, *The comparison on test*.
    """
    try:
        rows = read_sweep(results_path(), (grid,))
    except DataError as error:
        return f"The comparison's results are not in this copy ({error}); chapter 5 shows them."
    sentences = []
    for lever, ce, arm in lever_pairs((grid,)):
        a, b = column_stats(rows, arm, column), column_stats(rows, ce, column)
        diff = paired(rows, (arm, column), (ce, column))
        sentences.append(f"`{arm}` ({lever}) {format_mean_std(*a[:2])}% against `{ce}` "
                         f"{format_mean_std(*b[:2])}%, paired difference "
                         f"{format_difference(diff)} points over {diff[2]} seeds: "
                         f"**{verdict(*diff)}**")
    return (f"Committed {'comparison' if grid == COMPARISON_GRID else 'results'} "
            f"(`results/{grid}.csv`, {column} on the test split, each arm at its settings "
            "chosen on val): " + "; ".join(sentences) + ". " + results_provenance(grid))


def plot_paired_seeds(rows: Sequence[Row], variants: Sequence[str], seeds: Sequence[int], *,
                      key: str = "final_top1", chance: float | None = None,
                      ylabel: str = "final test top-1 (%)", title: str = "",
                      ax: Axes | None = None) -> Axes:
    """Column ``key`` of each of ``variants`` (x, in order) seed by seed: one dot per finished
    run, a line joining the variants of one seed (one colour per seed of ``seeds``), and
    beside each variant its mean ± std over seeds (no bar for one seed); ``chance`` as a dotted
    line. Returns the axes (on a new figure, laid out, when ``ax`` is None).

    Book: chapter 5, *The comparison on test*.
    """
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.6, 3.8))
    by_seed = {v: {int(r["seed"]): float(r[key]) for r in rows  # type: ignore[call-overload, arg-type]
                   if r["variant"] == v and r["status"] == "ok"} for v in variants}
    for k, s in enumerate(seeds):
        xs = [i for i, v in enumerate(variants) if s in by_seed[v]]
        if xs:
            ax.plot(xs, [by_seed[variants[i]][s] for i in xs], "o-", color=f"C{k}", lw=1, ms=4,
                    alpha=0.7, label=f"seed {s}")
    for i, v in enumerate(variants):
        mean, std, values = column_stats(rows, v, key)
        if values:
            ax.errorbar(i + 0.18, mean, yerr=0.0 if len(values) < 2 else std, fmt="D",
                        color="k", capsize=4, label="mean ± std" if i == 0 else None)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1.2, label=f"chance ({chance:.1f}%)")
    ax.set_xticks(range(len(variants)), list(variants))
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    if fig is not None:
        fig.tight_layout()
    return ax


TUNING_GRIDS = ("calibration", "tuning")
"""The grids whose val runs chose each arm's settings (the calibration centre and the
one-change-at-a-time tuning around it)."""
TUNING_SEEDS = (0, 1)
"""The seeds every tuning candidate was trained on."""


def epoch_budget() -> int:
    """The book's time budget in epochs per run: ``train.epochs`` of the default configs
    (``configs/synthetic_ce.yaml`` and ``configs/synthetic_tdsa.yaml``); ValueError where the
    two differ.

    Book: chapter 5, *Tuning on val*.
    """
    from tdsa.config import load_config

    epochs = {arm: load_config(config_path(f"synthetic_{arm}")).train.epochs for arm in _ARMS}
    if len(set(epochs.values())) != 1:
        raise ValueError(f"the default configs train different numbers of epochs: {epochs}")
    return epochs[_ARMS[0]]


def tuned_candidates(results_dir: str | Path | None = None) -> list[Candidate]:
    """Every setting of the tuning budget on val, ranked within each arm:
    :func:`~tdsa.experiments.calibration.tuning_candidates` of :data:`TUNING_GRIDS` (their
    results files in ``results_dir``, the committed ones by default) over
    :data:`TUNING_SEEDS`, eligible within :func:`epoch_budget`.

    Book: chapter 5, *Tuning on val*.
    """
    from tdsa.experiments.calibration import tuning_candidates

    sources = [grid_results(name, results_dir)[:2] for name in TUNING_GRIDS]
    return tuning_candidates(sources, seeds=TUNING_SEEDS, max_epochs=epoch_budget())


def tuned_choice(arm: str) -> Candidate:
    """The setting that ``arm`` (``"ce"`` or ``"tdsa"``) chose on val: the best eligible of
    the committed :func:`tuned_candidates`."""
    from tdsa.experiments.calibration import choose

    return choose(tuned_candidates(), arm)


def tuned_overrides(arm: str) -> list[str]:
    """The settings :func:`tuned_choice` changes
    (:meth:`tdsa.experiments.calibration.Candidate.changes`; ``[]`` for the centre itself).

    Book: chapter 4, *Two configs: the loss, and what each arm chose on val*.
    """
    return tuned_choice(arm).changes()


def measured_effect(arm: str, baseline: str, *, column: str = "final_top1", scale: float = 1.0,
                    grids: Sequence[str] = BOOK_GRIDS, results_dir: str | Path | None = None,
                    required: bool = True) -> str:
    """Markdown, one line: what the results files of ``grids`` in ``results_dir`` (the
    committed ones by default) measured for ``arm`` minus ``baseline`` in ``column`` (times
    ``scale``: 100 for a fraction in points), paired over the seeds both finished
    (:func:`tdsa.experiments.evidence.paired` over
    :func:`~tdsa.experiments.evidence.read_sweep` of ``grids``), with
    :func:`~tdsa.experiments.evidence.verdict` and the seeds the results file has for both,
    e.g. ``"`tdsa_n80` − `tdsa`, final_top1: +14.7 ± 3.6 over 3 seeds (0, 1, 2):
    **higher**"``. Where the results files are missing, a sentence saying so. A variant without
    finished runs in them raises ValueError naming it; with ``required=False`` (results still
    being written) the line says ``"not measured yet"`` instead.

    Book: chapter 5, *Exercises*.
    """
    try:
        rows = read_sweep(results_dir if results_dir is not None else results_path(), grids)
    except DataError as error:
        return f"not measured in this copy ({error})"
    found = {r["variant"] for r in rows if r["status"] == "ok"}
    missing = [v for v in (arm, baseline) if v not in found]
    if missing and not required:
        return f"`{arm}` − `{baseline}`, {column}: not measured yet"
    if missing:
        raise ValueError(f"no finished run of {', '.join(missing)} in the results of "
                         f"{', '.join(grids)}")
    diff = paired(rows, (arm, column), (baseline, column), scale)
    both = [{int(r["seed"]) for r in rows  # type: ignore[call-overload]
             if r["variant"] == v and r["status"] == "ok"
             and r.get(column) == r.get(column)} for v in (arm, baseline)]  # NaN != NaN
    seeds = ", ".join(map(str, sorted(both[0] & both[1])))
    return (f"`{arm}` − `{baseline}`, {column}: {format_difference(diff)} over {diff[2]} "
            f"{'seed' if diff[2] == 1 else 'seeds'} ({seeds}): **{verdict(*diff)}**")


_SESSION_START = __import__("time").time()
"""When this process imported :mod:`tdsa.experiments.book`: a run folder whose ``summary.json``
was written after it was trained in this session (this build of the chapter), an older one was
loaded."""


def run_provenance(run_dir: str | Path) -> str:
    """One sentence on where a run folder's numbers come from: **trained now** (its
    ``summary.json`` was written after this session started), in what precision and on which
    CPU (:func:`tdsa.provenance.cpu_kind`); or **loaded** from a run folder trained earlier (the
    date of its summary and its precision; the CPU of an earlier session is not recorded).

    Book: chapter 6, *The two trained networks*.
    """
    import datetime

    from tdsa.provenance import cpu_kind

    path = Path(run_dir) / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    precision = summary.get("precision") or "precision not recorded"
    when = path.stat().st_mtime
    seconds = summary.get("seconds")
    took = f", {seconds:.0f} s" if isinstance(seconds, (int, float)) else ""
    if when >= _SESSION_START:
        return (f"`{display_path(run_dir)}`: trained now, in this build{took}, {precision}, on "
                f"{cpu_kind()}")
    stamp = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return (f"`{display_path(run_dir)}`: loaded, trained earlier ({stamp:%Y-%m-%d %H:%M} UTC"
            f"{took}, {precision}; the CPU of that session is not recorded)")


class GridResults(NamedTuple):
    """A shipped grid file and its results: the parsed grid, its rows and their header."""

    grid: Grid
    rows: list[Row]
    header: dict[str, str]


def grid_results(name: str, results_dir: str | Path | None = None) -> GridResults:
    """The shipped grid ``configs/ablations/<name>.yaml`` with the rows and header of its
    results files ``<name>.csv`` and ``<name>.json`` in ``results_dir`` (the committed
    ``results/`` by default). FileNotFoundError naming the ``python -m tdsa ablate`` command
    that writes them where either file is missing; ValueError where the CSV has no rows.

    Book: chapter 5, *The results files*.
    """
    from tdsa.experiments.evidence import read_header, read_results
    from tdsa.experiments.grid import load_grid

    folder = _results_folder(results_dir)
    path = folder / f"{name}.csv"
    if not (path.is_file() and path.with_suffix(".json").is_file()):
        raise FileNotFoundError(
            f"no ablation results in {folder} for {name}: expected {name}.csv and {name}.json "
            f"written by `python -m tdsa ablate --grid configs/ablations/{name}.yaml --out "
            f"runs/ablate/{name}` (run it from the repository root, then run this chapter again)")
    rows = read_results(path)
    if not rows:
        raise ValueError(f"{path} has no rows: rerun the ablate command of its header")
    return GridResults(load_grid(f"ablations/{name}"), rows, read_header(path.with_suffix(".json")))


def results_provenance(name: str, results_dir: str | Path | None = None) -> str:
    """Markdown, one line: where the committed results ``results/<name>`` come from, read from
    its files: the split, the seeds (and runs) that finished, the precision (the header's
    ``Precision``, else what the resolved configs under ``results/<name>/configs`` ask for),
    the machine and CPU (``CPU``: not recorded in files written before it existed), when it
    was written and every command that made it; loaded from the repository, not trained in
    this build.

    Book: chapter 5, *The results files*.
    """
    import yaml

    from tdsa.experiments.evidence import read_header, read_results

    folder = _results_folder(results_dir)
    try:
        header = read_header(folder / f"{name}.json")
        rows = read_results(folder / f"{name}.csv")
    except DataError as error:
        return f"`results/{name}`: not in this copy ({error})."
    ok = [r for r in rows if r["status"] == "ok"]
    seeds = sorted({int(r["seed"]) for r in ok})  # type: ignore[call-overload]
    split = header.get("Split", "split not recorded").split(":")[0].split(" (")[0]
    precision = header.get("Precision")
    if precision is None:
        asked = set()
        for config in sorted((folder / name / "configs").glob("*.yaml")):
            train = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("train", {})
            asked.add(f"train.amp={train.get('amp', 'auto')}, "
                      f"channels_last={train.get('channels_last', 'auto')}")
        precision = ("; ".join(sorted(asked)) or "not recorded") + (
            " (auto: bf16 + channels_last on a CPU with native bf16, else fp32)")
    cpu = header.get("CPU", "model not recorded")
    command = header.get("Command", "n/a")
    partial = ("resumed with" not in command and any(f" {flag} " in command
                                                     for flag in ("--only", "--seeds")))
    return (f"`results/{name}` (loaded from the repository, not trained in this build): "
            f"{split} split; seeds {', '.join(map(str, seeds)) or 'none'} ({len(ok)} runs "
            f"finished); precision {precision}; machine {header.get('Machine', 'not recorded')}; "
            f"CPU {cpu}; written {header.get('Written', 'n/a').split(';')[0]} by {command}"
            + (" (the last call only: this file was written before the results kept every "
               "command; the comments of the grid file say how its runs were split)"
               if partial else "") + ".")


BUDGET_GRID = "budget"
"""The budget curve of both arms on val (``configs/ablations/budget.yaml``), from which
:func:`tdsa.experiments.budget.converged_budget` takes the converged budget E."""


def _results_folder(results_dir: str | Path | None) -> Path:
    """``results_dir``, or the committed ``results/`` when None."""
    return Path(results_dir) if results_dir is not None else results_path()


def converged_e(results_dir: str | Path | None = None) -> Budget:
    """The converged budget E of the committed budget curve (:data:`BUDGET_GRID`) by
    :func:`tdsa.experiments.budget.converged_budget`; DataError where its results are missing.
    """
    from tdsa.experiments.budget import budget_points, converged_budget
    from tdsa.experiments.evidence import read_results

    folder = _results_folder(results_dir)
    return converged_budget(budget_points(read_results(folder / f"{BUDGET_GRID}.csv")))


def budget_summary(results_dir: str | Path | None = None,
                   compared: str = COMPARISON_GRID) -> str:
    """Markdown, one paragraph: the converged budget E of the committed budget curve
    (:data:`BUDGET_GRID`) by its rule, the change of each arm's mean final val top-1 over the
    doubling that decided it, and how many epochs the committed comparison ``compared`` trained
    (its resolved configs), then where the numbers come from. Where the results files are
    missing, a sentence saying so.

    Book: chapter 5, *The budget: how long to train*.
    """
    import yaml

    from tdsa.experiments.budget import TOLERANCE

    folder = _results_folder(results_dir)
    try:
        budget = converged_e(folder)
    except DataError as error:
        return f"The budget curve's results are not in this copy ({error})."
    changes = ", ".join(f"{arm} {change:+.1f}" for arm, change in sorted(budget.changes.items()))
    if budget.converged:
        text = (f"**E = {budget.epochs} epochs**: doubling it to {2 * budget.epochs} changes no "
                f"arm's mean final val top-1 by more than {TOLERANCE:g} point ({changes}).")
    else:
        last = f" (from {budget.epochs // 2} to {budget.epochs} epochs: {changes} points)" \
            if changes else ""
        text = (f"**E = {budget.epochs} epochs, not converged**: no doubling measured keeps every "
                f"arm's mean final val top-1 within {TOLERANCE:g} point{last}, so E is the "
                "largest budget measured and both arms may still gain beyond it.")
    epochs = sorted({
        (yaml.safe_load(p.read_text(encoding="utf-8")) or {}).get("train", {}).get("epochs")
        for p in (folder / compared / "configs").glob("*.yaml")} - {None})
    if epochs:
        trained = "/".join(map(str, epochs))
        where = ("at E" if epochs == [budget.epochs] else
                 "below E: its verdict is that of runs stopped before the budget curve's E"
                 if max(epochs) < budget.epochs else "above E")
        text += (f" The committed comparison (`results/{compared}`) trained {trained} epochs, "
                 f"{where}.")
    return text + " " + results_provenance(BUDGET_GRID, folder)


def class_count_table(results_dir: str | Path | None = None,
                      counts: Sequence[int] = (12, 24, 48), unique_part: str = "eye_ring") -> str:
    """Markdown: for each class count of ``counts``, with and without ``unique_part``, how
    many classes each class differs from in one attribute only (mean;
    :func:`tdsa.data.synthetic.one_attribute_neighbours`) and how many classes have a value of
    their own (:func:`~tdsa.data.synthetic.exclusive_values`), beside each arm's final val
    top-1 at that count in the committed calibration grid (its other knobs at the centre),
    where one was trained.

    Book: chapter 5, *The class count*.
    """
    from tdsa.data.synthetic import choose_classes, exclusive_values, one_attribute_neighbours
    from tdsa.experiments.calibration import KNOBS, centre, grid_cells

    grid, rows, _ = grid_results("calibration", results_dir)
    cells = grid_cells(grid)
    mid = centre(cells.values())
    lines = ["| classes | own value of | one-attribute neighbours | classes with a value of "
             "their own | CE val top-1 | TDSA val top-1 | epochs |",
             "|---|---|---|---|---|---|---|"]
    for k in counts:
        trained = {c.arm: c.variant for c in cells.values() if c.knob("num_classes") == k
                   and all(c.knob(n) == mid[n] for n in KNOBS if n != "num_classes")}
        for unique in (None, unique_part):
            classes = choose_classes(k, unique)
            neighbours = statistics.fmean(one_attribute_neighbours(classes))
            own = sum(1 for n in exclusive_values(classes) if n)
            tops = []
            for arm in _ARMS:
                variant = trained.get(arm) if unique is None else None  # unique: never trained
                mean, std, values = column_stats(rows, variant or "", "final_top1")
                tops.append(f"{format_mean_std(mean, std)} ({len(values)})" if values else "—")
            epochs = (grid.config(trained["ce"], grid.seeds[0]).train.epochs
                      if unique is None and "ce" in trained else "—")
            lines.append(f"| {k} | {unique or 'none'} | {neighbours:.2f} | {own} of {k} | "
                         + " | ".join(tops) + f" | {epochs} |")
    return "\n".join(lines) + (
        "\n\n*one-attribute neighbours*: the mean number of classes a class differs from in one "
        "attribute only; *own value of*: the part given a value no other class has "
        "(`data.synthetic.unique_part`); *val top-1*: final val top-1 (%) of the calibration "
        "grid's cell, mean ± std (seeds); — where no cell was trained. "
        + results_provenance("calibration", results_dir))


def demonstration_note(epochs: int, results_dir: str | Path | None = None) -> str:
    """One sentence: runs of ``epochs`` epochs (a chapter's) against the converged budget E of
    the committed budget curve: a demonstration inside the book build's time budget where
    they stop below E. A sentence saying so where the budget curve's results are missing.

    Book: chapter 4, *Accuracy: selected on val, reported on test*.
    """
    try:
        budget = converged_e(results_dir)
    except DataError as error:
        return f"The budget curve's results are not in this copy ({error})."
    e = f"E = {budget.epochs} epochs" + ("" if budget.converged else ", not converged")
    if epochs < budget.epochs:
        return (f"These runs trained {epochs} epochs: a demonstration that fits the book build's "
                f"time budget, below the converged budget of the budget curve on val ({e}; "
                "chapter 5), so their numbers are not the book's evidence.")
    return (f"These runs trained {epochs} epochs, at or above the converged budget of the "
            f"budget curve on val ({e}; chapter 5).")


JOINT_GRID = "tuning_joint"
"""Both arms tuned on val at the converged budget E, each on a grid that crosses two of its
settings (``configs/ablations/tuning_joint.yaml``)."""


def _crossing_table(crossing: Crossing, chosen: Candidate | None) -> list[str]:
    """One arm's crossing as a Markdown table: final val top-1 (mean ± std, seeds) per cell."""
    columns = ["/".join(dict.fromkeys(col)) for col in crossing.columns]  # 0.075/0.75
    lines = [f"| {crossing.row_key.split('.')[-1]} | " + " | ".join(columns) + " |",
             "|---" * (1 + len(columns)) + "|"]
    for row in crossing.rows:
        cells = []
        for col in crossing.columns:
            c = crossing.cells[(row, col)]
            text = f"{format_mean_std(*c.top1[:2])} ({c.top1[2]})" if c.top1[2] else "— (0)"
            cells.append(f"**{text}**" if c is chosen else text)
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


class JointTuning(NamedTuple):
    """The joint tuning as the book reads it: its grid and rows, the converged budget E, the
    ranked candidates and each arm's choice (None until its grid is complete)."""

    grid: Grid
    rows: list[Row]
    epochs: int
    candidates: list[Candidate]
    chosen: dict[str, Candidate | None]

    @property
    def finished(self) -> int:
        """Runs that finished."""
        return sum(1 for r in self.rows if r["status"] == "ok")

    @property
    def runs(self) -> int:
        """Runs of the grid: each variant's seeds, summed."""
        return self.grid.runs


def joint_tuning(results_dir: str | Path | None = None) -> JointTuning:
    """The committed joint tuning (:data:`JOINT_GRID`) read with the budget curve's E
    (FileNotFoundError or DataError where the results files are missing).

    Book: chapter 5, *Joint tuning at E*.
    """
    from tdsa.experiments.joint_tuning import joint_candidates, joint_choice

    grid, rows, _ = grid_results(JOINT_GRID, results_dir)
    epochs = converged_e(results_dir).epochs
    cands = joint_candidates(grid, rows, seeds=grid.seeds, epochs=epochs)
    return JointTuning(grid, rows, epochs, cands,
                       {arm: joint_choice(cands, arm) for arm in _ARMS})


def joint_tuning_status(results_dir: str | Path | None = None) -> str:
    """One sentence: how many runs of the joint tuning finished and what each arm chose, or
    how many of its settings the choice still waits for.

    Book: chapter 5, *What we measured*.
    """
    from tdsa.experiments.joint_tuning import inside

    try:
        joint = joint_tuning(results_dir)
    except (DataError, FileNotFoundError, ValueError) as error:
        return f"The joint tuning's results are not in this copy ({error})."
    arms = []
    for arm, c in joint.chosen.items():
        if c is None:
            cells = inside(joint.candidates, arm)
            waiting = sum(1 for d in cells if not d.eligible)
            arms.append(f"{ARM_NAMES[arm]} has no choice yet ({waiting} of {len(cells)} "
                        "settings miss a seed)")
        else:
            arms.append(f"{ARM_NAMES[arm]} chose `{c.variant}` "
                        f"({format_mean_std(*c.top1[:2])}%)")
    return (f"Joint tuning at E = {joint.epochs} epochs on val: {joint.finished} of "
            f"{joint.runs} runs finished; " + "; ".join(arms) + ".")


def _late_rise_in_the_comparison(arm: str, folder: Path, joint: JointTuning
                                 ) -> tuple[LateRise, str]:
    """The late rise of the comparison's runs of ``arm`` where they train its joint choice
    (for a chosen cell whose own runs kept no curve), with the name of that variant; an empty
    rise and ``""`` where no variant trains it or its runs kept no curve."""
    from tdsa.experiments.calibration import grid_cells
    from tdsa.experiments.grid import read_curves
    from tdsa.experiments.joint_tuning import LateRise, late_rise

    nothing = LateRise("val_top1", 1, {}), ""
    if any(c is None for c in joint.chosen.values()):
        return nothing
    try:
        grid, _, _ = grid_results(COMPARISON_GRID, folder)
    except FileNotFoundError:
        return nothing
    diffs = _differences_from_choice(joint, grid)
    for name, cell in grid_cells(grid).items():
        if cell.arm == arm and not diffs.get(name, True):
            rise = late_rise(read_curves(folder / COMPARISON_GRID, required=False), name,
                             grid.variant_seeds(name))
            if rise.per_seed:
                return rise, name
    return nothing


def joint_tuning_summary(results_dir: str | Path | None = None) -> str:
    """Markdown: for each arm of the joint tuning (:func:`joint_tuning`), the crossing of its
    grid with final val top-1 per cell (mean ± std, seeds finished), its choice by
    :func:`tdsa.experiments.joint_tuning.joint_choice` (or how many cells it still waits for),
    how much the chosen setting's val top-1 still rose over its last epochs
    (:func:`~tdsa.experiments.joint_tuning.late_rise`, against the budget rule's tolerance),
    the points outside the grid, and where the numbers come from.

    Book: chapter 5, *Joint tuning at E*.
    """
    from tdsa.experiments.budget import TOLERANCE
    from tdsa.experiments.grid import read_curves
    from tdsa.experiments.joint_tuning import OUTSIDE, crossing, late_rise

    folder = _results_folder(results_dir)
    try:
        joint = joint_tuning(folder)
    except (DataError, FileNotFoundError, ValueError) as error:
        return f"The joint tuning's results are not in this copy ({error})."
    grid = joint.grid
    curves = read_curves(folder / JOINT_GRID, required=False)
    parts = [f"{joint.finished} of {joint.runs} runs finished (seeds "
             f"{', '.join(map(str, grid.seeds))}; validation split, test not read), each at "
             f"{grid.config(next(iter(grid.variants)), grid.seeds[0]).train.epochs} epochs "
             f"(E = {joint.epochs}). Final val top-1 (%), mean ± std (seeds finished); the "
             "chosen cell in bold."]
    for arm, chosen in joint.chosen.items():
        cross = crossing(joint.candidates, arm)
        axes = (f"rows `{cross.row_key}`, columns "
                + ", ".join(f"`{k}`" for k in cross.column_keys))
        parts.append(f"**{ARM_NAMES[arm]}** ({axes}):\n\n"
                     + "\n".join(_crossing_table(cross, chosen)))
        if chosen is None:
            waiting = [c for c in cross.cells.values() if not c.eligible]
            parts.append(f"No choice yet: {len(waiting)} of {len(cross.cells)} settings miss "
                         "a seed, and the rule (the best mean final val top-1) waits for every "
                         "cell, since an early choice could flip.")
            continue
        rise, other = late_rise(curves, chosen.variant, grid.seeds), ""
        if not rise.per_seed:
            rise, other = _late_rise_in_the_comparison(arm, folder, joint)
        if not rise.per_seed:
            still = ("its runs recorded no epoch curve (they trained before runs kept one), "
                     "so whether it still rises at E is not measured")
        else:
            subject = (f"over its last {rise.window} epochs its val top-1" if not other else
                       "its own runs kept no epoch curve; over the last "
                       f"{rise.window} epochs of the comparison's `{other}` runs (the same "
                       "recipe) their val top-1")
            still = (f"{subject} moved by "
                     f"{rise.mean:+.1f} points (mean over {len(rise.per_seed)} seeds) against "
                     f"the {rise.window} before: "
                     + (f"more than {TOLERANCE:g} point, so it **still rises at E**"
                        if rise.mean > TOLERANCE else
                        f"within {TOLERANCE:g} point, flat at E"))
        edges = cross.edges(chosen)
        parts.append(f"Chosen: `{chosen.variant}` ({chosen.describe()}), "
                     f"{format_mean_std(*chosen.top1[:2])}% over {chosen.top1[2]} seeds; "
                     f"{still}." + (f" It lies at an end of its grid: {' and '.join(edges)}; "
                                    "no value beyond was tried." if edges else ""))
    outside = [c for c in joint.candidates if c.reason == OUTSIDE]
    if outside:
        parts.append("Outside the grid, never chosen: " + "; ".join(
            f"`{c.variant}` ({c.describe()}): "
            + (f"{format_mean_std(*c.top1[:2])}% over {c.top1[2]} seeds" if c.top1[2]
               else "no run finished yet") for c in outside) + ".")
    parts.append(results_provenance(JOINT_GRID, folder))
    return "\n\n".join(parts)


RUN_SETTINGS = ("runtime.", "data.root", "train.eval_test")
"""Config keys (or key prefixes) that say where a run reads and writes, how it runs on the
machine and whether it reads test along the way: left out when asking whether two runs train
the same recipe (:func:`recipe_differences`)."""

FOLLOW_UP_GRIDS = (COMPARISON_GRID, FRESH_DRAW_GRID)
"""The test grids that train each arm at its joint choice (issue 22, step 3)."""


def recipe_differences(chosen: Config, cfg: Config) -> dict[str, tuple[Any, Any]]:
    """The settings, but :data:`RUN_SETTINGS`, in which ``cfg`` differs from ``chosen``, as
    ``{key: (chosen's value, cfg's value)}`` (None where a config lacks the key).

    Book: chapter 5, *Joint tuning at E*.
    """
    a, b = flat_config(chosen), flat_config(cfg)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())
            if not k.startswith(RUN_SETTINGS) and a.get(k) != b.get(k)}


def choice_differences(grid: str | Path, results_dir: str | Path | None = None
                       ) -> dict[str, dict[str, tuple[Any, Any]]] | None:
    """For each variant of ``grid`` (a grid file, or the name of a shipped grid such as
    ``"comparison"``), the settings in which its runs differ from the joint choice of its arm
    (:func:`recipe_differences` against the chosen variant's config): empty where the variant
    trains the choice. None while either arm of the joint tuning has no choice.

    Book: chapter 5, *Joint tuning at E*.
    """
    from tdsa.experiments.grid import load_grid

    joint = joint_tuning(results_dir)
    if any(c is None for c in joint.chosen.values()):
        return None
    return _differences_from_choice(
        joint, load_grid(grid if Path(grid).suffix else f"ablations/{grid}"))


def _differences_from_choice(joint: JointTuning, target: Grid
                             ) -> dict[str, dict[str, tuple[Any, Any]]]:
    """:func:`choice_differences` of ``target`` once both arms of ``joint`` chose."""
    from tdsa.experiments.calibration import grid_cells

    out = {}
    for name, cell in grid_cells(target).items():
        chosen = joint.chosen[cell.arm]
        assert chosen is not None
        out[name] = recipe_differences(joint.grid.config(chosen.variant, joint.grid.seeds[0]),
                                       target.config(name, target.seeds[0]))
    return out


def choice_carried(grids: Sequence[str] = FOLLOW_UP_GRIDS,
                   results_dir: str | Path | None = None) -> str:
    """Markdown: whether each arm of the test ``grids`` trains its arm's joint choice, and in
    which settings it differs where it does not (:func:`choice_differences`); one sentence
    while the joint tuning has not chosen both arms.

    Book: chapter 5, *Joint tuning at E*.
    """
    try:
        found = {g: choice_differences(g, results_dir) for g in grids}
    except (DataError, FileNotFoundError, ValueError) as error:
        return f"The joint tuning's results are not in this copy ({error})."
    if any(d is None for d in found.values()):
        return ("Whether the test grids train each arm's joint choice is checked once both "
                "arms have one.")
    lines = []
    for g, diffs in found.items():
        assert diffs is not None
        for variant, d in diffs.items():
            said = ("trains its arm's joint choice" if not d else "differs from its arm's "
                    "joint choice in " + ", ".join(f"`{k}` ({a!r} chosen, {b!r} here)"
                                                   for k, (a, b) in d.items()))
            lines.append(f"- `{variant}` of `configs/ablations/{g}.yaml` {said}.")
    return "\n".join(lines)


def stall_summary(grid: str = COMPARISON_GRID, results_dir: str | Path | None = None, *,
                  column: str = "final_top1", k: float = 2.0, shown: int = 5) -> str:
    """Markdown: the seeds of each arm of the committed ``grid`` that stall
    (:func:`tdsa.experiments.stalls.stalled_seeds`: ``column`` more than ``k`` std of the arm's
    other seeds below their mean) and, from the epoch records the grid kept, the epoch from
    which each one's train top-1 stayed behind (:func:`~tdsa.experiments.stalls.fell_behind`)
    and the ``shown`` recorded quantities furthest from the other seeds at its end
    (:func:`~tdsa.experiments.stalls.curve_deviations`). A sentence where the files are missing.

    Book: chapter 5, *Seeds that stall*.
    """
    from tdsa.experiments.grid import read_curves
    from tdsa.experiments.stalls import curve_deviations, fell_behind, stalled_seeds

    folder = _results_folder(results_dir)
    try:
        found = grid_results(grid, folder)
    except (FileNotFoundError, ValueError) as error:
        return f"The results of `{grid}` are not in this copy ({error})."
    curves = read_curves(folder / grid, required=False)
    stalls = {v: stalled_seeds(found.rows, v, column, k) for v in found.grid.variants}
    calm = [f"`{v}`" for v, s in stalls.items() if not s]
    parts = [f"`results/{grid}.csv` ({column}, {found.grid.split} split): "
             + (f"no seed stalls in {', '.join(calm)}." if calm else "every arm has a stall.")]
    for variant, found_stalls in stalls.items():
        seeds = [int(r["seed"]) for r in found.rows  # type: ignore[call-overload]
                 if r["variant"] == variant and r["status"] == "ok"]
        for st in found_stalls:
            text = (f"**`{variant}` seed {st.seed}** ends at {st.value:.1f}% against "
                    f"{format_mean_std(st.others_mean, st.others_std)}% of its other "
                    f"{len(seeds) - 1} seeds ({st.z:.1f} of their std below).")
            if not curves.get((variant, st.seed)):
                parts.append(text + " Its run recorded no epoch curve (it trained before runs "
                             "kept one), so why it stalled cannot be read from the files.")
                continue
            behind = fell_behind(curves, variant, st.seed, seeds, k=k)
            text += (f" Its train top-1 fell {k:g} std behind the other seeds' at epoch {behind} "
                     "and stayed behind to the end." if behind is not None else
                     f" Its train top-1 is within {k:g} std of the other seeds' at its last "
                     "epoch: it fits the training set as they do.")
            devs = curve_deviations(curves, variant, st.seed, seeds)[:shown]
            table = ["| recorded, mean of its last epochs | this seed | other seeds | z |",
                     "|---|---|---|---|"]
            table += [f"| {d.key} | {d.value:.3g} | {d.others_mean:.3g} ± {d.others_std:.2g} | "
                      f"{d.z:+.1f} |" for d in devs]
            parts.append(text + " What it recorded furthest from the other seeds:\n\n"
                         + "\n".join(table))
    return "\n\n".join(parts)


def _generate_args(cfg: Config) -> dict[str, Any]:
    """The arguments ``cfg`` gives :func:`tdsa.data.synthetic.generate`: its ``data.synthetic``
    over the function's defaults; ValueError for a config of another dataset."""
    import inspect

    from tdsa.data.synthetic import generate

    if cfg.data.dataset != "synthetic":
        raise ValueError(f"not a config of the synthetic data: data.dataset={cfg.data.dataset!r}")
    defaults = {name: p.default for name, p in inspect.signature(generate).parameters.items()}
    return {**defaults, **cfg.data.synthetic}


def data_regime(config: str | Path = "synthetic_tdsa") -> str:
    """The synthetic data a config generates, in words (its ``data.synthetic`` over
    :func:`tdsa.data.synthetic.generate`'s defaults): e.g. ``"12 classes with 160 training, 30
    validation and 30 test images each"`` for the book's default regime,
    ``configs/synthetic_tdsa.yaml``. ``config`` is a path or a shipped config's name.

    Book: chapter 1, *Generating the dataset*; chapter 4, *Two configs: the loss, and what each
    arm chose on val*.
    """
    from tdsa.config import load_config

    args = _generate_args(load_config(config))
    counts = [f"{args['train_per_class']} training"]
    if args["val_per_class"]:
        counts.append(f"{args['val_per_class']} validation")
    counts.append(f"{args['test_per_class']} test")
    listed = ", ".join(counts[:-1]) + " and " + counts[-1]
    return f"{args['num_classes']} classes with {listed} images each"


def grid_regime(name: str, variant: str | None = None) -> str:
    """The regime of the committed grid ``configs/ablations/<name>.yaml`` in words: the epochs
    and training images per class of ``variant``'s runs (by default the grid's first variant)
    and its number of seeds, e.g. ``"16 epochs, 40 training images per class, 3 seeds"``
    for the lever sweep (``grid_regime(BOOK_GRIDS[0])``).

    Book: chapter 2, *Exercises*; chapter 3, *Exercises*; chapter 7, *Exercises*.
    """
    from tdsa.experiments.grid import load_grid

    grid = load_grid(f"ablations/{name}")
    variant = variant or next(iter(grid.variants))
    cfg = grid.config(variant, grid.seeds[0])
    seeds = len(grid.variant_seeds(variant))
    return (f"{cfg.train.epochs} epochs, {_generate_args(cfg)['train_per_class']} training "
            f"images per class, {seeds} seed{'s' * (seeds != 1)}")


def versus(value: float, reference: float, name: str = "cross-entropy") -> str:
    """``value`` against ``reference`` (both in %) in words: ``"N.N points above <name>"`` or
    ``"below"``, or ``"level with <name>"`` where they differ by less than 0.05 points (the
    same to the one decimal the chapters print).

    Book: chapter 4, *Accuracy: selected on val, reported on test*.
    """
    gap = value - reference
    if abs(gap) < 0.05:
        return f"level with {name}"
    return f"{abs(gap):.1f} points {'above' if gap > 0 else 'below'} {name}"
