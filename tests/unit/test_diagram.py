"""The method diagram: drawn by code, deterministic, and the committed SVG is up to date."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest

from tdsa.viz.diagram import plot_method_diagram, save_method_diagram

COMMITTED = Path(__file__).resolve().parents[2] / "book" / "figures" / "tdsa_method.svg"


def _texts(fig: plt.Figure) -> str:
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_diagram_states_the_published_channel_layout() -> None:
    fig = plot_method_diagram((9, 3))
    text = _texts(fig)
    plt.close(fig)
    assert "keep ⌈9/2⌉ of 9" in text and "keep ⌈3/2⌉ of 3" in text
    assert "i·3 … i·3+2" in text  # each high channel gates r = 9 / 3 mid channels
    assert "9c" in text and "3c" in text


def test_diagram_follows_xi_and_refuses_a_ratio_that_is_not_an_integer() -> None:
    fig = plot_method_diagram((8, 2))
    text = _texts(fig)
    plt.close(fig)
    assert "i·4 … i·4+3" in text and "keep ⌈8/2⌉ of 8" in text
    with pytest.raises(ValueError, match=r"xi=\[4, 3\] is invalid with top_down=true: "
                                         r"xi_mid must be a multiple of xi_high"):
        plot_method_diagram((4, 3))


def test_svg_is_deterministic(tmp_path: Path) -> None:
    a = save_method_diagram(tmp_path / "a.svg").read_bytes()
    b = save_method_diagram(tmp_path / "b.svg").read_bytes()
    assert a == b
    assert b"<dc:date>" not in a


def test_committed_svg_is_the_drawing(tmp_path: Path) -> None:
    committed = COMMITTED.read_bytes()
    drawn_with = re.search(rb"matplotlib ([^<\s]+)", committed)
    assert drawn_with, "the committed SVG does not say which matplotlib drew it"
    version = drawn_with.group(1).decode()
    if version != matplotlib.__version__:
        pytest.skip(f"the SVG was drawn with matplotlib {version}, this is "
                    f"{matplotlib.__version__}: glyph placement may differ")
    fresh = save_method_diagram(tmp_path / "fresh.svg").read_bytes()
    assert fresh == committed, (
        "book/figures/tdsa_method.svg is stale: run python -m tdsa.viz.diagram "
        "book/figures/tdsa_method.svg")


def test_no_text_is_smaller_than_the_declared_minimum() -> None:
    """The book's browser test reads the diagram's text size from MIN_FONT_PT: 10 points of a
    12-inch drawing are 9.5 px when the page shows it 817 px wide (a 1280 px window)."""
    from tdsa.viz.diagram import MIN_FONT_PT

    fig = plot_method_diagram((9, 3))
    sizes = [t.get_fontsize() for ax in fig.axes for t in ax.texts if t.get_text()]
    width_pt = fig.get_figwidth() * 72
    plt.close(fig)
    assert min(sizes) == MIN_FONT_PT
    assert MIN_FONT_PT * 96 / 72 * 817 / (width_pt * 96 / 72) >= 9.0
