"""The method diagram: the TDSA network and loss drawn with matplotlib.

``python -m tdsa.viz.diagram book/figures/tdsa_method.svg`` redraws the SVG the book shows.
The figure is drawn from the same facts the package implements: the mid and high taps with
``xi_mid`` and ``xi_high`` channels per class, cross-channel max pooling (CCMP) per class
group, the random channel mask of ``L_dis``, the spatial softmax of ``L_div``, the top-down
gate (each high channel gating ``xi_mid / xi_high`` mid channels of its class) and the
classifier on the high map.

Book: intro.md, *The paper's idea*.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from tdsa.validation import DEFAULT_XI, check_xi

CLASS_COLOURS = ("#4477aa", "#ee6677", "#228833")
"""One colour per drawn class group (three classes are drawn)."""

_BOX_STYLE = "round,pad=0.02,rounding_size=0.08"

MIN_FONT_PT = 10.0
"""The smallest font of the diagram, in points of the 12-inch SVG: shown at the book's content
width (817 px at a 1280 px window) it is 9.5 px; the book's browser test checks the text at the
width the diagram is shown."""


def _box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str,
         face: str = "#f2f2f2", size: float = 10.5) -> None:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle=_BOX_STYLE, linewidth=1.2,
                                facecolor=face, edgecolor="#333333"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float],
           text: str = "", colour: str = "#333333", style: str = "-|>") -> None:
    ax.annotate("", xy=end, xytext=start,
                arrowprops={"arrowstyle": style, "color": colour, "linewidth": 1.3,
                            "shrinkA": 2, "shrinkB": 2})
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.12, text, ha="center",
                va="bottom", fontsize=MIN_FONT_PT, color=colour)


def _channel_stack(ax: plt.Axes, x: float, y: float, xi: int, label: str,
                   cell: float = 0.16) -> float:
    """Class-grouped channels: ``xi`` squares per class, one colour per class; returns the
    stack's width."""
    step = cell * 1.15
    col = 0.0
    for colour in CLASS_COLOURS:
        for _ in range(xi):
            ax.add_patch(Rectangle((x + col * step, y), cell, cell * 2.2, facecolor=colour,
                                   edgecolor="white", linewidth=0.5))
            col += 1
        col += 0.6
    width = col * step
    ax.text(x + width / 2, y + cell * 2.2 + 0.1, label, ha="center", va="bottom",
            fontsize=10.5)
    return width


def svg_metadata() -> dict[str, str | None]:
    """The SVG's metadata: no date, and the matplotlib version that drew it (another version
    may place glyphs differently, so a comparison of files is only meaningful within one)."""
    return {"Date": None, "Creator": f"tdsa.viz.diagram, matplotlib {matplotlib.__version__}"}


def plot_method_diagram(xi: tuple[int, int] = DEFAULT_XI) -> Figure:
    """The TDSA network and loss as one figure (mid and high taps, class-grouped channels,
    CCMP, the mask, ``L_dis``, ``L_div``, the top-down gate, the classifier).
    """
    xi_mid, xi_high = check_xi(xi, top_down=True)
    r = xi_mid // xi_high
    fig = plt.figure(figsize=(12.0, 6.0))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 24)
    ax.set_ylim(0, 12)
    ax.axis("off")

    # the trunk, left to right along the top
    _box(ax, 0.2, 9.2, 2.0, 1.6, "image\n3 × H × W", face="#ffffff")
    _box(ax, 2.9, 9.2, 2.9, 1.6, "conv1 … conv4_2\n(VGG16-BN)")
    _arrow(ax, (2.2, 10.0), (2.9, 10.0))
    mid_x = 6.5
    mid_w = _channel_stack(ax, mid_x, 9.6, xi_mid, f"$F_{{mid}}$ (conv4_3): {xi_mid}c, 28 × 28")
    _arrow(ax, (5.8, 10.0), (mid_x, 10.0))
    trunk2 = mid_x + mid_w + 0.5
    _box(ax, trunk2, 9.2, 2.2, 1.6, "pool4\nconv5_1, 5_2")
    _arrow(ax, (mid_x + mid_w, 10.0), (trunk2, 10.0))
    high_x = trunk2 + 2.2 + 0.6
    high_w = _channel_stack(ax, high_x, 9.6, xi_high, f"$F_{{high}}$: {xi_high}c, 14 × 14")
    _arrow(ax, (trunk2 + 2.2, 10.0), (high_x, 10.0))

    # the classifier: the only branch used at inference
    _box(ax, 19.6, 9.0, 4.2, 2.0,
         "classifier (inference)\nmax-pool 2, flatten, BN\nFC 512, BN, ELU, FC c",
         face="#fff7d6", size=10)
    _arrow(ax, (high_x + high_w, 10.0), (19.6, 10.0))
    _box(ax, 20.2, 6.9, 3.0, 1.2, "$L_{CE}$(logits, y)", face="#fde0dd")
    _arrow(ax, (21.7, 9.0), (21.7, 8.1))

    # channel constraint at the high stage
    _box(ax, 13.4, 6.4, 2.9, 1.6,
         f"keep ⌈{xi_high}/2⌉ of {xi_high}\nper class (mask)\n→ CCMP → GAP", size=10)
    _box(ax, 16.6, 6.4, 2.9, 1.6, "softmax over H·W\n→ CCMP → Σ$_{hw}$", size=10)
    _arrow(ax, (high_x + 0.4, 9.5), (14.9, 8.0))
    _arrow(ax, (high_x + high_w - 0.4, 9.5), (18.0, 8.0))
    _box(ax, 13.4, 4.3, 2.9, 1.1, "$L_{dis}(F_{high})$", face="#fde0dd", size=10.5)
    _box(ax, 16.6, 4.3, 2.9, 1.1, "$L_{div}(F_{high})$", face="#fde0dd", size=10.5)
    _arrow(ax, (14.85, 6.4), (14.85, 5.4))
    _arrow(ax, (18.05, 6.4), (18.05, 5.4))

    # the top-down gate
    _box(ax, 7.3, 6.4, 5.4, 1.6,
         f"top-down gate\nA = σ(nearest-up($F_{{high}}$))\nhigh channel i gates mid "
         f"channels\ni·{r} … i·{r}+{r - 1} of the same class", face="#e5f5e0", size=10)
    _arrow(ax, (high_x + high_w / 2, 9.5), (11.6, 8.0), text="top-down", colour="#238b45")
    _box(ax, 1.6, 6.4, 4.6, 1.6, "$\\tilde F_{mid} = F_{mid} \\odot A$\n(nothing detached)",
         face="#e5f5e0", size=10.5)
    _arrow(ax, (7.3, 7.2), (6.2, 7.2), colour="#238b45")
    _arrow(ax, (mid_x + 1.0, 9.5), (4.6, 8.0))

    # channel constraint at the mid stage
    _box(ax, 0.4, 3.9, 3.2, 1.6,
         f"keep ⌈{xi_mid}/2⌉ of {xi_mid}\nper class (mask)\n→ CCMP → GAP", size=10)
    _box(ax, 4.0, 3.9, 3.2, 1.6, "softmax over H·W\n→ CCMP → Σ$_{hw}$", size=10)
    _arrow(ax, (3.0, 6.4), (2.0, 5.5))
    _arrow(ax, (4.8, 6.4), (5.6, 5.5))
    _box(ax, 0.4, 2.2, 3.2, 1.1, "$L_{dis}(\\tilde F_{mid})$", face="#fde0dd", size=10.5)
    _box(ax, 4.0, 2.2, 3.2, 1.1, "$L_{div}(\\tilde F_{mid})$", face="#fde0dd", size=10.5)
    _arrow(ax, (2.0, 3.9), (2.0, 3.3))
    _arrow(ax, (5.6, 3.9), (5.6, 3.3))

    # the total loss
    ax.text(15.0, 2.6,
            "$L = L_{CE} + \\alpha_{mid} L_{dis}(\\tilde F_{mid}) + \\beta_{mid} "
            "L_{div}(\\tilde F_{mid}) + \\alpha_{high} L_{dis}(F_{high}) + \\beta_{high} "
            "L_{div}(F_{high})$", ha="center", va="center", fontsize=12)
    ax.text(12.0, 1.2, "$L_{dis}$: cross-entropy of the masked class responses;  "
            "$L_{div} = 1 - \\mathrm{mean}_{b,k}(\\Sigma_{hw}\\,\\mathrm{CCMP}) / \\xi$\n"
            "squares: channels, one colour per class; "
            "map sizes at 224 px", ha="center", va="center", fontsize=MIN_FONT_PT,
            color="#555555")
    return fig


def save_method_diagram(path: str | Path, xi: tuple[int, int] = DEFAULT_XI) -> Path:
    """Draw :func:`plot_method_diagram` into ``path`` (SVG or PNG by suffix); the SVG carries
    no date, so redrawing it with the same matplotlib gives the same file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plot_method_diagram(xi)
    with matplotlib.rc_context({"svg.hashsalt": "tdsa", "svg.fonttype": "path"}):
        fig.savefig(path, metadata=svg_metadata() if path.suffix == ".svg" else None)
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(save_method_diagram(sys.argv[1] if len(sys.argv) > 1 else "tdsa_method.svg"))
