"""Visualisation: image helpers, overlays, plots written as valid PNGs, the visualize command."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from tdsa.losses import top_down_attention
from tdsa.runfiles import read_metrics
from tdsa.viz import (
    CurvePanel,
    channels_as_rgb,
    class_gate_maps,
    draw_overlay,
    draw_parts,
    overlay,
    plot_class_channels,
    plot_confusion_matrix,
    plot_diversity_steps,
    plot_gate_maps,
    plot_training_curves,
    save_triplet,
    to_image,
    unnormalize,
)

matplotlib.use("Agg")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, min_side=50):
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert min(im.size) >= min_side


def test_unnormalize_inverts_normalize():
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(3, 5, 7, generator=g)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    normed = (raw - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    out = unnormalize(normed, mean, std)
    assert out.shape == (5, 7, 3)
    assert np.allclose(out, raw.permute(1, 2, 0).numpy(), atol=1e-6)
    assert unnormalize(torch.full((3, 2, 2), 5.0)).max() == 1.0  # clipped for display


def test_to_image_accepts_uint8_chw_and_grey():
    u8 = np.full((4, 6, 3), 255, dtype=np.uint8)
    assert np.allclose(to_image(u8), 1.0)
    chw = torch.zeros(3, 4, 6)
    chw[1] = 0.5
    assert to_image(chw)[0, 0].tolist() == [0.0, 0.5, 0.0]
    assert to_image(np.zeros((4, 6))).shape == (4, 6, 3)
    with pytest.raises(ValueError, match=r"image must be \[H, W, 3\]"):
        to_image(np.zeros((4, 6, 5)))


def test_overlay_blends_image_and_colormap():
    img = np.zeros((8, 12, 3), dtype=np.float32)
    img[..., 2] = 1.0  # blue image
    heat = torch.zeros(2, 3)
    heat[0, 0] = 1.0
    out = overlay(img, heat, alpha=0.4, cmap="gray")
    assert out.dtype == np.uint8 and out.shape == (8, 12, 3)
    # With the grey colormap the colour is the min-max-normalised, bilinearly resized heat.
    up = torch.nn.functional.interpolate(
        heat[None, None], size=(8, 12), mode="bilinear", align_corners=False
    )[0, 0].numpy()
    expected = 0.6 * img + 0.4 * np.repeat((up / up.max())[..., None], 3, axis=-1)
    assert np.abs(out.astype(int) - np.rint(expected * 255).astype(int)).max() <= 1
    assert np.array_equal(overlay(img, heat, alpha=0.0), np.rint(img * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"alpha=1\.5 is outside the allowed range in \[0, 1\]"):
        overlay(img, heat, alpha=1.5)


def test_draw_overlay_marks_the_peak_cell_centre_in_pixels():
    from matplotlib.figure import Figure

    heat = torch.zeros(4, 4)
    heat[1, 2] = 1.0  # row 1, column 2: cell centre (2.5 / 4, 1.5 / 4) of the side
    ax = Figure().subplots()
    draw_overlay(ax, np.zeros((8, 16, 3)), heat, peak=True, colorbar=False)
    (cross,) = ax.lines
    assert cross.get_xydata().tolist() == [[2.5 / 4 * 16, 1.5 / 4 * 8]]
    assert cross.get_marker() == "x" and cross.get_color() == "w"
    ax = Figure().subplots()
    draw_overlay(ax, np.zeros((8, 16, 3)), heat, colorbar=False)
    assert not ax.lines, "no cross unless asked"


def test_save_triplet_writes_png(tmp_path):
    img = torch.rand(3, 16, 16)
    path = save_triplet(tmp_path / "sub" / "t.png", img, torch.rand(4, 4), title="x")
    _assert_png(path)


def test_class_gate_maps_use_the_published_gate():
    g = torch.Generator().manual_seed(1)
    high = torch.relu(torch.randn(3, 2, 2, generator=g))
    mid = torch.relu(torch.randn(9, 4, 4, generator=g))
    gate, gated = class_gate_maps(high, mid)
    assert torch.equal(gate, top_down_attention(high[None], mid[None])[0])
    # Mid channel 7 is gated by high channel 7 // 3 = 2; cell (3, 1) by high cell (1, 0).
    assert gate[7, 3, 1] == pytest.approx(torch.sigmoid(high[2, 1, 0]).item())
    assert torch.allclose(gated, mid * gate)


def test_channel_and_gate_figures_write_pngs(tmp_path):
    img = unnormalize(torch.randn(3, 32, 32))
    mid, high = torch.rand(9, 8, 8), torch.rand(3, 4, 4)
    fig = plot_class_channels(img, mid, high, title="class 0", path=tmp_path / "ch.png")
    assert len([ax for ax in fig.axes if ax.images]) == 1 + 3 + 9
    assert fig.get_figwidth() * 90 <= 900, "five maps to a row: shown at its natural size"
    mids = [ax for ax in fig.axes if ax.images and ax.get_title().startswith("mid")]
    assert len({round(ax.get_position().y0, 3) for ax in mids}) == 2, "nine mid maps, two rows"
    _assert_png(tmp_path / "ch.png")
    fig = plot_gate_maps(img, high, mid, path=tmp_path / "gate.png")
    assert len([ax for ax in fig.axes if ax.images]) == 1 + 3 * (1 + 2 * 3)
    _assert_png(tmp_path / "gate.png")
    with pytest.raises(ValueError, match="mid_maps must be one class's maps"):
        plot_class_channels(img, torch.rand(2, 9, 8, 8), high)


def test_draw_parts_skips_invisible(tmp_path):
    parts = torch.tensor([[0.25, 0.5, 1.0], [0.75, 0.5, 0.0], [0.5, 0.1, 1.0]])
    ax = draw_parts(
        torch.rand(3, 20, 30),
        parts,
        ["beak", "eye", "wing"],
        radius=0.12,
        path=tmp_path / "parts.png",
    )
    xs = sorted(float(line.get_xdata()[0]) for line in ax.lines)
    assert xs == pytest.approx([0.25 * 30, 0.5 * 30])
    assert [t.get_text() for t in ax.texts] == ["beak", "wing"]
    assert len(ax.patches) == 2
    _assert_png(tmp_path / "parts.png")


def _write_run(tmp_path, epochs=4):
    lines = []
    for e in range(epochs):
        rec = {
            "epoch": e,
            "train_total": 3.0 - e * 0.5,
            "train_ce": 2.0 - e * 0.3,
            "train_dis_mid": 1.0,
            "train_div_mid": 0.5,
            "train_dis_high": 1.0,
            "train_div_high": 0.4,
            "test_top1": [10, 30, 25, 20][e],
            "test_top5": 50.0 + e,
            "lr": 0.1 if e < 2 else 0.01,
        }
        lines.append(json.dumps(rec))
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_training_curves_from_run_folder(tmp_path):
    run = _write_run(tmp_path)
    assert len(read_metrics(run)) == 4
    fig = plot_training_curves(run, path=tmp_path / "curves.png")
    ax_loss, ax_acc, ax_lr = fig.axes[:3]
    assert sorted(line.get_label() for line in ax_loss.lines) == sorted(
        ["total", "ce", "dis_mid", "div_mid", "dis_high", "div_high"]
    )
    best = next(line for line in ax_acc.lines if line.get_label().startswith("best"))
    assert best.get_label() == "best top-1 30.00 (epoch 1)"
    assert ax_lr.get_yscale() == "log"
    _assert_png(tmp_path / "curves.png")


def test_confusion_matrix_plot(tmp_path):
    conf = torch.tensor([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    fig = plot_confusion_matrix(conf, ["a", "b", "c"], path=tmp_path / "cm.png")
    mesh = fig.axes[0].collections[0].get_array().reshape(3, 3)
    assert np.allclose(mesh, [[0.75, 0.25, 0], [0, 0, 0], [0.25, 0.25, 0.5]])
    _assert_png(tmp_path / "cm.png")
    with pytest.raises(ValueError, match="class_names has 2 entries, expected 3"):
        plot_confusion_matrix(conf, ["a", "b"])


def _tiny_run(tmp_path):
    """A synthetic dataset and an untrained compact TDSA-VGG checkpoint that fits it."""
    from tdsa.config import Config
    from tdsa.data.synthetic import generate
    from tdsa.engine.checkpoint import atomic_save, new_checkpoint
    from tdsa.models import create_model

    root = tmp_path / "synth"
    generate(root, num_classes=2, train_per_class=1, test_per_class=2, image_size=48, seed=0)
    cfg = Config()
    cfg.data.dataset, cfg.data.root, cfg.data.image_size = "synthetic", str(root), 32
    cfg.model.name, cfg.model.num_classes, cfg.model.xi = "tdsa_vgg16", 2, [3, 1]
    cfg.model.options = {"width": 0.125}
    torch.manual_seed(0)
    model = create_model("tdsa_vgg16", 2, xi=(3, 1), width=0.125, input_size=32)
    path = tmp_path / "run" / "best.pt"
    path.parent.mkdir()
    atomic_save(new_checkpoint(model=model.state_dict(), epoch=0, config=cfg.to_dict()), path)
    return path


def test_visualize_command_writes_pngs(tmp_path, capsys):
    from tdsa import cli

    ckpt = _tiny_run(tmp_path)
    out = tmp_path / "viz"
    argv = [
        "visualize",
        "--checkpoint",
        str(ckpt),
        "--out",
        str(out),
        "--num-images",
        "3",
        "--gradcam-backend",
        "torch",
    ]
    assert cli.main(argv) == 0
    assert "wrote 15 PNG files for 3 images" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert [rec["index"] for rec in index] == [0, 2, 3]  # spread over the 4 test images
    assert [rec["label"] for rec in index] == [0, 1, 1]
    for rec in index:
        assert set(rec["files"]) == {"channels", "gates", "attention", "gradcam", "parts"}
        for name in rec["files"].values():
            _assert_png(out / name)


def test_visualize_command_errors_are_one_line(tmp_path, capsys):
    from tdsa import cli

    missing = tmp_path / "nope.pt"
    assert cli.main(["visualize", "--checkpoint", str(missing), "--out", str(tmp_path)]) == 1
    assert (
        capsys.readouterr().err.strip() == f"tdsa visualize: error: checkpoint not found: {missing}"
    )
    argv = ["visualize", "--checkpoint", str(missing), "--out", str(tmp_path), "--num-images", "0"]
    assert cli.main(argv) == 2
    assert "--num-images must be a positive integer, got 0" in capsys.readouterr().err


def _records(values):
    """Per-epoch records (epoch from 1) of ``{key: [value per epoch]}``."""
    n = len(next(iter(values.values())))
    return [{"epoch": e + 1, **{k: v[e] for k, v in values.items()}} for e in range(n)]


def test_training_curve_panels_draw_the_records_of_each_run():
    ce = _records({"train_ce": [2.0, 1.5, float("nan")], "train_top1": [20.0, 40.0, 50.0]})
    tdsa = _records({"train_ce": [2.1, 1.2, 0.9], "train_top1": [25.0, 45.0, 70.0],
                     "aux_scale": [0.5, 1.0, 1.0]})
    fig = plot_training_curves({"ce": ce, "tdsa": tdsa}, num_classes=4, panels=[
        CurvePanel("loss", ("train_ce",), reference="ln K"),
        CurvePanel("accuracy", {"train_top1": "train"}, reference="chance", best="train_top1"),
        CurvePanel("ramp", {"aux_scale": "ramp"}, runs=("tdsa",), step=True),
    ])
    ax_loss, ax_acc, ax_ramp = fig.axes[:3]
    curves = {line.get_label(): line for line in ax_loss.lines}
    assert list(curves["ce: ce"].get_xdata()) == [1.0, 2.0], "the NaN epoch is skipped"
    assert list(curves["ce: ce"].get_ydata()) == [2.0, 1.5]
    assert list(curves["tdsa: ce"].get_ydata()) == [2.1, 1.2, 0.9]
    assert curves["ce: ce"].get_color() != curves["tdsa: ce"].get_color(), "a colour per run"
    assert curves["ln K = 1.39"].get_ydata()[0] == pytest.approx(np.log(4))
    labels = [line.get_label() for line in ax_acc.lines]
    assert "chance 25.0%" in labels
    chance = next(line for line in ax_acc.lines if line.get_label() == "chance 25.0%")
    assert chance.get_ydata()[0] == pytest.approx(25.0)
    assert {"tdsa: best train 70.00 (epoch 3)", "ce: best train 50.00 (epoch 3)"} <= set(labels)
    assert [line.get_label() for line in ax_ramp.lines] == ["ramp"], "one run: no prefix"
    assert ax_ramp.lines[0].get_drawstyle() == "steps-post"
    assert [ax.get_title() for ax in fig.axes[:3]] == ["loss", "accuracy", "ramp"]


def test_curve_panel_labels_and_reference_errors():
    assert CurvePanel("t", ("train_dis_mid", "lr")).labels() == {"train_dis_mid": "dis_mid",
                                                                  "lr": "lr"}
    assert CurvePanel("t", {"test_top1": "test"}).labels() == {"test_top1": "test"}
    records = _records({"train_top1": [10.0, 20.0]})
    with pytest.raises(ValueError, match="needs num_classes"):
        plot_training_curves(records, panels=[CurvePanel("a", ("train_top1",), reference="chance")])
    with pytest.raises(ValueError, match="reference must be one of"):
        plot_training_curves(records, num_classes=3,
                             panels=[CurvePanel("a", ("train_top1",), reference="half")])


def test_channels_as_rgb_is_each_maps_square_root_over_its_maximum():
    maps = torch.tensor([[[4.0, 1.0], [0.0, 16.0]],
                         [[0.0, 0.0], [0.0, 0.0]],
                         [[9.0, 9.0], [9.0, 9.0]]])
    rgb = channels_as_rgb(maps)
    assert rgb.shape == (2, 2, 3)
    assert np.allclose(rgb[..., 0], [[0.5, 0.25], [0.0, 1.0]])
    assert np.allclose(rgb[..., 1], 0.0), "an all-0 map stays black"
    assert np.allclose(rgb[..., 2], 1.0)
    with pytest.raises(ValueError, match=r"three maps \[3, H, W\]"):
        channels_as_rgb(torch.rand(2, 4, 4))


def test_diversity_steps_show_each_class_before_and_after_and_the_loss():
    before, after = torch.rand(1, 6, 5, 5), torch.rand(1, 6, 5, 5)
    losses = [0.6, 0.3, 0.1]
    fig = plot_diversity_steps(before, after, losses, classes=(0, 1), first=0)
    panels = fig.axes[:5]
    assert [ax.get_title() for ax in panels[:4]] == [
        "class 0, before", "class 0, after", "class 1, before", "class 1, after"]
    assert np.allclose(panels[3].images[0].get_array(), channels_as_rgb(after[0, 3:6]))
    assert np.allclose(panels[0].images[0].get_array(), channels_as_rgb(before[0, 0:3]))
    assert list(panels[4].lines[0].get_ydata()) == losses
    assert list(panels[4].lines[0].get_xdata()) == [0.0, 1.0, 2.0]
    assert plot_diversity_steps(before, after, losses, classes=(1,)).axes[0].get_title() == (
        "class 2, before"), "numbered from 1 by default"
    with pytest.raises(ValueError, match=r"the same \[1, K\*3, H, W\]"):
        plot_diversity_steps(before, torch.rand(1, 4, 5, 5), losses)
