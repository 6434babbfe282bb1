"""The counterfactual measures (tdsa.experiments.counterfactual): hand-made maps and logits with
known answers, then the driver end to end on a run trained for one epoch."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from tdsa.cli import main
from tdsa.data import build_dataset, build_transforms, synthetic
from tdsa.engine.checkpoint import load_model
from tdsa.errors import DataError
from tdsa.experiments import counterfactual as cf

# ------------------------------------------------------------------ pure measures


def test_group_responses_is_gap_of_ccmp() -> None:
    torch.manual_seed(0)
    features = torch.rand(2, 6, 3, 4)  # K = 3 classes x xi = 2
    got = cf.group_responses(features, 2)
    for b in range(2):
        for k in range(3):
            total = 0.0
            for i in range(3):
                for j in range(4):
                    pair = features[b, 2 * k:2 * k + 2, i, j].tolist()
                    total += max(pair)
            assert got[b, k].item() == pytest.approx(total / 12)


def test_reliance_counts() -> None:
    labels = torch.tensor([0, 1, 2, 0])
    orig = torch.tensor([[5.0, 0, 0], [0, 5, 0], [5, 0, 0], [3, 1, 0]])
    twin = torch.tensor([[0.0, 5, 0], [0, 5, 0], [0, 0, 5], [0, 0, 4]])
    # correct: pairs 0, 1, 3; changed among them: 0 and 3 (pair 2 was wrong already)
    assert cf.reliance_counts(orig, twin, labels) == (2, 3)
    with pytest.raises(ValueError, match="logits must be two"):
        cf.reliance_counts(orig, twin[:, :2], labels)


def test_evidence_groups_and_control_classes() -> None:
    class_values = torch.tensor([0, 1, 0, 2])
    labels = torch.tensor([0, 3])
    swapped = torch.tensor([0, 2])
    groups = cf.evidence_groups(class_values, labels, swapped)
    assert groups["true"].tolist() == [[True, False, False, False], [False, False, False, True]]
    assert groups["shared"].tolist() == [[False, False, True, False], [False] * 4]
    assert groups["unused"].tolist() == [[False, True, False, True], [True, True, True, False]]
    assert cf.control_classes(class_values, labels, swapped).tolist() == [1, 0]
    # Class 2 with value 0: the first class after it without value 0 is class 3.
    assert cf.control_classes(class_values, torch.tensor([2]), torch.tensor([0])).tolist() == [3]
    same = torch.tensor([1, 1, 1])
    assert cf.control_classes(same, torch.tensor([0]), torch.tensor([1])).tolist() == [-1]


def test_evidence_sums() -> None:
    orig = torch.tensor([[2.0, 1.0], [4.0, 3.0]])
    twin = torch.tensor([[1.0, 1.5], [1.0, 3.0]])
    mask = torch.tensor([[True, False], [True, True]])
    drop, total = cf.evidence_sums(orig, twin, mask)
    assert drop == pytest.approx((2 - 1) + (4 - 1) + (3 - 3))
    assert total == pytest.approx(2 + 4 + 3)


def slow_chance(x: float, y: float, h: int, w: int, radius: float) -> float:
    inside = 0
    for i in range(h):
        for j in range(w):
            cx, cy = (j + 0.5) / w, (i + 0.5) / h
            inside += math.hypot(cx - x, cy - y) <= radius + 1e-6
    return inside / (h * w)


def test_where_hits_known_peaks() -> None:
    orig = torch.zeros(3, 4, 4)
    twin = orig.clone()
    twin[0, 1, 2] = 2.0  # peak at x = 2.5 / 4, y = 1.5 / 4
    twin[1, 1, 2] = -1.0  # a drop counts as much as a rise
    twin[1, 0, 0] = 0.5
    parts = torch.tensor([[0.6, 0.4], [0.1, 0.9], [0.5, 0.5]])
    hit, chance, changed = cf.where_hits(orig, twin, parts, radius=0.12)
    assert hit[:2].tolist() == [True, False]
    assert changed.tolist() == [True, True, False]  # pair 2 did not change this map
    for n, (x, y) in enumerate(parts.tolist()):
        assert chance[n].item() == pytest.approx(slow_chance(x, y, 4, 4, 0.12))
    points, moved = cf.difference_peaks(orig, twin)
    assert points[0].tolist() == pytest.approx([0.625, 0.375])
    assert moved.tolist() == [True, True, False]


def test_nested_differences() -> None:
    mid_orig = torch.zeros(1, 2, 4, 4)
    mid_twin = mid_orig.clone()
    mid_twin[0, 0, 0, 1] = 1.0  # inside the top-left 2 x 2 cells
    mid_twin[0, 1, 3, 3] = 1.0  # outside
    high = torch.zeros(1, 1, 2, 2)
    high[0, 0, 0, 0] = 1.0  # region: the top-left high cell, 2 x 2 mid cells
    inside, chance, changed = cf.nested_differences(mid_orig, mid_twin, high)
    assert inside.tolist() == [[True, False]]
    assert chance.tolist() == [[0.25, 0.25]]
    assert changed.tolist() == [[True, True]]


def test_meter_rates_and_aggregation() -> None:
    meter = cf.CounterfactualMeter(["eye", "tail"], ["fine", "coarse"], radius=0.3)
    k, xi_mid, xi_high = 2, 2, 1
    mid_o = torch.zeros(2, k * xi_mid, 4, 4)
    mid_t = mid_o.clone()
    high_o = torch.zeros(2, k * xi_high, 2, 2)
    high_o[:, :, 0, 0] = 1.0
    high_o[0, 0, 0, 0] = 4.0  # class 0's response on pair 0: GAP 1.0
    high_t = high_o.clone()
    high_t[0, 0, 0, 0] = 2.0  # ... halved by the swap: drop 0.5 of 1.0
    mid_t[0, 0, 0, 0] = 1.0
    logits_o = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    logits_t = torch.tensor([[0.0, 3.0], [0.0, 3.0]])
    meter.update("eye", labels=torch.tensor([0, 1]), swapped_from=torch.tensor([0, 1]),
                 class_values=torch.tensor([0, 1]), part_xy=torch.tensor([[0.2, 0.2]] * 2),
                 logits=(logits_o, logits_t),
                 features={"mid": (mid_o, mid_t), "high": (high_o, high_t)},
                 xi={"mid": xi_mid, "high": xi_high})
    rates = meter.summary()
    eye = rates["parts"]["eye"]
    assert eye["pairs"] == 2 and eye["correct"] == 2
    assert eye["reliance"] == pytest.approx(0.5)
    # high, true class: pair 0 drops 0.5 of 1.0, pair 1 drops 0 of 0.25.
    assert eye["evidence/high/true"] == pytest.approx(0.5 / 1.25)
    # unused class of pair 0 is class 1 (0.25, unchanged); of pair 1 class 0 (0.25 -> 0.25)
    assert eye["evidence/high/unused"] == pytest.approx(0.0)
    assert math.isnan(eye["evidence/high/shared"])
    # Only pair 0's true-class high map changed, at cell (0, 0) = (0.25, 0.25): a hit.
    assert eye["where/high/true"] == 1.0 and eye["where/high/true_pairs"] == 1
    assert eye["nesting/channels"] == 1 and eye["nesting/mid_in_high"] == 1.0
    assert set(rates["parts"]) == {"eye"}
    assert rates["granularity"]["fine"] == eye and rates["all"] == eye


# ------------------------------------------------------------------ the driver


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, train_tiny_tdsa) -> Path:
    """A compact TDSA run trained for one epoch on 4 synthetic classes (one thread)."""
    base = tmp_path_factory.mktemp("cf")
    root = synthetic.generate(base / "data", num_classes=4, train_per_class=8, test_per_class=3,
                              image_size=48, seed=0)
    return train_tiny_tdsa(root, base / "run")


def strict_json(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_report_end_to_end(run_dir: Path) -> None:
    report = cf.counterfactual_report(run_dir, "test", max_images=4, batch_size=3)
    assert report["images"] == 4
    # 4 images x (2 eye + 1 beak + 2 wing + 2 tail) twins
    assert report["pairs"] == 28
    assert {p: r["pairs"] for p, r in report["parts"].items()} == \
        {"beak": 4, "eye": 8, "wing": 8, "tail": 8}
    assert report["granularity"]["fine"]["pairs"] == 12
    assert report["all"]["pairs"] == 28
    for rates in report["parts"].values():
        for key in ("where/high/true_chance", "where/mid/true_chance", "nesting/chance"):
            assert 0.0 <= rates[key] <= 1.0
        assert set(rates) >= {"evidence/logit/true", "evidence/mid/unused",
                              "evidence/gradcam/true", "where/gradcam/true", "reliance"}
    saved = strict_json(run_dir / "counterfactual_test.json")
    assert saved["pairs"] == 28 and saved["parts"]["eye"]["pairs"] == 8


@pytest.mark.parametrize("selection", [{"max_images": 5}, {"images": [1, 4, 8, 11]}],
                         ids=["first-5", "spread"])
def test_report_reliance_matches_a_plain_recomputation(run_dir: Path, selection: dict) -> None:
    """The eye's reliance, recomputed by hand from rendered originals and twins of the first
    images or of a given list (one image of each class)."""
    report = cf.counterfactual_report(run_dir, "test", gradcam=False, out=run_dir / "cf5.json",
                                      **selection)
    chosen = selection.get("images") or range(selection["max_images"])
    assert report["images"] == len(chosen)
    model, cfg = load_model(run_dir / "best.pt")
    meta = synthetic.load_metadata(cfg.data.root)
    transform = build_transforms("scratch", cfg.data.image_size, train=False)
    labels = build_dataset("synthetic", cfg.data.root, "test").targets

    def predict(bird: synthetic.RenderedBird) -> int:
        buffer = io.BytesIO()
        bird.image.save(buffer, format="JPEG", quality=92, subsampling=0)
        with Image.open(buffer) as image, torch.no_grad():
            return int(model(transform(image.convert("RGB")).unsqueeze(0)).argmax())

    assert sorted({labels[i] for i in chosen}) == ([0, 1] if "max_images" in selection
                                                   else [0, 1, 2, 3])
    correct = changed = 0
    for i in chosen:
        pred = predict(synthetic.render_image(meta, "test", i))
        for value in synthetic.twin_values(meta, "test", i, "eye"):
            if pred == labels[i]:
                correct += 1
                changed += predict(synthetic.render_twin(meta, "test", i, part="eye",
                                                         value=value)) != pred
    eye = report["parts"]["eye"]
    assert eye["correct"] == correct
    expected = changed / correct if correct else math.nan
    assert eye["reliance"] == pytest.approx(expected, nan_ok=True)
    assert "where/gradcam/true" not in eye


def test_cli(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cf.json"
    assert main(["counterfactual", "--run", str(run_dir), "--max-images", "2", "--threads", "1",
                 "--no-gradcam", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(2 images, 14 twins)" in printed and f"wrote {out}" in printed
    for row in ("beak", "eye", "wing", "tail", "fine", "coarse", "all"):
        assert any(line.startswith(row) for line in printed.splitlines())
    assert strict_json(out)["images"] == 2
    assert main(["counterfactual", "--run", str(tmp_path)]) == 1
    assert "best.pt not found: expected a run folder with best.pt" in capsys.readouterr().err


def test_report_errors(run_dir: Path) -> None:
    with pytest.raises(DataError, match="has no val split"):
        cf.counterfactual_report(run_dir, "val")
    with pytest.raises(ValueError, match="max_images must be a positive integer, got 0"):
        cf.counterfactual_report(run_dir, "test", max_images=0)
    with pytest.raises(ValueError, match="give images or max_images, not both"):
        cf.counterfactual_report(run_dir, "test", max_images=2, images=[0])
    with pytest.raises(ValueError, match=r"images: 12 is outside 0\.\.11 \(test split\)"):
        cf.counterfactual_report(run_dir, "test", images=[0, 12])
    with pytest.raises(ValueError, match="images repeats an index"):
        cf.counterfactual_report(run_dir, "test", images=[3, 3])
    with pytest.raises(ValueError, match="images is empty"):
        cf.counterfactual_report(run_dir, "test", images=[])
