"""The metadata file of a synthetic root (``tdsa_synthetic.json``): the generator's arguments,
parts, attribute values and classes, written last by :func:`generate` as its completion marker
and read back to re-render any image."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tdsa.data.synthetic.attributes import PARTS
from tdsa.data.synthetic.classes import value_lists
from tdsa.errors import DataError

GENERATOR_VERSION = 1
"""Bumped whenever the same arguments would produce different files."""

METADATA_FILE = "tdsa_synthetic.json"
VAL_FOLDER = "val"
"""The validation split's CUB-format tree, inside the dataset root (see :func:`generate`)."""
SPLITS = ("train", "test", "val", "train_minus_val")
"""Splits of a synthetic root; ``train_minus_val`` is ``train`` (val has images of its own)."""


def build_metadata(args: dict[str, Any], classes: list[dict[str, str]],
                   class_dirs: list[str]) -> dict[str, Any]:
    """The metadata of a dataset generated with the checked arguments ``args``, whose classes
    have the attributes ``classes`` and the folders ``class_dirs``."""
    return {
        "generator_version": GENERATOR_VERSION,
        "args": args,
        "image_size": args["image_size"],
        "parts": [
            {"id": p.id, "name": p.name, "granularity": p.granularity, "attribute": p.attribute}
            for p in PARTS
        ],
        "attributes": value_lists(classes),
        "classes": [
            {"id": i, "name": d, "attributes": attrs}
            for i, (d, attrs) in enumerate(zip(class_dirs, classes, strict=True), start=1)
        ],
    }


def load_metadata(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The metadata (``tdsa_synthetic.json``) of the synthetic root ``source``; parsed
    metadata is returned as it is.

    Raises :class:`tdsa.errors.DataError` if the file is missing or unreadable, or if the
    dataset was made by another generator version (its images cannot be re-rendered).
    """
    if isinstance(source, Mapping):
        meta, where = dict(source), "the metadata"
    else:
        path = Path(source) / METADATA_FILE
        where = str(path)
        if not path.is_file():
            raise DataError(f"{source} has no {METADATA_FILE}: not a synthetic dataset root; "
                            f"generate one with `python -m tdsa data synth --root {source}`")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} is unreadable ({exc})") from None
    if not isinstance(meta, dict) or not {"args", "classes"} <= set(meta):
        raise DataError(f"{where} is not synthetic metadata (expected 'args' and 'classes')")
    version = meta.get("generator_version")
    if version != GENERATOR_VERSION:
        raise DataError(
            f"{where} was written by generator version {version!r}, this is version "
            f"{GENERATOR_VERSION}: its images cannot be re-rendered; regenerate the dataset "
            "with --overwrite"
        )
    return meta
