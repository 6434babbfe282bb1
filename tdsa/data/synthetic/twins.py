"""Re-rendering the images of a generated dataset, and their counterfactual twins: the same
bird, pose, background, clutter and noise with one part's attribute changed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tdsa.data.synthetic.attributes import part_attribute
from tdsa.data.synthetic.metadata import SPLITS, load_metadata
from tdsa.data.synthetic.random_streams import image_rng, twin_rng
from tdsa.data.synthetic.render import RENDER_ARGS, RenderedBird, render_bird
from tdsa.errors import ConfigError, DataError


def image_source(meta: Mapping[str, Any], split: str, index: int) -> tuple[int, int, bool]:
    """``(class index, image index, val)`` of image ``index`` of ``split``, in the order
    ``build_dataset("synthetic", root, split)`` lists it: the arguments of :func:`image_rng`
    that render it.
    """
    if split not in SPLITS:
        raise ConfigError(f"synthetic: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    args = meta["args"]
    train, test = args["train_per_class"], args["test_per_class"]
    per_class = {"train": train, "train_minus_val": train, "test": test,
                 "val": args.get("val_per_class", 0)}[split]
    if per_class == 0:
        raise DataError("synthetic: this dataset has no val split; regenerate it with "
                        "--val-per-class N (val_per_class=N)")
    count = args["num_classes"] * per_class
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
            or not 0 <= index < count:
        raise IndexError(f"synthetic {split}: image index {index!r} is outside 0..{count - 1}")
    class_index, j = divmod(int(index), per_class)
    if split == "val":
        return class_index, int(index), True
    return class_index, class_index * (train + test) + (j if split != "test" else train + j), False


def render_image(
    source: str | Path | Mapping[str, Any],
    split: str,
    index: int,
    *,
    swap: Mapping[str, str] | None = None,
) -> RenderedBird:
    """Re-render image ``index`` of ``split`` of a synthetic dataset (a root or its metadata),
    optionally with attributes swapped (:func:`render_bird`'s ``swap``).

    Without ``swap`` the pixels are those the generator saved before JPEG encoding.
    """
    meta = load_metadata(source)
    class_index, image_index, val = image_source(meta, split, index)
    args = meta["args"]
    seed = args["seed"]
    return render_bird(
        meta["classes"][class_index]["attributes"],
        image_rng(seed, image_index, val=val),
        **{k: args[k] for k in RENDER_ARGS},
        swap=swap,
        swap_rng=twin_rng(seed, image_index, val=val),
    )


def render_twin(
    source: str | Path | Mapping[str, Any], split: str, index: int, *, part: str, value: str
) -> RenderedBird:
    """The counterfactual twin of image ``index`` of ``split``: the same bird, pose,
    background, clutter and noise with part ``part``'s attribute set to ``value``.

    ``value`` equal to the image's own value gives the original image.
    """
    return render_image(source, split, index, swap={part_attribute(part): value})


def attribute_values(source: str | Path | Mapping[str, Any], attribute: str) -> list[str]:
    """The values of ``attribute`` in a synthetic dataset (a root or its metadata): those of
    :data:`ATTRIBUTES`, then the extra ones its classes use when it was generated with
    ``unique_part`` set to ``attribute``."""
    meta = load_metadata(source)
    if attribute not in meta["attributes"]:
        raise ConfigError(f"unknown attribute {attribute!r}; attributes: "
                          f"{', '.join(meta['attributes'])}")
    return list(meta["attributes"][attribute])


def twin_values(source: str | Path | Mapping[str, Any], split: str, index: int,
                part: str) -> list[str]:
    """The values of ``part``'s attribute other than image ``index``'s own, in the order of
    :func:`attribute_values`: the twins that exist for that part.
    """
    meta = load_metadata(source)
    attribute = part_attribute(part)
    own = meta["classes"][image_source(meta, split, index)[0]]["attributes"][attribute]
    return [v for v in attribute_values(meta, attribute) if v != own]
