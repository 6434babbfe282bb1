"""Malformed annotation files in each official format: one DataError line naming the file, the
line and the offending text; ``tdsa data check`` exits 1 with that line and no traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from tdsa.cli import main
from tdsa.data import build_dataset, decode_rgb, load_rgb, read_image_size, verify_image
from tdsa.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _raises(name: str, root: Path, split: str, pattern: str) -> None:
    with pytest.raises(DataError) as info:
        build_dataset(name, root, split)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message


CUB = "CUB_200_2011"


@pytest.mark.parametrize(
    ("file", "line", "text", "pattern"),
    [
        ("train_test_split.txt", 4, "4 x",
         r"train_test_split\.txt line 4: expected field 2 to be one of '0', '1', got 'x'"),
        ("train_test_split.txt", 2, "2 2",
         r"train_test_split\.txt line 2: expected field 2 to be one of '0', '1', got '2'"),
        ("image_class_labels.txt", 5, "5 two",
         r"image_class_labels\.txt line 5: expected field 2 to be an integer, got 'two'"),
        ("image_class_labels.txt", 3, "3 9",
         r"image_class_labels\.txt line 3: expected a class id listed in .*classes\.txt, "
         r"got '9'"),
        ("parts/part_locs.txt", 3, "1 3 abc 6.5 1",
         r"part_locs\.txt line 3: expected field 3 to be a finite number, got 'abc'"),
        ("parts/part_locs.txt", 2, "1 x 0 0 0",
         r"part_locs\.txt line 2: expected field 2 to be an integer, got 'x'"),
        ("bounding_boxes.txt", 6, "6 2.0 3.0 nan 9.0",
         r"bounding_boxes\.txt line 6: expected field 4 to be a finite number, got 'nan'"),
        ("classes.txt", 2, "two 002.Bird_2",
         r"classes\.txt line 2: expected field 1 to be an integer, got 'two'"),
        ("images.txt", 3, "1 001.Bird_1/Bird_1_0001.jpg",
         r"images\.txt line 3: expected a new id, got '1' \(already on line 1\)"),
        ("bounding_boxes.txt", 1, "1 2.0 3.0",
         r"bounding_boxes\.txt line 1: expected 5 fields, got '1 2\.0 3\.0'"),
    ],
)
def test_cub_malformed_lines_name_file_line_and_text(cub_root, file, line, text, pattern):
    root, _ = cub_root
    _replace_line(root / CUB / file, line, text)
    for split in ("train", "test"):
        _raises("cub", root, split, pattern)


def test_non_utf8_byte_names_the_file_and_line(cub_root):
    root, _ = cub_root
    path = root / CUB / "images.txt"
    lines = path.read_bytes().splitlines()
    lines[6] = b"7 caf\xe9/Bird.jpg"
    path.write_bytes(b"\n".join(lines) + b"\n")
    _raises("cub", root, "train",
            r"images\.txt line 7: expected UTF-8 text, got '7 caf\\\\xe9/Bird\.jpg'")


def test_unknown_split_value_is_an_error_not_a_drop(cub_root, capsys):
    root, _ = cub_root
    _replace_line(root / CUB / "train_test_split.txt", 4, "4 x")
    assert main(["data", "check", "--dataset", "cub", "--root", str(root)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("tdsa data: error: cub: ")
    assert f"{root / CUB / 'train_test_split.txt'} line 4: expected field 2 to be one of " \
           "'0', '1', got 'x' (in '4 x')" in err
    assert len(err.splitlines()) == 1


def test_data_check_through_python_m_has_no_traceback(cub_root):
    root, _ = cub_root
    _replace_line(root / CUB / "parts" / "part_locs.txt", 3, "1 3 abc 6.5 1")
    proc = subprocess.run([sys.executable, "-m", "tdsa", "data", "check", "--dataset", "cub",
                           "--root", str(root)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"tdsa data: error: cub: {root / CUB / 'parts' / 'part_locs.txt'} line 3: expected "
        "field 3 to be a finite number, got 'abc' (in '1 3 abc 6.5 1')"]


def test_unknown_split_name_stays_a_config_error(cub_root, capsys):
    root, _ = cub_root
    with pytest.raises(ConfigError, match="cub: unknown split 'dev'; valid splits: train, test"):
        build_dataset("cub", root, "dev")
    assert main(["data", "check", "--dataset", "cub", "--root", str(root), "--split", "dev"]) == 2
    assert "unknown split 'dev'" in capsys.readouterr().err


def test_nabirds_malformed_part_id_and_label(nabirds_root):
    root, _ = nabirds_root
    locs = root / "nabirds" / "parts" / "part_locs.txt"
    uuid = locs.read_text().splitlines()[2].split()[0]
    _replace_line(locs, 3, f"{uuid} bill 3 4 1")
    _raises("nabirds", root, "train",
            r"part_locs\.txt line 3: expected field 2 to be an integer, got 'bill'")
    _replace_line(locs, 3, f"{uuid} 0 3 4 1")
    labels = root / "nabirds" / "image_class_labels.txt"
    _replace_line(labels, 2, f"{uuid} 29x5")
    _raises("nabirds", root, "test",
            r"image_class_labels\.txt line 2: expected field 2 to be an integer, got '29x5'")


def _synthetic_root(root: Path, meta: str) -> Path:
    (root / "tdsa_synthetic.json").write_text(meta, encoding="utf-8")
    return root


def test_synthetic_metadata_and_tables(cub_root):
    root, _ = cub_root
    _synthetic_root(root, '{\n  "parts": [\n    oops\n  ]\n}\n')
    _raises("synthetic", root, "train",
            r"tdsa_synthetic\.json line 3: expected JSON \(Expecting value\), got 'oops'")
    _synthetic_root(root, json.dumps({"parts": [{"name": "beak"}]}))
    _raises("synthetic", root, "train",
            r"tdsa_synthetic\.json: expected a 'parts' list of objects with 'name' and "
            r"'granularity', got KeyError: 'granularity'")
    _synthetic_root(root, json.dumps({"parts": [{"name": "beak", "granularity": "fine"}]}))
    assert len(build_dataset("synthetic", root, "train")) == 6
    _replace_line(root / CUB / "train_test_split.txt", 4, "4 x")
    _raises("synthetic", root, "train",
            r"train_test_split\.txt line 4: expected field 2 to be one of '0', '1', got 'x'")


def test_aircraft_non_utf8_variant_and_duplicate_image(aircraft_root):
    root, expected = aircraft_root
    data = expected["data"]
    (data / "variants.txt").write_bytes(b"707-320\nF/A-18\nFalcon \xff2000\n")
    _raises("aircraft", root, "test",
            r"variants\.txt line 3: expected UTF-8 text, got 'Falcon \\\\xff2000'")
    (data / "variants.txt").write_text("707-320\nF/A-18\nFalcon 2000\n")
    (data / "images_variant_test.txt").write_text("1000004 F/A-18\n1000005 Falcon 2000\n"
                                                  "1000004 707-320\n")
    _raises("aircraft", root, "test",
            r"images_variant_test\.txt line 3: expected a new id, got '1000004' "
            r"\(already on line 1\)")


def _records(**fields) -> np.ndarray:
    array = np.zeros((1, len(next(iter(fields.values())))), dtype=[(k, "O") for k in fields])
    for key, values in fields.items():
        for i, value in enumerate(values):
            array[0, i][key] = value
    return array


def test_cars_mat_files_with_a_missing_key_or_field(tmp_path, make_cars):
    make_cars(tmp_path)
    annos = tmp_path / "devkit" / "cars_train_annos.mat"
    scipy.io.savemat(annos, {"annos": _records(fname=["00001.jpg"], **{"class": [np.uint8(1)]})})
    _raises("cars", tmp_path, "train",
            r"cars_train_annos\.mat: expected the key 'annotations', got keys \['annos'\]")
    scipy.io.savemat(annos, {"annotations": _records(fname=["00001.jpg", "00002.jpg"],
                                                     label=[np.uint8(1), np.uint8(2)])})
    _raises("cars", tmp_path, "train",
            r"cars_train_annos\.mat: expected 'annotations' to be a struct array with the "
            r"fields class, fname, got fields \['fname', 'label'\]")
    scipy.io.savemat(annos, {"annotations": _records(fname=["00001.jpg", "00002.jpg"],
                                                     **{"class": [np.uint8(1), "two"]})})
    _raises("cars", tmp_path, "train",
            r"cars_train_annos\.mat: annotations record 2: expected an integer 'class', "
            r"got 'two'")
    scipy.io.savemat(tmp_path / "devkit" / "cars_meta.mat",
                     {"class_names": np.array([["a", "b"], ["c", "d"]], dtype=object)})
    _raises("cars", tmp_path, "train",
            r"cars_meta\.mat: expected 'class_names' to be a 1-D array, got shape \[2, 2\]")


def test_flowers_mat_files_with_a_missing_key_or_wrong_shape(flowers_root):
    root, _ = flowers_root
    scipy.io.savemat(root / "setid.mat", {"trnid": np.array([[2, 5]], dtype=np.uint16),
                                          "valid": np.array([[7]], dtype=np.uint16)})
    _raises("flowers102", root, "test",
            r"setid\.mat: expected the key 'tstid', got keys \['trnid', 'valid'\]")
    scipy.io.savemat(root / "imagelabels.mat", {"labels": np.ones((2, 3), dtype=np.uint8)})
    _raises("flowers102", root, "train",
            r"imagelabels\.mat: expected 'labels' to be a non-empty 1-D array of integers, got "
            r"shape \[2, 3\]")
    (root / "imagelabels.mat").write_text("labels = [1 2 3]\n")
    _raises("flowers102", root, "train", r"imagelabels\.mat: expected a MATLAB \.mat file")


def test_zero_byte_image_says_empty_file(imagefolder_root, capsys):
    root, _ = imagefolder_root
    empty = root / "train" / "a_wren" / "0.jpg"
    empty.write_bytes(b"")
    for read in (load_rgb, decode_rgb, read_image_size):
        with pytest.raises(DataError) as info:
            read(empty)
        assert str(info.value) == f"not a readable image: {empty} (empty file, 0 bytes)"
    assert verify_image(empty) == f"not a readable image: {empty} (empty file, 0 bytes)"
    (root / "train" / "c_tit" / "0.jpg").write_bytes(b"GIF-ish junk")
    reason = verify_image(root / "train" / "c_tit" / "0.jpg")
    assert reason is not None and "BytesIO" not in reason and "not a known image format" in reason
    assert main(["data", "check", "--dataset", "imagefolder", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"    not a readable image: {empty} (empty file, 0 bytes)" in out
