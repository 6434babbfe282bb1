"""Dataset loaders on tiny fixture trees in each dataset's real on-disk format."""

from __future__ import annotations

import importlib.util
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tdsa.data import build_dataset, build_transforms, list_datasets
from tdsa.errors import DataError, TdsaError

ALL = ["synthetic", "cub", "nabirds", "aircraft", "cars", "flowers102", "imagefolder"]


def test_list_datasets_names_every_loader():
    assert sorted(list_datasets()) == sorted(ALL)


def test_unknown_dataset_and_split_list_the_valid_ones(cub_root):
    root, _ = cub_root
    with pytest.raises(ValueError, match=r"unknown dataset 'cubb'.*cub.*aircraft.*imagefolder"):
        build_dataset("cubb", root, "train")
    with pytest.raises(ValueError, match="unknown split 'trainval'; valid splits: train, test, "
                       "val, train_minus_val"):
        build_dataset("cub", root, "trainval")
    with pytest.raises(ValueError, match=r"valid splits: .*trainval"):
        build_dataset("aircraft", root, "validation")


# ---------------------------------------------------------------------------- CUB-200-2011


@pytest.mark.parametrize("level", ["parent", "folder"])
def test_cub_counts_labels_paths_parts(cub_root, level):
    root, expected = cub_root
    root = root if level == "parent" else root / "CUB_200_2011"
    for split in ("train", "test"):
        ds = build_dataset("cub", root, split)
        want = expected[split]
        assert len(ds) == len(want)
        assert ds.classes == expected["classes"] and ds.num_classes == 3
        assert ds.part_names == expected["part_names"]
        assert ds.targets == [w["label"] for w in want]
        assert [Path(p) for p, _ in ds.samples] == [w["path"] for w in want]
        for i, w in enumerate(want):
            np.testing.assert_array_equal(ds.parts(i), np.array(w["parts"], dtype=np.float32))
            assert ds.bbox(i) == w["box"]
            assert ds.image_size(i) == (24, 18)
        image, label = ds[0]
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (24, 18)
        assert label == want[0]["label"]
    assert len(build_dataset("cub", root, "train")) == 6


def test_cub_crop_to_bbox_crops_pixels_and_shifts_parts(cub_root):
    root, expected = cub_root
    ds = build_dataset("cub", root, "train", crop_to_bbox=True)
    full = build_dataset("cub", root, "train")
    for i, w in enumerate(expected["train"]):
        x, y, bw, bh = w["box"]
        left, top = int(np.floor(x)), int(np.floor(y))
        right, bottom = min(24, int(np.ceil(x + bw))), min(18, int(np.ceil(y + bh)))
        image, _ = ds[i]
        reference = np.asarray(full[i][0])[top:bottom, left:right]
        np.testing.assert_array_equal(np.asarray(image), reference)
        assert ds.image_size(i) == (right - left, bottom - top)
        for (px, py, v), got in zip(w["parts"], ds.parts(i), strict=True):
            shifted = (px - left, py - top, v) if v else (0.0, 0.0, 0.0)
            np.testing.assert_allclose(got, shifted)
        assert ds.bbox(i) == (x - left, y - top, bw, bh)


def test_cub_crop_to_bbox_fast_path_matches_plain(cub_root):
    root, _ = cub_root
    fast = build_dataset("cub", root, "test", crop_to_bbox=True,
                         transform=build_transforms("scratch", 8, train=False))
    plain = build_dataset("cub", root, "test", crop_to_bbox=True,
                          transform=build_transforms("scratch", 8, train=False, decoder="pil"))
    for i in range(len(fast)):
        assert (fast[i][0] - plain[i][0]).abs().mean() < 0.03


def test_cub_missing_annotation_file_names_it_and_the_tree(cub_root):
    root, _ = cub_root
    (root / "CUB_200_2011" / "parts" / "part_locs.txt").unlink()
    with pytest.raises(DataError, match=r"missing annotation file .*part_locs\.txt; expected "
                                        r"CUB_200_2011/\{images\.txt"):
        build_dataset("cub", root, "train")


def test_cub_wrong_root_says_what_was_expected_where(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; expected CUB_200_2011/"):
        build_dataset("cub", tmp_path / "nope", "train")
    with pytest.raises(DataError, match=r"is not a CUB_200_2011 root \(no images\.txt"):
        build_dataset("cub", tmp_path, "train")


def test_cub_bad_rows_are_reported_with_file_and_line(cub_root):
    root, _ = cub_root
    labels = root / "CUB_200_2011" / "image_class_labels.txt"
    labels.write_text(labels.read_text().replace("1 1\n", "1\n", 1))
    with pytest.raises(DataError, match=r"image_class_labels\.txt line 1: expected 2 fields"):
        build_dataset("cub", root, "train")


# --------------------------------------------------------------------------------- NABirds


def test_nabirds_remaps_sparse_class_ids_and_reads_uuid_rows(nabirds_root):
    root, expected = nabirds_root
    for split in ("train", "test"):
        ds = build_dataset("nabirds", root, split)
        want = expected[split]
        assert ds.classes == expected["classes"] and ds.num_classes == 3
        assert ds.targets == [w["label"] for w in want]
        assert [Path(p) for p, _ in ds.samples] == [w["path"] for w in want]
        assert ds.part_names == ["bill", "crown"]
        for i, w in enumerate(want):
            np.testing.assert_array_equal(ds.parts(i), [[w["bill_x"], 4, 1], [0, 0, 0]])
            assert ds.bbox(i) == (1.0, 2.0, 10.0, 8.0)
        assert ds[0][0].size == (24, 18)


# ---------------------------------------------------------------------------- FGVC-Aircraft


@pytest.mark.parametrize("sub", ["", "fgvc-aircraft-2013b", "fgvc-aircraft-2013b/data"])
def test_aircraft_variant_level_splits(aircraft_root, sub):
    root, expected = aircraft_root
    files = {"train": "trainval", "trainval": "trainval", "official_train": "train",
             "val": "val", "test": "test"}
    for split, file in files.items():
        ds = build_dataset("aircraft", root / sub, split)
        rows = expected["splits"][file]
        assert ds.classes == expected["classes"]
        assert ds.targets == [v for _, v in rows]
        assert [Path(p) for p, _ in ds.samples] == [expected["data"] / "images" / f"{i}.jpg"
                                                    for i, _ in rows]
    assert len(build_dataset("aircraft", root, "train")) == 3


def test_aircraft_unknown_variant_and_missing_split_file(aircraft_root):
    root, expected = aircraft_root
    split_file = expected["data"] / "images_variant_test.txt"
    split_file.write_text("1000004 Boeing 999\n")
    with pytest.raises(DataError, match=r"images_variant_test\.txt line 1: expected a variant "
                       r"listed in .*variants\.txt, got 'Boeing 999'"):
        build_dataset("aircraft", root, "test")
    split_file.unlink()
    with pytest.raises(DataError, match=r"missing annotation file .*images_variant_test\.txt"):
        build_dataset("aircraft", root, "test")
    with pytest.raises(DataError, match=r"no variants\.txt in"):
        build_dataset("aircraft", expected["data"] / "images", "test")


# ----------------------------------------------------------------------------- Stanford Cars


@pytest.mark.parametrize("in_devkit", [False, True])
def test_cars_devkit_mat_files(tmp_path, make_cars, in_devkit):
    expected = make_cars(tmp_path, test_annos_in_devkit=in_devkit)
    for split in ("train", "test"):
        ds = build_dataset("cars", tmp_path, split)
        assert ds.classes == expected["classes"]
        assert [(Path(p), t) for p, t in ds.samples] == expected[split]
        assert ds.targets == [t for _, t in expected[split]]
        assert ds[len(ds) - 1][0].mode == "RGB"


def test_cars_missing_test_labels_and_wrong_root(tmp_path, make_cars):
    make_cars(tmp_path)
    (tmp_path / "cars_test_annos_withlabels.mat").unlink()
    assert len(build_dataset("cars", tmp_path, "train")) == 3
    with pytest.raises(DataError, match=r"missing annotation file .*devkit/cars_test_annos_with"):
        build_dataset("cars", tmp_path, "test")
    with pytest.raises(DataError, match=r"no devkit/ folder in .*expected <root>/\{devkit/"):
        build_dataset("cars", tmp_path / "cars_train", "train")


# ------------------------------------------------------------------------------ Flowers-102


@pytest.mark.parametrize("nested", [False, True])
def test_flowers_train_is_train_plus_val(tmp_path, make_flowers, nested):
    base = tmp_path / "flowers-102" if nested else tmp_path
    base.mkdir(exist_ok=True)
    written = make_flowers(base)
    labels, setid = written["labels"], written["setid"]
    splits = {"train": setid["trnid"] + setid["valid"], "official_train": setid["trnid"],
              "val": setid["valid"], "test": setid["tstid"]}
    for split, ids in splits.items():
        ds = build_dataset("flowers102", tmp_path, split)
        assert ds.num_classes == 3
        assert ds.classes == ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"]
        assert [Path(p).name for p, _ in ds.samples] == [f"image_{i:05d}.jpg"
                                                          for i in sorted(ids)]
        assert ds.targets == [labels[i - 1] - 1 for i in sorted(ids)]


def test_flowers_missing_setid(flowers_root):
    root, _ = flowers_root
    (root / "setid.mat").unlink()
    with pytest.raises(DataError, match=r"missing annotation file .*setid\.mat"):
        build_dataset("flowers102", root, "test")


# ------------------------------------------------------------------------------ imagefolder


def test_imagefolder_shares_the_train_label_map(imagefolder_root):
    root, layout = imagefolder_root
    train = build_dataset("imagefolder", root, "train")
    test = build_dataset("imagefolder", root, "test")
    classes = sorted(layout["train"])
    assert train.classes == test.classes == classes
    assert train.targets == sorted(classes.index(c) for c, n in layout["train"].items()
                                   for _ in range(n))
    assert test.targets == [0, 0, 1]
    (root / "test" / "z_new").mkdir()
    with pytest.raises(DataError, match="z_new has no counterpart"):
        build_dataset("imagefolder", root, "test")


# ------------------------------------------------------------- image modes, corrupt images


@pytest.mark.parametrize("mode,suffix", [("L", ".jpg"), ("CMYK", ".jpg"), ("RGBA", ".png"),
                                         ("P", ".png"), ("L", ".png"), ("I;16", ".png")])
@pytest.mark.parametrize("decoder", ["fast", "pil"])
def test_every_image_mode_becomes_rgb(tmp_path, make_image, mode, suffix, decoder):
    pixels = make_image(tmp_path / "train" / "a" / f"x{suffix}", (20, 16), mode=mode)
    transform = build_transforms("scratch", 16, train=False, decoder=decoder)
    ds = build_dataset("imagefolder", tmp_path, "train", transform=transform)
    image, _ = ds[0]
    assert image.shape == (3, 16, 16)
    reference = build_transforms("scratch", 16, train=False, decoder="pil")(
        Image.fromarray(pixels))
    assert (image - reference).abs().mean() < 0.03


@pytest.mark.parametrize("decoder", ["fast", "pil"])
def test_corrupt_and_truncated_images_raise_data_error_naming_the_file(tmp_path, make_image,
                                                                        decoder):
    make_image(tmp_path / "train" / "a" / "good.jpg", (64, 48))
    data = (tmp_path / "train" / "a" / "good.jpg").read_bytes()
    (tmp_path / "train" / "a" / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "train" / "a" / "zjunk.jpg").write_bytes(b"this is not a jpeg" * 5)
    transform = build_transforms("scratch", 8, train=False, decoder=decoder)
    ds = build_dataset("imagefolder", tmp_path, "train", transform=transform)
    assert ds[0][0].shape == (3, 8, 8)
    with pytest.raises(DataError, match=r"corrupt or truncated image: .*trunc\.jpg"):
        ds[1]
    with pytest.raises(DataError, match=r"not a readable image: .*zjunk\.jpg"):
        ds[2]
    Path(ds.samples[0][0]).unlink()
    with pytest.raises(DataError, match=r"image file not found: .*good\.jpg"):
        ds[0]


def test_skip_corrupt_drops_bad_images_with_one_warning(cub_root):
    root, expected = cub_root
    bad = expected["train"][1]["path"]
    bad.write_bytes(bad.read_bytes()[:100])
    expected["train"][3]["path"].unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = build_dataset("cub", root, "train", skip_corrupt=True)
    assert [str(w.message) for w in caught if "skipped" in str(w.message)] == [
        f"cub (train): skipped 2 corrupt, unreadable or missing image(s) of 6 under {root}"]
    kept = [w for i, w in enumerate(expected["train"]) if i not in (1, 3)]
    assert ds.targets == [w["label"] for w in kept]
    for i, w in enumerate(kept):
        np.testing.assert_array_equal(ds.parts(i), np.array(w["parts"], dtype=np.float32))
        assert ds.bbox(i) == w["box"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(build_dataset("cub", root, "test", skip_corrupt=True)) == 3


def test_image_size_reads_the_header_only(tmp_path, make_image):
    make_image(tmp_path / "train" / "a" / "big.jpg", (300, 200))
    path = tmp_path / "train" / "a" / "big.jpg"
    path.write_bytes(path.read_bytes()[:2000])  # header intact, pixels truncated
    ds = build_dataset("imagefolder", tmp_path, "train")
    assert ds.image_size(0) == (300, 200)


# -------------------------------------------------------------------------------- synthetic

needs_generator = pytest.mark.skipif(importlib.util.find_spec("tdsa.data.synthetic") is None,
                                     reason="tdsa.data.synthetic not written yet")


@needs_generator
def test_synthetic_output_loads_through_cub_and_synthetic(tmp_path):
    import json

    from tdsa.data.synthetic import generate

    root = generate(tmp_path / "synth", num_classes=4, train_per_class=3, test_per_class=2,
                    image_size=48, seed=1)
    meta = json.loads((root / "tdsa_synthetic.json").read_text())
    for split, per_class in (("train", 3), ("test", 2)):
        cub = build_dataset("cub", root, split)
        synth = build_dataset("synthetic", root, split, transform=build_transforms(
            "scratch", 32, train=split == "train"))
        for ds in (cub, synth):
            assert len(ds) == 4 * per_class and ds.num_classes == 4
            assert sorted(ds.targets) == sorted(list(range(4)) * per_class)
            assert ds.classes == [c["name"] for c in meta["classes"]]
            assert ds.part_names == [p["name"] for p in sorted(meta["parts"],
                                                               key=lambda p: p["id"])]
            assert ds.image_size(0) == (48, 48)
        image, label = synth[0]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert label == synth.targets[0]
        visible = synth.parts(0)[synth.parts(0)[:, 2] > 0]
        assert ((visible[:, :2] >= 0) & (visible[:, :2] < 48)).all()
    assert synth.meta == meta
    assert synth.discriminative_parts == {p["name"]: p["granularity"] for p in meta["parts"]
                                          if p["granularity"]}
    assert set(synth.discriminative_parts.values()) == {"fine", "coarse"}


@needs_generator
def test_synthetic_generate_on_demand_and_missing_metadata(tmp_path):
    root = tmp_path / "synth"
    with pytest.raises(DataError, match="does not exist"):
        build_dataset("synthetic", root, "train")
    args = {"num_classes": 2, "train_per_class": 1, "test_per_class": 1, "image_size": 48}
    ds = build_dataset("synthetic", root, "test", generate=args)
    assert len(ds) == 2
    stamp = (root / "tdsa_synthetic.json").stat().st_mtime_ns
    assert len(build_dataset("synthetic", root, "train", generate=args)) == 2
    assert len(build_dataset("synthetic", root, "train", generate=True)) == 2  # defaults differ
    assert (root / "tdsa_synthetic.json").stat().st_mtime_ns == stamp
    with pytest.raises(TdsaError):
        build_dataset("synthetic", root, "train", generate={**args, "seed": 9})
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "tdsa_synthetic.json").unlink()
    with pytest.raises(DataError, match=r"has no tdsa_synthetic\.json .*tdsa data synth"):
        build_dataset("synthetic", copy, "train")
    assert len(build_dataset("cub", copy, "train")) == 2
