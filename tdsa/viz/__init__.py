"""Visualisation: channel maps, top-down gates, overlays (also of the Grad-CAM maps of
:mod:`tdsa.attribution`), twin pairs, training and confusion plots.

Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
"""

from __future__ import annotations

from tdsa.viz.maps import class_gate_maps, to_image, unnormalize
from tdsa.viz.overlay import draw_overlay, heat_to_rgb, overlay, save_triplet
from tdsa.viz.plots import (
    CurvePanel,
    channels_as_rgb,
    draw_parts,
    plot_channel_means,
    plot_class_channels,
    plot_confusion_matrix,
    plot_diversity_steps,
    plot_gate_maps,
    plot_training_curves,
)
from tdsa.viz.twins import TwinExample, TwinPair, choose_twin_examples, plot_twin, twin_pair

__all__ = [
    "CurvePanel",
    "TwinExample",
    "TwinPair",
    "channels_as_rgb",
    "choose_twin_examples",
    "class_gate_maps",
    "draw_overlay",
    "draw_parts",
    "heat_to_rgb",
    "overlay",
    "plot_channel_means",
    "plot_class_channels",
    "plot_confusion_matrix",
    "plot_diversity_steps",
    "plot_gate_maps",
    "plot_training_curves",
    "plot_twin",
    "save_triplet",
    "to_image",
    "twin_pair",
    "unnormalize",
]
