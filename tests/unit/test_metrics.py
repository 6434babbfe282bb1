"""Metrics: classification counts and part-localisation scores against slow loop references."""

from __future__ import annotations

import math

import pytest
import torch

from tdsa.metrics import (
    LocalisationMeter,
    box_centres,
    chance_part_probs,
    class_channels,
    confusion_matrix,
    map_peaks,
    nesting,
    nesting_chance,
    normalise_parts,
    part_coverage,
    part_hits,
    per_class_accuracy,
    topk_correct,
)

# ---------------------------------------------------------------- classification


def _topk_reference(logits, targets, k):
    count = 0
    for row, t in zip(logits.tolist(), targets.tolist(), strict=True):
        order = sorted(range(len(row)), key=lambda j: -row[j])
        if t in order[: min(k, len(row))]:
            count += 1
    return count


@pytest.mark.parametrize(("batch", "classes"), [(1, 1), (7, 3), (33, 10), (50, 200)])
def test_topk_correct_matches_loop_reference(batch, classes):
    g = torch.Generator().manual_seed(batch * 1000 + classes)
    logits = torch.randn(batch, classes, generator=g)
    targets = torch.randint(0, classes, (batch,), generator=g)
    ks = (1, 2, 5)
    got = topk_correct(logits, targets, ks)
    assert set(got) == set(ks)
    for k in ks:
        assert isinstance(got[k], int)
        assert got[k] == _topk_reference(logits, targets, k)


def test_topk_correct_known_values_and_clipping():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.2], [0.3, 0.2, 0.5]])
    targets = torch.tensor([1, 2, 1])
    # row 0: target top-1; row 1: target 2nd; row 2: target 3rd.
    assert topk_correct(logits, targets, ks=(1, 2, 3, 5)) == {1: 1, 2: 2, 3: 3, 5: 3}


def test_topk_correct_sums_across_batches():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 12, generator=g)
    targets = torch.randint(0, 12, (40,), generator=g)
    whole = topk_correct(logits, targets)
    parts = [topk_correct(logits[i : i + 16], targets[i : i + 16]) for i in range(0, 40, 16)]
    assert whole == {k: sum(p[k] for p in parts) for k in (1, 5)}


@pytest.mark.parametrize("bad", [(0,), (1.5,), (True,)])
def test_topk_correct_rejects_bad_k(bad):
    with pytest.raises(ValueError, match="positive integer"):
        topk_correct(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), bad)


def test_topk_correct_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"logits must be 2-D"):
        topk_correct(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets must be 1-D \[B\] with B=2"):
        topk_correct(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))


def test_confusion_matrix_matches_loop_reference():
    g = torch.Generator().manual_seed(1)
    k = 6
    preds = torch.randint(0, k, (100,), generator=g)
    targets = torch.randint(0, k, (100,), generator=g)
    ref = torch.zeros(k, k, dtype=torch.long)
    for p, t in zip(preds.tolist(), targets.tolist(), strict=True):
        ref[t, p] += 1
    got = confusion_matrix(preds, targets, k)
    assert got.dtype == torch.long
    assert torch.equal(got, ref)


def test_confusion_matrix_rows_are_true_classes():
    got = confusion_matrix(torch.tensor([2, 2]), torch.tensor([0, 0]), 3)
    assert got[0, 2] == 2 and got.sum() == 2


def test_confusion_matrix_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"preds must be class indices in \[0, 3\)"):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)
    with pytest.raises(ValueError, match="same number of elements"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)


def test_per_class_accuracy_matches_loop_and_nan_for_empty_class():
    conf = torch.tensor([[3, 1, 0, 0], [0, 0, 0, 0], [2, 2, 4, 0], [0, 0, 0, 5]])
    got = per_class_accuracy(conf)
    assert got[0] == pytest.approx(0.75)
    assert math.isnan(got[1])
    assert got[2] == pytest.approx(0.5)
    assert got[3] == pytest.approx(1.0)
    assert torch.nanmean(got).item() == pytest.approx((0.75 + 0.5 + 1.0) / 3)


# ---------------------------------------------------------------- localisation


def _peak_map(h, w, row, col):
    m = torch.zeros(h, w)
    m[row, col] = 1.0
    return m


def _hit_reference(x, y, parts, radius):
    """Nearest visible part within radius (inclusive), by plain loops; -1 if none."""
    best, best_d = -1, math.inf
    for p, (px, py, vis) in enumerate(parts):
        if vis <= 0:
            continue
        d = math.hypot(x - px, y - py)
        if d <= radius + 1e-9 and d < best_d:
            best, best_d = p, d
    return best


def test_map_peaks_are_normalised_cell_centres():
    maps = torch.stack([_peak_map(4, 5, 1, 2), _peak_map(4, 5, 3, 0)]).reshape(2, 1, 4, 5)
    peaks = map_peaks(maps)
    assert peaks.shape == (2, 1, 2)
    assert peaks[0, 0].tolist() == pytest.approx([2.5 / 5, 1.5 / 4])
    assert peaks[1, 0].tolist() == pytest.approx([0.5 / 5, 3.5 / 4])


def test_map_peaks_same_point_at_any_resolution():
    # The same image region (the top-left quarter's centre cell) at two resolutions.
    coarse = _peak_map(2, 2, 0, 0)
    fine = torch.zeros(4, 4)
    fine[0:2, 0:2] = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert map_peaks(coarse).tolist() == pytest.approx([0.25, 0.25])
    assert map_peaks(fine).tolist() == pytest.approx([0.375, 0.375])


def test_part_hits_on_off_edge_and_invisible():
    parts = torch.tensor([[[0.375, 0.125, 1.0], [0.125, 0.125, 0.0], [0.9, 0.9, 1.0]]])
    # Peak at cell (0, 0) of a 4x4 map: (0.125, 0.125), exactly on invisible part 1 and
    # exactly 0.25 from visible part 0.
    point = map_peaks(_peak_map(4, 4, 0, 0)).reshape(1, 1, 2)
    assert part_hits(point, parts, radius=0.25).tolist() == [[0]]  # edge counts as a hit
    assert part_hits(point, parts, radius=0.2499).tolist() == [[-1]]  # invisible never hits
    on_part = torch.tensor([[[0.9, 0.9], [0.5, 0.5]]])
    assert part_hits(on_part, parts, radius=0.12).tolist() == [[2, -1]]


def test_part_hits_picks_nearest_visible_part_and_matches_loops():
    g = torch.Generator().manual_seed(3)
    points = torch.rand(3, 20, 2, generator=g)
    parts = torch.rand(3, 5, 3, generator=g)
    parts[..., 2] = (parts[..., 2] > 0.3).float()
    got = part_hits(points, parts, radius=0.2)
    for b in range(3):
        for n in range(20):
            x, y = points[b, n].tolist()
            assert got[b, n].item() == _hit_reference(x, y, parts[b].tolist(), 0.2)
    assert (got >= 0).any() and (got == -1).any()  # the sample exercises both outcomes


def test_part_coverage_counts_distinct_parts():
    hits = torch.tensor([[0, 0, 2, -1], [-1, -1, -1, -1], [3, 1, 0, 2]])
    assert part_coverage(hits, num_parts=4).tolist() == [2, 0, 4]


@pytest.mark.parametrize(("h", "w", "radius"), [(7, 5, 0.2), (14, 14, 0.12), (3, 8, 0.5)])
def test_chance_part_probs_equal_enumeration(h, w, radius):
    g = torch.Generator().manual_seed(h * w)
    parts = torch.rand(2, 4, 3, generator=g)
    parts[0, 1, 2] = 0.0
    parts[..., 2] = (parts[..., 2] > 0.2).float()
    got = chance_part_probs(parts, (h, w), radius)
    for b in range(2):
        counts = [0] * 4
        for i in range(h):
            for j in range(w):
                p = _hit_reference((j + 0.5) / w, (i + 0.5) / h, parts[b].tolist(), radius)
                if p >= 0:
                    counts[p] += 1
        assert got[b].tolist() == pytest.approx([c / (h * w) for c in counts])
    assert got[0, 1] == 0.0  # an invisible part is never hit by chance either


def _nesting_reference(mid, high, threshold):
    b, cm, hm, wm = mid.shape
    ch, hh, wh = high.shape[1:]
    r = cm // ch
    nested = torch.zeros(b, cm, dtype=torch.bool)
    chance = torch.zeros(b, cm)
    for i in range(b):
        for j in range(cm):
            hmap = high[i, j // r]
            peak = hmap.max().item()

            def inside(y, x, hmap=hmap, peak=peak):
                v = hmap[y * hh // hm, x * wh // wm].item()
                return peak > 0 and v >= threshold * peak

            flat = int(mid[i, j].argmax())
            nested[i, j] = inside(flat // wm, flat % wm)
            chance[i, j] = sum(inside(y, x) for y in range(hm) for x in range(wm)) / (hm * wm)
    return nested, chance


def test_nesting_hand_made_nested_and_not_nested():
    high = torch.zeros(1, 2, 2, 2)
    high[0, 0, 0, 0] = 1.0  # region of high channel 0: top-left quarter
    high[0, 1, 1, 1] = 2.0  # region of high channel 1: bottom-right quarter
    mid = torch.zeros(1, 4, 4, 4)
    mid[0, 0, 1, 1] = 1.0  # gated by high 0, inside its region -> nested
    mid[0, 1, 3, 3] = 1.0  # gated by high 0, in high 1's region -> not nested
    mid[0, 2, 2, 3] = 1.0  # gated by high 1, inside -> nested
    mid[0, 3, 0, 1] = 1.0  # gated by high 1, outside -> not nested
    assert nesting(mid, high).tolist() == [[True, False, True, False]]
    assert nesting_chance(mid, high).tolist() == [[0.25, 0.25, 0.25, 0.25]]
    dead = torch.zeros(1, 2, 2, 2)
    assert nesting(mid, dead).tolist() == [[False] * 4]


def test_nesting_matches_loop_reference_on_odd_sizes():
    g = torch.Generator().manual_seed(5)
    high = torch.relu(torch.randn(3, 3, 5, 4, generator=g))
    mid = torch.randn(3, 9, 11, 9, generator=g)
    ref_nested, ref_chance = _nesting_reference(mid, high, 0.4)
    assert torch.equal(nesting(mid, high, 0.4), ref_nested)
    assert torch.allclose(nesting_chance(mid, high, 0.4), ref_chance)


def test_nesting_rejects_non_integer_ratio():
    with pytest.raises(ValueError, match="C_mid / C_high must be an integer"):
        nesting(torch.zeros(1, 5, 4, 4), torch.zeros(1, 3, 2, 2))


def test_class_channels_match_loop_reference():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(4, 5 * 3, 2, 3, generator=g)
    targets = torch.tensor([4, 0, 2, 2])
    got = class_channels(feats, targets, 3)
    for b, t in enumerate(targets.tolist()):
        assert torch.equal(got[b], feats[b, 3 * t : 3 * t + 3])
    with pytest.raises(ValueError, match=r"targets must be class indices in \[0, 5\)"):
        class_channels(feats, torch.tensor([5, 0, 0, 0]), 3)


def test_normalise_parts_and_box_centres():
    parts = torch.tensor([[50.0, 20.0, 1.0], [10.0, 10.0, 0.0]])
    assert normalise_parts(parts, 100, 40).tolist() == [[0.5, 0.5, 1.0], [0.0, 0.0, 0.0]]
    assert box_centres(torch.tensor([0.2, 0.4, 0.4, 0.2])).tolist() == pytest.approx([0.4, 0.5])
    assert box_centres(torch.tensor([0.2, 0.4, 0.4, 0.2]), "xyxy").tolist() == pytest.approx(
        [0.3, 0.3]
    )


NAMES = ["beak", "eye", "wing", "breast"]
GRAIN = ["fine", "fine", "coarse", None]


def _meter_batch():
    """Two images, 4x4 high maps (3 channels), 8x8 mid maps (6 channels, r = 2)."""
    parts = torch.tensor(
        [
            # beak, eye, wing, breast(non-discriminative)
            [[0.125, 0.125, 1], [0.875, 0.125, 1], [0.375, 0.625, 1], [0.875, 0.875, 1]],
            [[0.125, 0.125, 1], [0.875, 0.125, 0], [0.375, 0.625, 1], [0.875, 0.875, 1]],
        ],
        dtype=torch.float32,
    )
    high = torch.zeros(2, 3, 4, 4)
    high[0, 0, 0, 0] = 1  # beak
    high[0, 1, 0, 3] = 1  # eye
    high[0, 2, 3, 3] = 1  # breast only: not discriminative -> miss
    high[1, 0, 0, 0] = 1  # beak
    high[1, 1, 0, 0] = 1  # beak again
    high[1, 2, 0, 3] = 1  # on the eye, but it is invisible -> miss
    mid = torch.zeros(2, 6, 8, 8)
    mid[0, 0, 0, 0] = 1  # beak; gated by high 0 (top-left cell) -> nested
    mid[0, 1, 5, 2] = 1  # wing; gated by high 0 -> not nested
    for b, c in [(0, 2), (0, 3), (0, 4), (0, 5), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (1, 5)]:
        mid[b, c, 7, 0] = 1  # nowhere near a part, never nested
    return high, mid, parts


def test_meter_known_summary():
    high, mid, parts = _meter_batch()
    meter = LocalisationMeter(NAMES, GRAIN, radius=0.1)
    meter.update(high, parts, mid, centres=torch.tensor([[0.375, 0.625], [0.5, 0.5]]))
    s = meter.summary()
    assert all(type(v) is float for v in s.values())
    assert s["images"] == 2.0
    assert s["hit_rate/high"] == pytest.approx(4 / 6)
    assert s["hit_rate/high/part:beak"] == pytest.approx(3 / 6)
    assert s["hit_rate/high/part:eye"] == pytest.approx(1 / 3)  # visible in image 0 only
    assert s["hit_rate/high/part:wing"] == 0.0
    assert "hit_rate/high/part:breast" not in s
    assert s["hit_rate/high/granularity:fine"] == pytest.approx(4 / 6)
    assert s["hit_rate/high/granularity:coarse"] == 0.0
    assert s["coverage/high"] == pytest.approx((2 + 1) / 2)
    assert s["hit_rate/mid"] == pytest.approx(2 / 12)
    assert s["coverage/mid"] == pytest.approx((2 + 0) / 2)
    assert s["hit_rate/centre"] == pytest.approx(1 / 2)
    assert s["hit_rate/centre/part:wing"] == pytest.approx(1 / 2)
    assert s["nesting/mid_in_high"] == pytest.approx(1 / 12)
    # Each high map is one hot cell of 4x4 -> each region is 4 of the 64 mid cells.
    assert s["nesting/chance"] == pytest.approx(4 / 64)


def test_meter_chance_is_exact_expectation():
    high, mid, parts = _meter_batch()
    meter = LocalisationMeter(NAMES, GRAIN, radius=0.3)
    meter.update(high, parts, mid)
    s = meter.summary()
    disc = parts[:, :3]
    q = chance_part_probs(disc, (4, 4), 0.3)  # [2, 3]
    assert s["hit_rate/chance_high"] == pytest.approx(q.sum(1).mean().item())
    assert s["hit_rate/chance_high/part:eye"] == pytest.approx(q[0, 1].item())
    assert s["hit_rate/chance_high/granularity:fine"] == pytest.approx(
        q[:, :2].sum(1).mean().item()
    )
    # Expected distinct parts hit by 3 independent uniform cells, by enumerating all triples.
    cells = [(j + 0.5) / 4 for j in range(4)]
    grid = [(x, y) for y in cells for x in cells]
    expected = 0.0
    for b in range(2):
        hit = [_hit_reference(x, y, disc[b].tolist(), 0.3) for x, y in grid]
        total = sum(
            len({hit[a], hit[c], hit[d]} - {-1})
            for a in range(16)
            for c in range(16)
            for d in range(16)
        )
        expected += total / 16**3 / 2
    assert s["coverage/chance_high"] == pytest.approx(expected)
    q_mid = chance_part_probs(disc, (8, 8), 0.3)
    assert s["hit_rate/chance_mid"] == pytest.approx(q_mid.sum(1).mean().item())


def test_meter_accumulates_batches_and_takes_cam_maps():
    high, mid, parts = _meter_batch()
    whole = LocalisationMeter(NAMES)
    whole.update(high, parts, mid)
    split = LocalisationMeter(NAMES)
    split.update(high[:1], parts[:1], mid[:1])
    split.update(high[1:], parts[1:], mid[1:])
    a, b = whole.summary(), split.summary()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], nan_ok=True)
    assert "hit_rate/high/part:breast" in a  # no granularity: every part counts
    cam = LocalisationMeter(NAMES, GRAIN)
    cam.update(high[:, :1], parts)  # a CAM map per image: [B, 1, h, w]
    s = cam.summary()
    assert s["hit_rate/high"] == 1.0 and "hit_rate/mid" not in s and "nesting/chance" not in s
    cam.reset()
    assert cam.summary() == {"images": 0.0}


def test_meter_rejects_mismatched_parts():
    meter = LocalisationMeter(NAMES, GRAIN)
    with pytest.raises(ValueError, match="parts has 2 columns but part_names has 4"):
        meter.update(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="granularity has 1 entries"):
        LocalisationMeter(NAMES, ["fine"])
