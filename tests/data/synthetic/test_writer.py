"""Tests of writing the synthetic dataset (tdsa.data.synthetic.writer): the CUB-format files,
their bytes, the written parts and the rules for an existing root."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tdsa.data import synthetic
from tdsa.errors import DataError

SMALL = {"num_classes": 6, "train_per_class": 3, "test_per_class": 2, "image_size": 64}


def read_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]



@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("synth") / "root", seed=3, **SMALL)



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
