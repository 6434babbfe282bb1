"""The decode cache of the fast transform: items read through it are bit-identical to items
decoded every time, under the same seed, for the training and the test transforms; the cache
holds each file once, is never modified by the augmentation, and is on only for small splits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tdsa.config import DataConfig
from tdsa.data import build_dataset, build_transforms, cache_if_small, from_config
from tdsa.data.synthetic import generate

SYNTH = {"num_classes": 3, "train_per_class": 6, "val_per_class": 2, "test_per_class": 2,
         "image_size": 48, "seed": 0}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache") / "synthetic"
    generate(root, **SYNTH)
    return root


def _items(dataset, seeds: range) -> list[torch.Tensor]:
    out = []
    for seed in seeds:
        for index in range(len(dataset)):
            torch.manual_seed(seed * 1000 + index)
            out.append(dataset[index][0])
    return out


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("crop_to_bbox", [False, True])
def test_cached_items_equal_decoding_every_time_exactly(synth_root, train, crop_to_bbox):
    """Two passes (the second reads the cache) against the uncached transform, seed by seed."""
    plain = build_dataset("synthetic", synth_root, "train", crop_to_bbox=crop_to_bbox,
                          transform=build_transforms("scratch", 40, train=train))
    cached_tf = build_transforms("scratch", 40, train=train)
    cached_tf.enable_cache()
    cached = build_dataset("synthetic", synth_root, "train", crop_to_bbox=crop_to_bbox,
                           transform=cached_tf)
    want = _items(plain, range(2))
    got = _items(cached, range(2))  # pass 1 fills the cache, pass 2 reads it
    assert len(cached_tf.cache) == len(cached)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    # the draws after an item are the same too (the cache draws no random numbers)
    torch.manual_seed(7)
    cached[0]
    after_cached = torch.rand(3)
    torch.manual_seed(7)
    plain[0]
    assert torch.equal(after_cached, torch.rand(3))


def test_augmentation_never_modifies_the_cached_pixels(synth_root):
    transform = build_transforms("scratch", 48, train=True)  # no resize: the decode is kept
    transform.enable_cache()
    dataset = build_dataset("synthetic", synth_root, "train", transform=transform)
    dataset.fill_cache()
    before = {k: v.clone() for k, v in transform.cache.items()}
    for seed in range(4):
        torch.manual_seed(seed)
        for index in range(len(dataset)):
            dataset[index]
    assert all(torch.equal(before[k], transform.cache[k]) for k in before)


def test_fill_cache_decodes_each_file_once(synth_root):
    transform = build_transforms("scratch", 40, train=False)
    dataset = build_dataset("synthetic", synth_root, "test", transform=transform)
    assert dataset.fill_cache() == 0  # no cache: nothing to fill
    transform.enable_cache()
    dataset[0]
    assert dataset.fill_cache() == len(dataset) - 1
    assert dataset.fill_cache() == 0
    assert len(transform.cache) == len(dataset)


def test_from_config_caches_small_exact_size_splits_only(synth_root, tmp_path):
    data = DataConfig(dataset="synthetic", root=str(synth_root), regime="scratch",
                      image_size=40)
    for split in ("train", "val", "test"):
        assert from_config(data, split, train=split == "train").transform.cache == {}
    tiny = build_dataset("synthetic", synth_root, "train",
                         transform=build_transforms("scratch", 40, train=True))
    assert not cache_if_small(tiny, limit=len(tiny) * 3 * 40 * 40 - 1)
    assert tiny.transform.cache is None
    assert cache_if_small(tiny, limit=len(tiny) * 3 * 40 * 40)
    # a short-side resize (pretrained regime) has no size known in advance: never cached
    short = build_dataset("synthetic", synth_root, "train",
                          transform=build_transforms("pretrained", 32, train=True, resize=40))
    assert not cache_if_small(short) and short.transform.cache is None
    # the plain PIL pipeline has no cache
    pil = build_dataset("synthetic", synth_root, "train",
                        transform=build_transforms("scratch", 40, train=True, decoder="pil"))
    assert not cache_if_small(pil)
