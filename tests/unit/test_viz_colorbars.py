"""Every heat map that ``tdsa.viz`` draws has a colour bar; class rows are numbered from 1."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import tdsa.viz
from tdsa.viz import (
    draw_overlay,
    plot_channel_means,
    plot_class_channels,
    plot_confusion_matrix,
    plot_gate_maps,
    plot_twin,
    save_triplet,
)
from tdsa.viz.twins import TwinPair

matplotlib.use("Agg")

IMAGE = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))


def _maps(n: int, side: int) -> torch.Tensor:
    return torch.rand(n, side, side, generator=torch.Generator().manual_seed(n)) + 0.1


def _colorbars(fig: Figure) -> list[object]:
    """The colour bars of a figure (matplotlib marks each colour bar's axes with it)."""
    return [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def _triplet_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Figure:
    saved: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: saved.append(fig))
    save_triplet(tmp_path / "t.png", IMAGE, _maps(1, 4)[0])
    assert len(saved) == 1
    return saved[0]


def _overlay_figure() -> Figure:
    fig = Figure()
    draw_overlay(fig.subplots(), IMAGE, _maps(1, 4)[0])
    return fig


def _twin_figure() -> Figure:
    picture = np.zeros((16, 16, 3), dtype=np.uint8)
    maps = {"high": (_maps(1, 2)[0], _maps(1, 2)[0] * 0.5), "mid": (_maps(1, 4)[0], _maps(1, 4)[0])}
    return plot_twin(TwinPair(picture, picture, "eye", "red", "blue", (0.5, 0.5), 0, (0, 1),
                              maps))


# name -> (the figure from tiny inputs, the number of heat maps it draws)
HEAT_MAPS: dict[str, Callable[..., tuple[Figure, int]]] = {
    "plot_class_channels": lambda **_: (plot_class_channels(IMAGE, _maps(3, 4), _maps(2, 2)), 5),
    "plot_gate_maps": lambda **_: (plot_gate_maps(IMAGE, _maps(2, 2), _maps(4, 4)), 2 * (1 + 4)),
    "plot_confusion_matrix": lambda **_: (plot_confusion_matrix(torch.eye(3) * 4 + 1), 1),
    "plot_channel_means": lambda **_: (plot_channel_means(torch.rand(3, 6), 2), 1),
    "save_triplet": lambda tmp_path, monkeypatch: (_triplet_figure(tmp_path, monkeypatch), 2),
    "draw_overlay": lambda **_: (_overlay_figure(), 1),
    "plot_twin": lambda **_: (_twin_figure(), 2),
}
NOT_HEAT_MAPS = {"draw_parts": "points on an image", "plot_training_curves": "line plots",
                 "plot_diversity_steps": "RGB pictures and a line plot"}


def test_every_plotting_function_is_classified() -> None:
    plotting = {n for n in tdsa.viz.__all__
                if n.startswith(("plot_", "draw_", "save_")) and inspect.isfunction(getattr(
                    tdsa.viz, n))}
    assert plotting == set(HEAT_MAPS) | set(NOT_HEAT_MAPS), (
        "a new plotting function: add it to HEAT_MAPS (with its colour bars) or NOT_HEAT_MAPS")


@pytest.mark.parametrize("name", sorted(HEAT_MAPS))
def test_every_heat_map_has_a_colour_bar(name: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fig, heat_maps = HEAT_MAPS[name](tmp_path=tmp_path, monkeypatch=monkeypatch)
    assert len(_colorbars(fig)) == heat_maps, f"{name}: {len(_colorbars(fig))} colour bars"


def test_gate_colour_bars_span_the_gates_range() -> None:
    fig = plot_gate_maps(IMAGE, _maps(2, 2), _maps(4, 4))
    limits = [bar.mappable.get_clim() for bar in _colorbars(fig)]
    assert limits.count((0.5, 1.0)) == 2, "one [0.5, 1] bar per gate"


def test_channel_means_rows_are_1_based_and_row_normalised() -> None:
    means = torch.tensor([[1.0, 2.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
    fig = plot_channel_means(means, 2)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]
    expected = np.array([[0.5, 1.0, 0.25, 0.25], [0.0, 0.0, 0.0, 0.0]])
    assert np.allclose(ax.images[0].get_array(), expected)
    with pytest.raises(ValueError, match=r"means must be \[R, K\*xi\] with xi=3"):
        plot_channel_means(means, 3)



def test_channel_means_of_some_classes_counted_from_0() -> None:
    means = torch.tensor([[1.0, 3.0, 2.0, 4.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0, 4.0, 1.0]])
    fig = plot_channel_means(means, 2, classes=[1, 2], first=0)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    assert np.allclose(ax.images[0].get_array(), means / means.amax(dim=1, keepdim=True))
    outlines = [(p.get_x(), p.get_y()) for p in ax.patches]
    assert outlines == [(1.5, -0.5), (3.5, 0.5)], "each row's own-class block, columns 2-3, 4-5"
    with pytest.raises(ValueError, match=r"classes must name one class in 0\.\.2 per row"):
        plot_channel_means(means, 2, classes=[0, 3])
    with pytest.raises(ValueError, match="classes must name one class"):
        plot_channel_means(means, 2)
