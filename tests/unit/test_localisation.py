"""evaluate_localisation: forced maps with known answers, and a random tiny model against a slow
per-image loop reference (peaks, wrong-class control, Grad-CAM, chance, body centre, nesting)."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tdsa.experiments.localisation import dataset_parts, evaluate_localisation, wrong_classes
from tdsa.metrics import DEFAULT_RADIUS

NAMES = ["beak", "eye", "wing", "tail", "breast"]
GRAN = {"beak": "fine", "eye": "fine", "wing": "coarse", "tail": "coarse"}
SCORED = ["beak", "eye", "wing", "tail"]  # breast carries no class attribute
K, XI_MID, XI_HIGH = 3, 4, 2
RADIUS = 0.12


class PartsDataset(torch.utils.data.Dataset):
    """Images ``[3, 16, 16]`` of an original ``size`` (w, h) with pixel part locations."""

    part_names = NAMES
    discriminative_parts = GRAN

    def __init__(self, images, labels, parts, sizes, boxes=None):
        self.images, self.labels, self._parts, self.sizes = images, labels, parts, sizes
        self.boxes = boxes

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def parts(self, i):
        return self._parts[i].copy()

    def image_size(self, i):
        return self.sizes[i]

    def bbox(self, i):
        return self.boxes[i]


class TinyNet(nn.Module):
    """mid 8x8 (K*4 channels) and high 4x4 (K*2 channels) from 16x16 images; flatten head."""

    xi = (XI_MID, XI_HIGH)

    def __init__(self):
        super().__init__()
        self.mid = nn.Conv2d(3, K * XI_MID, 1)
        self.high = nn.Conv2d(3, K * XI_HIGH, 1)
        self.head = nn.Linear(K * XI_HIGH * 16, K)

    def forward_features(self, x):
        return {"mid": F.relu(self.mid(F.avg_pool2d(x, 2))),
                "high": F.relu(self.high(F.avg_pool2d(x, 4)))}

    def forward_head(self, high):
        return self.head(high.flatten(1))

    def forward(self, x):
        return self.forward_head(self.forward_features(x)["high"])


def _cell(h, w, row, col):
    return ((col + 0.5) / w, (row + 0.5) / h)


def _peak(m):
    """Row-major first arg-max of a 2-D list, as a normalised cell centre."""
    h, w = len(m), len(m[0])
    best, where = -math.inf, (0, 0)
    for r in range(h):
        for c in range(w):
            if m[r][c] > best:
                best, where = m[r][c], (r, c)
    return _cell(h, w, *where)


def _hit(point, parts):
    """Name of the nearest visible scored part within RADIUS of ``point``, else None."""
    best, name = math.inf, None
    for pname, (x, y, vis) in parts.items():
        if pname in GRAN and vis:
            d = math.hypot(point[0] - x, point[1] - y)
            if d < best:
                best, name = d, pname
    return name if best <= RADIUS + 1e-6 else None


class Tally:
    """Slow reference of one source: hits and denominators, as the metrics define them."""

    def __init__(self):
        self.hits = {p: 0.0 for p in SCORED}
        self.part_points = {p: 0.0 for p in SCORED}
        self.group_points = {"fine": 0.0, "coarse": 0.0}
        self.points = 0
        self.covered = 0.0
        self.images = 0

    def add(self, hit_probs, parts):
        """``hit_probs``: one dict part -> probability per point."""
        n = len(hit_probs)
        self.points += n
        self.images += 1
        for p in SCORED:
            self.hits[p] += sum(h.get(p, 0.0) for h in hit_probs)
            self.part_points[p] += n * parts[p][2]
        for g in self.group_points:
            self.group_points[g] += n * any(parts[p][2] for p in SCORED if GRAN[p] == g)
        for p in SCORED:
            miss = 1.0
            for h in hit_probs:
                miss *= 1.0 - h.get(p, 0.0)
            self.covered += 1.0 - miss

    def summary(self, src):
        out = {f"hit_rate/{src}": sum(self.hits.values()) / self.points,
               f"coverage/{src}": self.covered / self.images}
        for g, pts in self.group_points.items():
            out[f"hit_rate/{src}/granularity:{g}"] = (
                sum(self.hits[p] for p in SCORED if GRAN[p] == g) / pts)
        for p in SCORED:
            out[f"hit_rate/{src}/part:{p}"] = self.hits[p] / self.part_points[p]
        return out


def _one_hot(name):
    return {} if name is None else {name: 1.0}


def _chance(parts, h, w):
    counts: dict[str, float] = {}
    for r in range(h):
        for c in range(w):
            name = _hit(_cell(h, w, r, c), parts)
            if name is not None:
                counts[name] = counts.get(name, 0.0) + 1.0 / (h * w)
    return counts


def _nested(mid_maps, high_maps):
    """Per mid channel: is its peak inside the >= 0.5 * max region of its gating high map
    (nearest-upsampled 4x4 -> 8x8); and the region's share of cells (chance)."""
    r = len(mid_maps) // len(high_maps)
    inside, chance = [], []
    for j, m in enumerate(mid_maps):
        g = high_maps[j // r]
        peak = max(max(row) for row in g)
        up = [[g[a // 2][b // 2] for b in range(8)] for a in range(8)]
        region = [[peak > 0 and up[a][b] >= 0.5 * peak for b in range(8)] for a in range(8)]
        px, py = _peak(m)
        inside.append(float(region[int(py * 8)][int(px * 8)]))
        chance.append(sum(map(sum, region)) / 64)
    return inside, chance


def _reference(model, ds):
    tallies = {s: Tally() for s in ("high", "mid", "wrong_high", "wrong_mid", "gradcam",
                                    "chance_high", "chance_mid", "centre")}
    nest = {"mid_in_high": [], "chance": [], "wrong_mid_in_high": [], "wrong_chance": []}
    weight = model.head.weight.detach()
    for i in range(len(ds)):
        img, y = ds[i]
        w_px, h_px = ds.image_size(i)
        parts = {n: (float(x) / w_px, float(yy) / h_px, float(v))
                 for n, (x, yy, v) in zip(NAMES, ds.parts(i), strict=True)}
        with torch.no_grad():
            feats = model.forward_features(img[None])
        mid, high = feats["mid"][0].tolist(), feats["high"][0].tolist()
        for prefix, cls in (("", y), ("wrong_", (y + 1) % K)):
            hm = high[cls * XI_HIGH:(cls + 1) * XI_HIGH]
            mm = mid[cls * XI_MID:(cls + 1) * XI_MID]
            tallies[f"{prefix}high"].add([_one_hot(_hit(_peak(m), parts)) for m in hm], parts)
            tallies[f"{prefix}mid"].add([_one_hot(_hit(_peak(m), parts)) for m in mm], parts)
            inside, chance = _nested(mm, hm)
            nest[f"{prefix}mid_in_high"] += inside
            nest[f"{prefix}chance"] += chance
        tallies["chance_high"].add([_chance(parts, 4, 4)] * XI_HIGH, parts)
        tallies["chance_mid"].add([_chance(parts, 8, 8)] * XI_MID, parts)
        # Grad-CAM through a flatten + linear head: d logit_y / d high = W[y] reshaped.
        grads = weight[y].reshape(K * XI_HIGH, 4, 4)
        acts = feats["high"][0]
        cam = torch.relu((grads.mean(dim=(1, 2))[:, None, None] * acts).sum(0)).tolist()
        tallies["gradcam"].add([_one_hot(_hit(_peak(cam), parts))], parts)
        bx, by, bw, bh = ds.bbox(i)
        centre = ((bx + bw / 2) / w_px, (by + bh / 2) / h_px)
        tallies["centre"].add([_one_hot(_hit(centre, parts))], parts)
    out = {}
    for src, t in tallies.items():
        out.update(t.summary(src))
    for key, vals in nest.items():
        out[f"nesting/{key}"] = sum(vals) / len(vals)
    return out


def _random_dataset(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = torch.randn(n, 3, 16, 16, generator=g)
    labels = [int(v) for v in rng.integers(0, K, n)]
    sizes = [(64, 48) if i % 2 else (40, 40) for i in range(n)]
    parts, boxes = [], []
    for w, h in sizes:
        p = np.zeros((len(NAMES), 3), dtype=np.float32)
        for j in range(len(NAMES)):
            if rng.random() < 0.85:
                p[j] = (rng.uniform(0, w), rng.uniform(0, h), 1.0)
        parts.append(p)
        boxes.append((rng.uniform(0, w / 2), rng.uniform(0, h / 2), w / 3, h / 3))
    return PartsDataset(images, labels, parts, sizes, boxes)


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_matches_slow_reference_on_a_random_model(batch_size):
    torch.manual_seed(0)
    model, ds = TinyNet(), _random_dataset()
    got = evaluate_localisation(model, ds, batch_size=batch_size, radius=RADIUS)
    want = _reference(model, ds)
    assert got["images"] == len(ds)
    missing = sorted(set(want) - set(got))
    assert not missing, missing
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def _cells_dataset():
    """Two 32x32 images (tensors 16x16) whose parts sit on centres of the 4x4 high grid."""
    px = lambda row, col: ((col + 0.5) * 8, (row + 0.5) * 8)  # noqa: E731
    rows = []
    for label in (0, 2):
        p = np.zeros((len(NAMES), 3), dtype=np.float32)
        p[0] = (*px(0, 3), 1)  # beak
        p[1] = (*px(0, 0), 1)  # eye
        p[2] = (*px(3, 3), 1)  # wing
        p[3] = (0, 0, 0)  # tail invisible
        p[4] = (*px(2, 1), 1)  # breast: not scored
        rows.append((label, p))
    return PartsDataset(torch.zeros(2, 3, 16, 16), [r[0] for r in rows], [r[1] for r in rows],
                        [(32, 32)] * 2, [(8, 8, 16, 16)] * 2)


def _forced_features(labels):
    """True class: high channel 0 on the eye, 1 on the wing; its mid channels peak inside
    those channels' regions. Wrong class (y+1): high peaks on the breast and a background
    cell, mid peaks outside its high regions."""

    def forward_features(x):
        b = x.shape[0]
        high = torch.zeros(b, K * XI_HIGH, 4, 4)
        mid = torch.zeros(b, K * XI_MID, 8, 8)
        for i, y in enumerate(labels[:b]):
            t, w = y * XI_HIGH, ((y + 1) % K) * XI_HIGH
            high[i, t, 0, 0] = 1.0  # eye
            high[i, t + 1, 3, 3] = 1.0  # wing
            high[i, w, 2, 1] = 1.0  # breast (not a scored part)
            high[i, w + 1, 3, 0] = 1.0  # background
            tm, wm = y * XI_MID, ((y + 1) % K) * XI_MID
            mid[i, tm, 1, 1] = mid[i, tm + 1, 0, 0] = 1.0  # inside high cell (0, 0)
            mid[i, tm + 2, 7, 7] = mid[i, tm + 3, 6, 6] = 1.0  # inside high cell (3, 3)
            mid[i, wm:wm + XI_MID, 0, 7] = 1.0  # outside both wrong-class regions
        return {"mid": mid, "high": high}

    return forward_features


def test_forced_peaks_give_known_answers(monkeypatch):
    ds = _cells_dataset()
    model = TinyNet()
    monkeypatch.setattr(model, "forward_features", _forced_features(ds.labels))
    got = evaluate_localisation(model, ds, batch_size=2, gradcam=False)
    assert got["hit_rate/high"] == 1.0
    assert got["hit_rate/high/granularity:fine"] == 0.5  # one of two peaks on the eye
    assert got["hit_rate/high/granularity:coarse"] == 0.5
    assert got["hit_rate/high/part:eye"] == 0.5
    assert got["hit_rate/high/part:beak"] == 0.0
    assert math.isnan(got["hit_rate/high/part:tail"])  # never visible
    assert got["coverage/high"] == 2.0
    assert got["hit_rate/wrong_high"] == 0.0  # breast is not scored; background misses
    assert got["nesting/mid_in_high"] == 1.0
    assert got["nesting/wrong_mid_in_high"] == 0.0
    assert got["nesting/chance"] == pytest.approx(4 / 64)  # one high cell = 2x2 mid cells
    # box centre (16, 16) of 32 px = (0.5, 0.5): 0.35 from every scored part
    assert got["hit_rate/centre"] == 0.0
    assert not any(k.startswith(("hit_rate/gradcam", "coverage/gradcam")) for k in got)


def test_the_default_radius_is_the_metrics_one():
    assert inspect.signature(evaluate_localisation).parameters["radius"].default == DEFAULT_RADIUS


def test_wrong_classes_is_a_fixed_other_class():
    y = torch.tensor([0, 1, 2, 2])
    assert wrong_classes(y, 3).tolist() == [1, 2, 0, 0]
    assert bool((wrong_classes(y, 3) != y).all())
    with pytest.raises(ValueError, match="at least 2 classes"):
        wrong_classes(torch.tensor([0]), 1)


def test_dataset_without_parts_is_a_clear_error():
    ds = torch.utils.data.TensorDataset(torch.zeros(2, 3, 16, 16), torch.zeros(2))
    with pytest.raises(ValueError, match="TensorDataset has no part locations"):
        evaluate_localisation(TinyNet(), ds, batch_size=2)


def test_dataset_parts_scores_every_part_when_none_is_marked():
    ds = _cells_dataset()
    assert dataset_parts(ds) == (NAMES, ["fine", "fine", "coarse", "coarse", None])
    ds.discriminative_parts = None
    assert dataset_parts(ds) == (NAMES, None)
