"""Tests of the synthetic bird classes (tdsa.data.synthetic.classes): the attribute values of
each class."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from tdsa.data import synthetic
from tdsa.data.synthetic import choose_classes, exclusive_values, one_attribute_neighbours


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


def test_one_attribute_neighbours_and_exclusive_values_on_hand_made_classes() -> None:
    classes = [{"a": "x", "b": "p"}, {"a": "y", "b": "p"}, {"a": "x", "b": "q"},
               {"a": "z", "b": "r"}]
    # 0 differs from 1 (a) and 2 (b) only; 1 from 0; 2 from 0; 3 differs in both from all
    assert one_attribute_neighbours(classes) == [2, 1, 1, 0]
    # y (1), q (2), z and r (3) belong to one class each
    assert exclusive_values(classes) == [0, 1, 1, 2]


def test_the_generator_s_classes_crowd_as_they_grow_and_unique_part_parts_them() -> None:
    by_hand = {}
    for k in (12, 48):
        classes = choose_classes(k)
        by_hand[k] = sum(sum(1 for d in classes if sum(c[a] != d[a] for a in c) == 1)
                         for c in classes) / k
        assert sum(one_attribute_neighbours(classes)) / k == by_hand[k]
        assert exclusive_values(classes) == [0] * k, "every value is shared"
    assert by_hand[12] == 1.5 and by_hand[48] > 6, "the issue's count: 1.5 and about 6"
    unique = choose_classes(48, "eye_ring")
    assert all(n >= 1 for n in exclusive_values(unique)), "each class has its own eye ring"
    assert sum(one_attribute_neighbours(unique)) < sum(one_attribute_neighbours(
        choose_classes(48))), "no two classes differ in the eye ring alone any more"
