"""Counterfactual measures of class alignment on the synthetic birds.

Every class of the synthetic data has an eye ring and a beak, so "a channel peaks on the eye
ring" cannot tell a class-aligned channel from a saliency detector. These measures change the
attribute instead of moving the peak: each test image is compared with its *twins*
(:func:`tdsa.data.synthetic.render_twin`), identical except for one part's attribute value.
For each pair (image, twin) and part:

- **reliance**: among pairs whose original is classified correctly, the share whose twin gets a
  different prediction (does the classifier use that part?);
- **class evidence**: the relative drop ``sum(r(orig) - r(twin)) / sum(r(orig))`` of a class's
  response ``r`` (GAP of its CCMP map at a stage; also the softmax probability, and the mean of
  the true class's Grad-CAM) for three groups of classes: ``true`` (the image's class, whose
  own value is swapped out), ``shared`` (the other classes that have the swapped-out value at
  that part) and ``unused`` (the classes whose value at that part is not the swapped-out one:
  the attribute value removed is one they do not use). Class-aligned evidence drops for
  ``true`` (and ``shared``) and not for ``unused``; a saliency channel drops alike for all;
- **where the evidence is**: the peak of ``|map(orig) - map(twin)|`` (the true class's CCMP
  map at each stage, and Grad-CAM), scored as a hit when it lies within ``radius`` of the
  swapped part (as :mod:`tdsa.metrics` scores pointing), against the exact chance of a
  uniformly random cell of the same grid, beside the same for one ``control`` class (the
  first class after the true one, cyclically, that does not use the swapped-out value);
- **multi-grained**: at the mid stage, whether the peak of each of the true class's mid
  channels' ``|difference|`` lies inside the region of the high channel that gates it
  (:func:`tdsa.metrics.nesting`, the original image's high map), against its chance.

A cross-entropy run of the same network gets the same measures: its mid and high channels are
grouped by class in the same layout, and Grad-CAM needs no class channels. Pairs whose
difference map is zero everywhere (the change did not reach that map) are left out of the
``where`` and ``multi-grained`` rates and counted.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tdsa.data import SyntheticBirds, build_dataset, resolve_data_config, spec_transforms
from tdsa.data.synthetic import (
    PARTS,
    attribute_values,
    encode_as_saved,
    image_source,
    load_metadata,
    render_image,
    twin_values,
)
from tdsa.engine.checkpoint import load_model
from tdsa.errors import CheckpointError, ConfigError
from tdsa.losses import ccmp
from tdsa.metrics import (
    DEFAULT_RADIUS,
    chance_part_probs,
    class_channels,
    map_peaks,
    nesting,
    nesting_chance,
    part_hits,
)
from tdsa.models.base import TdsaNet
from tdsa.validation import check_number, check_positive_int

__all__ = [
    "EVIDENCE_GROUPS",
    "CounterfactualMeter",
    "control_classes",
    "counterfactual_report",
    "difference_peaks",
    "evidence_groups",
    "evidence_sums",
    "group_responses",
    "nested_differences",
    "reliance_counts",
    "where_hits",
]

EVIDENCE_GROUPS = ("true", "shared", "unused")
STAGES = ("mid", "high")


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


# ------------------------------------------------------------------ pure measures


def group_responses(features: Tensor, xi: int) -> Tensor:
    """Each class group's response, GAP of its CCMP map: ``[B, K*xi, h, w] -> [B, K]``."""
    return ccmp(features, xi).float().mean(dim=(-2, -1))


def reliance_counts(logits_orig: Tensor, logits_twin: Tensor, labels: Tensor) -> tuple[int, int]:
    """``(changed, correct)``: of the pairs whose original is predicted correctly
    (``correct``), how many twins get another prediction (``changed``). Logits ``[N, K]``."""
    if logits_orig.shape != logits_twin.shape or logits_orig.dim() != 2:
        raise ValueError(f"logits must be two [N, K] tensors of one shape, got "
                         f"{_shape(logits_orig)} and {_shape(logits_twin)}")
    labels = labels.reshape(-1).long().to(logits_orig.device)
    pred = logits_orig.argmax(dim=1)
    correct = pred == labels
    changed = correct & (logits_twin.argmax(dim=1) != pred)
    return int(changed.sum()), int(correct.sum())


def evidence_groups(class_values: Tensor, labels: Tensor, swapped_from: Tensor
                    ) -> dict[str, Tensor]:
    """The class groups of :data:`EVIDENCE_GROUPS` as ``[N, K]`` boolean masks.

    ``class_values[k]`` is class ``k``'s value (an index) at the swapped part, ``labels[n]``
    pair ``n``'s class and ``swapped_from[n]`` the value its twin removes (the class's own).
    ``true``: the class itself; ``shared``: the other classes with the swapped-out value;
    ``unused``: the classes whose value differs from the swapped-out one.
    """
    class_values = class_values.reshape(1, -1).long()
    labels = labels.reshape(-1, 1).long().to(class_values.device)
    swapped_from = swapped_from.reshape(-1, 1).long().to(class_values.device)
    if labels.shape != swapped_from.shape:
        raise ValueError(f"labels and swapped_from must have one entry per pair, got "
                         f"{labels.shape[0]} and {swapped_from.shape[0]}")
    classes = torch.arange(class_values.shape[1], device=class_values.device).unsqueeze(0)
    true = classes == labels
    uses = class_values == swapped_from
    return {"true": true, "shared": uses & ~true, "unused": ~uses}


def evidence_sums(resp_orig: Tensor, resp_twin: Tensor, mask: Tensor) -> tuple[float, float]:
    """``(sum of drops, sum of original responses)`` over the entries of ``mask``.

    The relative drop of a group is the first over the second (aggregate over pairs first:
    a ratio of sums, stable where single responses are near zero).
    """
    if not resp_orig.shape == resp_twin.shape == mask.shape:
        raise ValueError(f"responses and mask must have one shape, got {_shape(resp_orig)}, "
                         f"{_shape(resp_twin)} and {_shape(mask)}")
    mask = mask.bool()
    drop = (resp_orig.float() - resp_twin.float())[mask].sum()
    return float(drop), float(resp_orig.float()[mask].sum())


def control_classes(class_values: Tensor, labels: Tensor, swapped_from: Tensor) -> Tensor:
    """For each pair, the first class after its own (cyclically) that does not have the
    swapped-out value at the part, or ``-1`` if there is none: ``[N]`` int64."""
    unused = evidence_groups(class_values, labels, swapped_from)["unused"]
    k = unused.shape[1]
    labels = labels.reshape(-1).long().to(unused.device)
    order = (labels.unsqueeze(1) + 1 + torch.arange(k, device=unused.device)) % k
    ranked = unused.gather(1, order)
    first = ranked.float().argmax(dim=1)
    chosen = order.gather(1, first.unsqueeze(1)).squeeze(1)
    return torch.where(ranked.any(dim=1), chosen, torch.full_like(chosen, -1))


def difference_peaks(maps_orig: Tensor, maps_twin: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised ``(x, y)`` of the peak of ``|orig - twin|`` per map, ``[..., 2]``, and
    whether the difference is anywhere non-zero, ``[...]`` (maps ``[..., h, w]``)."""
    if maps_orig.shape != maps_twin.shape or maps_orig.dim() < 2:
        raise ValueError(f"maps must be two [..., h, w] tensors of one shape, got "
                         f"{_shape(maps_orig)} and {_shape(maps_twin)}")
    diff = (maps_orig.float() - maps_twin.float()).abs()
    return map_peaks(diff), diff.flatten(-2).amax(dim=-1) > 0


def where_hits(maps_orig: Tensor, maps_twin: Tensor, part_xy: Tensor,
               radius: float = DEFAULT_RADIUS) -> tuple[Tensor, Tensor, Tensor]:
    """Whether the peak of ``|orig - twin|`` lies within ``radius`` of the swapped part.

    ``maps_*`` are ``[N, h, w]``, ``part_xy`` ``[N, 2]`` the part's normalised ``(x, y)``.
    Returns ``(hit [N] bool, chance [N] float, changed [N] bool)``: ``chance`` is the exact
    probability that a uniformly random cell of the grid hits (:func:`chance_part_probs`).

    Book: chapter 6, *Counterfactual twins: one part's attribute changed*.
    """
    if maps_orig.dim() != 3:
        raise ValueError(f"maps must be [N, h, w], got {_shape(maps_orig)}")
    points, changed = difference_peaks(maps_orig, maps_twin)
    part_xy = torch.as_tensor(part_xy, dtype=torch.float32).to(points.device)
    if part_xy.shape != (maps_orig.shape[0], 2):
        raise ValueError(f"part_xy must be [N={maps_orig.shape[0]}, 2], got {_shape(part_xy)}")
    parts = torch.cat([part_xy, torch.ones_like(part_xy[:, :1])], dim=1).unsqueeze(1)
    hit = part_hits(points.unsqueeze(1), parts, radius)[:, 0] == 0
    size = (maps_orig.shape[-2], maps_orig.shape[-1])
    chance = chance_part_probs(parts, size, radius)[:, 0]
    return hit, chance, changed


def nested_differences(mid_orig: Tensor, mid_twin: Tensor, high_orig: Tensor,
                       threshold: float = 0.5) -> tuple[Tensor, Tensor, Tensor]:
    """Whether each mid channel's ``|orig - twin|`` peaks inside its gating high channel's
    region (of the original image), :func:`tdsa.metrics.nesting` on the difference.

    ``mid_*`` ``[N, C_mid, hm, wm]`` and ``high_orig`` ``[N, C_high, h, w]`` are one class's
    channels. Returns ``(inside, chance, changed)``, each ``[N, C_mid]``.
    """
    if mid_orig.shape != mid_twin.shape:
        raise ValueError(f"mid maps must have one shape, got {_shape(mid_orig)} and "
                         f"{_shape(mid_twin)}")
    diff = (mid_orig.float() - mid_twin.float()).abs()
    inside = nesting(diff, high_orig, threshold)
    chance = nesting_chance(diff, high_orig, threshold)
    return inside, chance, diff.flatten(2).amax(dim=-1) > 0


# ------------------------------------------------------------------ accumulation


class CounterfactualMeter:
    """Sums of the counterfactual measures per part, over batches of (image, twin) pairs.

    :meth:`update` takes one part's pairs; :meth:`summary` gives each part's rates and the
    same over each granularity (``fine``, ``coarse``) and over all parts.
    """

    def __init__(self, part_names: Sequence[str], granularity: Sequence[str],
                 *, radius: float = DEFAULT_RADIUS, threshold: float = 0.5) -> None:
        if len(part_names) != len(granularity):
            raise ValueError(f"{len(part_names)} part names but {len(granularity)} "
                             "granularities: expected one per part")
        self.granularity = dict(zip(part_names, granularity, strict=True))
        self.radius = check_number("radius", radius, low=0.0, open_low=True)
        self.threshold = check_number("threshold", threshold, 0.0, 1.0, open_low=True)
        self._sums: dict[str, dict[str, list[float]]] = {
            p: defaultdict(lambda: [0.0, 0.0, 0.0]) for p in part_names}

    def _add(self, part: str, key: str, *values: float) -> None:
        cell = self._sums[part][key]
        for i, v in enumerate(values):
            cell[i] += v

    def update(self, part: str, *, labels: Tensor, swapped_from: Tensor, class_values: Tensor,
               part_xy: Tensor, logits: tuple[Tensor, Tensor],
               features: dict[str, tuple[Tensor, Tensor]], xi: dict[str, int],
               gradcam: tuple[Tensor, Tensor] | None = None) -> None:
        """Add one part's pairs.

        ``labels``, ``swapped_from`` (the value index each twin removes) and ``part_xy``
        (normalised) are per pair; ``class_values`` ``[K]`` is every class's value index at
        the part; ``logits`` and ``features[stage]`` are ``(original, twin)`` per pair;
        ``gradcam`` the true class's raw Grad-CAM maps ``(original, twin)``, ``[N, h, w]``.
        """
        if part not in self._sums:
            raise ConfigError(f"unknown part {part!r}; parts: {', '.join(self._sums)}")
        device = logits[0].device
        labels = labels.reshape(-1).long().to(device)
        swapped_from = swapped_from.reshape(-1).long().to(device)
        class_values = class_values.to(device)
        part_xy = torch.as_tensor(part_xy, dtype=torch.float32).to(device)
        n = labels.numel()
        if n == 0:
            return
        changed, correct = reliance_counts(*logits, labels)
        self._add(part, "pairs", n)
        self._add(part, "reliance", changed, correct)
        groups = evidence_groups(class_values, labels, swapped_from)
        control = control_classes(class_values, labels, swapped_from)
        prob_o, prob_t = (torch.softmax(t.float(), dim=1) for t in logits)
        for group, mask in groups.items():
            self._add(part, f"evidence/logit/{group}", *evidence_sums(prob_o, prob_t, mask))
        for stage in STAGES:
            orig, twin = features[stage]
            resp_o, resp_t = (group_responses(t, xi[stage]) for t in (orig, twin))
            for group, mask in groups.items():
                self._add(part, f"evidence/{stage}/{group}", *evidence_sums(resp_o, resp_t, mask))
            for who, classes in (("true", labels), ("control", control)):
                keep = classes >= 0
                if not keep.any():
                    continue
                map_o, map_t = (class_channels(t[keep], classes[keep], xi[stage]).amax(dim=1)
                                for t in (orig, twin))
                self._add_where(part, f"where/{stage}/{who}", map_o, map_t, part_xy[keep])
        mid_o, mid_t = (class_channels(t, labels, xi["mid"]) for t in features["mid"])
        high = class_channels(features["high"][0], labels, xi["high"])
        inside, chance, moved = nested_differences(mid_o, mid_t, high, self.threshold)
        self._add(part, "nesting", float(inside[moved].sum()), float(chance[moved].sum()),
                  float(moved.sum()))
        if gradcam is not None:
            cam_orig, cam_twin = (c.float() for c in gradcam)
            mean_o, mean_t = (c.mean(dim=(-2, -1)).unsqueeze(1) for c in (cam_orig, cam_twin))
            self._add(part, "evidence/gradcam/true",
                      *evidence_sums(mean_o, mean_t, torch.ones_like(mean_o, dtype=torch.bool)))
            self._add_where(part, "where/gradcam/true", cam_orig, cam_twin, part_xy)

    def _add_where(self, part: str, key: str, orig: Tensor, twin: Tensor, xy: Tensor) -> None:
        hit, chance, changed = where_hits(orig, twin, xy, self.radius)
        self._add(part, key, float(hit[changed].sum()), float(chance[changed].sum()),
                  float(changed.sum()))

    @staticmethod
    def _rates(sums: dict[str, list[float]]) -> dict[str, float]:
        def ratio(a: float, b: float) -> float:
            return a / b if b else math.nan

        out: dict[str, float] = {"pairs": int(sums["pairs"][0])}
        changed, correct, _ = sums["reliance"]
        out["correct"] = int(correct)
        out["reliance"] = ratio(changed, correct)
        for key, (a, b, c) in sorted(sums.items()):
            if key.startswith("evidence/"):
                out[key] = ratio(a, b)
            elif key.startswith("where/"):
                out[key] = ratio(a, c)
                out[f"{key}_chance"] = ratio(b, c)
                out[f"{key}_pairs"] = int(c)
        if "nesting" in sums:
            inside, chance, count = sums["nesting"]
            out["nesting/mid_in_high"] = ratio(inside, count)
            out["nesting/chance"] = ratio(chance, count)
            out["nesting/channels"] = int(count)
        return out

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{"parts": {part: rates}, "granularity": {g: rates}, "all": rates}``; rates are
        floats, NaN where nothing was counted (see the module docstring for the keys)."""
        def merged(parts: Sequence[str]) -> dict[str, list[float]]:
            total: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
            for p in parts:
                for key, values in self._sums[p].items():
                    total[key] = [a + b for a, b in zip(total[key], values, strict=True)]
            return total

        used = [p for p in self._sums if self._sums[p]["pairs"][0] > 0]
        groups: dict[str, list[str]] = defaultdict(list)
        for p in used:
            groups[self.granularity[p]].append(p)
        return {
            "parts": {p: self._rates(self._sums[p]) for p in used},
            "granularity": {g: self._rates(merged(ps)) for g, ps in groups.items()},
            "all": self._rates(merged(used)) if used else {},
        }


# ------------------------------------------------------------------ driver


def _checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    path = Path(checkpoint) if Path(checkpoint).is_file() else run_dir / checkpoint
    if not path.is_file():
        raise CheckpointError(f"{path} not found: expected a run folder with {checkpoint} "
                              "(best.pt or last.pt, as `tdsa train --out` writes)")
    return path


def _forward(model: TdsaNet, images: Tensor, labels: Tensor, batch_size: int,
             gradcam: bool) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
    from tdsa.attribution import grad_cam

    logits, feats, cams = [], defaultdict(list), []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        with torch.no_grad():
            f = model.forward_features(x)
            logits.append(model.forward_head(f["high"]))
        for stage in STAGES:
            feats[stage].append(f[stage])
        if gradcam:
            cams.append(grad_cam(model, x, labels[start:start + batch_size], "high"))
    return (torch.cat(logits), {s: torch.cat(v) for s, v in feats.items()},
            torch.cat(cams) if gradcam else None)


def _image_indices(images: Sequence[int] | None, max_images: int | None, size: int,
                   split: str) -> list[int]:
    """The images of a split to compare with their twins (see :func:`counterfactual_report`)."""
    if images is None:
        return list(range(size if max_images is None else min(max_images, size)))
    chosen = [int(i) for i in images]
    outside = [i for i in chosen if not 0 <= i < size]
    if not chosen:
        raise ValueError("images is empty: give at least one image index")
    if outside:
        raise ValueError(f"images: {outside[0]} is outside 0..{size - 1} ({split} split)")
    if len(set(chosen)) != len(chosen):
        raise ValueError("images repeats an index: each image is compared once")
    return chosen


def _check_counts(batch_size: Any, max_images: Any) -> None:
    check_positive_int("batch_size", batch_size)
    if max_images is not None:
        check_positive_int("max_images", max_images)


_Outputs = tuple[Tensor, dict[str, Tensor], Tensor | None]


@dataclass
class _Run:
    """A run's model with its synthetic split, metadata and test transform, for the twins."""

    model: TdsaNet
    dataset: Any
    meta: dict[str, Any]
    split: str
    transform: Any
    device: str | torch.device
    batch_size: int
    gradcam: bool
    parts: list[Any]

    @classmethod
    def load(cls, model: TdsaNet, d: Any, path: Path, root: Path, split: str,
             device: str | torch.device, batch_size: int, gradcam: bool) -> _Run:
        if d.dataset != "synthetic":
            raise ConfigError(f"{path}: the run was trained on {d.dataset!r}; the "
                              "counterfactual measures need synthetic data (twins are "
                              "rendered by its generator)")
        if d.regime != "scratch":
            raise ConfigError(f"{path}: data.regime={d.regime!r}; the counterfactual measures "
                              "need the resize-only 'scratch' test transform")
        # Untransformed and without data.options: parts and sizes in the frame of the full
        # images that render_image draws.
        dataset = build_dataset("synthetic", root, split)
        assert isinstance(dataset, SyntheticBirds)
        meta = load_metadata(dataset.meta)
        if dataset.num_classes != int(model.num_classes):
            raise CheckpointError(f"{path} was trained on {model.num_classes} classes but "
                                  f"{root} has {dataset.num_classes}")
        transform = spec_transforms(resolve_data_config(d), train=False)
        parts = [p for p in PARTS if p.attribute is not None]
        return cls(model, dataset, meta, split, transform, device, batch_size, gradcam, parts)

    def prepare(self, bird: Any) -> Tensor:
        """A rendered image JPEG-encoded as on disk, then the run's test transform."""
        quality = int(self.meta["args"]["jpeg_quality"])
        return self.transform(encode_as_saved(bird.image, quality))

    def class_values(self, part: Any) -> Tensor:
        values = attribute_values(self.meta, part.attribute)
        return torch.tensor([values.index(c["attributes"][part.attribute])
                             for c in self.meta["classes"]])

    def twins(self, part: Any, indices: list[int]) -> tuple[list[int], list[Tensor], list[int]]:
        """Per twin of ``part``: its original's row in ``indices``, its image and the index
        of the original's attribute value."""
        rows, twins, swapped = [], [], []
        values = attribute_values(self.meta, part.attribute)
        for row, i in enumerate(indices):
            own = self.meta["classes"][image_source(self.meta, self.split, i)[0]]["attributes"]
            for value in twin_values(self.meta, self.split, i, part.name):
                rows.append(row)
                twins.append(self.prepare(render_image(self.meta, self.split, i,
                                                       swap={part.attribute: value})))
                swapped.append(values.index(own[part.attribute]))
        return rows, twins, swapped

    def part_xy(self, part: Any, images: list[int]) -> Tensor:
        """The part's location in each image, normalised to [0, 1]."""
        column = self.dataset.part_names.index(part.name)
        xy = []
        for i in images:
            width, height = self.dataset.image_size(i)
            x, y, _ = self.dataset.parts(i)[column]
            xy.append((x / width, y / height))
        return torch.tensor(xy, dtype=torch.float32)

    def measure_part(self, meter: CounterfactualMeter, part: Any, indices: list[int],
                     labels: Tensor, originals: _Outputs) -> int:
        """Add the pairs of ``part`` over ``indices`` to ``meter``; returns their number."""
        rows, twins, swapped = self.twins(part, indices)
        if not rows:
            return 0
        dev = self.device
        take = torch.tensor(rows)
        pair_labels = labels[take]
        logits_t, feats_t, cams_t = _forward(self.model, torch.stack(twins).to(dev),
                                             pair_labels.to(dev), self.batch_size, self.gradcam)
        logits_o, feats_o, cams_o = originals
        take_d = take.to(dev)
        meter.update(
            part.name,
            labels=pair_labels.to(dev),
            swapped_from=torch.tensor(swapped),
            class_values=self.class_values(part),
            part_xy=self.part_xy(part, [indices[r] for r in rows]),
            logits=(logits_o[take_d], logits_t),
            features={s: (feats_o[s][take_d], feats_t[s]) for s in STAGES},
            xi=dict(zip(STAGES, (int(v) for v in self.model.xi), strict=True)),
            gradcam=None if cams_o is None or cams_t is None else (cams_o[take_d], cams_t),
        )
        return len(rows)


def counterfactual_report(
    run_dir: str | Path,
    split: str = "test",
    *,
    checkpoint: str = "best.pt",
    root: str | Path | None = None,
    max_images: int | None = None,
    images: Sequence[int] | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    radius: float = DEFAULT_RADIUS,
    threshold: float = 0.5,
    gradcam: bool = True,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """The counterfactual measures of a run on synthetic data; also written as JSON.

    Loads ``run_dir/checkpoint`` (or ``checkpoint`` itself if it is a file), builds the run's
    synthetic dataset (``root`` overrides the config's) at ``split``, and compares each image
    (the indices ``images`` if given, e.g. every third so that every class is represented, as
    the splits list images class by class; else the first ``max_images``; else all) with each
    of its twins: every other value of every part that carries an attribute. Originals and
    twins are rendered and JPEG-encoded as the generator saves images, then transformed with
    the run's test transform (the resize-only ``scratch`` regime, so part locations normalise
    into the maps' frame). Returns
    ``{"run", "checkpoint", "split", "root", "images", "pairs", "radius", "threshold",
    "parts", "granularity", "all"}`` (see :class:`CounterfactualMeter`) and writes it to
    ``out`` (default ``run_dir/counterfactual_<split>.json``; NaN, where nothing was counted,
    is written as null). The model is left in eval mode.

    Book: chapter 6, *Counterfactual measures on this chapter's runs*.
    """
    _check_counts(batch_size, max_images)
    if images is not None and max_images is not None:
        raise ValueError("give images or max_images, not both")
    run_dir = Path(run_dir)
    path = _checkpoint_path(run_dir, checkpoint)
    model, cfg = load_model(path, map_location=device)
    root = Path(root if root is not None else cfg.data.root)
    run = _Run.load(model, cfg.data, path, root, split, device, batch_size, gradcam)
    meter = CounterfactualMeter([p.name for p in run.parts],
                                [str(p.granularity) for p in run.parts],
                                radius=radius, threshold=threshold)
    model.eval()
    chosen = _image_indices(images, max_images, len(run.dataset), split)
    count = len(chosen)
    total_pairs = 0
    for start in range(0, count, batch_size):
        indices = chosen[start:start + batch_size]
        labels = torch.tensor([run.dataset.targets[i] for i in indices])
        originals = torch.stack([run.prepare(render_image(run.meta, split, i)) for i in indices])
        outputs = _forward(model, originals.to(device), labels.to(device), batch_size, gradcam)
        for part in run.parts:
            total_pairs += run.measure_part(meter, part, indices, labels, outputs)

    report: dict[str, Any] = {
        "run": str(run_dir), "checkpoint": str(path), "split": split, "root": str(root),
        "images": count, "pairs": total_pairs, "radius": float(radius),
        "threshold": float(threshold), **meter.summary(),
    }
    target = Path(out) if out is not None else run_dir / f"counterfactual_{split}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(_jsonable(report), indent=2) + "\n", encoding="utf-8")
    return report


def _jsonable(value: Any) -> Any:
    """``value`` with NaN replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
