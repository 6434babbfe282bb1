"""The generator's ``unique_part``: one value of a fine part per class, and nothing else changed.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tdsa.config import Config, apply_overrides
from tdsa.data import build_dataset, synthetic
from tdsa.data.synthetic.colours import segment_distance
from tdsa.engine.build import ensure_synthetic
from tdsa.engine.distributed import DistInfo
from tdsa.errors import ConfigError, DataError
from tdsa.experiments import counterfactual as cf

TINY = {"num_classes": 5, "train_per_class": 2, "test_per_class": 1, "val_per_class": 1,
        "image_size": 48, "seed": 7}
# sha256 of every file but the JPEGs (relative path, NUL, bytes, NUL; sorted by path) of
# generate(root, **TINY), written by the generator before unique_part existed.
TEXT_DIGEST = "a4f4d9e32565728c"


def text_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix != ".jpg":
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("attribute", synthetic.UNIQUE_PARTS)
@pytest.mark.parametrize("num_classes", [2, 4, 12, 24, 48, 54])
def test_each_class_has_a_value_of_its_own_and_the_rest_follows_the_search(
        attribute: str, num_classes: int) -> None:
    plain = synthetic.choose_classes(num_classes)
    unique = synthetic.choose_classes(num_classes, attribute)
    assert len(unique) == num_classes
    values = [c[attribute] for c in unique]
    assert len(set(values)) == num_classes, "no two classes share the value"
    for a, b in zip(plain, unique, strict=True):
        assert {k: v for k, v in a.items() if k != attribute} == \
            {k: v for k, v in b.items() if k != attribute}
    kept = [v for v in values if v in synthetic.ATTRIBUTES[attribute]]
    assert kept == list(dict.fromkeys(c[attribute] for c in plain)), \
        "the first class with each of the search's values keeps it"
    extra = [v for v in values if v not in synthetic.ATTRIBUTES[attribute]]
    assert extra == list(synthetic.UNIQUE_VALUES[:len(extra)])
    lists = synthetic.value_lists(unique)
    assert lists[attribute] == [*synthetic.ATTRIBUTES[attribute], *extra]
    assert {k: v for k, v in lists.items() if k != attribute} == \
        {k: list(v) for k, v in synthetic.ATTRIBUTES.items() if k != attribute}
    for name in synthetic.ATTRIBUTES:  # the search's sharing rule holds for the other parts
        if name != attribute and num_classes >= 12:
            assert min(Counter(c[name] for c in unique).values()) >= 2, name


@pytest.mark.parametrize("num_classes", [2, 6, 12, 20, 48, 54])
def test_without_unique_part_the_classes_are_unchanged(num_classes: int) -> None:
    classes = synthetic.choose_classes(num_classes)
    assert synthetic.choose_classes(num_classes, None) == classes
    assert synthetic.value_lists(classes) == {k: list(v) for k, v in synthetic.ATTRIBUTES.items()}


def test_without_unique_part_the_files_are_those_written_before(tmp_path: Path) -> None:
    default = synthetic.generate(tmp_path / "default", **TINY)
    none = synthetic.generate(tmp_path / "none", unique_part=None, **TINY)
    assert text_digest(default) == TEXT_DIGEST
    assert all_bytes(default) == all_bytes(none)
    meta = synthetic.load_metadata(default)
    assert "unique_part" not in meta["args"]
    assert meta["attributes"] == {k: list(v) for k, v in synthetic.ATTRIBUTES.items()}


def test_extra_colours_are_apart_from_each_other_and_the_parts_own() -> None:
    colours = synthetic.unique_colours()
    assert list(colours) == list(synthetic.UNIQUE_VALUES)
    own = [(215, 35, 35), (240, 210, 35), (45, 85, 230), (30, 28, 28), (240, 125, 25)]
    every = np.array([*colours.values(), *own], dtype=float)
    for i, colour in enumerate(every):
        others = np.delete(every, i, axis=0)
        assert segment_distance(others, colour).min() > 44


@pytest.fixture(scope="module")
def unique_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("unique") / "root",
                              unique_part="eye_ring", **TINY)


def test_dataset_records_and_uses_the_unique_values(unique_root: Path) -> None:
    meta = synthetic.load_metadata(unique_root)
    assert meta["args"]["unique_part"] == "eye_ring"
    rings = [c["attributes"]["eye_ring"] for c in meta["classes"]]
    assert len(set(rings)) == len(rings) == 5
    assert meta["attributes"]["eye_ring"] == synthetic.attribute_values(unique_root, "eye_ring")
    assert set(rings) <= set(meta["attributes"]["eye_ring"])
    assert rings == [c["eye_ring"] for c in synthetic.choose_classes(5, "eye_ring")]
    dataset = build_dataset("synthetic", unique_root, "train")
    assert dataset.num_classes == 5 and len(dataset) == 10
    assert len(build_dataset("synthetic", unique_root, "val")) == 5
    # Every image is re-rendered exactly as saved, an extra value's class too.
    index = next(i for i, c in enumerate(meta["classes"])
                 if c["attributes"]["eye_ring"] not in synthetic.ATTRIBUTES["eye_ring"])
    bird = synthetic.render_image(unique_root, "train", 2 * index)
    buffer = io.BytesIO()
    bird.image.save(buffer, format="JPEG", quality=92, subsampling=0)
    assert buffer.getvalue() == Path(dataset.samples[2 * index][0]).read_bytes()


def test_twins_swap_to_and_from_extra_values(unique_root: Path) -> None:
    meta = synthetic.load_metadata(unique_root)
    values = synthetic.attribute_values(meta, "eye_ring")
    for index in range(10):
        own = meta["classes"][synthetic.image_source(meta, "train", index)[0]]["attributes"]
        twins = synthetic.twin_values(meta, "train", index, "eye")
        assert twins == [v for v in values if v != own["eye_ring"]]
    original = synthetic.render_image(meta, "train", 0)
    for value in synthetic.twin_values(meta, "train", 0, "eye"):
        twin = synthetic.render_twin(meta, "train", 0, part="eye", value=value)
        differs = np.any(np.asarray(twin.image) != np.asarray(original.image), axis=-1)
        assert differs.any() and np.all(twin.labels == original.labels)
        ys, xs = np.nonzero(differs)
        ex, ey = original.parts["eye"]
        assert np.hypot(xs - ex, ys - ey).max() < 6, "only the eye ring changes"
    with pytest.raises(ConfigError, match=r"u01\.\.u54"):
        synthetic.render_twin(meta, "train", 0, part="eye", value="purple")
    with pytest.raises(ConfigError, match="not a value of wing"):
        synthetic.render_twin(meta, "train", 0, part="wing", value="u01")


def test_ring_colour_tells_the_extra_values_apart() -> None:
    """Without noise, the drawn ring is nearest (allowing its 0.8..1 shade) to its own colour."""
    colours = {"red": (215, 35, 35), "yellow": (240, 210, 35), "blue": (45, 85, 230),
               **synthetic.unique_colours()}
    names = list(colours)
    palette = np.array(list(colours.values()), dtype=float)
    for k, value in enumerate(synthetic.UNIQUE_VALUES[:12]):
        attrs = {"wing": "plain", "tail": "fan", "eye_ring": value, "beak_tip": "black"}
        bird = synthetic.render_bird(attrs, synthetic.image_rng(0, k), image_size=256,
                                     noise_std=0.0)
        pixels = np.asarray(bird.image, dtype=float)
        ys, xs = np.nonzero(bird.labels == synthetic.PARTS[1].id)
        ex, ey = bird.parts["eye"]
        radius = np.hypot(xs - ex, ys - ey)
        outer = radius > 0.6 * radius.max()
        ring = np.median(pixels[ys[outer], xs[outer]], axis=0)
        assert names[int(np.argmin(segment_distance(palette, ring)))] == value


@pytest.mark.parametrize("bad", ["wing", "eye", "ring", 3])
def test_bad_unique_part_names_the_key_and_the_choices(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match=r"unique_part=.* expected one of beak_tip, eye_ring"):
        synthetic.generate(tmp_path / "x", unique_part=bad, **TINY)
    assert not (tmp_path / "x").exists()
    cfg = apply_overrides(Config(), ["data.generate=true", f"data.root={tmp_path / 'y'}",
                                     f"data.synthetic={{unique_part: {bad}}}"])
    with pytest.raises(ConfigError, match=r"data\.synthetic\.unique_part=.* beak_tip, eye_ring"):
        ensure_synthetic(cfg.data, DistInfo())
    assert not (tmp_path / "y").exists()


def _synthetic_config(root: Path, **synth: object) -> Config:
    args = ", ".join(f"{k}: {v}" for k, v in {**TINY, **synth}.items())
    return apply_overrides(Config(), ["data.generate=true", f"data.root={root}",
                                      f"data.synthetic={{{args}}}"])


def test_a_root_with_other_unique_part_is_refused_in_one_line(tmp_path: Path,
                                                              unique_root: Path) -> None:
    info = DistInfo()
    ensure_synthetic(_synthetic_config(unique_root, unique_part="eye_ring").data, info)
    for asked in ({}, {"unique_part": "null"}, {"unique_part": "beak_tip"}):
        with pytest.raises(ConfigError, match="generated with other arguments") as err:
            ensure_synthetic(_synthetic_config(unique_root, **asked).data, info)
        assert "\n" not in str(err.value) and "unique_part: 'eye_ring' there" in str(err.value)
    plain = synthetic.generate(tmp_path / "plain", **TINY)
    ensure_synthetic(_synthetic_config(plain).data, info)
    ensure_synthetic(_synthetic_config(plain, unique_part="null").data, info)
    with pytest.raises(ConfigError, match="unique_part: None there vs 'eye_ring' asked"):
        ensure_synthetic(_synthetic_config(plain, unique_part="eye_ring").data, info)
    with pytest.raises(DataError, match="unique_part: None -> 'eye_ring'"):
        synthetic.generate(plain, unique_part="eye_ring", **TINY)


def test_counterfactual_report_runs_on_a_unique_part_dataset(tmp_path: Path,
                                                              train_tiny_tdsa) -> None:
    root = synthetic.generate(tmp_path / "data", num_classes=4, train_per_class=8,
                              test_per_class=2, image_size=48, seed=0, unique_part="eye_ring")
    train_tiny_tdsa(root, tmp_path / "run")
    report = cf.counterfactual_report(tmp_path / "run", "test", images=[0, 3, 5, 6],
                                      batch_size=4, gradcam=False)
    rings = synthetic.attribute_values(root, "eye_ring")
    assert report["parts"]["eye"]["pairs"] == 4 * (len(rings) - 1)
    assert report["parts"]["beak"]["pairs"] == 4
    assert {"reliance", "evidence/logit/true", "evidence/mid/unused"} <= set(report["parts"]["eye"])
