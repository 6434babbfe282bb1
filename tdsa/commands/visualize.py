"""``python -m tdsa visualize``: save channel maps, top-down gates and overlays of a checkpoint.

For ``--num-images`` test images spread evenly over the split, writes to ``--out``:
``<stem>_channels.png`` (the true class's channel maps at both stages), ``<stem>_gates.png``
(its top-down gates and gated mid maps), ``<stem>_attention.png`` (image / class attention /
overlay; the attention is the maximum over the class's high-level channels),
``<stem>_gradcam.png`` (the same triplet for Grad-CAM at the high-level tap),
``<stem>_parts.png`` (annotated parts, for datasets with parts in the scratch regime) and
``index.json`` (image, label, prediction and files of each image): see
:func:`tdsa.viz.checkpoint.draw_checkpoint_figures`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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


def run(args: argparse.Namespace) -> int:
    """Draw the figures; returns 0."""
    import matplotlib

    matplotlib.use("Agg")

    from tdsa.viz.checkpoint import draw_checkpoint_figures

    if args.num_images < 1:
        raise ConfigError(f"--num-images must be a positive integer, got {args.num_images}")
    index = draw_checkpoint_figures(args.checkpoint, args.out, num_images=args.num_images,
                                    split=args.split, root=args.root,
                                    gradcam_backend=args.gradcam_backend)
    count = sum(len(rec["files"]) for rec in index)
    print(f"visualize: wrote {count} PNG files for {len(index)} images to {Path(args.out)}")
    return 0
