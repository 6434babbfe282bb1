"""Part localisation of a trained model's attention maps on a dataset with part locations.

:func:`evaluate_localisation` runs a model over every image of a dataset (the synthetic birds,
CUB-200-2011) and scores, with :class:`tdsa.metrics.LocalisationMeter`, where its maps peak
relative to the annotated discriminative parts, beside the controls that make such numbers
mean something (``shared/probe-notes.md``): the channels of a *wrong* class scored the same way,
Grad-CAM of the logits (the standard map of a cross-entropy model), a uniformly random cell of
the same grid (chance) and one "body-centre" point per image.

Book: chapter 6, *Measuring: the pointing game against the part annotations*.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from tdsa.attribution import grad_cam
from tdsa.errors import ConfigError, DataError
from tdsa.metrics import (
    DEFAULT_RADIUS,
    LocalisationMeter,
    box_centres,
    class_channels,
    normalise_parts,
)
from tdsa.models.base import TdsaNet
from tdsa.validation import check_int, check_positive_int

__all__ = ["dataset_parts", "evaluate_localisation", "wrong_classes"]

def wrong_classes(targets: Tensor, num_classes: int) -> Tensor:
    """The fixed wrong class of each sample, ``(y + 1) mod K``: the control whose channels are
    scored exactly like the true class's.

    Book: chapter 6, *Grad-CAM of the cross-entropy model beside them*.
    """
    if check_int("num_classes", num_classes) < 2:
        raise ConfigError(f"a wrong-class control needs at least 2 classes, got {num_classes}")
    return (targets.long() + 1) % num_classes


def dataset_parts(dataset: Any) -> tuple[list[str], list[str | None] | None]:
    """``(part_names, granularity)`` of a dataset with part locations.

    ``granularity`` holds ``"fine"``/``"coarse"`` for the parts that carry a class attribute
    and None for the others (from ``dataset.discriminative_parts``, as the synthetic birds
    have); it is None when the dataset does not say which parts are discriminative (CUB), so
    that every part is scored.

    Book: chapter 6, *The two trained networks*.
    """
    names = getattr(dataset, "part_names", None)
    if not names or not callable(getattr(dataset, "parts", None)):
        raise ConfigError(
            f"{type(dataset).__name__} has no part locations: expected a dataset with "
            f"part_names and parts(index) (e.g. 'synthetic' or 'cub')"
        )
    disc = getattr(dataset, "discriminative_parts", None)
    granularity = None if disc is None else [disc.get(name) for name in names]
    return list(names), granularity


def _batch_parts(dataset: Any, indices: Sequence[int]) -> tuple[Tensor, Tensor | None]:
    """Normalised parts ``[B, P, 3]`` and body centres ``[B, 2]`` (None without boxes)."""
    parts, centres = [], []
    has_box = callable(getattr(dataset, "bbox", None))
    for i in indices:
        width, height = dataset.image_size(i)
        parts.append(normalise_parts(torch.as_tensor(dataset.parts(i)), width, height))
        if has_box:
            centre = box_centres(torch.tensor(dataset.bbox(i), dtype=torch.float32))
            centres.append(centre / torch.tensor([float(width), float(height)]))
    return torch.stack(parts), (torch.stack(centres) if has_box else None)


def _renamed(
    summary: dict[str, float], sources: dict[str, str], nesting_prefix: str | None
) -> dict[str, float]:
    """The model-dependent keys of a meter summary, with the sources renamed by ``sources``
    (e.g. ``{"high": "wrong_high"}``) and ``nesting/<x>`` renamed ``nesting/<prefix>_<x>``
    (dropped when ``nesting_prefix`` is None); other keys are dropped."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        fields = key.split("/")
        if fields[0] in ("hit_rate", "coverage") and fields[1] in sources:
            fields[1] = sources[fields[1]]
            out["/".join(fields)] = value
        elif fields[0] == "nesting" and nesting_prefix is not None:
            out[f"nesting/{nesting_prefix}_{fields[1]}"] = value
    return out


@torch.no_grad()
def _features(model: TdsaNet, images: Tensor) -> dict[str, Tensor]:
    return model.forward_features(images)


def evaluate_localisation(
    model: TdsaNet,
    dataset: Any,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    radius: float = DEFAULT_RADIUS,
    threshold: float = 0.5,
    gradcam: bool = True,
) -> dict[str, float]:
    """Part-localisation metrics of ``model`` on every image of ``dataset``.

    ``model`` is a tdsa network (``forward_features`` -> ``{"mid", "high"}`` with
    ``num_classes * xi`` channels, ``forward_head``, attribute ``xi``); ``dataset`` yields
    ``(image, label)`` through a resize-only transform (the ``scratch`` test transform), so
    its part locations, normalised by the image size, are in the maps' frame. Parts come from
    :func:`dataset_parts`; a peak hits the nearest visible scored part within ``radius``
    (fraction of the image side). Sources of points, each a key segment ``<source>``:

    - ``high`` / ``mid``: the peaks of the true class's ``xi`` channels at each stage;
    - ``wrong_high`` / ``wrong_mid``: the same for the wrong class ``(y + 1) mod K``
      (a control: class-specific channels should hit the true class's parts more often);
    - ``gradcam``: the peak of Grad-CAM of the true-class logit at the high tap;
    - ``chance_high`` / ``chance_mid``: a uniformly random cell of that grid (exact);
    - ``centre``: the centre of the bounding box (image centre without boxes).

    Returned keys (floats; NaN where there is no data): ``images``;
    ``hit_rate/<source>`` (fraction of peaks that hit a scored part),
    ``hit_rate/<source>/granularity:<fine|coarse>``, ``hit_rate/<source>/part:<name>``
    (a part's rate counts images where it is visible), ``coverage/<source>`` (distinct parts
    hit per image); ``nesting/mid_in_high`` and ``nesting/chance`` (fraction of true-class
    mid peaks inside the region of the high channel that gates them, and its chance level),
    ``nesting/wrong_mid_in_high`` and ``nesting/wrong_chance`` for the wrong class.
    ``gradcam=False`` leaves out the ``gradcam`` keys (it needs a backward pass per batch).
    The model is left in eval mode.

    Book: chapter 6, *Measuring: the pointing game against the part annotations*.
    """
    check_positive_int("batch_size", batch_size)
    if len(dataset) == 0:
        raise DataError(f"{type(dataset).__name__} is empty: nothing to localise")
    names, granularity = dataset_parts(dataset)
    xi_mid, xi_high = (int(v) for v in model.xi)
    meters = {
        kind: LocalisationMeter(names, granularity, radius=radius, threshold=threshold)
        for kind in ("true", "wrong", "gradcam")
    }
    model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    start = 0
    for images, labels in loader:
        indices = range(start, start + len(labels))
        start += len(labels)
        parts, centres = _batch_parts(dataset, indices)
        images = images.to(device)
        labels = torch.as_tensor(labels).long().to(device)
        feats = _features(model, images)
        num_classes = feats["high"].shape[1] // xi_high
        wrong = wrong_classes(labels, num_classes)
        for kind, classes in (("true", labels), ("wrong", wrong)):
            meters[kind].update(
                class_channels(feats["high"], classes, xi_high),
                parts,
                maps_mid=class_channels(feats["mid"], classes, xi_mid),
                centres=centres,
            )
        if gradcam:
            cam = grad_cam(model, images, labels, "high")
            meters["gradcam"].update(cam.unsqueeze(1), parts, centres=centres)

    out = meters["true"].summary()
    out.update(_renamed(meters["wrong"].summary(),
                        {"high": "wrong_high", "mid": "wrong_mid"}, "wrong"))
    if gradcam:
        out.update(_renamed(meters["gradcam"].summary(), {"high": "gradcam"}, None))
    return out
