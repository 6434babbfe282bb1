"""Visualisation: channel maps, top-down gates, overlays, Grad-CAM, training and confusion plots.

Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
"""

from __future__ import annotations

from tdsa.viz.gradcam import cam_maps, grad_cam, gradcam_maps
from tdsa.viz.maps import class_gate_maps, normalize_map, resize_map, to_image, unnormalize
from tdsa.viz.overlay import draw_overlay, heat_to_rgb, overlay, save_triplet
from tdsa.viz.plots import (
    draw_parts,
    plot_channel_means,
    plot_class_channels,
    plot_confusion_matrix,
    plot_gate_maps,
    plot_training_curves,
    read_metrics,
)
from tdsa.viz.twins import TwinExample, TwinPair, choose_twin_examples, plot_twin, twin_pair

__all__ = [
    "TwinExample",
    "TwinPair",
    "cam_maps",
    "choose_twin_examples",
    "class_gate_maps",
    "draw_overlay",
    "draw_parts",
    "grad_cam",
    "gradcam_maps",
    "heat_to_rgb",
    "normalize_map",
    "overlay",
    "plot_channel_means",
    "plot_class_channels",
    "plot_confusion_matrix",
    "plot_gate_maps",
    "plot_training_curves",
    "plot_twin",
    "read_metrics",
    "resize_map",
    "save_triplet",
    "to_image",
    "twin_pair",
    "unnormalize",
]
