"""Datasets of fine-grained visual classification and their transforms.

``build_dataset(name, root, split)`` for ``synthetic``, ``cub``, ``nabirds``, ``aircraft``,
``cars``, ``flowers102`` and ``imagefolder``; ``build_transforms(regime, image_size, train=...)``.
``data/README.md`` gives the folder tree each loader expects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tdsa.data.aircraft import FGVCAircraft
from tdsa.data.base import FGVCDataset, decode_rgb, load_rgb, read_image_size, verify_image
from tdsa.data.cars import StanfordCars
from tdsa.data.cub import CUB200, CUBFormatDataset, SyntheticBirds
from tdsa.data.flowers import Flowers102
from tdsa.data.imagefolder import ImageFolderDataset
from tdsa.data.nabirds import NABirds
from tdsa.data.transforms import build_transforms

DATASETS: dict[str, type[FGVCDataset]] = {
    cls.name: cls
    for cls in (SyntheticBirds, CUB200, NABirds, FGVCAircraft, StanfordCars, Flowers102,
                ImageFolderDataset)
}

__all__ = [
    "CUB200",
    "DATASETS",
    "CUBFormatDataset",
    "FGVCAircraft",
    "FGVCDataset",
    "Flowers102",
    "ImageFolderDataset",
    "NABirds",
    "StanfordCars",
    "SyntheticBirds",
    "build_dataset",
    "build_transforms",
    "decode_rgb",
    "list_datasets",
    "load_rgb",
    "read_image_size",
    "verify_image",
]


def list_datasets() -> list[str]:
    """Names accepted by :func:`build_dataset`.

    Book: chapter 1, *The data*.
    """
    return list(DATASETS)


def build_dataset(name: str, root: str | Path, split: str,
                  transform: Callable[[Any], Any] | None = None, **kw: Any) -> FGVCDataset:
    """The dataset ``name`` at ``root``, split ``split`` ("train" or "test"; see each class for
    extra splits). Keyword arguments: ``skip_corrupt`` (all), ``crop_to_bbox`` (cub, nabirds,
    synthetic), ``generate`` (synthetic). Unknown names or splits raise ValueError listing
    the valid ones; a wrong root or missing annotation file raises
    :class:`tdsa.errors.DataError`.

    Book: chapter 1, *The data*.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    return DATASETS[name](root, split, transform, **kw)
