"""The figures of a checkpoint (tdsa.viz.checkpoint): the files of each image
and the index that lists them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdsa.data.synthetic import generate
from tdsa.errors import ConfigError
from tdsa.viz.checkpoint import draw_checkpoint_figures


def test_an_image_gets_its_figures_and_an_index_entry(tmp_path: Path, train_tiny_tdsa) -> None:
    import matplotlib

    matplotlib.use("Agg")
    root = tmp_path / "synth"
    generate(root, num_classes=2, train_per_class=4, test_per_class=2, image_size=48, seed=0)
    run = train_tiny_tdsa(root, tmp_path / "run")
    out = tmp_path / "figures"
    index = draw_checkpoint_figures(run / "last.pt", out, num_images=1, root=root,
                                    gradcam_backend="torch")
    assert json.loads((out / "index.json").read_text()) == index
    (rec,) = index
    assert (rec["index"], rec["label"]) == (0, 0) and 0 <= rec["pred"] < 2
    assert rec["files"] == {kind: f"img00000_{kind}.png" for kind in
                            ("channels", "gates", "attention", "gradcam", "parts")}
    assert all((out / name).read_bytes().startswith(b"\x89PNG") for name in rec["files"].values())
    with pytest.raises(ConfigError, match=r"^num_images must be a positive integer, got 0$"):
        draw_checkpoint_figures(run / "last.pt", out, num_images=0)
