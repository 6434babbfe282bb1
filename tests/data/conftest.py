"""Builders of tiny dataset trees in each dataset's real on-disk format.

Each builder writes the tree and returns what a correct loader must report, computed from
what was written (not by the loader's code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (24, 18), seed: int = 0,
                mode: str = "RGB") -> np.ndarray:
    """A random smooth-ish image saved at ``path``; returns its RGB pixels as saved
    (for JPEG: as decoded)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(size[1] // 4, 1), max(size[0] // 4, 1), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.BILINEAR)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else image.save(path)
    with Image.open(path) as saved:
        return np.asarray(saved.convert("RGB"))


def build_cub(root: Path, *, classes: int = 3, train: int = 2, test: int = 1,
              size: tuple[int, int] = (24, 18)) -> dict:
    """CUB_200_2011 tree under ``root``; image ids interleave classes and splits."""
    base = root / "CUB_200_2011"
    names = [f"{c:03d}.Bird_{c}" for c in range(1, classes + 1)]
    part_names = ["back", "beak", "left eye"]
    lines = {k: [] for k in ("images", "labels", "split", "boxes", "locs")}
    expected = {"train": [], "test": [], "classes": names, "part_names": part_names}
    image_id = 0
    for per_class, flag, split in ((train, 1, "train"), (test, 0, "test")):
        for k in range(per_class):
            for c in range(1, classes + 1):
                image_id += 1
                rel = f"{names[c - 1]}/Bird_{c}_{image_id:04d}.jpg"
                write_image(base / "images" / rel, size, seed=image_id)
                box = (2.0 + k, 3.0, 13.5, 9.0)
                parts = [(4.0 + c, 5.0, 1), (0.0, 0.0, 0), (10.0, 6.5 + k, 1)]
                lines["images"].append(f"{image_id} {rel}")
                lines["labels"].append(f"{image_id} {c}")
                lines["split"].append(f"{image_id} {flag}")
                lines["boxes"].append(f"{image_id} " + " ".join(map(str, box)))
                for pid, (x, y, v) in enumerate(parts, 1):
                    lines["locs"].append(f"{image_id} {pid} {x} {y} {v}")
                expected[split].append({"path": base / "images" / rel, "label": c - 1,
                                        "box": box, "parts": parts})
    _write(base / "images.txt", lines["images"])
    _write(base / "image_class_labels.txt", lines["labels"])
    _write(base / "train_test_split.txt", lines["split"])
    _write(base / "bounding_boxes.txt", lines["boxes"])
    _write(base / "classes.txt", [f"{i} {n}" for i, n in enumerate(names, 1)])
    _write(base / "parts" / "parts.txt", [f"{i} {n}" for i, n in enumerate(part_names, 1)])
    _write(base / "parts" / "part_locs.txt", lines["locs"])
    return expected


def build_nabirds(root: Path) -> dict:
    """nabirds tree: UUID image ids, sparse class ids inside a hierarchy, 0-based part ids."""
    base = root / "nabirds"
    used = [817, 295, 999]  # sparse ids of leaf classes; 0, 5 and 1000 are internal nodes
    names = {0: "Birds", 5: "Perching Birds", 1000: "Gulls", 295: "Common Loon",
             817: "Mallard (Female)", 999: "Tree Swallow"}
    rows = [("a1b2c3d4-0000-0000-0000-00000000000" + str(i), used[i % 3], i % 2)
            for i in range(6)]
    expected = {"train": [], "test": [], "classes": ["Common Loon", "Mallard (Female)",
                                                     "Tree Swallow"]}
    images, labels, split, boxes, locs = [], [], [], [], []
    for i, (uuid, cid, is_train) in enumerate(rows):
        rel = f"{cid:04d}/{uuid.replace('-', '')}.jpg"
        write_image(base / "images" / rel, seed=100 + i)
        images.append(f"{uuid} {rel}")
        labels.append(f"{uuid} {cid}")
        split.append(f"{uuid} {is_train}")
        boxes.append(f"{uuid} 1 2 10 8")
        locs += [f"{uuid} 0 {3 + i} 4 1", f"{uuid} 1 0 0 0"]
        expected["train" if is_train else "test"].append(
            {"path": base / "images" / rel, "label": sorted(used).index(cid), "bill_x": 3.0 + i})
    _write(base / "images.txt", images)
    _write(base / "image_class_labels.txt", labels)
    _write(base / "train_test_split.txt", split)
    _write(base / "bounding_boxes.txt", boxes)
    _write(base / "classes.txt", [f"{k} {v}" for k, v in names.items()])
    _write(base / "hierarchy.txt", ["5 0", "1000 0", "295 0", "817 5", "999 5"])
    _write(base / "parts" / "parts.txt", ["0 bill", "1 crown"])
    _write(base / "parts" / "part_locs.txt", locs)
    return expected


def build_aircraft(root: Path) -> dict:
    """fgvc-aircraft-2013b/data with variant names holding spaces and slashes."""
    data = root / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "F/A-18", "Falcon 2000"]
    splits = {"train": [("1000001", 2), ("1000002", 0)], "val": [("1000003", 1)],
              "test": [("1000004", 1), ("1000005", 2), ("1000006", 0)]}
    splits["trainval"] = splits["train"] + splits["val"]
    for split, rows in splits.items():
        _write(data / f"images_variant_{split}.txt", [f"{i} {variants[v]}" for i, v in rows])
        for i, _ in rows:
            if not (data / "images" / f"{i}.jpg").exists():
                write_image(data / "images" / f"{i}.jpg", seed=int(i) % 1000)
    _write(data / "variants.txt", variants)
    return {"classes": variants, "splits": splits, "data": data}


def _struct_array(records: list[dict]) -> np.ndarray:
    keys = list(records[0])
    array = np.zeros((1, len(records)), dtype=[(k, "O") for k in keys])
    for i, record in enumerate(records):
        for k in keys:
            array[0, i][k] = record[k]
    return array


def build_cars(root: Path, *, test_annos_in_devkit: bool = False) -> dict:
    """Stanford Cars devkit .mat files in their real structure (struct arrays, cells)."""
    classes = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi TT RS Coupe 2012"]
    train = [("00001.jpg", 3), ("00002.jpg", 1), ("00003.jpg", 1)]
    test = [("00001.jpg", 2), ("00002.jpg", 3)]
    (root / "devkit").mkdir(parents=True)
    scipy.io.savemat(root / "devkit" / "cars_meta.mat",
                     {"class_names": np.array([classes], dtype=object)})
    for rows, folder, mat in ((train, "cars_train", root / "devkit" / "cars_train_annos.mat"),
                              (test, "cars_test", (root / "devkit" if test_annos_in_devkit
                                                   else root) / "cars_test_annos_withlabels.mat")):
        records = [{"bbox_x1": np.uint8(1), "bbox_y1": np.uint8(2), "bbox_x2": np.uint8(20),
                    "bbox_y2": np.uint8(15), "class": np.uint8(c), "fname": name}
                   for name, c in rows]
        scipy.io.savemat(mat, {"annotations": _struct_array(records)})
        for k, (name, _) in enumerate(rows):
            write_image(root / folder / name, seed=k + (0 if folder == "cars_train" else 50))
    return {"classes": classes,
            "train": [(root / "cars_train" / n, c - 1) for n, c in train],
            "test": [(root / "cars_test" / n, c - 1) for n, c in test]}


def build_flowers(root: Path) -> dict:
    """Flowers-102 files: jpg/image_NNNNN.jpg, imagelabels.mat (1-based), setid.mat."""
    labels = [3, 1, 2, 3, 1, 2, 2]  # image ids 1..7
    setid = {"trnid": [2, 5], "valid": [7], "tstid": [1, 3, 4, 6]}
    for i in range(1, len(labels) + 1):
        write_image(root / "jpg" / f"image_{i:05d}.jpg", seed=200 + i)
    scipy.io.savemat(root / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    scipy.io.savemat(root / "setid.mat",
                     {k: np.array([v], dtype=np.uint16) for k, v in setid.items()})
    return {"labels": labels, "setid": setid}


def build_imagefolder(root: Path) -> dict:
    """root/{train,test}/<class>/ with a class that has no test images."""
    layout = {"train": {"b_sparrow": 2, "a_wren": 1, "c_tit": 1}, "test": {"a_wren": 2,
                                                                              "b_sparrow": 1}}
    for split, per_class in layout.items():
        for name, n in per_class.items():
            for k in range(n):
                write_image(root / split / name / f"{k}.jpg", seed=k)
    (root / "train" / "a_wren" / "notes.txt").write_text("not an image")
    return layout


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def cub_root(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, build_cub(tmp_path)


@pytest.fixture
def nabirds_root(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, build_nabirds(tmp_path)


@pytest.fixture
def aircraft_root(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, build_aircraft(tmp_path)


@pytest.fixture
def flowers_root(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, build_flowers(tmp_path)


@pytest.fixture
def imagefolder_root(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, build_imagefolder(tmp_path)


@pytest.fixture
def make_image():
    """The :func:`write_image` builder, for tests that need particular files."""
    return write_image


@pytest.fixture
def make_cars():
    """The :func:`build_cars` builder (its layout has an option)."""
    return build_cars


@pytest.fixture
def make_cub():
    """The :func:`build_cub` builder (sizes and counts are options)."""
    return build_cub


@pytest.fixture
def make_flowers():
    """The :func:`build_flowers` builder (tests choose the folder)."""
    return build_flowers
