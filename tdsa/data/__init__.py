"""Datasets of fine-grained visual classification and their transforms.

``build_dataset(name, root, split)`` for ``synthetic``, ``cub``, ``nabirds``, ``aircraft``,
``cars``, ``flowers102`` and ``imagefolder``; ``build_transforms(regime, image_size, train=...)``;
``from_config(cfg.data, split, train=...)``, the one way to build a run's dataset with its
transform and options; ``resolve_data_config`` (:mod:`tdsa.data.spec`) for its normalisation.
``data/README.md`` gives the folder tree each loader expects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tdsa.data.aircraft import FGVCAircraft
from tdsa.data.base import FGVCDataset, decode_rgb, load_rgb, read_image_size, verify_image
from tdsa.data.cars import StanfordCars
from tdsa.data.cub import CUB200, CUBFormatDataset
from tdsa.data.flowers import Flowers102
from tdsa.data.imagefolder import ImageFolderDataset
from tdsa.data.nabirds import NABirds
from tdsa.data.spec import DataSpec, resolve_data_config
from tdsa.data.synthetic import SyntheticBirds
from tdsa.data.transforms import CACHE_LIMIT_BYTES, FastTransform, build_transforms, spec_transforms
from tdsa.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tdsa.config import DataConfig

DATASETS: dict[str, type[FGVCDataset]] = {
    cls.name: cls
    for cls in (SyntheticBirds, CUB200, NABirds, FGVCAircraft, StanfordCars, Flowers102,
                ImageFolderDataset)
}

__all__ = [
    "CUB200",
    "DATASETS",
    "CUBFormatDataset",
    "DataSpec",
    "FGVCAircraft",
    "FGVCDataset",
    "Flowers102",
    "ImageFolderDataset",
    "NABirds",
    "StanfordCars",
    "SyntheticBirds",
    "build_dataset",
    "build_transforms",
    "cache_if_small",
    "decode_rgb",
    "from_config",
    "list_datasets",
    "load_rgb",
    "read_image_size",
    "resolve_data_config",
    "spec_transforms",
    "verify_image",
]


def list_datasets() -> list[str]:
    """Names accepted by :func:`build_dataset`.

    Book: chapter 1, *The real datasets*.
    """
    return list(DATASETS)


def build_dataset(name: str, root: str | Path, split: str,
                  transform: Callable[[Any], Any] | None = None, *, download: bool = False,
                  **kw: Any) -> FGVCDataset:
    """The dataset ``name`` at ``root``, split ``split`` ("train", "val" or "test"; see each
    class for extra splits). "val" is the official validation split where there is one
    (aircraft, flowers102, an image folder with ``val/``), the generator's own for synthetic,
    else a seeded class-stratified carve-out of "train" ("train" stays the full official
    training set; "train_minus_val" is the rest). Keyword arguments: ``skip_corrupt`` (all),
    ``crop_to_bbox`` (cub, nabirds, synthetic), ``generate`` (synthetic), ``val_fraction`` and
    ``val_seed`` (the carve-out: cub, cars, nabirds, imagefolder). Unknown names or splits
    raise ValueError listing the valid ones; a wrong root or missing annotation file raises
    :class:`tdsa.errors.DataError`. ``download=True`` first downloads, verifies and extracts
    the official archive into ``root`` when it is not there yet
    (:func:`tdsa.data.download.ensure_downloaded`; cub, aircraft, flowers102).

    Book: chapter 1, *Generating the dataset*.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    if download:
        from tdsa.data.download import ensure_downloaded

        ensure_downloaded(name, root)
    return DATASETS[name](root, split, transform, **kw)


def from_config(data_cfg: DataConfig, split: str, *, train: bool = False,
                download: bool = False) -> FGVCDataset:
    """Split ``split`` of the dataset a :class:`tdsa.config.DataConfig` names, with its
    transform (:func:`resolve_data_config` of ``regime``, ``image_size``, ``resize``; the
    training augmentation when ``train``) and its ``options`` (``crop_to_bbox``,
    ``val_fraction``, ``val_seed``, ...). It does not generate a missing synthetic root.
    An unknown dataset, split, option or transform setting is a ConfigError, anything else
    the reader rejects a DataError; both name the dataset, root and split. A split whose
    images, decoded and resized to an exact size, fit :data:`CACHE_LIMIT_BYTES` keeps them
    (:func:`cache_if_small`): the same items, decoded once.
    """
    d = data_cfg
    where = f"data (dataset={d.dataset!r}, root={d.root!r}, split={split!r})"
    if d.dataset not in DATASETS:
        raise ConfigError(f"data.dataset={d.dataset!r} is unknown; valid datasets: "
                          f"{', '.join(DATASETS)}")
    try:
        transform = spec_transforms(resolve_data_config(d), train=train)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    try:
        dataset = build_dataset(d.dataset, d.root, split, transform, download=download,
                                **d.options)
    except (ConfigError, TypeError) as exc:  # an unknown split or option: the config's
        raise ConfigError(f"{where}: {exc}") from None
    except ValueError as exc:  # anything else a reader rejects is the data's fault
        raise DataError(f"{where}: {exc}") from None
    cache_if_small(dataset)
    return dataset


def cache_if_small(dataset: FGVCDataset, limit: int = CACHE_LIMIT_BYTES) -> bool:
    """Turn on the decode cache of ``dataset``'s fast transform
    (:meth:`~tdsa.data.transforms.FastTransform.enable_cache`) when it resizes to an exact
    size and the split's resized images (uint8) take at most ``limit`` bytes; whether it is
    on. Items are bit-identical with and without it."""
    transform = dataset.transform
    if not isinstance(transform, FastTransform) or not isinstance(transform.resize, tuple):
        return False
    height, width = transform.resize
    if len(dataset) * 3 * height * width > limit:
        return False
    transform.enable_cache()
    return True
