"""``python -m tdsa visualize``: save channel maps, top-down gates and overlays of a checkpoint.

For ``--num-images`` test images spread evenly over the split, writes to ``--out``:
``<stem>_channels.png`` (the true class's channel maps at both stages), ``<stem>_gates.png``
(its top-down gates and gated mid maps), ``<stem>_attention.png`` (image / class attention /
overlay; the attention is the maximum over the class's high-level channels),
``<stem>_gradcam.png`` (the same triplet for Grad-CAM at the high-level tap),
``<stem>_parts.png`` (annotated parts, for datasets with parts in the scratch regime) and
``index.json`` (image, label, prediction and files of each image).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdsa.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tdsa visualize``."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint file, e.g. runs/X/best.pt")
    parser.add_argument("--out", required=True, help="folder for the PNG files")
    parser.add_argument("--num-images", type=int, default=8, help="images to draw (default 8)")
    parser.add_argument("--split", default="test", help="dataset split (default test)")
    parser.add_argument("--root", default=None, help="dataset root (default: the run's config)")
    parser.add_argument(
        "--gradcam-backend",
        default="auto",
        choices=("auto", "package", "torch"),
        help="Grad-CAM implementation: pytorch-grad-cam, tdsa's own, or auto (default)",
    )


def _spread(n: int, total: int) -> list[int]:
    """``n`` indices spread evenly over ``range(total)`` (all of them when ``n >= total``)."""
    if n >= total:
        return list(range(total))
    return sorted({round(float(i)) for i in np.linspace(0, total - 1, n)})


def _normalised_parts(dataset: Any, index: int) -> torch.Tensor:
    from tdsa.metrics import normalise_parts

    width, height = dataset.image_size(index)
    return normalise_parts(torch.as_tensor(dataset.parts(index)), width, height)


def run(args: argparse.Namespace) -> int:
    """Draw the figures; returns 0."""
    import matplotlib

    matplotlib.use("Agg")

    from tdsa.attribution import gradcam_maps
    from tdsa.data import from_config, resolve_data_config
    from tdsa.engine.checkpoint import load_model
    from tdsa.engine.precision import autocast, resolve_precision
    from tdsa.metrics import class_channels
    from tdsa.viz.maps import unnormalize
    from tdsa.viz.overlay import save_triplet
    from tdsa.viz.plots import draw_parts, plot_class_channels, plot_gate_maps

    if args.num_images < 1:
        raise ConfigError(f"--num-images must be a positive integer, got {args.num_images}")
    model, cfg = load_model(args.checkpoint, map_location="cpu")
    precision = resolve_precision("cpu", cfg.train.amp, cfg.train.channels_last)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    data = cfg.data
    root = args.root if args.root is not None else data.root
    dataset = from_config(dataclasses.replace(data, root=str(root)), args.split)
    if len(dataset) == 0:
        raise ConfigError(f"dataset {data.dataset!r} at {root} has no {args.split!r} images")
    spec = resolve_data_config(data)
    mean, std = spec.mean, spec.std
    # Resizing without cropping keeps normalised part coordinates; centre crops do not.
    show_parts = hasattr(dataset, "parts") and data.regime == "scratch"
    names = list(getattr(dataset, "part_names", [])) or None
    xi_mid, xi_high = (int(v) for v in model.xi)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    index: list[dict[str, Any]] = []
    for i in _spread(args.num_images, len(dataset)):
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
                gradcam_maps(model, x, target, backend=args.gradcam_backend)[0],
                title=f"{caption} (Grad-CAM, high level)",
            ),
        }
        paths = {k: f"{stem}_{k}.png" for k in files}
        if show_parts:
            draw_parts(
                shown,
                _normalised_parts(dataset, i),
                names,
                radius=0.12,
                path=out / f"{stem}_parts.png",
            )
            paths["parts"] = f"{stem}_parts.png"
        index.append({"index": i, "label": int(label), "pred": pred, "files": paths})
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    count = sum(len(rec["files"]) for rec in index)
    print(f"visualize: wrote {count} PNG files for {len(index)} images to {out}")
    return 0
