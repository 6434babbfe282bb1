"""Transforms: the fast path against the plain torchvision + PIL pipeline (the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from tdsa.data import build_dataset, build_transforms
from tdsa.data.transforms import FastTransform


def _reference(regime: str, size: int, *, train: bool, resize: int | None = None) -> T.Compose:
    """The recipes written out by hand with torchvision's PIL transforms."""
    if regime == "scratch":
        steps = [T.Resize((size, size))]
        steps += [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()] if train else []
        mean = std = [0.5, 0.5, 0.5]
    else:
        steps = [T.Resize(resize)]
        steps += [T.RandomCrop(size), T.RandomHorizontalFlip()] if train else [T.CenterCrop(size)]
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


def test_pil_decoder_is_exactly_the_published_recipes():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), np.uint8))
    for regime, size, resize in (("scratch", 16, None), ("pretrained", 16, 20)):
        for train in (True, False):
            ours = build_transforms(regime, size, train=train, resize=resize, decoder="pil")
            torch.manual_seed(3)
            got = ours(image)
            torch.manual_seed(3)
            torch.testing.assert_close(got, _reference(regime, size, train=train,
                                                       resize=resize)(image))


@pytest.mark.parametrize("regime,size,resize", [("scratch", 24, None), ("pretrained", 24, 28)])
def test_fast_random_crop_flip_match_torchvision_exactly_without_resampling(regime, size,
                                                                              resize):
    # A source already at the resize target makes the resize an identity, so the crop
    # offsets, zero padding, flip and normalisation must match torchvision bit for bit.
    shape = (size, size) if regime == "scratch" else (resize, resize + 9)
    x = torch.randint(0, 256, (3, *shape), dtype=torch.uint8)
    image = Image.fromarray(x.permute(1, 2, 0).numpy())
    fast = build_transforms(regime, size, train=True, resize=resize)
    reference = _reference(regime, size, train=True, resize=resize)
    for seed in range(12):
        torch.manual_seed(seed)
        got = fast(x)
        torch.manual_seed(seed)
        want = reference(image)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert got.shape == (3, size, size)


def test_fast_normalisation_constants():
    solid = Image.new("RGB", (10, 10), (255, 0, 51))
    scratch = build_transforms("scratch", 8, train=False)(solid)
    torch.testing.assert_close(scratch[:, 0, 0], torch.tensor([1.0, -1.0, 51 / 255 * 2 - 1]))
    pretrained = build_transforms("pretrained", 8, train=False)(solid)
    want = (torch.tensor([1.0, 0.0, 0.2]) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor(
        [0.229, 0.224, 0.225])
    torch.testing.assert_close(pretrained[:, 4, 4], want)


@pytest.mark.parametrize("source", [(40, 30), (130, 100)])
@pytest.mark.parametrize("regime,size,resize", [("scratch", 24, None), ("pretrained", 24, 28),
                                                ("pretrained", 24, None)])
@pytest.mark.parametrize("train", [True, False])
def test_fast_dataset_pipeline_close_to_plain(tmp_path, make_image, source, regime, size,
                                              resize, train):
    # (130, 100) -> 24/28 lets libjpeg decode at reduced scale; (40, 30) decodes in full.
    make_image(tmp_path / "train" / "a" / "x.jpg", source, seed=5)
    fast = build_dataset("imagefolder", tmp_path, "train",
                         transform=build_transforms(regime, size, train=train, resize=resize))
    plain = build_dataset("imagefolder", tmp_path, "train", transform=build_transforms(
        regime, size, train=train, resize=resize, decoder="pil"))
    for seed in range(4):
        torch.manual_seed(seed)
        got, _ = fast[0]
        torch.manual_seed(seed)
        want, _ = plain[0]
        assert got.shape == want.shape == (3, size, size) and got.dtype == torch.float32
        # Full decodes agree to ~1e-4; reduced-scale decodes (a different low-pass filter on
        # this high-frequency image) to ~0.05; a one-pixel shift gives ~0.2, a flip ~0.26.
        assert (got - want).abs().mean() < (0.005 if source == (40, 30) else 0.08)


def test_defaults_and_bad_arguments():
    fast = build_transforms("pretrained", train=True)
    assert isinstance(fast, FastTransform)
    assert (fast.size, fast.resize, fast.crop) == (448, 512, "random")
    assert build_transforms("pretrained", 448, train=False, resize=600).resize == 600
    scratch = build_transforms("scratch", train=False)
    assert (scratch.size, scratch.resize, scratch.crop, scratch.flip) == (224, (224, 224),
                                                                         None, False)
    with pytest.raises(ValueError, match="regime='imagenet' is invalid: expected one of "
                                         "scratch, pretrained"):
        build_transforms("imagenet", 224, train=True)
    with pytest.raises(ValueError, match="valid decoders: fast, pil"):
        build_transforms("scratch", 224, train=True, decoder="cv2")
    with pytest.raises(ValueError, match=r"resize \(400\) must be >= image_size \(448\)"):
        build_transforms("pretrained", 448, train=True, resize=400)
    with pytest.raises(ValueError, match="resize applies to the 'pretrained' regime only"):
        build_transforms("scratch", 224, train=True, resize=256)
