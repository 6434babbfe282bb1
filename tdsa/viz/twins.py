"""A counterfactual twin beside its original: where a class group's response changes when one
part's attribute is swapped (:mod:`tdsa.experiments.counterfactual` counts these over a split)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tdsa.config import Config
from tdsa.data.spec import resolve_data_config
from tdsa.data.synthetic import (
    encode_as_saved,
    image_source,
    load_metadata,
    part_attribute,
    render_image,
    render_twin,
    twin_values,
)
from tdsa.data.transforms import spec_transforms
from tdsa.errors import ConfigError
from tdsa.losses import ccmp
from tdsa.metrics import DEFAULT_RADIUS
from tdsa.models.base import TdsaNet

__all__ = ["MAPS", "STAGES", "TwinExample", "TwinPair", "choose_twin_examples", "plot_twin",
           "twin_pair"]

STAGES = ("high", "mid")
MAPS = (*STAGES, "gradcam")
"""The maps a :class:`TwinPair` may hold, in the order :func:`plot_twin` draws them."""


@dataclass
class TwinPair:
    """An image and its twin through a network: the rendered pictures (``[H, W, 3]`` uint8),
    the swapped part, its own and new attribute value, the part's location (``(x, y)`` in
    ``[0, 1]``), the true class, both predictions and, per stage, the true class's CCMP map
    on the original and on the twin (``[h, w]`` each); with Grad-CAM also ``"gradcam"``: the
    true class's raw Grad-CAM at the high stage (as :mod:`tdsa.experiments.counterfactual`
    measures it)."""

    original: np.ndarray
    twin: np.ndarray
    part: str
    own: str
    value: str
    part_xy: tuple[float, float]
    label: int
    predictions: tuple[int, int]
    maps: dict[str, tuple[Tensor, Tensor]]

    def difference(self, stage: str) -> Tensor:
        """``|map(original) - map(twin)|`` of the true class at ``stage`` (a key of
        :data:`MAPS` that the pair holds)."""
        if stage not in self.maps:
            raise KeyError(f"this pair has no {stage!r} maps; it has {', '.join(self.maps)}")
        a, b = self.maps[stage]
        return (a - b).abs()


def twin_pair(model: TdsaNet, cfg: Config, index: int, part: str, value: str | None = None,
              *, split: str = "test", root: str | Path | None = None,
              gradcam: bool = False) -> TwinPair:
    """Image ``index`` of the synthetic ``split`` and its twin with ``part``'s attribute set to
    ``value`` (default: the first value the image does not have), through ``model`` with the
    run's test transform (``cfg`` is the run's config, as :func:`tdsa.engine.checkpoint.
    load_model` returns it). Both images are JPEG-encoded as the generator saves them. With
    ``gradcam`` the pair also holds the true class's raw Grad-CAM of both (``"gradcam"``), the
    map a cross-entropy model is measured through.

    Book: chapter 6, *Counterfactual twins: one part's attribute changed*.
    """
    if cfg.data.dataset != "synthetic":
        raise ConfigError(f"data.dataset={cfg.data.dataset!r}: twins need the synthetic data")
    root = Path(root if root is not None else cfg.data.root)
    meta = load_metadata(root)
    label = image_source(meta, split, index)[0]
    own = meta["classes"][label]["attributes"][part_attribute(part)]
    others = twin_values(meta, split, index, part)
    value = others[0] if value is None else value
    if value not in others:
        raise ConfigError(f"value={value!r} is not a twin of {part!r} for image {index} of "
                          f"{split} (its own value is {own!r}; twins: {', '.join(others)})")
    birds = [render_image(meta, split, index),
             render_twin(meta, split, index, part=part, value=value)]
    quality = int(meta["args"]["jpeg_quality"])
    saved = [encode_as_saved(b.image, quality) for b in birds]
    transform = spec_transforms(resolve_data_config(cfg.data), train=False)
    x = torch.stack([transform(img) for img in saved])
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats["high"])
    xi = dict(zip(("mid", "high"), (int(v) for v in model.xi), strict=True))
    maps = {s: tuple(ccmp(feats[s].float(), xi[s])[:, label]) for s in STAGES}
    if gradcam:
        from tdsa.attribution import grad_cam

        maps["gradcam"] = tuple(grad_cam(model, x, torch.tensor([label, label]), "high"))
    width, height = birds[0].image.size
    px, py = birds[0].parts[part]
    preds = logits.argmax(dim=1).tolist()
    return TwinPair(np.asarray(saved[0]), np.asarray(saved[1]), part, own, value,
                    (px / width, py / height), label, (int(preds[0]), int(preds[1])),
                    {s: (m[0], m[1]) for s, m in maps.items()})


def plot_twin(pair: TwinPair, *, class_names: list[str] | None = None,
              title: str | None = None, radius: float = DEFAULT_RADIUS) -> Any:
    """Two rows, sized to be read at the width of a book's page (about 760 px at the book's
    90 dpi, 9-point text): the original and the twin on the first row, and on the second
    ``|difference|`` of the true class's CCMP map at the high and the mid stage, and of its
    Grad-CAM when the pair has it (each with a colour bar; the swapped part circled with the
    hit ``radius``, a fraction of the map's longer side); ``title`` above.

    Book: chapter 6, *Counterfactual twins: one part's attribute changed*.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    name = class_names[pair.label] if class_names else f"class {pair.label + 1}"
    shown = [m for m in MAPS if m in pair.maps]
    cols = max(len(shown), 2)
    fig = plt.figure(figsize=(2.8 * cols, 6.0))
    grid = fig.add_gridspec(2, 2 * cols)
    left = cols - 2  # the two pictures, centred over the maps
    pictures = [fig.add_subplot(grid[0, left + 2 * i:left + 2 * i + 2]) for i in range(2)]
    maps = [fig.add_subplot(grid[1, 2 * i:2 * i + 2]) for i in range(len(shown))]
    verdicts = ["correct" if p == pair.label else "wrong" for p in pair.predictions]
    titles = [f"original: {pair.part} {pair.own}\n{name}; predicted {pair.predictions[0] + 1} "
              f"({verdicts[0]})",
              f"twin: {pair.part} {pair.value}\npredicted {pair.predictions[1] + 1} "
              f"({verdicts[1]})"]
    for ax, picture, caption in zip(pictures, (pair.original, pair.twin), titles, strict=True):
        ax.imshow(picture)
        ax.set_title(caption, fontsize=9)
    for ax, stage in zip(maps, shown, strict=True):
        diff = pair.difference(stage)
        h, w = diff.shape
        image = ax.imshow(diff.numpy(), cmap="magma", extent=(0, w, h, 0))
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.ax.tick_params(labelsize=8)
        ax.add_patch(Circle((pair.part_xy[0] * w, pair.part_xy[1] * h), radius * max(h, w),
                            fill=False, edgecolor="cyan", linewidth=1.5))
        what = "Grad-CAM" if stage == "gradcam" else f"{stage} map"
        ax.set_title(f"|change|, {what}\n(max {float(diff.max()):.3f})", fontsize=9)
    for ax in (*pictures, *maps):
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class TwinExample:
    """A test image chosen to illustrate a twin: its index in the split, the part to swap,
    its class and whether every model asked classifies the original correctly."""

    index: int
    part: str
    label: int
    correct: bool


def choose_twin_examples(models: Sequence[TdsaNet], cfg: Config, parts: Sequence[str], *,
                         split: str = "test", batch_size: int = 64) -> list[TwinExample]:
    """One example image per part of ``parts``, for figures that illustrate what a network
    does: the first image of ``split`` (through the run's test transform, from ``cfg``) that
    **every** model of ``models`` classifies correctly, each part taking an image of a class
    not used before where it can; where no image is classified correctly by all of them, the
    first image of an unused class, with ``correct=False`` so that the figure can say so.

    Book: chapter 6, *Counterfactual twins: one part's attribute changed*.
    """
    from torch.utils.data import DataLoader

    from tdsa.data import from_config

    dataset = from_config(cfg.data, split)
    right = torch.ones(len(dataset), dtype=torch.bool)
    labels = torch.as_tensor(list(getattr(dataset, "targets", [])) or
                             [int(dataset[i][1]) for i in range(len(dataset))])
    for model in models:
        model.eval()
        predictions = []
        with torch.no_grad():
            for x, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
                predictions.append(model(x).argmax(dim=1))
        right &= torch.cat(predictions) == labels
    chosen: list[TwinExample] = []
    for part in parts:
        used = {c.label for c in chosen}
        taken = {c.index for c in chosen}
        order = sorted(range(len(dataset)), key=lambda i: (int(labels[i]) in used, i))
        order = [i for i in order if i not in taken] or list(range(len(dataset)))
        good = [i for i in order if right[i]]
        index = good[0] if good else order[0]
        chosen.append(TwinExample(index, part, int(labels[index]), bool(right[index])))
    return chosen
