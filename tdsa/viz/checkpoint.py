"""The figures of a trained checkpoint on images of a split: channel maps, top-down gates,
attention and Grad-CAM overlays and annotated parts (behind ``tdsa visualize``).

For each image ``stem = img<index>``: ``<stem>_channels.png`` (the true class's channel maps at
both stages), ``<stem>_gates.png`` (its top-down gates and gated mid maps),
``<stem>_attention.png`` (image / class attention / overlay; the attention is the maximum over
the class's high-level channels), ``<stem>_gradcam.png`` (the same triplet for Grad-CAM at the
high-level tap), ``<stem>_parts.png`` (annotated parts, for datasets with parts in the scratch
regime); and ``index.json`` (image, label, prediction and files of each image).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdsa.errors import ConfigError
from tdsa.validation import check_positive_int

__all__ = ["draw_checkpoint_figures"]


def _spread(n: int, total: int) -> list[int]:
    """``n`` indices spread evenly over ``range(total)`` (all of them when ``n >= total``)."""
    if n >= total:
        return list(range(total))
    return sorted({round(float(i)) for i in np.linspace(0, total - 1, n)})


def _normalised_parts(dataset: Any, index: int) -> torch.Tensor:
    from tdsa.metrics import normalise_parts

    width, height = dataset.image_size(index)
    return normalise_parts(torch.as_tensor(dataset.parts(index)), width, height)


def draw_checkpoint_figures(
    checkpoint: str | Path,
    out: str | Path,
    *,
    num_images: int = 8,
    split: str = "test",
    root: str | Path | None = None,
    gradcam_backend: str = "auto",
) -> list[dict[str, Any]]:
    """Draw the figures of the module docstring for ``num_images`` images spread evenly over
    ``split`` of the checkpoint's dataset (at ``root``, default the run's) into ``out``, on the
    CPU at the run's precision; return the records written to ``out/index.json``.

    ``gradcam_backend`` is that of :func:`tdsa.attribution.gradcam_maps`.
    """
    from tdsa.attribution import gradcam_maps
    from tdsa.data import from_config, resolve_data_config
    from tdsa.engine.checkpoint import load_model
    from tdsa.engine.precision import autocast, resolve_precision
    from tdsa.metrics import DEFAULT_RADIUS, class_channels
    from tdsa.viz.maps import unnormalize
    from tdsa.viz.overlay import save_triplet
    from tdsa.viz.plots import draw_parts, plot_class_channels, plot_gate_maps

    check_positive_int("num_images", num_images)
    model, cfg = load_model(checkpoint, map_location="cpu")
    precision = resolve_precision("cpu", cfg.train.amp, cfg.train.channels_last)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    data = cfg.data
    root = root if root is not None else data.root
    dataset = from_config(dataclasses.replace(data, root=str(root)), split)
    if len(dataset) == 0:
        raise ConfigError(f"dataset {data.dataset!r} at {root} has no {split!r} images")
    spec = resolve_data_config(data)
    mean, std = spec.mean, spec.std
    # Resizing without cropping keeps normalised part coordinates; centre crops do not.
    show_parts = hasattr(dataset, "parts") and data.regime == "scratch"
    names = list(getattr(dataset, "part_names", [])) or None
    xi_mid, xi_high = (int(v) for v in model.xi)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    index: list[dict[str, Any]] = []
    for i in _spread(num_images, len(dataset)):
        image, label = dataset[i]
        x = image.unsqueeze(0)
        if precision.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), autocast(torch.device("cpu"), precision.amp):
            feats = model.forward_features(x)
            pred = int(model.forward_head(feats["high"]).argmax(dim=1))
        feats = {k: v.float() for k, v in feats.items()}
        target = torch.tensor([label])
        high = class_channels(feats["high"], target, xi_high)[0]
        mid = class_channels(feats["mid"], target, xi_mid)[0]
        shown = unnormalize(image, mean, std)
        stem = f"img{i:05d}"
        caption = f"image {i}: class {label}, predicted {pred}"
        files = {
            "channels": plot_class_channels(
                shown, mid, high, title=caption, path=out / f"{stem}_channels.png"
            ),
            "gates": plot_gate_maps(
                shown, high, mid, title=caption, path=out / f"{stem}_gates.png"
            ),
            "attention": save_triplet(
                out / f"{stem}_attention.png",
                shown,
                high.amax(dim=0),
                title=f"{caption} (class channels, high level)",
            ),
            "gradcam": save_triplet(
                out / f"{stem}_gradcam.png",
                shown,
                gradcam_maps(model, x, target, backend=gradcam_backend)[0],
                title=f"{caption} (Grad-CAM, high level)",
            ),
        }
        paths = {k: f"{stem}_{k}.png" for k in files}
        if show_parts:
            draw_parts(
                shown,
                _normalised_parts(dataset, i),
                names,
                radius=DEFAULT_RADIUS,
                path=out / f"{stem}_parts.png",
            )
            paths["parts"] = f"{stem}_parts.png"
        index.append({"index": i, "label": int(label), "pred": pred, "files": paths})
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return index
