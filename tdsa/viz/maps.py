"""Array helpers for display: un-normalising images, displayable images, class and gate maps
(normalising and resizing maps: :mod:`tdsa.attribution`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from tdsa.data.spec import PUBLISHED_MEAN, PUBLISHED_STD

__all__ = ["class_gate_maps", "to_image", "unnormalize"]


def unnormalize(
    image: Tensor, mean: Sequence[float] = PUBLISHED_MEAN, std: Sequence[float] = PUBLISHED_STD
) -> np.ndarray:
    """A normalised ``[3, H, W]`` image tensor -> ``[H, W, 3]`` float array in ``[0, 1]``.

    Inverts ``Normalize(mean, std)``; the defaults are the scratch regime's (0.5 / 0.5), and
    a run's own are ``tdsa.data.resolve_data_config(cfg.data).mean`` / ``.std`` (the
    pretrained regime uses ImageNet's). Clips to the displayable range.

    Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
    """
    image = torch.as_tensor(image).detach().float().cpu()
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3, H, W], got shape {list(image.shape)}")
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (image * s + m).clamp(0, 1).permute(1, 2, 0).numpy()


def to_image(image: Tensor | np.ndarray) -> np.ndarray:
    """Any displayable image -> ``[H, W, 3]`` float array in ``[0, 1]``.

    Takes a ``[3, H, W]`` tensor already in ``[0, 1]`` (use :func:`unnormalize` first for a
    normalised one), an ``[H, W, 3]`` uint8 array, an ``[H, W, 3]`` float array in ``[0, 1]``
    or an ``[H, W]`` grey image.
    """
    if isinstance(image, Tensor):
        image = image.detach().cpu()
        if image.dim() == 3 and image.shape[0] in (1, 3):
            image = image.permute(1, 2, 0)
        image = image.numpy()
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3], [3, H, W] or [H, W], got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def class_gate_maps(high_maps: Tensor, mid_maps: Tensor) -> tuple[Tensor, Tensor]:
    """The top-down gate of one class's channels and the mid maps it gates.

    ``high_maps`` ``[..., xi_high, h, w]`` and ``mid_maps`` ``[..., xi_mid, hm, wm]`` of one
    class (e.g. :func:`tdsa.metrics.class_channels`). Returns ``(gate, gated_mid)``, both
    ``[..., xi_mid, hm, wm]``, with ``gate = tdsa.losses.top_down_attention(high, mid)``
    (the sigmoid of the nearest-upsampled high map, in ``[0.5, 1)`` for post-ReLU features)
    and ``gated_mid = mid * gate``.
    """
    from tdsa.losses import top_down_attention

    high = torch.as_tensor(high_maps).detach().float()
    mid = torch.as_tensor(mid_maps).detach().float()
    squeeze = high.dim() == 3
    if squeeze:
        high, mid = high.unsqueeze(0), mid.unsqueeze(0)
    gate = top_down_attention(high, mid)
    gated = mid * gate
    return (gate[0], gated[0]) if squeeze else (gate, gated)
