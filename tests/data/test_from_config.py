"""``tdsa.data.from_config`` (a run's dataset from its data config, options included) and
``resolve_data_config`` (the one source of the normalisation constants)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from tdsa.config import DataConfig
from tdsa.data import build_dataset, build_transforms, from_config, resolve_data_config
from tdsa.errors import ConfigError
from tdsa.models import create_model

# Written out by hand, not imported: the reference code's 0.5 and ImageNet's statistics.
SCRATCH = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_normalisation_comes_from_one_table():
    for regime, (mean, std) in (("scratch", SCRATCH), ("pretrained", IMAGENET)):
        spec = resolve_data_config(DataConfig(regime=regime, image_size=32))
        assert (spec.mean, spec.std) == (mean, std)
        assert spec.to_dict()["mean"] == list(mean) and spec.to_dict()["std"] == list(std)
        fast = build_transforms(regime, 32, train=False)
        assert (fast.mean, fast.std) == (mean, std)
    vgg = create_model("tdsa_vgg16", 3, xi=(2, 1), width=0.25, input_size=32)
    resnet = create_model("tdsa_resnet18", 3, xi=(2, 1), input_size=32)
    assert (vgg.default_cfg["mean"], vgg.default_cfg["std"]) == SCRATCH
    assert (resnet.default_cfg["mean"], resnet.default_cfg["std"]) == IMAGENET


def test_resolve_fills_the_size_from_the_model_then_the_regime():
    spec = resolve_data_config({"regime": "pretrained"}, {"input_size": (3, 320, 320)})
    assert (spec.image_size, spec.resize) == (320, round(320 * 8 / 7))
    assert resolve_data_config({"regime": "pretrained"}).image_size == 448
    assert resolve_data_config({"image_size": 64}).resize == (64, 64)  # scratch by default
    assert resolve_data_config({"image_size": 64}, {"input_size": (3, 320, 320)}).image_size == 64
    with pytest.raises(ValueError, match="resize applies to the 'pretrained' regime only"):
        resolve_data_config({"regime": "scratch", "image_size": 64, "resize": 80})
    with pytest.raises(ValueError, match=r"resize \(40\) must be >= image_size \(64\)"):
        resolve_data_config({"regime": "pretrained", "image_size": 64, "resize": 40})


def test_from_config_normalises_a_solid_image_with_the_regimes_constants(tmp_path: Path):
    for cls in ("a", "b"):
        for split in ("train", "test"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (20, 20), (255, 0, 51)).save(tmp_path / split / cls / "0.png")
    pixel = torch.tensor([1.0, 0.0, 51 / 255])
    for regime, (mean, std) in (("scratch", SCRATCH), ("pretrained", IMAGENET)):
        data = DataConfig(dataset="imagefolder", root=str(tmp_path), regime=regime,
                          image_size=8)
        image, _ = from_config(data, "test")[0]
        want = (pixel - torch.tensor(mean)) / torch.tensor(std)
        torch.testing.assert_close(image[:, 4, 4], want)


def test_from_config_applies_the_options_and_the_train_transform(cub_root):
    root, expected = cub_root
    data = DataConfig(dataset="cub", root=str(root), image_size=8,
                      options={"crop_to_bbox": True})
    cropped = from_config(data, "test")
    x, y, bw, bh = expected["test"][0]["box"]
    assert cropped.image_size(0) != (24, 18)
    assert cropped.bbox(0) == (x - int(x), y - int(y), bw, bh)
    reference = build_dataset("cub", root, "test", build_transforms("scratch", 8, train=False),
                              crop_to_bbox=True)
    torch.testing.assert_close(cropped[0][0], reference[0][0], rtol=0, atol=0)
    full = from_config(DataConfig(dataset="cub", root=str(root), image_size=8), "test")
    assert not torch.equal(full[0][0], cropped[0][0])
    carved = DataConfig(dataset="cub", root=str(root), options={"val_fraction": 0.5})
    assert len(from_config(carved, "val")) == 3  # half of 2 per class, at least one each
    train = from_config(data, "train", train=True).transform
    test = cropped.transform
    assert (train.crop, train.padding, train.flip) == ("random", 4, True)
    assert (test.crop, test.padding, test.flip) == (None, 0, False)


def test_from_config_errors_name_the_key_or_the_dataset(cub_root):
    root, _ = cub_root
    with pytest.raises(ConfigError, match=r"data\.dataset='cubb' is unknown; valid datasets"):
        from_config(DataConfig(dataset="cubb", root=str(root)), "train")
    with pytest.raises(ConfigError, match=r"data \(dataset='cub', .*split='train'\): .*resize"):
        from_config(DataConfig(dataset="cub", root=str(root), resize=300), "train")
    with pytest.raises(ConfigError, match=r"data \(dataset='cub', .*split='train'\): .*bogus"):
        from_config(DataConfig(dataset="cub", root=str(root), options={"bogus": 1}), "train")
