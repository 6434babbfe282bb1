"""Raw / heat / overlay triplets of an image and an attention map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from tdsa.viz.maps import normalize_map, resize_map, to_image

__all__ = ["heat_to_rgb", "overlay", "save_triplet"]


def heat_to_rgb(heat: Tensor, size: tuple[int, int] | None = None, cmap: str = "jet") -> np.ndarray:
    """A map ``[h, w]`` -> colour image ``[H, W, 3]`` float in ``[0, 1]``.

    The map is min-max normalised, bilinearly resized to ``size = (H, W)`` when given and
    coloured with the matplotlib colormap ``cmap``.

    Book: chapter 6, *Visualising and measuring attention*.
    """
    import matplotlib

    heat = torch.as_tensor(heat).detach().float().cpu()
    if heat.dim() != 2:
        raise ValueError(f"heat must be one map [h, w], got shape {list(heat.shape)}")
    if size is not None and tuple(heat.shape) != tuple(size):
        heat = resize_map(heat, size)
    heat = normalize_map(heat).numpy()
    return matplotlib.colormaps[cmap](heat)[..., :3].astype(np.float32)


def overlay(
    image: Tensor | np.ndarray, heat: Tensor, alpha: float = 0.5, cmap: str = "jet"
) -> np.ndarray:
    """Blend a coloured attention map over an image: ``[H, W, 3]`` uint8.

    ``image`` is anything :func:`tdsa.viz.maps.to_image` takes (un-normalise a network input
    with :func:`tdsa.viz.maps.unnormalize` first); ``heat`` ``[h, w]`` at any resolution is
    resized to the image. Each pixel is ``(1 - alpha) * image + alpha * colour(heat)``.

    Book: chapter 6, *Visualising and measuring attention*.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = to_image(image)
    colour = heat_to_rgb(heat, img.shape[:2], cmap)
    blend = (1.0 - alpha) * img + alpha * colour
    return np.clip(np.rint(blend * 255.0), 0, 255).astype(np.uint8)


def save_triplet(
    path: str | Path,
    image: Tensor | np.ndarray,
    heat: Tensor,
    alpha: float = 0.5,
    *,
    title: str | None = None,
    cmap: str = "jet",
) -> Path:
    """Save one PNG with three panels: the image, the map and the overlay. Returns the path.

    Book: chapter 6, *Visualising and measuring attention*.
    """
    from matplotlib.figure import Figure

    img = to_image(image)
    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 3)
    axes[0].imshow(img)
    axes[0].set_title("image")
    axes[1].imshow(heat_to_rgb(heat, img.shape[:2], cmap))
    axes[1].set_title("map")
    axes[2].imshow(overlay(img, heat, alpha, cmap))
    axes[2].set_title("overlay")
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
