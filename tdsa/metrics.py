"""Metrics: classification accuracy (top-k, confusion, per class) and part localisation.

Classification counts are plain integers so they can be summed across batches and ranks
before dividing. Localisation metrics work in normalised image coordinates (``x / width``,
``y / height`` in ``[0, 1]``), so attention maps of any resolution compare with part
annotations of any image size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from tdsa.validation import (
    check_choice,
    check_number,
    check_positive_int,
    check_positive_ints,
    check_stage_xi,
)

__all__ = [
    "DEFAULT_RADIUS",
    "LocalisationMeter",
    "box_centres",
    "chance_part_probs",
    "class_channels",
    "confusion_matrix",
    "grid_centres",
    "map_peaks",
    "nesting",
    "nesting_chance",
    "normalise_parts",
    "part_coverage",
    "part_hits",
    "per_class_accuracy",
    "topk_correct",
]

DEFAULT_RADIUS = 0.12
"""Default hit radius, as a fraction of the image side (normalised coordinates)."""

_EDGE_EPS = 1e-6  # a point exactly ``radius`` away counts as a hit despite float rounding


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


def topk_correct(logits: Tensor, targets: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Count the samples whose target is among the ``k`` highest logits, for each ``k``.

    ``logits`` is ``[B, K]``, ``targets`` ``[B]`` class indices. Each ``k`` is clipped to the
    number of classes ``K`` (top-5 of a 3-class problem counts as top-3), but the returned
    dict is keyed by the requested ``k``. Returns counts, not rates, for summing across
    batches and ranks.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [B, K], got shape {_shape(logits)}")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets must be 1-D [B] with B={logits.shape[0]}, got shape {_shape(targets)}"
        )
    ks = check_positive_ints("ks", ks)
    if not ks:
        return {}
    num_classes = logits.shape[1]
    kmax = min(max(ks), num_classes)
    top = logits.topk(kmax, dim=1).indices  # [B, kmax], best first
    hits = top == targets.to(top.device).unsqueeze(1)  # at most one True per row
    first_hit_cum = hits.cumsum(dim=1).sum(dim=0)  # [kmax]: samples hit within the top j+1
    return {k: int(first_hit_cum[min(k, num_classes) - 1]) for k in ks}


def confusion_matrix(preds: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Confusion counts ``[K, K]`` (int64): row = true class, column = predicted class.

    ``preds`` and ``targets`` are ``[N]`` class indices in ``[0, num_classes)``.
    """
    num_classes = check_positive_int("num_classes", num_classes)
    preds = preds.reshape(-1).long()
    targets = targets.reshape(-1).long().to(preds.device)
    if preds.numel() != targets.numel():
        raise ValueError(
            f"preds and targets must have the same number of elements, "
            f"got {preds.numel()} and {targets.numel()}"
        )
    for name, t in (("preds", preds), ("targets", targets)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ValueError(
                f"{name} must be class indices in [0, {num_classes}), "
                f"got values in [{int(t.min())}, {int(t.max())}]"
            )
    flat = targets * num_classes + preds
    counts = torch.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_accuracy(confusion: Tensor) -> Tensor:
    """Accuracy of each true class from a confusion matrix: ``diag / row sum`` as ``[K]`` floats.

    Classes with no samples (an empty row) get NaN, so a mean over classes can skip them
    with ``nanmean``.
    """
    if confusion.dim() != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be a square [K, K] matrix, got shape {_shape(confusion)}")
    conf = confusion.double()
    support = conf.sum(dim=1)
    correct = conf.diagonal()
    acc = correct / support.clamp(min=1)
    return torch.where(support > 0, acc, torch.full_like(acc, float("nan"))).float()


# ---------------------------------------------------------------- localisation


def class_channels(features: Tensor, targets: Tensor, xi: int) -> Tensor:
    """The channels of each sample's true class: ``[B, K*xi, h, w] -> [B, xi, h, w]``.

    Class ``k`` owns channels ``k*xi .. k*xi+xi-1`` (the TDSA channel layout).

    Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
    """
    xi = check_stage_xi(xi)
    if features.dim() != 4 or features.shape[1] % xi:
        raise ValueError(
            f"features must be [B, K*xi, h, w] with xi={xi}, got shape {_shape(features)}"
        )
    b, c, h, w = features.shape
    k = c // xi
    targets = targets.reshape(-1).long().to(features.device)
    if targets.numel() != b:
        raise ValueError(f"targets must have B={b} elements, got {targets.numel()}")
    if b and (int(targets.min()) < 0 or int(targets.max()) >= k):
        raise ValueError(f"targets must be class indices in [0, {k}), got {targets.tolist()}")
    return features.reshape(b, k, xi, h, w)[torch.arange(b, device=features.device), targets]


def grid_centres(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """Normalised ``(x, y)`` of the centres of an ``height x width`` grid, row-major ``[h*w, 2]``.

    Cell ``(i, j)`` has centre ``((j + 0.5) / width, (i + 0.5) / height)``.
    """
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def map_peaks(maps: Tensor) -> Tensor:
    """Normalised ``(x, y)`` of the arg-max cell centre of each map: ``[..., h, w] -> [..., 2]``.

    Ties go to the first cell in row-major order.

    Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
    """
    if maps.dim() < 2:
        raise ValueError(f"maps must be [..., h, w], got shape {_shape(maps)}")
    h, w = maps.shape[-2:]
    idx = maps.detach().reshape(*maps.shape[:-2], h * w).argmax(dim=-1)
    return grid_centres(h, w, device=maps.device)[idx]


def normalise_parts(parts: Tensor, width: float, height: float) -> Tensor:
    """Pixel part locations ``[..., P, 3]`` of ``(x, y, visible)`` -> normalised ``x/w, y/h``.

    Invisible parts become ``(0, 0, 0)``.

    Book: chapter 6, *Multi-regional: the high-level channels of the true class*.
    """
    parts = torch.as_tensor(parts, dtype=torch.float32)
    if parts.dim() < 2 or parts.shape[-1] != 3:
        raise ValueError(f"parts must be [..., P, 3] of (x, y, visible), got {_shape(parts)}")
    width = check_number("width", width, low=0.0, open_low=True)
    height = check_number("height", height, low=0.0, open_low=True)
    visible = (parts[..., 2] > 0).float()
    scale = parts.new_tensor([1.0 / width, 1.0 / height])
    xy = parts[..., :2] * scale * visible.unsqueeze(-1)
    return torch.cat([xy, visible.unsqueeze(-1)], dim=-1)


def box_centres(boxes: Tensor, fmt: str = "xywh") -> Tensor:
    """Centres ``[..., 2]`` of boxes ``[..., 4]``, given as ``(x, y, w, h)`` (CUB's
    ``bounding_boxes.txt`` order, ``fmt="xywh"``) or ``(x0, y0, x1, y1)`` (``fmt="xyxy"``).

    Normalise the boxes first to get normalised centres (the "body-centre" baseline).
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [..., 4], got shape {_shape(boxes)}")
    if check_choice("fmt", fmt, ("xywh", "xyxy")) == "xywh":
        return boxes[..., :2] + boxes[..., 2:] / 2
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def _check_parts(parts: Tensor, batch: int) -> None:
    if parts.dim() != 3 or parts.shape[-1] != 3 or parts.shape[0] != batch:
        raise ValueError(
            f"parts must be [B={batch}, P, 3] of normalised (x, y, visible), "
            f"got shape {_shape(parts)}"
        )


def part_hits(points: Tensor, parts: Tensor, radius: float = DEFAULT_RADIUS) -> Tensor:
    """Which part each point hits: the nearest visible part within ``radius``, else ``-1``.

    ``points`` is ``[B, N, 2]`` normalised ``(x, y)`` (e.g. :func:`map_peaks` of ``B x N``
    maps), ``parts`` ``[B, P, 3]`` normalised ``(x, y, visible)``; distances are Euclidean in
    normalised coordinates and a point at exactly ``radius`` hits. Invisible parts never hit.
    Returns part indices ``[B, N]`` (int64).
    """
    if points.dim() != 3 or points.shape[-1] != 2:
        raise ValueError(f"points must be [B, N, 2] of (x, y), got shape {_shape(points)}")
    _check_parts(parts, points.shape[0])
    radius = check_number("radius", radius, low=0.0, open_low=True)
    parts = parts.to(points.device, torch.float32)
    if parts.shape[1] == 0:
        return torch.full(points.shape[:2], -1, dtype=torch.long, device=points.device)
    diff = points.float().unsqueeze(2) - parts[:, None, :, :2]  # [B, N, P, 2]
    dist = diff.square().sum(dim=-1).sqrt()
    dist = dist.masked_fill(~(parts[:, None, :, 2] > 0), math.inf)
    best, idx = dist.min(dim=-1)
    return torch.where(best <= radius + _EDGE_EPS, idx, torch.full_like(idx, -1))


def chance_part_probs(
    parts: Tensor, size: tuple[int, int], radius: float = DEFAULT_RADIUS
) -> Tensor:
    """Exact probability that a uniformly random cell of an ``h x w`` map hits each part.

    Enumerates the ``h*w`` cell centres, scores each with :func:`part_hits` and returns the
    fraction assigned to each part: ``[B, P]``. Summed over parts it is the chance pointing
    rate of a map that knows nothing about the image.
    """
    h, w = size
    cells = grid_centres(h, w, device=parts.device)
    hits = part_hits(cells.expand(parts.shape[0], h * w, 2), parts, radius)  # [B, h*w]
    num_parts = parts.shape[1]
    onehot = F.one_hot(hits + 1, num_parts + 1)[..., 1:]  # drop the "no part" column
    return onehot.float().mean(dim=1)


def part_coverage(hits: Tensor, num_parts: int) -> Tensor:
    """Number of distinct parts hit by each sample's channels: ``[B, N]`` part ids -> ``[B]``.

    ``hits`` comes from :func:`part_hits` (``-1`` = no part). A multi-regional class hits
    several different parts with its channels.
    """
    if hits.dim() != 2:
        raise ValueError(f"hits must be [B, N] part indices, got shape {_shape(hits)}")
    onehot = F.one_hot(hits.long() + 1, num_parts + 1)[..., 1:]
    return onehot.amax(dim=1).sum(dim=1)


def _nesting_regions(mid: Tensor, high: Tensor, threshold: float) -> Tensor:
    """For each mid channel, the region of its gating high channel at mid's size (bool)."""
    if mid.dim() != 4 or high.dim() != 4 or mid.shape[0] != high.shape[0]:
        raise ValueError(
            f"mid and high must be [B, C, h, w] with the same B, got mid {_shape(mid)}, "
            f"high {_shape(high)}"
        )
    c_mid, c_high = mid.shape[1], high.shape[1]
    if c_high == 0 or c_mid % c_high:
        raise ValueError(
            f"mid has {c_mid} channels and high {c_high}: mid channel j is gated by high "
            f"channel j // r, so C_mid / C_high must be an integer"
        )
    threshold = check_number("threshold", threshold, 0.0, 1.0, open_low=True)
    up = F.interpolate(high.detach().float(), size=tuple(mid.shape[-2:]), mode="nearest")
    peak = up.amax(dim=(-2, -1), keepdim=True)
    region = (up >= threshold * peak) & (peak > 0)  # a dead (all <= 0) channel has no region
    return region.repeat_interleave(c_mid // c_high, dim=1)


def nesting(mid: Tensor, high: Tensor, threshold: float = 0.5) -> Tensor:
    """Whether each mid channel's peak lies inside the region of the high channel gating it.

    ``mid`` is ``[B, C_mid, hm, wm]``, ``high`` ``[B, C_high, h, w]``; mid channel ``j`` is
    gated by high channel ``j // r`` with ``r = C_mid / C_high`` (pass one class's channels,
    e.g. from :func:`class_channels`). The region is the set of cells of the high map,
    nearest-upsampled to ``hm x wm`` (as the gate is), that reach ``threshold`` times its
    maximum; a high map that is nowhere positive has an empty region. Returns ``[B, C_mid]``
    booleans: a multi-grained model nests its mid peaks inside its high regions.

    Book: chapter 3, *High-to-mid nesting on real maps*.
    """
    region = _nesting_regions(mid, high, threshold)
    idx = mid.detach().flatten(2).argmax(dim=-1, keepdim=True)
    return region.flatten(2).gather(2, idx).squeeze(-1)


def nesting_chance(mid: Tensor, high: Tensor, threshold: float = 0.5) -> Tensor:
    """Exact chance level of :func:`nesting`: the fraction of mid cells inside each gating
    region, ``[B, C_mid]`` (a uniformly random mid peak lands there with this probability).

    Book: chapter 3, *High-to-mid nesting on real maps*.
    """
    return _nesting_regions(mid, high, threshold).float().mean(dim=(-2, -1))


class _Tally:
    """Running sums of (expected) part hits for one source of points."""

    def __init__(self, num_parts: int, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.hit = 0.0
        self.points = 0
        self.hit_part = torch.zeros(num_parts, dtype=torch.float64)
        self.points_part = torch.zeros(num_parts, dtype=torch.float64)
        self.hit_group = dict.fromkeys(groups, 0.0)
        self.points_group = dict.fromkeys(groups, 0.0)
        self.covered = 0.0
        self.images = 0

    def add(self, probs: Tensor, visible: Tensor) -> None:
        """``probs[b, n, p]``: probability that point ``n`` of image ``b`` hits part ``p``
        (0/1 for real points); ``visible`` ``[B, P]`` bool."""
        probs = probs.double().cpu()
        visible = visible.cpu()
        b, n, _ = probs.shape
        self.hit += float(probs.sum())
        self.points += b * n
        self.hit_part += probs.sum(dim=(0, 1))
        self.points_part += n * visible.double().sum(dim=0)
        for name, idx in self.groups.items():
            self.hit_group[name] += float(probs[:, :, idx].sum())
            self.points_group[name] += n * float(visible[:, idx].any(dim=1).sum())
        # Expected number of distinct parts hit by n independent points (exact for 0/1).
        self.covered += float((1 - (1 - probs).prod(dim=1)).sum())
        self.images += b

    def summary(self, source: str, part_names: Sequence[str]) -> dict[str, float]:
        def rate(hit: float, points: float) -> float:
            return hit / points if points else math.nan

        out = {f"hit_rate/{source}": rate(self.hit, self.points)}
        for name in self.groups:
            out[f"hit_rate/{source}/granularity:{name}"] = rate(
                self.hit_group[name], self.points_group[name]
            )
        for p, name in enumerate(part_names):
            out[f"hit_rate/{source}/part:{name}"] = rate(
                float(self.hit_part[p]), float(self.points_part[p])
            )
        out[f"coverage/{source}"] = rate(self.covered, self.images)
        return out


class LocalisationMeter:
    """Accumulates part-localisation metrics of the true class's channel maps over batches.

    Sources of points, each scored with :func:`part_hits` against the visible
    discriminative parts (the nearest one within ``radius`` is the part hit):

    - ``high`` / ``mid``: the peak of each of the true class's channel maps at that stage
      (any map works: CAM or Grad-CAM maps of a CE model are ``[B, 1, h, w]``);
    - ``chance_high`` / ``chance_mid``: a uniformly random cell of that stage's grid, as exact
      expectations (:func:`chance_part_probs`), with as many independent points as channels;
    - ``centre``: one "body-centre" point per image (``centres``, e.g. :func:`box_centres` of
      the normalised bounding box; the image centre when not given).

    ``part_names`` names the ``P`` columns of ``parts``. ``granularity`` (same length, e.g.
    ``"coarse"`` / ``"fine"``, None for a part that carries no class attribute) restricts
    scoring to the discriminative parts and adds a per-granularity breakdown; without it
    every part counts. :meth:`summary` returns plain floats keyed ``hit_rate/<source>``,
    ``hit_rate/<source>/granularity:<g>``, ``hit_rate/<source>/part:<name>`` (per-peak hit
    rates; a part's rate counts only images where it is visible), ``coverage/<source>``
    (mean number of distinct parts hit per image), ``nesting/mid_in_high`` and
    ``nesting/chance`` (see :func:`nesting`) and ``images``. Rates with no data are NaN.
    """

    def __init__(
        self,
        part_names: Sequence[str],
        granularity: Sequence[str | None] | None = None,
        *,
        radius: float = DEFAULT_RADIUS,
        threshold: float = 0.5,
    ) -> None:
        self.all_part_names = list(part_names)
        if granularity is None:
            self.columns = list(range(len(self.all_part_names)))
            groups: dict[str, list[int]] = {}
        else:
            if len(granularity) != len(self.all_part_names):
                raise ValueError(
                    f"granularity has {len(granularity)} entries but part_names has "
                    f"{len(self.all_part_names)}: expected one per part"
                )
            self.columns = [i for i, g in enumerate(granularity) if g is not None]
            groups = {}
            for j, i in enumerate(self.columns):
                groups.setdefault(str(granularity[i]), []).append(j)
        if not self.columns:
            raise ValueError("no discriminative parts to score: every granularity is None")
        radius = check_number("radius", radius, low=0.0, open_low=True)
        self.part_names = [self.all_part_names[i] for i in self.columns]
        self.groups = groups
        self.radius = float(radius)
        self.threshold = float(threshold)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far.
        """
        n = len(self.columns)
        self._tallies = {
            s: _Tally(n, self.groups)
            for s in ("high", "mid", "chance_high", "chance_mid", "centre")
        }
        self._nested = 0.0
        self._nested_chance = 0.0
        self._nested_count = 0
        self._images = 0

    def _probs(self, maps: Tensor, parts: Tensor) -> tuple[Tensor, Tensor]:
        """0/1 part hits of the map peaks and the exact chance probabilities, ``[B, N, P]``."""
        num_parts = parts.shape[1]
        hits = part_hits(map_peaks(maps).flatten(1, -2), parts, self.radius)
        real = F.one_hot(hits + 1, num_parts + 1)[..., 1:].float()
        h, w = maps.shape[-2:]
        chance = chance_part_probs(parts, (int(h), int(w)), self.radius)
        return real, chance.unsqueeze(1).expand(-1, maps.shape[1], -1)

    def update(
        self,
        maps_high: Tensor,
        parts: Tensor,
        maps_mid: Tensor | None = None,
        centres: Tensor | None = None,
    ) -> None:
        """Add a batch.

        ``maps_high`` ``[B, xi_high, h, w]`` and ``maps_mid`` ``[B, xi_mid, hm, wm]`` are the
        true class's channel maps (:func:`class_channels`); ``parts`` ``[B, P, 3]`` normalised
        ``(x, y, visible)`` with all ``P = len(part_names)`` columns; ``centres`` ``[B, 2]``
        normalised body-centre points.
        """
        if maps_high.dim() != 4:
            raise ValueError(f"maps_high must be [B, C, h, w], got shape {_shape(maps_high)}")
        b = maps_high.shape[0]
        parts = torch.as_tensor(parts, dtype=torch.float32)
        _check_parts(parts, b)
        if parts.shape[1] != len(self.all_part_names):
            raise ValueError(
                f"parts has {parts.shape[1]} columns but part_names has "
                f"{len(self.all_part_names)}: expected one column per named part"
            )
        parts = parts[:, self.columns].to(maps_high.device)
        visible = parts[..., 2] > 0

        real, chance = self._probs(maps_high, parts)
        self._tallies["high"].add(real, visible)
        self._tallies["chance_high"].add(chance, visible)

        if maps_mid is not None:
            if maps_mid.dim() != 4 or maps_mid.shape[0] != b:
                raise ValueError(f"maps_mid must be [B={b}, C, h, w], got shape {_shape(maps_mid)}")
            real, chance = self._probs(maps_mid, parts)
            self._tallies["mid"].add(real, visible)
            self._tallies["chance_mid"].add(chance, visible)
            self._nested += float(nesting(maps_mid, maps_high, self.threshold).sum())
            self._nested_chance += float(nesting_chance(maps_mid, maps_high, self.threshold).sum())
            self._nested_count += maps_mid.shape[0] * maps_mid.shape[1]

        if centres is None:
            centres = torch.full((b, 2), 0.5)
        centres = torch.as_tensor(centres, dtype=torch.float32).to(parts.device)
        if centres.shape != (b, 2):
            raise ValueError(f"centres must be [B={b}, 2], got shape {_shape(centres)}")
        hits = part_hits(centres.unsqueeze(1), parts, self.radius)
        onehot = F.one_hot(hits + 1, parts.shape[1] + 1)[..., 1:].float()
        self._tallies["centre"].add(onehot, visible)
        self._images += b

    def summary(self) -> dict[str, float]:
        """All metrics so far as plain floats (see the class docstring for the keys).
        """
        out: dict[str, float] = {"images": float(self._images)}
        for source, tally in self._tallies.items():
            if tally.images:
                out.update(tally.summary(source, self.part_names))
        if self._nested_count:
            out["nesting/mid_in_high"] = self._nested / self._nested_count
            out["nesting/chance"] = self._nested_chance / self._nested_count
        return out
