"""Tests of the synthetic bird classes (tdsa.data.synthetic.classes): the attribute values of
each class."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from tdsa.data import synthetic


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
