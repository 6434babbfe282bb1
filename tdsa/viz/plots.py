"""Figures: per-class channel maps, top-down gates, parts, training curves, confusion matrix.

Every function builds a :class:`matplotlib.figure.Figure` without pyplot (safe headless and
in notebooks, nothing left open) and saves it as PNG when given ``path``. Every heat map has
a colour bar, and classes are numbered from 1 as in the book's titles (``first=0`` where a
chapter numbers them as the tensors index them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor

from tdsa.runfiles import read_metrics
from tdsa.viz.maps import class_gate_maps, to_image

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_PANELS",
    "LOSS_KEYS",
    "REFERENCES",
    "CurvePanel",
    "channels_as_rgb",
    "draw_parts",
    "plot_channel_means",
    "plot_class_channels",
    "plot_confusion_matrix",
    "plot_diversity_steps",
    "plot_gate_maps",
    "plot_training_curves",
]

LOSS_KEYS = ("total", "ce", "dis_mid", "div_mid", "dis_high", "div_high")
"""Training-loss terms plotted by :func:`plot_training_curves` (when present)."""


MAX_COLUMNS = 5
"""The most maps :func:`plot_class_channels` puts on one row (five 1.8-inch panels are 810 px at
the book's 90 dpi: a page's content column shows them at their natural size)."""


def _figure(rows: int, cols: int, cell: float = 1.8) -> tuple[Figure, np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(cols * cell, rows * cell), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    return fig, axes


def _save(fig: Figure, path: str | Path | None) -> None:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100)


def _maps(maps: Tensor, name: str) -> np.ndarray:
    arr = torch.as_tensor(maps).detach().float().cpu()
    if arr.dim() != 3:
        raise ValueError(f"{name} must be one class's maps [xi, h, w], got shape {list(arr.shape)}")
    return arr.numpy()


def _show_map(
    ax: Axes, heat: np.ndarray, title: str, vmin: float | None = None, vmax: float | None = None
) -> None:
    """A heat map on ``ax`` with its own colour bar."""
    shown = ax.imshow(heat, cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)


def plot_class_channels(
    image: Tensor | np.ndarray,
    mid_maps: Tensor,
    high_maps: Tensor,
    *,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """One image and one class's channel maps at both stages.

    ``image`` is displayable (see :func:`tdsa.viz.maps.to_image`; un-normalise network inputs
    first), ``mid_maps`` ``[xi_mid, hm, wm]`` and ``high_maps`` ``[xi_high, h, w]`` (e.g.
    :func:`tdsa.metrics.class_channels` of the features). Row 1: the image and the high-level
    channels; the rows below: the mid-level channels, at most :data:`MAX_COLUMNS` to a row (or
    the first row's width), so the figure is shown near its natural size on a book's page.
    Each map has its own colour scale and bar.

    Book: chapter 6, *Multi-grained: the mid-level channels and the gate*.
    """
    mid, high = _maps(mid_maps, "mid_maps"), _maps(high_maps, "high_maps")
    cols = max(len(high) + 1, min(len(mid), MAX_COLUMNS))
    fig, axes = _figure(1 + math.ceil(len(mid) / cols), cols)
    axes[0, 0].imshow(to_image(image))
    axes[0, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    for j, m in enumerate(high):
        _show_map(axes[0, j + 1], m, f"high {j}")
    for j, m in enumerate(mid):
        _show_map(axes[1 + j // cols, j % cols], m, f"mid {j}")
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def plot_gate_maps(
    image: Tensor | np.ndarray,
    high_maps: Tensor,
    mid_maps: Tensor,
    *,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """The top-down gate of one class: for each high channel ``i``, its gate map and the
    ``r`` mid channels it gates, before and after gating.

    Row ``i``: gate ``sigmoid(up(high_i))`` (shared colour scale ``[0.5, 1]``), then mid
    channels ``i*r .. i*r+r-1`` raw and gated (each pair on one colour scale; every map has
    its colour bar). The image sits in the first column of an extra top row.

    Book: chapter 6, *Multi-grained: the mid-level channels and the gate*.
    """
    high, mid = _maps(high_maps, "high_maps"), _maps(mid_maps, "mid_maps")
    gate, gated = class_gate_maps(torch.from_numpy(high), torch.from_numpy(mid))
    xi_high, xi_mid = len(high), len(mid)
    r = xi_mid // xi_high
    fig, axes = _figure(xi_high + 1, 1 + 2 * r)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(to_image(image))
    axes[0, 0].set_title("image", fontsize=8)
    for i in range(xi_high):
        _show_map(axes[i + 1, 0], gate[i * r].numpy(), f"gate {i}", 0.5, 1.0)
        for s in range(r):
            j = i * r + s
            top = float(max(mid[j].max(), 1e-12))
            _show_map(axes[i + 1, 1 + s], mid[j], f"mid {j}", 0.0, top)
            _show_map(axes[i + 1, 1 + r + s], gated[j].numpy(), f"gated {j}", 0.0, top)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def plot_channel_means(
    means: Tensor | np.ndarray,
    xi: int,
    *,
    classes: Sequence[int] | None = None,
    first: int = 1,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """A heat map of mean channel activations per class: ``means`` ``[R, K*xi]`` (row ``r``:
    the images of class ``classes[r]``; columns: the channels, ``xi`` per class in class order).
    ``classes`` defaults to ``0, ..., K-1`` (then ``R = K``); give it when some classes have no
    images.

    Each row is divided by its maximum (a row that is all 0 stays 0), so the colour bar reads
    "fraction of the row's largest channel"; white lines separate the class groups, rows and
    groups are labelled with class numbers counted from ``first`` (1 as in the book's titles,
    0 where a chapter numbers classes as the tensors index them), and the own-class block of
    each row is outlined.

    Book: chapter 2, *A short training run and its per-class channels*.
    """
    from matplotlib.patches import Rectangle

    arr = torch.as_tensor(means).detach().double().cpu()
    if arr.dim() != 2 or xi < 1 or arr.shape[1] % xi != 0:
        raise ValueError(f"means must be [R, K*xi] with xi={xi}, got {list(arr.shape)}")
    k = arr.shape[1] // xi
    rows = list(range(arr.shape[0])) if classes is None else [int(c) for c in classes]
    if len(rows) != arr.shape[0] or any(not 0 <= c < k for c in rows) or (
            classes is None and arr.shape[0] != k):
        raise ValueError(f"means has {arr.shape[0]} rows and {k} classes of {xi} channels; "
                         f"classes must name one class in 0..{k - 1} per row, got {classes}")
    scaled = (arr / arr.amax(dim=1, keepdim=True).clamp(min=1e-12)).numpy()
    fig, axes = _figure(1, 1)
    fig.set_size_inches(min(12.0, 2.0 + 0.3 * k * xi), 1.6 + 0.35 * len(rows))
    ax = axes[0, 0]
    shown = ax.imshow(scaled, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto",
                      interpolation="nearest")
    for g in range(1, k):
        ax.axvline(g * xi - 0.5, color="w", lw=0.8)
    for row, c in enumerate(rows):
        ax.add_patch(Rectangle((c * xi - 0.5, row - 0.5), xi, 1, fill=False, ec="C3", lw=1.2))
    ax.set_yticks(range(len(rows)), [str(c + first) for c in rows], fontsize=7)
    ax.set_xticks([g * xi + (xi - 1) / 2 for g in range(k)], [str(c + first) for c in range(k)],
                  fontsize=7)
    ax.set(xlabel=f"channel group of class (ξ = {xi} channels each)",
           ylabel="true class of the images")
    fig.colorbar(shown, ax=ax, label="fraction of the row's maximum")
    if title:
        ax.set_title(title, fontsize=10)
    _save(fig, path)
    return fig


def channels_as_rgb(maps: Tensor) -> np.ndarray:
    """Three non-negative maps ``[3, H, W]`` as the red, green and blue of one picture
    ``[H, W, 3]``: each map's square root divided by its maximum (a map that is all 0 stays
    black), so where the maps overlap the colours mix and where one map owns a position its
    colour shows pure.
    """
    arr = torch.as_tensor(maps).detach().double().cpu()
    if arr.dim() != 3 or arr.shape[0] != 3:
        raise ValueError(f"maps must be three maps [3, H, W], got {list(arr.shape)}")
    root = arr.clamp(min=0).sqrt()
    return (root / root.amax(dim=(1, 2), keepdim=True).clamp(min=1e-12)).permute(1, 2, 0).numpy()


def plot_diversity_steps(
    before: Tensor,
    after: Tensor,
    losses: Sequence[float],
    *,
    classes: Sequence[int] = (0, 1),
    first: int = 1,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Channel maps before and after steps that minimise :math:`L_{div}`, and the loss per step.

    ``before`` and ``after`` are the softmax maps ``[1, K*3, H, W]`` of the same features
    (three channels per class); for each class of ``classes`` a panel before and a panel after
    show its three maps as red, green and blue (:func:`channels_as_rgb`), titled with the class
    counted from ``first``; the last panel draws ``losses``, one value per step.

    Book: chapter 2, *What diversity does to channel maps*.
    """
    start, end = (torch.as_tensor(m).detach().double().cpu() for m in (before, after))
    if start.dim() != 4 or start.shape[0] != 1 or start.shape[1] % 3 or start.shape != end.shape:
        raise ValueError(f"before and after must be the same [1, K*3, H, W], got "
                         f"{list(start.shape)} and {list(end.shape)}")
    fig, axes = _figure(1, 2 * len(classes) + 1, cell=2.4)
    for i, k in enumerate(classes):
        for j, (maps, when) in enumerate(((start, "before"), (end, "after"))):
            ax = axes[0, 2 * i + j]
            ax.imshow(channels_as_rgb(maps[0, 3 * k:3 * k + 3]))
            ax.set_title(f"class {k + first}, {when}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    _draw_panel(axes[0, -1], CurvePanel("L_div during the optimisation", {"L_div": "L_div"}),
                {"": [{"step": s, "L_div": v} for s, v in enumerate(losses)]}, "step", None)
    axes[0, -1].set_ylabel("L_div")
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def draw_parts(
    image: Tensor | np.ndarray,
    parts: Tensor | np.ndarray,
    names: Sequence[str] | None = None,
    *,
    radius: float | None = None,
    ax: Axes | None = None,
    path: str | Path | None = None,
) -> Axes:
    """Draw part locations on an image; returns the axes.

    ``parts`` ``[P, 3]`` is normalised ``(x, y, visible)`` (as in :mod:`tdsa.metrics`);
    invisible parts are skipped. ``radius`` (a fraction of the image side) also draws the
    hit circle of the pointing game. Saves the figure when ``path`` is given.

    Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
    """
    from matplotlib.patches import Ellipse

    img = to_image(image)
    pts = torch.as_tensor(parts, dtype=torch.float32).cpu()
    if pts.dim() != 2 or pts.shape[1] != 3:
        raise ValueError(
            f"parts must be [P, 3] of normalised (x, y, visible), got {list(pts.shape)}"
        )
    if names is not None and len(names) != len(pts):
        raise ValueError(f"names has {len(names)} entries but parts has {len(pts)} rows")
    if ax is None:
        _, axes = _figure(1, 1, cell=4.0)
        ax = axes[0, 0]
    h, w = img.shape[:2]
    ax.imshow(img)
    ax.axis("off")
    for p, (x, y, vis) in enumerate(pts.tolist()):
        if vis <= 0:
            continue
        ax.plot(x * w, y * h, "o", ms=5, mec="black", mfc="yellow")
        if names is not None:
            ax.annotate(
                names[p],
                (x * w, y * h),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
                color="white",
                bbox={"boxstyle": "round,pad=0.1", "fc": "black", "alpha": 0.5},
            )
        if radius is not None:
            ax.add_patch(
                Ellipse(
                    (x * w, y * h), 2 * radius * w, 2 * radius * h, fill=False, ec="yellow", lw=1
                )
            )
    if path is not None:
        _save(cast("Figure", ax.figure), path)  # the axes' own figure, never a subfigure here
    return ax


def _series(records: Sequence[Mapping[str, Any]], key: str,
            x: str = "epoch") -> tuple[list[float], list[float]]:
    """The finite values of ``key`` against ``x`` (the record's index where ``x`` is missing)."""
    xs, ys = [], []
    for i, rec in enumerate(records):
        value = rec.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            xs.append(float(rec.get(x, i)))
            ys.append(float(value))
    return xs, ys


@dataclass(frozen=True)
class CurvePanel:
    """One panel of :func:`plot_training_curves`.

    ``keys``: the per-epoch keys it draws, as a mapping key -> legend label, or a sequence
    (labelled by the key without its ``train_`` prefix). ``reference``: a dashed horizontal
    line, ``"chance"`` (100/K %, top-1 of a uniform guess) or ``"ln K"`` (the cross-entropy of
    uniform class scores), K the ``num_classes`` given to :func:`plot_training_curves`.
    ``best``: a key whose maximum is marked. ``log``: a log y axis where every value drawn is
    positive. ``step``: each value held through its epoch (a learning rate). ``runs``: the
    labels of the runs it draws (None: every run).
    """

    title: str
    keys: Mapping[str, str] | Sequence[str]
    reference: str | None = None
    best: str | None = None
    log: bool = False
    step: bool = False
    runs: tuple[str, ...] | None = None

    def labels(self) -> dict[str, str]:
        """Key -> legend label."""
        if isinstance(self.keys, Mapping):
            return dict(self.keys)
        return {key: key.removeprefix("train_") for key in self.keys}


DEFAULT_PANELS = (
    CurvePanel("training loss", tuple(f"train_{key}" for key in LOSS_KEYS)),
    CurvePanel("test accuracy (%)", {"test_top1": "top-1", "test_top5": "top-5"},
               best="test_top1"),
    CurvePanel("learning rate", ("lr",), log=True),
)
"""The panels of :func:`plot_training_curves` by default: the training loss terms of
:data:`LOSS_KEYS`, test top-1 and top-5 (the best top-1 epoch marked), the learning rate."""

REFERENCES = ("chance", "ln K")
"""The reference lines a :class:`CurvePanel` can draw."""

MARKED_POINTS = 30
"""Curves of at most this many points get a marker at every point."""

_LINESTYLES = ("-", "--", ":", "-.")


def _reference(ax: Axes, reference: str, num_classes: int | None) -> None:
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {list(REFERENCES)}, got {reference!r}")
    if num_classes is None:
        raise ValueError(f"the reference {reference!r} needs num_classes")
    if reference == "chance":
        value, label = 100.0 / num_classes, f"chance {100.0 / num_classes:.1f}%"
    else:
        value, label = math.log(num_classes), f"ln K = {math.log(num_classes):.2f}"
    ax.axhline(value, color="grey", ls="--", lw=1, label=label)


def _draw_panel(ax: Axes, panel: CurvePanel, runs: Mapping[str, Sequence[Mapping[str, Any]]],
                x: str, num_classes: int | None) -> None:
    """The curves of ``panel``: one colour per key for one run; for several runs one colour per
    run and one line style per key, the legend labels prefixed with the run's label."""
    from matplotlib.ticker import MaxNLocator

    drawn = {name: records for name, records in runs.items()
             if panel.runs is None or name in panel.runs}
    labels = panel.labels()
    values: list[float] = []
    for r, (name, records) in enumerate(drawn.items()):
        prefix = f"{name}: " if len(drawn) > 1 else ""
        for k, (key, label) in enumerate(labels.items()):
            xs, ys = _series(records, key, x)
            if not xs:
                continue
            values += ys
            colour, style = (f"C{r}", _LINESTYLES[k % len(_LINESTYLES)]) if len(drawn) > 1 \
                else (f"C{k}", "-")
            ax.plot(xs, ys, ls=style, color=colour, label=prefix + label,
                    marker="o" if len(xs) <= MARKED_POINTS else None, ms=3,
                    drawstyle="steps-post" if panel.step else "default")
            if key == panel.best:
                best = int(np.argmax(ys))
                ax.plot(xs[best], ys[best], "*", ms=10, color="C3" if len(drawn) == 1 else colour,
                        label=f"{prefix}best {label} {ys[best]:.2f} ({x} {xs[best]:g})")
    if panel.reference is not None:
        _reference(ax, panel.reference, num_classes)
    if panel.log and values and min(values) > 0:
        ax.set_yscale("log")
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel(x)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs and steps are whole numbers
    if len(ax.get_legend_handles_labels()[0]) > 1:
        ax.legend(fontsize=7)


def _records(run: str | Path | Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    return read_metrics(run) if isinstance(run, str | Path) else run


def plot_training_curves(
    run: str | Path | Sequence[Mapping[str, Any]]
    | Mapping[str, str | Path | Sequence[Mapping[str, Any]]],
    *,
    panels: Sequence[CurvePanel] = DEFAULT_PANELS,
    num_classes: int | None = None,
    x: str = "epoch",
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Training curves of a run, or of several runs side by side, one :class:`CurvePanel` to an
    axes in a row.

    ``run`` is a run folder, its ``metrics.jsonl`` or the records themselves, or a mapping
    label -> one of these (several runs, e.g. ``{"ce": ..., "tdsa": ...}``). The records hold
    one dict per epoch (``x``, by default ``epoch``, on the horizontal axis; ``train_<term>``,
    ``train_top1``, ``val_top1``, ``test_top1``, ``lr``, ... as the trainer writes them);
    missing or non-finite values are skipped. ``num_classes`` gives the panels' ``chance`` and
    ``ln K`` lines. By default (:data:`DEFAULT_PANELS`): the loss terms, test top-1/top-5 with
    the best top-1 epoch marked, the learning rate.

    Book: chapter 2, *A short training run and its per-class channels*; chapter 4, *Curves*;
    chapter 7, *The recipe's code path, run*.
    """
    runs = ({str(name): _records(r) for name, r in run.items()} if isinstance(run, Mapping)
            else {"": _records(run)})
    fig, axes = _figure(1, len(panels), cell=3.4)
    for ax, panel in zip(axes[0], panels, strict=True):
        _draw_panel(ax, panel, runs, x, num_classes)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def plot_confusion_matrix(
    confusion: Tensor | np.ndarray,
    class_names: Sequence[str] | None = None,
    *,
    normalize: bool = True,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """A seaborn heatmap of a confusion matrix (rows = true class, columns = predicted).

    ``normalize`` divides each row by its count (empty rows stay 0). Numbers are written in
    the cells only for up to 20 classes.

    Book: chapter 4, *Evaluating a checkpoint: `tdsa eval`*.
    """
    import seaborn as sns

    conf = torch.as_tensor(confusion).detach().double().cpu()
    if conf.dim() != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"confusion must be a square [K, K] matrix, got {list(conf.shape)}")
    k = conf.shape[0]
    if class_names is not None and len(class_names) != k:
        raise ValueError(f"class_names has {len(class_names)} entries, expected {k}")
    data = conf
    if normalize:
        data = conf / conf.sum(dim=1, keepdim=True).clamp(min=1)
    size = min(3.0 + 0.35 * k, 16.0)
    fig, axes = _figure(1, 1, cell=size)
    labels: Any = list(class_names) if class_names is not None else "auto"
    sns.heatmap(
        data.numpy(),
        ax=axes[0, 0],
        cmap="Blues",
        square=True,
        annot=k <= 20,
        fmt=".2f" if normalize else ".0f",
        xticklabels=labels,
        yticklabels=labels,
        vmin=0.0,
        vmax=1.0 if normalize else None,
        cbar=True,
    )
    axes[0, 0].set(xlabel="predicted class", ylabel="true class")
    if title:
        axes[0, 0].set_title(title)
    _save(fig, path)
    return fig
