"""Raw / heat / overlay triplets of an image and an attention map, each map with a colour bar
of its min-max scale."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from tdsa.attribution import normalize_map, resize_map
from tdsa.metrics import map_peaks
from tdsa.validation import check_number
from tdsa.viz.maps import to_image

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colorbar import Colorbar

__all__ = ["draw_overlay", "heat_to_rgb", "overlay", "save_triplet"]

SCALE_LABEL = "map (min-max scaled)"
"""The colour bar label of a min-max normalised map."""


def heat_to_rgb(heat: Tensor, size: tuple[int, int] | None = None, cmap: str = "jet") -> np.ndarray:
    """A map ``[h, w]`` -> colour image ``[H, W, 3]`` float in ``[0, 1]``.

    The map is min-max normalised, bilinearly resized to ``size = (H, W)`` when given and
    coloured with the matplotlib colormap ``cmap``.
    """
    import matplotlib

    heat = torch.as_tensor(heat).detach().float().cpu()
    if heat.dim() != 2:
        raise ValueError(f"heat must be one map [h, w], got shape {list(heat.shape)}")
    if size is not None and tuple(heat.shape) != tuple(size):
        heat = resize_map(heat, size)
    rgba = np.asarray(matplotlib.colormaps[cmap](normalize_map(heat).numpy()))
    return rgba[..., :3].astype(np.float32)


def overlay(
    image: Tensor | np.ndarray, heat: Tensor, alpha: float = 0.5, cmap: str = "jet"
) -> np.ndarray:
    """Blend a coloured attention map over an image: ``[H, W, 3]`` uint8.

    ``image`` is anything :func:`tdsa.viz.maps.to_image` takes (un-normalise a network input
    with :func:`tdsa.viz.maps.unnormalize` first); ``heat`` ``[h, w]`` at any resolution is
    resized to the image. Each pixel is ``(1 - alpha) * image + alpha * colour(heat)``.

    Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
    """
    alpha = check_number("alpha", alpha, 0.0, 1.0)
    img = to_image(image)
    colour = heat_to_rgb(heat, img.shape[:2], cmap)
    blend = (1.0 - alpha) * img + alpha * colour
    return np.clip(np.rint(blend * 255.0), 0, 255).astype(np.uint8)


def _scale_bar(ax: Axes, cmap: str) -> Colorbar:
    """A colour bar beside ``ax`` for a map min-max scaled to ``[0, 1]`` in ``cmap``."""
    import matplotlib
    from matplotlib.cm import ScalarMappable

    scale = ScalarMappable(norm=matplotlib.colors.Normalize(0.0, 1.0), cmap=cmap)
    bar = ax.figure.colorbar(scale, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(SCALE_LABEL, fontsize=7)
    bar.ax.tick_params(labelsize=6)
    return bar


def draw_overlay(
    ax: Axes,
    image: Tensor | np.ndarray,
    heat: Tensor,
    alpha: float = 0.5,
    *,
    cmap: str = "jet",
    colorbar: bool = True,
    peak: bool = False,
) -> Colorbar | None:
    """Draw :func:`overlay` of ``image`` and ``heat`` on ``ax`` (axis ticks off), with a colour
    bar of the map's min-max scale unless ``colorbar`` is False; returns the colour bar. With
    ``peak``, a white cross marks the map's peak: the centre of its arg-max cell
    (:func:`tdsa.metrics.map_peaks`), scaled to the image's pixels.

    Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
    """
    blend = overlay(image, heat, alpha, cmap)
    ax.imshow(blend)
    if peak:
        h, w = blend.shape[:2]
        x, y = map_peaks(torch.as_tensor(heat)).tolist()
        ax.plot(x * w, y * h, "wx", ms=9, mew=2)
    ax.set_xticks([])
    ax.set_yticks([])
    return _scale_bar(ax, cmap) if colorbar else None


def save_triplet(
    path: str | Path,
    image: Tensor | np.ndarray,
    heat: Tensor,
    alpha: float = 0.5,
    *,
    title: str | None = None,
    cmap: str = "jet",
) -> Path:
    """Save one PNG with three panels: the image, the map and the overlay (both with the colour
    bar of the map's min-max scale). Returns the path.

    Book: chapter 6, *Grad-CAM of the cross-entropy model beside them*.
    """
    from matplotlib.figure import Figure

    img = to_image(image)
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    axes[0].imshow(img)
    axes[0].set_title("image")
    axes[1].imshow(heat_to_rgb(heat, img.shape[:2], cmap))
    axes[1].set_title("map")
    _scale_bar(axes[1], cmap)
    draw_overlay(axes[2], img, heat, alpha, cmap=cmap)
    axes[2].set_title("overlay")
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
