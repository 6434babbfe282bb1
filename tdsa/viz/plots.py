"""Figures: per-class channel maps, top-down gates, parts, training curves, confusion matrix.

Every function builds a :class:`matplotlib.figure.Figure` without pyplot (safe headless and
in notebooks, nothing left open) and saves it as PNG when given ``path``. Every heat map has
a colour bar, and classes are numbered from 1 as in the book's titles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    "LOSS_KEYS",
    "draw_parts",
    "plot_channel_means",
    "plot_class_channels",
    "plot_confusion_matrix",
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
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """A heat map of mean channel activations per class: ``means`` ``[K, K*xi]`` (row ``k``:
    the images of class ``k``; columns: the channels, ``xi`` per class in class order).

    Each row is divided by its maximum (a row that is all 0 stays 0), so the colour bar reads
    "fraction of the row's largest channel"; white lines separate the class groups, rows and
    groups are labelled with 1-based class numbers, and the own-class block of each row is
    outlined.
    """
    from matplotlib.patches import Rectangle

    arr = torch.as_tensor(means).detach().double().cpu()
    if arr.dim() != 2 or arr.shape[1] != arr.shape[0] * xi:
        raise ValueError(f"means must be [K, K*xi] with xi={xi}, got {list(arr.shape)}")
    k = arr.shape[0]
    scaled = (arr / arr.amax(dim=1, keepdim=True).clamp(min=1e-12)).numpy()
    fig, axes = _figure(1, 1)
    fig.set_size_inches(min(12.0, 2.0 + 0.3 * k * xi), 1.6 + 0.35 * k)
    ax = axes[0, 0]
    shown = ax.imshow(scaled, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto",
                      interpolation="nearest")
    for g in range(1, k):
        ax.axvline(g * xi - 0.5, color="w", lw=0.8)
    for row in range(k):
        ax.add_patch(Rectangle((row * xi - 0.5, row - 0.5), xi, 1, fill=False, ec="C3", lw=1.2))
    ax.set_yticks(range(k), [str(c + 1) for c in range(k)], fontsize=7)
    ax.set_xticks([g * xi + (xi - 1) / 2 for g in range(k)], [str(c + 1) for c in range(k)],
                  fontsize=7)
    ax.set(xlabel=f"channel group of class (ξ = {xi} channels each)",
           ylabel="true class of the images")
    fig.colorbar(shown, ax=ax, label="fraction of the row's maximum")
    if title:
        ax.set_title(title, fontsize=10)
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


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, rec in enumerate(records):
        value = rec.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            xs.append(float(rec.get("epoch", i)))
            ys.append(float(value))
    return xs, ys


def _plot_accuracy(ax: Axes, records: list[dict[str, Any]]) -> None:
    """Test top-1 and top-5 per epoch, the best top-1 epoch marked."""
    for key, label in (("test_top1", "top-1"), ("test_top5", "top-5")):
        xs, ys = _series(records, key)
        if xs:
            ax.plot(xs, ys, label=label)
            if key == "test_top1":
                best = int(np.argmax(ys))
                ax.plot(
                    xs[best],
                    ys[best],
                    "*",
                    ms=10,
                    color="C3",
                    label=f"best top-1 {ys[best]:.2f} (epoch {xs[best]:g})",
                )
    ax.set(title="test accuracy (%)", xlabel="epoch")


def plot_training_curves(
    run: str | Path | list[dict[str, Any]],
    *,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Training curves of a run: the loss terms, test top-1/top-5 accuracy and the LR.

    ``run`` is a run folder, its ``metrics.jsonl`` or the records themselves. Keys per epoch:
    ``epoch``, the training loss terms ``train_<key>`` for each key of :data:`LOSS_KEYS` (as the
    trainer writes them), ``test_top1``, ``test_top5``, ``lr``;
    missing keys are skipped. The best top-1 epoch is marked.
    """
    records = run if isinstance(run, list) else read_metrics(run)
    fig, axes = _figure(1, 3, cell=3.4)
    ax_loss, ax_acc, ax_lr = axes[0]
    for key in LOSS_KEYS:
        xs, ys = _series(records, f"train_{key}")
        if xs:
            ax_loss.plot(xs, ys, label=key, lw=2.0 if key == "total" else 1.0)
    ax_loss.set(title="training loss", xlabel="epoch")
    _plot_accuracy(ax_acc, records)
    xs, ys = _series(records, "lr")
    if xs:
        ax_lr.plot(xs, ys)
        if min(ys) > 0:
            ax_lr.set_yscale("log")
    ax_lr.set(title="learning rate", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
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
