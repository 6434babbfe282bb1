"""The synthetic bird classes: which attribute values each class has, and its folder name."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from itertools import product
from typing import Any

import numpy as np

from tdsa.data.synthetic.attributes import ATTRIBUTES, UNIQUE_VALUES, check_unique_part
from tdsa.errors import ConfigError
from tdsa.validation import check_int


def choose_classes(num_classes: int, unique_part: str | None = None) -> list[dict[str, str]]:
    """Attribute combinations of ``num_classes`` classes, the same for every seed.

    Chosen (deterministic local search) so that, when possible, every value that occurs is
    shared by at least two classes and every value is used; every attribute is needed (some
    pair of classes differs only there); and as many (class, attribute) pairs as possible have
    a twin class that differs only in that attribute.

    With ``unique_part`` (one of :data:`UNIQUE_PARTS`) each class then gets a value of that
    attribute that no other class has: the first class with each value keeps it, the others
    take the next of :data:`UNIQUE_VALUES`; the other attributes are those of the search.
    """
    check_num_classes(num_classes)
    unique_part = check_unique_part(unique_part)
    names = list(ATTRIBUTES)
    classes = [
        {name: ATTRIBUTES[name][v] for name, v in zip(names, row, strict=True)}
        for row in _search_classes(num_classes)
    ]
    if unique_part is not None:
        extra, taken = iter(UNIQUE_VALUES), set()
        for attrs in classes:
            if attrs[unique_part] in taken:
                attrs[unique_part] = next(extra)
            taken.add(attrs[unique_part])
    return classes


def value_lists(classes: list[dict[str, str]]) -> dict[str, list[str]]:
    """Each attribute's values in a dataset of ``classes``: those of :data:`ATTRIBUTES`, then
    the extra values (:data:`UNIQUE_VALUES`) the classes use, in order."""
    values = {name: list(v) for name, v in ATTRIBUTES.items()}
    for attrs in classes:
        for name, value in attrs.items():
            if value not in values[name]:
                values[name].append(value)
    return values


def one_attribute_neighbours(classes: list[dict[str, str]]) -> list[int]:
    """For each class, how many other classes differ from it in exactly one attribute: the
    classes that only the evidence of that one part tells apart from it.

    Book: chapter 5, *The class count*.
    """
    return [sum(1 for other in classes
                if sum(attrs[k] != other[k] for k in attrs) == 1) for attrs in classes]


def exclusive_values(classes: list[dict[str, str]]) -> list[int]:
    """For each class, how many of its attribute values no other class has (evidence that
    belongs to that class alone; :func:`choose_classes` with ``unique_part`` gives each class
    one).

    Book: chapter 5, *The class count*.
    """
    return [sum(1 for k, v in attrs.items()
                if not any(other[k] == v for other in classes if other is not attrs))
            for attrs in classes]


def check_num_classes(num_classes: Any) -> int:
    """``num_classes`` as an ``int`` when it is 2 up to the number of distinct attribute
    combinations; else a ConfigError that gives the limit."""
    limit = math.prod(len(v) for v in ATTRIBUTES.values())
    value = check_int("num_classes", num_classes)
    if not 2 <= value <= limit:
        raise ConfigError(
            f"num_classes={value} is outside 2..{limit}: there are {limit} distinct attribute "
            "combinations "
            f"({' x '.join(ATTRIBUTES)} = {' x '.join(str(len(v)) for v in ATTRIBUTES.values())});"
            f" use 2..{limit}"
        )
    return value


def class_name(attrs: Mapping[str, str]) -> str:
    """The class's name in ``classes.txt`` and its image folder (after ``NNN.``)."""
    suffix = {"wing": "wing", "tail": "tail", "eye_ring": "eye", "beak_tip": "beak"}
    return "Synthbird_" + "_".join(f"{attrs[k]}_{suffix[k]}" for k in ATTRIBUTES)


def _class_score(chosen: np.ndarray, sizes: np.ndarray) -> tuple[int, int, int, int]:
    """Lower is better: (bad values, unneeded attributes, imbalance, -twinned pairs)."""
    counts = [np.bincount(chosen[:, a], minlength=int(sizes[a])) for a in range(len(sizes))]
    bad_values = sum(int(np.sum(c <= 1)) for c in counts)
    differs = chosen[:, None, :] != chosen[None, :, :]
    twin = differs & (differs.sum(axis=-1) == 1)[..., None]
    twinned = int(twin.any(axis=1).sum())
    unneeded = int((~twin.any(axis=(0, 1))).sum())
    imbalance = sum(int(c.max() - c.min()) for c in counts)
    return bad_values, unneeded, imbalance, -twinned


@functools.cache
def _search_classes(k: int) -> tuple[tuple[int, ...], ...]:
    """Value indices of k classes: deterministic hill climbing with restarts over k-subsets."""
    combos = np.array(list(product(*(range(len(v)) for v in ATTRIBUTES.values()))))
    n = len(combos)
    sizes = np.array([len(v) for v in ATTRIBUTES.values()])
    if k == n:
        return tuple(tuple(int(v) for v in row) for row in combos)
    rng = np.random.default_rng(20210131)
    best_set, best_score = None, None
    for _ in range(6):
        current = rng.permutation(n)
        score = _class_score(combos[current[:k]], sizes)
        for _ in range(1500):
            i, j = int(rng.integers(k)), int(rng.integers(k, n))
            current[[i, j]] = current[[j, i]]
            new = _class_score(combos[current[:k]], sizes)
            if new <= score:
                score = new
            else:
                current[[i, j]] = current[[j, i]]
        if best_score is None or score < best_score:
            best_set, best_score = np.sort(current[:k]), score
    return tuple(tuple(int(v) for v in row) for row in combos[best_set])
