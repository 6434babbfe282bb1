"""Tests of the synthetic fine-grained bird generator (tdsa.data.synthetic)."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tdsa.data import synthetic
from tdsa.errors import DataError

SMALL = {"num_classes": 6, "train_per_class": 3, "test_per_class": 2, "image_size": 64}
RING_RGB = {"red": (215, 35, 35), "yellow": (240, 210, 35), "blue": (45, 85, 230)}
TIP_RGB = {"black": (30, 28, 28), "orange": (240, 125, 25)}


def read_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def nearest(colour: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda k: float(np.sum((colour - np.array(palette[k])) ** 2)))


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("synth") / "root", seed=3, **SMALL)


# ----------------------------------------------------------------------------- classes


def twin_attributes(classes: list[dict[str, str]]) -> set[str]:
    """Attributes for which some pair of classes differs in that attribute only (slow, plain)."""
    needed = set()
    for a, b in itertools.combinations(classes, 2):
        diff = [k for k in a if a[k] != b[k]]
        if len(diff) == 1:
            needed.add(diff[0])
    return needed


@pytest.mark.parametrize("num_classes", [12, 20, 54])
def test_classes_need_several_parts(num_classes: int) -> None:
    classes = synthetic.choose_classes(num_classes)
    assert len(classes) == num_classes
    assert len({tuple(sorted(c.items())) for c in classes}) == num_classes
    for name, values in synthetic.ATTRIBUTES.items():
        counts = Counter(c[name] for c in classes)
        assert set(counts) == set(values), f"{name}: every value is used"
        assert min(counts.values()) >= 2, f"{name}: a value identifies a single class: {counts}"
        assert max(counts.values()) - min(counts.values()) <= 1 + (num_classes % 2)
    assert twin_attributes(classes) == set(synthetic.ATTRIBUTES), "every part is needed"
    assert synthetic.choose_classes(num_classes) == classes


def test_classes_attribute_parts_and_granularities() -> None:
    with_attr = [p for p in synthetic.PARTS if p.attribute is not None]
    assert len(with_attr) >= 3
    assert {p.granularity for p in with_attr} == {"fine", "coarse"}
    assert sorted(p.attribute for p in with_attr) == sorted(synthetic.ATTRIBUTES)
    assert [p.id for p in synthetic.PARTS] == list(range(1, len(synthetic.PARTS) + 1))


@pytest.mark.parametrize("bad", [1, 55, 1000])
def test_choose_classes_limit(bad: int) -> None:
    with pytest.raises(ValueError, match="54"):
        synthetic.choose_classes(bad)


# ----------------------------------------------------------------------------- files


def test_cub_format(small_root: Path) -> None:
    n_cls, n_train, n_test = SMALL["num_classes"], SMALL["train_per_class"], SMALL["test_per_class"]
    n = n_cls * (n_train + n_test)
    meta = json.loads((small_root / "tdsa_synthetic.json").read_text(encoding="utf-8"))

    classes = read_rows(small_root / "classes.txt")
    assert [int(r[0]) for r in classes] == list(range(1, n_cls + 1))
    class_names = [r[1] for r in classes]
    for i, name in enumerate(class_names, start=1):
        assert name.startswith(f"{i:03d}.Synthbird_")
    assert sorted(p.name for p in (small_root / "images").iterdir()) == class_names

    images = read_rows(small_root / "images.txt")
    assert [int(r[0]) for r in images] == list(range(1, n + 1))
    assert len({r[1] for r in images}) == n
    on_disk = {p.relative_to(small_root / "images").as_posix() for p in small_root.rglob("*.jpg")}
    assert on_disk == {r[1] for r in images}

    labels = dict((int(a), int(b)) for a, b in read_rows(small_root / "image_class_labels.txt"))
    assert sorted(labels) == list(range(1, n + 1))
    for image_id, rel in images:
        assert rel.split("/")[0] == class_names[labels[int(image_id)] - 1]

    split = dict((int(a), int(b)) for a, b in read_rows(small_root / "train_test_split.txt"))
    assert sorted(split) == list(range(1, n + 1))
    assert set(split.values()) == {0, 1}
    per_class = Counter((labels[i], s) for i, s in split.items())
    for k in range(1, n_cls + 1):
        assert per_class[(k, 1)] == n_train and per_class[(k, 0)] == n_test

    with Image.open(small_root / "images" / images[0][1]) as img:
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (64, 64)

    parts = read_rows(small_root / "parts" / "parts.txt")
    assert [(int(i), name) for i, name in parts] == [(p.id, p.name) for p in synthetic.PARTS]
    assert [(p["id"], p["name"]) for p in meta["parts"]] == [(int(i), m) for i, m in parts]

    boxes = {
        int(r[0]): [float(v) for v in r[1:]] for r in read_rows(small_root / "bounding_boxes.txt")
    }
    assert sorted(boxes) == list(range(1, n + 1))
    locs = read_rows(small_root / "parts" / "part_locs.txt")
    assert len(locs) == n * len(parts)
    seen = Counter((int(r[0]), int(r[1])) for r in locs)
    assert set(seen.values()) == {1} and len(seen) == n * len(parts)
    for image_id, _, x, y, visible in locs:
        x, y = float(x), float(y)
        bx, by, bw, bh = boxes[int(image_id)]
        assert visible == "1"
        assert 0 <= x <= 63 and 0 <= y <= 63
        assert bx <= x <= bx + bw and by <= y <= by + bh
        assert bx >= 0 and by >= 0 and bx + bw <= 64 and by + bh <= 64

    assert meta["generator_version"] == synthetic.GENERATOR_VERSION
    assert meta["image_size"] == 64
    assert meta["args"]["num_classes"] == n_cls and meta["args"]["seed"] == 3
    assert meta["attributes"] == {k: list(v) for k, v in synthetic.ATTRIBUTES.items()}
    assert [c["name"] for c in meta["classes"]] == class_names
    assert [c["id"] for c in meta["classes"]] == list(range(1, n_cls + 1))
    for c in meta["classes"]:
        for attr, value in c["attributes"].items():
            assert value in synthetic.ATTRIBUTES[attr]
            assert f"_{value}_" in c["name"] + "_"
    for p in meta["parts"]:
        assert set(p) == {"id", "name", "granularity", "attribute"}


def test_deterministic_bytes(tmp_path: Path) -> None:
    kwargs = {"num_classes": 6, "train_per_class": 2, "test_per_class": 1, "image_size": 48}
    a = synthetic.generate(tmp_path / "a", seed=5, **kwargs)
    b = synthetic.generate(tmp_path / "b", seed=5, **kwargs)
    c = synthetic.generate(tmp_path / "c", seed=6, **kwargs)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert len(files_a) == 6 * 3 + 8
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    first = next(rel for rel in files_a if rel.suffix == ".jpg")
    assert (a / first).read_bytes() != (c / first).read_bytes()


# ----------------------------------------------------------------------------- parts


def test_written_parts_lie_on_rerendered_parts(small_root: Path) -> None:
    """Re-render images from their per-image RNG: same picture, parts on the part masks."""
    meta = json.loads((small_root / "tdsa_synthetic.json").read_text(encoding="utf-8"))
    args = meta["args"]
    render_kw = {k: args[k] for k in synthetic.RENDER_ARGS}
    images = read_rows(small_root / "images.txt")
    labels = dict(read_rows(small_root / "image_class_labels.txt"))
    locs = read_rows(small_root / "parts" / "part_locs.txt")
    for image_id, rel in images[::7]:
        attrs = meta["classes"][int(labels[image_id]) - 1]["attributes"]
        bird = synthetic.render_bird(
            attrs, synthetic.image_rng(args["seed"], int(image_id) - 1), **render_kw
        )
        other = synthetic.render_bird(
            attrs, synthetic.image_rng(args["seed"], int(image_id)), **render_kw
        )
        with Image.open(small_root / "images" / rel) as img:
            on_disk = np.asarray(img.convert("RGB"), dtype=np.float32)
        same = np.abs(on_disk - np.asarray(bird.image, dtype=np.float32)).mean()
        assert same < 0.25 * np.abs(on_disk - np.asarray(other.image, dtype=np.float32)).mean()
        for _, part_id, x, y, _ in (r for r in locs if r[0] == image_id):
            name = synthetic.PARTS[int(part_id) - 1].name
            assert bird.parts[name] == pytest.approx((float(x), float(y)), abs=0.051)
            assert bird.labels[round(float(y)), round(float(x))] == int(part_id), name


def render_many(count: int, **kwargs) -> list[tuple[dict[str, str], synthetic.RenderedBird]]:
    classes = synthetic.choose_classes(12)
    return [
        (
            classes[i % 12],
            synthetic.render_bird(classes[i % 12], synthetic.image_rng(11, i), **kwargs),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("fine_scale", [0.5, 1.0, 2.0])
def test_parts_on_label_map_inside_box(fine_scale: float) -> None:
    for _, bird in render_many(24, image_size=96, fine_scale=fine_scale):
        ys, xs = np.nonzero(bird.labels)
        assert bird.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        bx, by, bw, bh = bird.bbox
        for part in synthetic.PARTS:
            x, y = bird.parts[part.name]
            assert 0 <= x < 96 and 0 <= y < 96
            assert bx <= round(x) <= bx + bw - 1 and by <= round(y) <= by + bh - 1
            assert bird.labels[round(y), round(x)] == part.id, part.name


def test_fine_attributes_drawn_at_their_locations() -> None:
    """Without noise, the beak tip and eye ring at the annotated spots have the class colours."""
    for attrs, bird in render_many(24, image_size=256, noise_std=0.0):
        pixels = np.asarray(bird.image, dtype=np.float32)
        bx, by = bird.parts["beak"]
        assert nearest(pixels[round(by), round(bx)], TIP_RGB) == attrs["beak_tip"]
        ex, ey = bird.parts["eye"]
        ring_mid = 0.72 * 4.6 * 2  # middle of the ring at 256 px and scale 1
        ring = pixels[round(ey), round(ex + ring_mid)]
        assert nearest(ring, RING_RGB) == attrs["eye_ring"]
        pupil = pixels[round(ey), round(ex)]
        assert pupil.max() < 60


def test_wing_pattern_pixels() -> None:
    """Bars and spots cover a clear share of the wing in a pale colour; a plain wing has none."""
    shares: dict[str, list[float]] = {"plain": [], "bar": [], "spots": []}
    for attrs, bird in render_many(24, image_size=128, noise_std=0.0):
        pixels = np.asarray(bird.image, dtype=np.float32)
        wing = bird.labels == 3
        interior = wing & np.roll(wing, 1, 0) & np.roll(wing, -1, 0)
        interior &= np.roll(wing, 1, 1) & np.roll(wing, -1, 1)
        values = pixels[interior].sum(axis=1)
        pale = values > np.median(values) + 120
        shares[attrs["wing"]].append(float(pale.mean()))
    assert max(shares["plain"]) < 0.03
    assert min(shares["bar"]) > 0.12 and min(shares["spots"]) > 0.10


def test_fine_scale_and_separation() -> None:
    """Eye ring radius >= 4 px at 128 px and scale 1; discriminative parts far apart.

    Measured on a 512-px label map (4x the reference) so pixel rounding of the outline is small.
    """
    fixed = {"image_size": 512, "min_scale": 1.0, "max_scale": 1.0, "max_rotation": 0.0}
    radii = {}
    for fine_scale in (1.0, 2.0):
        (_, bird), *_ = render_many(1, fine_scale=fine_scale, **fixed)
        radii[fine_scale] = math.sqrt(float((bird.labels == 2).sum()) / math.pi) / 4
        names = [p.name for p in synthetic.PARTS if p.attribute is not None]
        ys, xs = np.nonzero(bird.labels == len(synthetic.PARTS) + 1)
        body = (xs.mean(), ys.mean())
        points = [bird.parts[n] for n in names] + [body]
        for p, q in itertools.combinations(points, 2):
            assert math.dist(p, q) >= 0.1 * 512
    assert radii[1.0] >= 4.0
    assert radii[2.0] == pytest.approx(2 * radii[1.0], rel=0.05)


def test_distractors_add_eye_like_blobs() -> None:
    def ring_like_background(distractors: bool) -> int:
        total = 0
        for _, bird in render_many(12, image_size=96, noise_std=0.0, distractors=distractors):
            pixels = np.asarray(bird.image, dtype=np.float32)[bird.labels == 0]
            for rgb in RING_RGB.values():
                total += int((np.abs(pixels - np.array(rgb)).max(axis=1) < 25).sum())
        return total

    assert ring_like_background(True) > 3 * ring_like_background(False) + 20


# ----------------------------------------------------------------------------- errors


def test_existing_root_rules(tmp_path: Path) -> None:
    kwargs = {"num_classes": 6, "train_per_class": 1, "test_per_class": 1, "image_size": 48}
    root = synthetic.generate(tmp_path / "r", **kwargs)
    victim = next(root.rglob("*.jpg"))
    victim.unlink()
    assert synthetic.generate(root, **kwargs) == root
    assert not victim.exists(), "same args and version: returns at once, writes nothing"

    with pytest.raises(DataError, match=r"seed: 0 -> 1.*overwrite"):
        synthetic.generate(root, **{**kwargs, "seed": 1})
    synthetic.generate(root, overwrite=True, **{**kwargs, "seed": 1})
    assert victim.exists()
    assert json.loads((root / "tdsa_synthetic.json").read_text())["args"]["seed"] == 1

    (root / "tdsa_synthetic.json").unlink()  # an interrupted run leaves no marker
    with pytest.raises(DataError, match=r"no tdsa_synthetic\.json"):
        synthetic.generate(root, **kwargs)
    synthetic.generate(root, overwrite=True, **kwargs)
    assert (root / "tdsa_synthetic.json").is_file()

    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        synthetic.generate(tmp_path / "file", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_classes": 55}, r"num_classes=55 is outside 2\.\.54"),
        ({"num_classes": 1}, "num_classes"),
        ({"train_per_class": 0}, "train_per_class"),
        ({"image_size": 16}, "image_size=16"),
        ({"fine_scale": 0.0}, "fine_scale"),
        ({"jpeg_quality": 101}, "jpeg_quality"),
        ({"min_scale": 1.2, "max_scale": 1.0}, "min_scale"),
        ({"distractors": "yes"}, "distractors"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        synthetic.generate(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()
