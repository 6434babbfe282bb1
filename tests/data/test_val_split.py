"""Validation splits: the carve-out of train (tdsa.data.base.stratified_holdout, the loaders'
``val`` / ``train_minus_val``) and the synthetic generator's own validation images."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tdsa.cli import main
from tdsa.data import build_dataset, synthetic
from tdsa.data.base import stratified_holdout
from tdsa.errors import ConfigError, DataError

SMALL = {"num_classes": 6, "train_per_class": 3, "test_per_class": 2, "image_size": 48, "seed": 5}


def expected_size(n: int, fraction: float) -> int:
    """Held-out images of a class of ``n``: round half up, at least 1, never all (plain)."""
    if n < 2:
        return 0
    share = math.floor(fraction * n + 0.5)
    return min(n - 1, max(1, share))


# ------------------------------------------------------------------- stratified_holdout


@pytest.mark.parametrize(("n", "fraction", "k"), [
    (10, 0.1, 1), (30, 0.1, 3), (25, 0.1, 3), (2, 0.1, 1), (1, 0.5, 0), (5, 0.5, 3),
    (4, 0.9, 3), (40, 0.25, 10),
])
def test_holdout_size_per_class(n: int, fraction: float, k: int) -> None:
    labels = [0] * n + [1] * 7
    held = stratified_holdout(labels, fraction, 0)
    counts = Counter(labels[i] for i in held)
    assert counts[0] == k == expected_size(n, fraction)
    assert counts[1] == expected_size(7, fraction)


def test_holdout_stratified_disjoint_and_every_class_keeps_train() -> None:
    rng = np.random.default_rng(1)
    for trial in range(20):
        sizes = rng.integers(1, 40, size=int(rng.integers(2, 12)))
        labels = np.repeat(np.arange(len(sizes)), sizes)
        rng.shuffle(labels)  # classes interleaved, as in many annotation files
        fraction = float(rng.uniform(0.05, 0.6))
        held = stratified_holdout(labels.tolist(), fraction, trial)
        assert held.tolist() == sorted(set(held.tolist()))  # sorted, no repeats
        rest = sorted(set(range(len(labels))) - set(held.tolist()))
        for c, n in enumerate(sizes):
            in_val = int(np.sum(labels[held] == c))
            in_train = int(np.sum(labels[rest] == c))
            assert in_val == expected_size(int(n), fraction)
            assert in_train >= 1 and in_val + in_train == n


def test_holdout_deterministic_seeded_and_per_class() -> None:
    labels = [0] * 30 + [1] * 30
    first = stratified_holdout(labels, 0.2, 7)
    assert np.array_equal(first, stratified_holdout(labels, 0.2, 7))
    assert not np.array_equal(first, stratified_holdout(labels, 0.2, 8))
    # Class 0's choice does not depend on how many images class 1 has.
    longer = stratified_holdout([0] * 30 + [1] * 50, 0.2, 7)
    assert [i for i in first if i < 30] == [i for i in longer if i < 30]


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, True, "0.1", None])
def test_holdout_bad_fraction(fraction) -> None:
    bad = re.escape(repr(fraction))
    with pytest.raises(ConfigError, match=rf"^val_fraction(={bad} is outside the allowed range "
                       rf"in \(0, 1\)| must be a finite number in \(0, 1\), got {bad})$"):
        stratified_holdout([0, 0, 1, 1], fraction, 0)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_holdout_bad_seed(seed) -> None:
    bad = re.escape(repr(seed))
    with pytest.raises(ConfigError, match=rf"^val_seed(={bad} is outside the allowed range >= 0| "
                       rf"must be an integer >= 0, got {bad})$"):
        stratified_holdout([0, 0, 1, 1], 0.5, seed)


# --------------------------------------------------------------- loaders without a val


def test_cub_val_is_a_carve_out_of_train(tmp_path: Path, make_cub) -> None:
    make_cub(tmp_path, classes=3, train=10, test=2)
    train = build_dataset("cub", tmp_path, "train")
    val = build_dataset("cub", tmp_path, "val")
    rest = build_dataset("cub", tmp_path, "train_minus_val")
    assert len(train) == 30  # the official train split is unchanged
    assert Counter(val.targets) == {0: 1, 1: 1, 2: 1}
    assert Counter(rest.targets) == {0: 9, 1: 9, 2: 9}
    val_paths = {p for p, _ in val.samples}
    rest_paths = {p for p, _ in rest.samples}
    assert not val_paths & rest_paths
    assert val_paths | rest_paths == {p for p, _ in train.samples}
    # Parts, boxes and ids follow their images.
    position = {p: i for i, (p, _) in enumerate(train.samples)}
    for ds in (val, rest):
        for i, (path, label) in enumerate(ds.samples):
            j = position[path]
            assert label == train.targets[j]
            assert ds.image_ids[i] == train.image_ids[j]
            assert np.array_equal(ds.parts(i), train.parts(j))
            assert ds.bbox(i) == train.bbox(j)
    assert val.split == "val" and rest.split == "train_minus_val"
    assert build_dataset("cub", tmp_path, "test").image_ids == \
        build_dataset("cub", tmp_path, "test", val_fraction=0.5).image_ids


def test_val_fraction_and_seed_options(tmp_path: Path, make_cub) -> None:
    make_cub(tmp_path, classes=2, train=10, test=1)
    val = build_dataset("cub", tmp_path, "val", val_fraction=0.3)
    assert Counter(val.targets) == {0: 3, 1: 3}
    train = build_dataset("cub", tmp_path, "train")
    held = stratified_holdout(train.targets, 0.3, 4)
    again = build_dataset("cub", tmp_path, "val", val_fraction=0.3, val_seed=4)
    assert again.samples == [train.samples[i] for i in held]
    with pytest.raises(ConfigError,
                       match=r"val_fraction=2 is outside the allowed range in \(0, 1\)"):
        build_dataset("cub", tmp_path, "val", val_fraction=2)


def test_cars_and_nabirds_carve_val(tmp_path: Path, make_cars, nabirds_root) -> None:
    root = tmp_path / "cars"
    expected = make_cars(root)
    val = build_dataset("cars", root, "val")
    rest = build_dataset("cars", root, "train_minus_val")
    # Train labels 2, 0, 0: class 0 gives one image, the single image of class 2 stays.
    assert val.targets == [0]
    assert sorted(rest.targets) == [0, 2]
    assert {p for p, _ in val.samples} | {p for p, _ in rest.samples} == \
        {str(p) for p, _ in expected["train"]}
    root, _ = nabirds_root
    train = build_dataset("nabirds", root, "train")
    val = build_dataset("nabirds", root, "val")
    rest = build_dataset("nabirds", root, "train_minus_val")
    assert len(val) + len(rest) == len(train)
    assert not {p for p, _ in val.samples} & {p for p, _ in rest.samples}


def test_imagefolder_val_folder_or_carve_out(imagefolder_root) -> None:
    root, _ = imagefolder_root
    val = build_dataset("imagefolder", root, "val")
    # b_sparrow has 2 train images: one is held out; the single-image classes keep theirs.
    assert [val.classes[t] for t in val.targets] == ["b_sparrow"]
    assert len(build_dataset("imagefolder", root, "train_minus_val")) == 3
    for k in range(2):
        (root / "val" / "c_tit" / f"{k}.jpg").parent.mkdir(parents=True, exist_ok=True)
        (root / "val" / "c_tit" / f"{k}.jpg").write_bytes(
            (root / "train" / "c_tit" / "0.jpg").read_bytes())
    val = build_dataset("imagefolder", root, "val")
    assert [val.classes[t] for t in val.targets] == ["c_tit", "c_tit"]
    assert all("/val/" in p for p, _ in val.samples)
    assert build_dataset("imagefolder", root, "train_minus_val").samples == \
        build_dataset("imagefolder", root, "train").samples


def test_official_val_splits_are_kept(aircraft_root, flowers_root) -> None:
    root, _ = aircraft_root
    assert len(build_dataset("aircraft", root, "val")) > 0
    with pytest.raises(ConfigError, match="aircraft: val_fraction and val_seed apply only to "
                       "datasets without an official val split"):
        build_dataset("aircraft", root, "val", val_fraction=0.2)
    with pytest.raises(ConfigError, match="unknown split 'train_minus_val'"):
        build_dataset("aircraft", root, "train_minus_val")
    root, expected = flowers_root
    assert len(build_dataset("flowers102", root, "val")) == len(expected["setid"]["valid"])
    with pytest.raises(ConfigError, match="flowers102: val_fraction and val_seed apply only"):
        build_dataset("flowers102", root, "train", val_seed=3)


# ------------------------------------------------------------------------ synthetic val


def file_digests(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()
            and not any(str(p.relative_to(root)).startswith(s) for s in skip)}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("val")
    return (synthetic.generate(base / "plain", **SMALL),
            synthetic.generate(base / "with_val", val_per_class=2, **SMALL))


def test_val_leaves_train_and_test_byte_identical(roots) -> None:
    plain, with_val = roots
    meta = synthetic.METADATA_FILE
    assert file_digests(plain, skip=(meta,)) == file_digests(with_val, skip=(meta, "val"))
    old = json.loads((plain / meta).read_text())
    new = json.loads((with_val / meta).read_text())
    assert "val_per_class" not in old["args"]
    assert new["args"].pop("val_per_class") == 2
    assert new == old


def test_synthetic_val_split(roots) -> None:
    plain, with_val = roots
    val = build_dataset("synthetic", with_val, "val")
    train = build_dataset("synthetic", with_val, "train")
    assert len(val) == SMALL["num_classes"] * 2
    assert Counter(val.targets) == {c: 2 for c in range(SMALL["num_classes"])}
    assert val.classes == train.classes and val.part_names == train.part_names
    assert all(Path(p).is_relative_to(with_val / "val" / "images") for p, _ in val.samples)
    assert val.parts(0).shape == (len(synthetic.PARTS), 3)
    # The real CUB loader reads the root as if there were no val.
    for split in ("train", "test"):
        assert build_dataset("cub", with_val, split).samples == [
            (p.replace(str(plain), str(with_val)), t)
            for p, t in build_dataset("cub", plain, split).samples]
    assert build_dataset("synthetic", with_val, "train_minus_val").samples == train.samples


def decoded(path: str) -> bytes:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).tobytes()


def test_val_images_are_new_and_rerendered_exactly(roots) -> None:
    _, with_val = roots
    val = build_dataset("synthetic", with_val, "val")
    others = {decoded(p) for split in ("train", "test")
              for p, _ in build_dataset("synthetic", with_val, split).samples}
    assert not {decoded(p) for p, _ in val.samples} & others
    meta = synthetic.load_metadata(with_val)
    for i in (0, 5, len(val) - 1):
        bird = synthetic.render_image(meta, "val", i)
        buffer = io.BytesIO()
        bird.image.save(buffer, format="JPEG", quality=SMALL.get("jpeg_quality", 92),
                        subsampling=0)
        assert Path(val.samples[i][0]).read_bytes() == buffer.getvalue()


def test_val_missing_and_argument_changes(roots, tmp_path: Path) -> None:
    plain, with_val = roots
    with pytest.raises(DataError, match=rf"synthetic: {plain} has no val split .*"
                       r"--val-per-class N --overwrite"):
        build_dataset("synthetic", plain, "val")
    with pytest.raises(DataError, match=r"val_per_class: None -> 2"):
        synthetic.generate(plain, val_per_class=2, **SMALL)
    with pytest.raises(DataError, match=r"val_per_class: 2 -> None"):
        synthetic.generate(with_val, **SMALL)
    assert synthetic.generate(with_val, val_per_class=2, **SMALL) == with_val  # a no-op
    for bad in (-1, 1.5):
        with pytest.raises(ConfigError, match=r"val_per_class"):
            synthetic.generate(tmp_path / "bad", val_per_class=bad, **SMALL)
    with pytest.raises(ConfigError, match="synthetic: val_fraction and val_seed apply only"):
        build_dataset("synthetic", with_val, "val", val_fraction=0.2)


def test_synth_cli_val_per_class(tmp_path: Path, capsys) -> None:
    root = tmp_path / "cli"
    args = ["data", "synth", "--root", str(root), "--num-classes", "3", "--train-per-class", "2",
            "--test-per-class", "1", "--val-per-class", "2", "--image-size", "48"]
    assert main(args) == 0
    assert f"synthetic dataset in {root}: 3 classes, 6 train / 3 test / 6 val images" in \
        capsys.readouterr().out
    assert json.loads((root / synthetic.METADATA_FILE).read_text())["args"]["val_per_class"] == 2
