"""Training and test transforms of the two regimes, with a fast decoding path.

``"scratch"`` is the reference code's recipe (training from scratch at 224): ``Resize((S, S))``
(aspect not kept); train ``RandomCrop(S, padding=4)`` + ``RandomHorizontalFlip``; test resize
only, no centre crop; ``Normalize(0.5, 0.5)``. ``"pretrained"`` is the usual ImageNet-backbone
recipe: ``Resize(R)`` of the short side (default ``R = round(S * 8 / 7)``, 512 at S = 448; the
MC-Loss recipe uses 600); train ``RandomCrop(S)`` + flip; test ``CenterCrop(S)``; ImageNet
mean/std.

``decoder="fast"`` (default) decodes JPEGs at a reduced scale when the target is at most half
the source (:func:`tdsa.data.base.decode_rgb`) and does resize, crop, flip and normalisation on
uint8 tensors, converting to float only at the output size. It draws its random numbers from
torch's generator in the same order as the torchvision transforms, so under the same seed it
makes the same crops and flips as ``decoder="pil"``, the plain torchvision + PIL pipeline.

A :class:`FastTransform` with its cache on (:meth:`FastTransform.enable_cache`;
:func:`tdsa.data.from_config` turns it on where a split's resized images fit
:data:`CACHE_LIMIT_BYTES`) decodes and resizes each file once and keeps the uint8 result: the
augmentation after it, and its random draws, are those of the uncached path, so every output is
bit-identical to it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.v2.functional as F
from PIL import Image

from tdsa.data.base import Box, decode_rgb
from tdsa.data.spec import DataSpec, resolve_data_config

DECODERS = ("fast", "pil")
CACHE_LIMIT_BYTES = 512 * 2**20
"""The largest split (its images decoded and resized, uint8) whose pixels
:func:`tdsa.data.from_config` keeps in memory: the book's synthetic data at 112 px is about
100 MB for all three splits; CUB at 224 px (900 MB for train) is decoded every time."""


class FastTransform:
    """Resize, crop, flip and normalise on uint8 tensors; ``from_file`` also decodes.

    ``resize`` is ``(h, w)`` (exact size) or an int (short side). ``crop`` is ``"random"``,
    ``"center"`` or None; ``padding`` pads (with zeros) before a random crop.
    Call it on a PIL image or a uint8 ``[3, H, W]`` tensor; datasets call ``from_file``.
    A call is :meth:`prepare` (decode-independent and deterministic: the resize) followed by
    :meth:`augment` (crop, flip, normalise: the random draws); with the cache on
    (:meth:`enable_cache`), ``from_file`` keeps each file's prepared tensor.
    """

    def __init__(self, *, size: int, resize: int | tuple[int, int], crop: str | None,
                 padding: int, flip: bool, mean: tuple[float, ...], std: tuple[float, ...]
                 ) -> None:
        self.size, self.resize, self.crop = size, resize, crop
        self.padding, self.flip = padding, flip
        self.mean, self.std = mean, std
        std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) / std_t
        self.min_side = resize if isinstance(resize, int) else min(resize)
        self.cache: dict[tuple[str, Box | None], torch.Tensor] | None = None

    def enable_cache(self) -> None:
        """Keep each file's decoded and resized image (uint8) from its first ``from_file`` on
        (idempotent). :func:`tdsa.data.from_config` turns it on for small splits."""
        if self.cache is None:
            self.cache = {}

    def from_file(self, path: str | Path, box: Box | None = None) -> torch.Tensor:
        """Decode ``path`` (cropped to ``box``) at the smallest sufficient scale and transform
        (the decoded, resized image from the cache when it is on and holds it)."""
        return self.augment(self.prepared(path, box))

    def prepared(self, path: str | Path, box: Box | None = None) -> torch.Tensor:
        """``path`` (cropped to ``box``) decoded and resized, uint8 ``[3, H, W]``: kept in and
        read from the cache when it is on. Never modify it in place."""
        if self.cache is None:
            return self.prepare(decode_rgb(path, min_side=self.min_side, box=box))
        key = (str(path), box)
        image = self.cache.get(key)
        if image is None:
            image = self.prepare(decode_rgb(path, min_side=self.min_side, box=box))
            self.cache[key] = image
        return image

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        return self.augment(self.prepare(image))

    def prepare(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        """The deterministic part: an RGB PIL image or uint8 tensor resized (uint8 out)."""
        if isinstance(image, Image.Image):
            image = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
        size = list(self.resize) if isinstance(self.resize, tuple) else [self.resize]
        return F.resize(image, size, interpolation=T.InterpolationMode.BILINEAR, antialias=True)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The random part on a :meth:`prepare`-d image: crop, flip (drawing from torch's
        generator as torchvision does), float and normalise. ``x`` is not modified."""
        s = self.size
        height, width = x.shape[-2:]
        if self.crop == "random":
            padded_h, padded_w = height + 2 * self.padding, width + 2 * self.padding
            if padded_h < s or padded_w < s:
                raise ValueError(f"crop size {s} is larger than the resized image "
                                 f"{padded_w}x{padded_h}")
            top = left = 0  # torchvision draws nothing when there is a single possible crop
            if (padded_h, padded_w) != (s, s):
                top = int(torch.randint(0, padded_h - s + 1, size=(1,)).item())
                left = int(torch.randint(0, padded_w - s + 1, size=(1,)).item())
            x = _padded_crop(x, top - self.padding, left - self.padding, s)
        elif self.crop == "center":
            top, left = round((height - s) / 2.0), round((width - s) / 2.0)
            x = x[:, top:top + s, left:left + s]
        if self.flip and torch.rand(1).item() < 0.5:
            x = x.flip(-1)
        return x.contiguous().to(torch.float32).mul_(self._scale).sub_(self._shift)

    def __repr__(self) -> str:
        return (f"FastTransform(size={self.size}, resize={self.resize}, crop={self.crop}, "
                f"padding={self.padding}, flip={self.flip}, mean={self.mean}, std={self.std})")


def _padded_crop(x: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """``x[:, top:top+size, left:left+size]`` where rows/columns outside ``x`` are zeros."""
    height, width = x.shape[-2:]
    if top >= 0 and left >= 0 and top + size <= height and left + size <= width:
        return x[:, top:top + size, left:left + size]
    out = x.new_zeros((x.shape[0], size, size))
    y0, y1 = max(top, 0), min(top + size, height)
    x0, x1 = max(left, 0), min(left + size, width)
    out[:, y0 - top:y1 - top, x0 - left:x1 - left] = x[:, y0:y1, x0:x1]
    return out


def build_transforms(regime: str, image_size: int | None = None, *, train: bool,
                     resize: int | None = None, decoder: str = "fast"
                     ) -> Callable[[Any], torch.Tensor]:
    """The transform of ``regime`` ("scratch" or "pretrained") at ``image_size`` S.

    ``image_size`` defaults to 224 (scratch) or 448 (pretrained); ``resize`` is the short side
    before cropping in the pretrained regime (default ``round(S * 8 / 7)``). ``decoder="fast"``
    returns a :class:`FastTransform` (datasets hand it the file path); ``decoder="pil"`` the
    plain ``torchvision.transforms.Compose`` of PIL transforms.

    Book: chapter 1, *Read by the real CUB loader*.
    """
    spec = resolve_data_config({"regime": regime, "image_size": image_size, "resize": resize})
    return spec_transforms(spec, train=train, decoder=decoder)


def spec_transforms(spec: DataSpec, *, train: bool, decoder: str = "fast"
                    ) -> Callable[[Any], torch.Tensor]:
    """The transform of a resolved :class:`~tdsa.data.spec.DataSpec`: train = random crop
    (padding 4 in the scratch regime) + flip, test = centre crop (pretrained) or none.
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; valid decoders: {', '.join(DECODERS)}")
    size = spec.image_size
    test_crop = "center" if spec.regime == "pretrained" else None
    padding = 4 if train and spec.regime == "scratch" else 0
    crop = "random" if train else test_crop
    if decoder == "fast":
        return FastTransform(size=size, resize=spec.resize, crop=crop, padding=padding,
                             flip=train, mean=spec.mean, std=spec.std)
    steps: list[Callable[[Any], Any]] = [T.Resize(spec.resize)]
    if crop == "random":
        steps.append(T.RandomCrop(size, padding=padding or None))
    elif crop == "center":
        steps.append(T.CenterCrop(size))
    if train:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(spec.mean, spec.std)]
    return T.Compose(steps)
