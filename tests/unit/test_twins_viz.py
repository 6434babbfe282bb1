"""The twin figure's numbers against a direct computation on a tiny network."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from tdsa.attribution import grad_cam
from tdsa.config import Config, apply_overrides
from tdsa.data.spec import resolve_data_config
from tdsa.data.synthetic import (
    encode_as_saved,
    generate,
    load_metadata,
    render_image,
    render_twin,
)
from tdsa.data.transforms import spec_transforms
from tdsa.errors import ConfigError
from tdsa.metrics import DEFAULT_RADIUS
from tdsa.models import create_model
from tdsa.viz.twins import plot_twin, twin_pair


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("twins") / "birds"
    generate(root, num_classes=4, train_per_class=2, test_per_class=3, image_size=48)
    cfg = apply_overrides(Config(), ["data.dataset=synthetic", f"data.root={root}",
                                     "data.image_size=48"])
    torch.manual_seed(0)
    model = create_model("tdsa_vgg16", 4, xi=(6, 2), width=0.25, head="gap")
    return root, cfg, model


def test_maps_are_the_true_class_ccmp_of_the_original_and_the_twin(setup) -> None:
    root, cfg, model = setup
    index = 7  # class 2 (3 test images per class)
    pair = twin_pair(model, cfg, index, "eye")
    meta = load_metadata(root)
    own = meta["classes"][2]["attributes"]["eye_ring"]
    assert pair.label == 2 and pair.own == own and pair.value != own
    # the reference: render both, encode as saved, transform, take the class's channels' max
    transform = spec_transforms(resolve_data_config(cfg.data), train=False)
    birds = [render_image(root, "test", index),
             render_twin(root, "test", index, part="eye", value=pair.value)]
    x = torch.stack([transform(encode_as_saved(b.image, 92)) for b in birds])
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        preds = model.forward_head(feats["high"]).argmax(1).tolist()
    for stage, xi in (("mid", 6), ("high", 2)):
        group = feats[stage][:, 2 * xi:3 * xi]
        expected = group.amax(dim=1)
        assert torch.allclose(pair.maps[stage][0], expected[0])
        assert torch.allclose(pair.maps[stage][1], expected[1])
        assert torch.allclose(pair.difference(stage), (expected[0] - expected[1]).abs())
    assert pair.predictions == (preds[0], preds[1])
    assert (pair.original != pair.twin).any(), "the twin differs from the original"
    x_part, y_part = birds[0].parts["eye"]
    assert pair.part_xy == (x_part / 48, y_part / 48)


def test_gradcam_maps_are_the_true_class_grad_cam_of_both_images(setup) -> None:
    root, cfg, model = setup
    pair = twin_pair(model, cfg, 5, "tail", gradcam=True)  # class 1
    plain = twin_pair(model, cfg, 5, "tail")
    assert set(plain.maps) == {"high", "mid"} and set(pair.maps) == {"high", "mid", "gradcam"}
    transform = spec_transforms(resolve_data_config(cfg.data), train=False)
    birds = [render_image(root, "test", 5),
             render_twin(root, "test", 5, part="tail", value=pair.value)]
    x = torch.stack([transform(encode_as_saved(b.image, 92)) for b in birds])
    expected = grad_cam(model, x, torch.tensor([1, 1]), "high")
    assert pair.label == 1
    assert torch.allclose(pair.maps["gradcam"][0], expected[0])
    assert torch.allclose(pair.maps["gradcam"][1], expected[1])
    assert torch.allclose(pair.difference("gradcam"), (expected[0] - expected[1]).abs())
    with pytest.raises(KeyError, match="no 'gradcam' maps"):
        plain.difference("gradcam")
    fig = plot_twin(pair, title="a twin")
    assert len([ax for ax in fig.axes if ax.images]) == 5
    assert len([ax for ax in fig.axes if not ax.images]) == 3, "one colour bar per map"
    assert "Grad-CAM" in [ax for ax in fig.axes if ax.images][4].get_title()
    assert fig._suptitle.get_text() == "a twin"


def test_bad_twin_values_name_the_choices(setup) -> None:
    _, cfg, model = setup
    pair = twin_pair(model, cfg, 0, "wing")
    with pytest.raises(ConfigError, match=f"its own value is '{pair.own}'"):
        twin_pair(model, cfg, 0, "wing", value=pair.own)
    with pytest.raises(ConfigError, match="twins need the synthetic data"):
        twin_pair(model, apply_overrides(cfg, ["data.dataset=cub"]), 0, "wing")


def test_figure_has_both_pictures_two_maps_with_colour_bars_and_the_part_circled(setup
                                                                                 ) -> None:
    _, cfg, model = setup
    pair = twin_pair(model, cfg, 4, "beak")
    fig = plot_twin(pair)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 4
    colour_bars = [ax for ax in fig.axes if not ax.images]
    assert len(colour_bars) == 2, "one colour bar per difference map"
    for ax, stage in zip(image_axes[2:], ("high", "mid"), strict=True):
        (circle,) = ax.patches
        h, w = pair.difference(stage).shape
        assert circle.center == pytest.approx((pair.part_xy[0] * w, pair.part_xy[1] * h))
        assert circle.radius == pytest.approx(DEFAULT_RADIUS * max(h, w)), "the hit radius"
    wide = plot_twin(pair, radius=0.3)
    assert [ax for ax in wide.axes if ax.images][2].patches[0].radius == pytest.approx(
        0.3 * max(pair.difference("high").shape))
    assert "predicted" in image_axes[0].get_title()


def test_twin_figure_is_two_rows_that_fit_a_page(setup) -> None:
    _, cfg, model = setup
    fig = plot_twin(twin_pair(model, cfg, 4, "beak", gradcam=True))
    pictures = [ax for ax in fig.axes if ax.images][:2]
    maps = [ax for ax in fig.axes if ax.images][2:]
    assert all(p.get_position().y0 > m.get_position().y1 for p in pictures for m in maps), (
        "the pictures sit on a row above the maps")
    width_px = fig.get_figwidth() * 90  # the book's figure.dpi
    assert width_px <= 900, "shown at its natural size in the book's content column"
    sizes = [t.get_fontsize() for ax in fig.axes for t in (ax.title, *ax.get_yticklabels())
             if t.get_text()]
    assert min(sizes) >= 8


class _Fixed(torch.nn.Module):
    """A classifier that predicts ``answers[i]`` for the i-th image it sees."""

    def __init__(self, answers: list[int], classes: int) -> None:
        super().__init__()
        self.answers, self.classes, self.seen = answers, classes, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), self.classes)
        for row in range(len(x)):
            out[row, self.answers[self.seen + row]] = 1.0
        self.seen += len(x)
        return out


def test_twin_examples_are_images_every_model_classifies_correctly(setup) -> None:
    from tdsa.data import from_config
    from tdsa.viz.twins import choose_twin_examples

    _, cfg, _ = setup
    labels = list(from_config(cfg.data, "test").targets)  # 4 classes x 3 images
    assert labels == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    # model a is wrong on images 0 and 3, model b on image 1: image 2 (class 0) is the first
    # right for both, then image 4 (class 1, a class not used yet)
    a = [9 if i in (0, 3) else y for i, y in enumerate(labels)]
    b = [9 if i == 1 else y for i, y in enumerate(labels)]
    a = [v % 4 if v != 9 else (y + 1) % 4 for v, y in zip(a, labels, strict=True)]
    b = [v % 4 if v != 9 else (y + 1) % 4 for v, y in zip(b, labels, strict=True)]
    chosen = choose_twin_examples([_Fixed(a, 4), _Fixed(b, 4)], cfg, ("eye", "beak"),
                                  batch_size=5)
    assert [(c.index, c.part, c.label, c.correct) for c in chosen] == [
        (2, "eye", 0, True), (4, "beak", 1, True)]
    # nothing right: the first image of an unused class, marked
    wrong = [(y + 1) % 4 for y in labels]
    chosen = choose_twin_examples([_Fixed(wrong, 4)], cfg, ("eye", "beak"))
    assert [(c.index, c.correct) for c in chosen] == [(0, False), (3, False)]
