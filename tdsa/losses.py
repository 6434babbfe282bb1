"""The TDSA loss: channel constraint (L_dis, L_div), top-down spatial attention, TDSALoss.

Notation (paper-spec): a stage feature map ``F`` is ``[B, K*xi, H, W]``; class ``k`` owns the
contiguous channels ``k*xi .. k*xi+xi-1``. CCMP is cross-channel max pooling over each class
group, GAP global average pooling. Everything here works for any ``K``, ``xi`` and non-square
maps, on the CPU and the GPU, under autocast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from tdsa.validation import DEFAULT_XI, check_stage_xi, check_xi

__all__ = [
    "DEFAULT_XI",
    "TDSALoss",
    "ccmp",
    "channel_constraint",
    "check_stage_xi",
    "check_xi",
    "mc_loss_weights",
    "random_channel_mask",
    "top_down_attention",
    "top_down_gate",
]


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


def _check_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")


def _resolve_keep(xi: int, keep: int | None) -> int:
    if keep is None:
        return math.ceil(xi / 2)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= xi:
        raise ValueError(f"keep must be an integer in [1, xi={xi}], got {keep!r}")
    return keep


def _check_features(features: Tensor, xi: int) -> int:
    """Validate a ``[B, K*xi, H, W]`` stage map and return ``K``."""
    check_stage_xi(xi)
    if features.dim() != 4:
        raise ValueError(f"features must be 4-D [B, C, H, W], got shape {_shape(features)}")
    channels = features.shape[1]
    if channels == 0 or channels % xi:
        raise ValueError(
            f"features have C={channels} channels, not a positive multiple of xi={xi}: "
            f"C must equal num_classes*xi"
        )
    return channels // xi


def ccmp(features: Tensor, xi: int) -> Tensor:
    """Cross-channel max pooling: ``[B, K*xi, H, W] -> [B, K, H, W]``.

    Output channel ``k`` is the element-wise maximum of input channels ``k*xi .. k*xi+xi-1``.

    Book: chapter 2, *A stage's feature map and cross-channel max pooling*.
    """
    k = _check_features(features, xi)
    b, _, h, w = features.shape
    return features.reshape(b, k, xi, h, w).amax(dim=2)


def random_channel_mask(
    num_classes: int,
    xi: int,
    keep: int | None = None,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A float 0/1 channel mask of shape ``[K*xi]`` keeping ``keep`` channels of every class.

    ``keep`` defaults to ``ceil(xi/2)`` (2 of 3, 5 of 9), as published. The kept channels of
    each group are drawn uniformly without replacement (argsort of uniform noise per group,
    no Python loop), on ``device`` from ``generator`` when given: the same seed gives the same
    mask. ``device`` defaults to the generator's device, else the CPU.

    Book: chapter 2, *The random channel mask*.
    """
    _check_classes(num_classes)
    check_stage_xi(xi)
    keep = _resolve_keep(xi, keep)
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device} but the mask is drawn on {device}: "
            f"expected a generator on the features' device"
        )
    noise = torch.rand(num_classes, xi, device=device, generator=generator)
    kept = noise.argsort(dim=1)[:, :keep]
    mask = torch.zeros(num_classes, xi, device=device)
    mask.scatter_(1, kept, 1.0)
    return mask.reshape(num_classes * xi)


def _check_targets(targets: Tensor, batch: int, num_classes: int) -> None:
    if targets.dim() != 1:
        raise ValueError(f"targets must be 1-D [B] class indices, got shape {_shape(targets)}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
    if targets.shape[0] != batch:
        raise ValueError(
            f"targets have batch size {targets.shape[0]} but features have batch size {batch}: "
            f"expected one target per image"
        )
    # Checking values needs the host; on an accelerator that would be a sync every step.
    if targets.device.type == "cpu" and batch:
        bad = targets[(targets < 0) | (targets >= num_classes)]
        if bad.numel():
            raise ValueError(
                f"targets must lie in [0, {num_classes}) (num_classes = C/xi), "
                f"got value {int(bad[0])}"
            )


def _mask_view(mask: Tensor, features: Tensor, num_classes: int, xi: int) -> Tensor:
    """Validate a ``[K*xi]`` or ``[B, K*xi]`` mask; return it as ``[1|B, C]``."""
    b, c = features.shape[:2]
    if mask.shape == (c,):
        view = mask.reshape(1, c)
    elif mask.shape == (b, c):
        view = mask
    else:
        raise ValueError(
            f"mask must have shape [K*xi]=[{c}] or [B, K*xi]=[{b}, {c}] "
            f"(K={num_classes}, xi={xi}), got {_shape(mask)}"
        )
    return view.to(device=features.device, dtype=features.dtype)


def _accumulation_dtype(features: Tensor) -> torch.dtype:
    """float32 for half/bfloat16/float32 features, float64 for float64 features."""
    return torch.promote_types(features.dtype, torch.float32)


# Elements of one work block on the CPU (2 MB in float32): there the stage loss runs a few
# images, or a block of classes of one image, at a time, in buffers allocated once per call and
# reused for every block, so that its temporaries stay in the cache; fresh multi-megabyte
# allocations cost page faults on every use (the allocator hands them back to the system when
# they are freed), which cost more than the arithmetic. A GPU takes larger blocks (32 MB):
# fewer, larger kernels.
_BLOCK_ELEMENTS = 1 << 19
_GPU_BLOCK_ELEMENTS = 1 << 23


def _dense(t: Tensor) -> Tensor:
    """``t`` itself if contiguous or channels_last, else a contiguous copy."""
    if t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last):
        return t
    return t.contiguous()


class _Blocks:
    """The ``(images, classes)`` blocks of a stage's ``[B, K, xi, n]`` work and its reused
    work buffers of dtype ``acc``: ``count`` of the block's size and two per-gate ones of
    ``per`` (``xi / r``) rows per class."""

    def __init__(
        self, b: int, k: int, xi: int, n: int, per: int, acc: torch.dtype, device, count: int
    ) -> None:
        self.xi, self.n, self.per = xi, n, per
        limit = _BLOCK_ELEMENTS if device.type == "cpu" else _GPU_BLOCK_ELEMENTS
        per_image = max(1, k * xi * n)
        if per_image <= limit:
            self.images, classes = max(1, min(b, limit // per_image)), k
        else:
            self.images, classes = 1, max(1, limit // (xi * n))
        self.image_slices = [slice(i, min(i + self.images, b)) for i in range(0, b, self.images)]
        self.class_slices = [slice(j, min(j + classes, k)) for j in range(0, k, classes)]
        size = self.images * classes * xi * n
        self.flat = [torch.empty(size, dtype=acc, device=device) for _ in range(count)]
        self.gate_flat = [torch.empty(size // xi * per, dtype=acc, device=device) for _ in range(2)]

    def buf(self, which: int, images: int, ks: slice) -> Tensor:
        """Work buffer ``which`` as ``[images, k, xi, n]`` for the classes ``ks``."""
        shape = (images, ks.stop - ks.start, self.xi, self.n)
        return self.flat[which][: math.prod(shape)].view(shape)

    def gate_buf(self, which: int, images: int, ks: slice) -> Tensor:
        """Per-gate buffer ``which`` as ``[images, k, xi/r, 1, n]`` for the classes ``ks``."""
        shape = (images, ks.stop - ks.start, self.per, 1, self.n)
        return self.gate_flat[which][: math.prod(shape)].view(shape)

    def source(
        self, f_cn: Tensor, g_cn: Tensor | None, ks: slice
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """``(feats, gates, src)`` of the classes ``ks`` of some images (``f_cn``
        ``[b, C, n]``, ``g_cn`` ``[b, C/r, n]``, contiguous): features and gates in the work
        dtype (a view when the features already have it, else a converting copy into work
        buffer 0; gates into gate buffer 0) and ``src = feats * gates`` (in work buffer 1;
        ``feats`` without gate)."""
        rows = f_cn[:, ks.start * self.xi : ks.stop * self.xi]
        feats = self.buf(0, f_cn.shape[0], ks)
        if rows.dtype == feats.dtype:
            feats = rows.view(feats.shape)
        else:
            feats.view(rows.shape).copy_(rows)
        if g_cn is None:
            return feats, None, feats
        gates = self.gate_buf(0, f_cn.shape[0], ks)
        gates.view(f_cn.shape[0], -1, self.n).copy_(
            g_cn[:, ks.start * self.per : ks.stop * self.per]
        )
        src = self.buf(1, f_cn.shape[0], ks)
        torch.mul(feats.unflatten(2, (self.per, -1)), gates, out=src.unflatten(2, (self.per, -1)))
        return feats, gates, src


class _Images:
    """Images of a contiguous or channels_last ``[B, C, H, W]`` map as a contiguous
    ``[b, C, H*W]`` tensor: a view of a contiguous map; for a channels_last one a buffer of
    ``images`` images, filled (:meth:`load`) or written back (:meth:`store`) image by image by
    a transposing copy (blocked on the CPU)."""

    def __init__(self, t: Tensor, images: int) -> None:
        self.t = t
        self.direct = t.is_contiguous()
        _, c, h, w = t.shape
        self.buffer = None if self.direct else t.new_empty(images, c, h * w)

    def empty(self, sl: slice) -> Tensor:
        """Images ``sl`` as ``[b, C, H*W]``: the map's memory or the (unfilled) buffer."""
        if self.direct:
            return self.t[sl].flatten(2)
        assert self.buffer is not None  # allocated whenever the map is not used directly
        return self.buffer[: sl.stop - sl.start]

    def load(self, sl: slice) -> Tensor:
        """Images ``sl`` as ``[b, C, H*W]`` with their values."""
        out = self.empty(sl)
        if not self.direct:
            for dst, image in zip(out, self.t[sl], strict=True):
                dst.copy_(image.flatten(1))
        return out

    def store(self, sl: slice) -> None:
        """Write the buffer back into images ``sl`` (nothing to do for a contiguous map)."""
        if self.buffer is not None:
            for src, image in zip(self.buffer, self.t[sl], strict=False):
                image.permute(1, 2, 0).flatten(0, 1).copy_(src.t())


def _softmax_positions(src: Tensor, temperature: float, out: Tensor, scratch: Tensor) -> Tensor:
    """``softmax(src / T)`` over the positions (last dim) into ``out``."""
    if temperature != 1.0:
        src = torch.div(src, temperature, out=scratch)
    return torch.softmax(src, -1, out=out)


def _first_max(x: Tensor, out: Tensor, scratch: Tensor) -> Tensor:
    """One-hot over dim 2 of ``x`` ``[b, k, xi, n]`` marking the first maximal channel, as
    ``torch.max``'s index would, written into ``out`` (``scratch``, which may be ``x``, is
    overwritten): elementwise ops on contiguous slices, which vectorise where ``max(dim)`` with
    indices runs a scalar loop."""
    below = torch.lt(x, x.amax(2, keepdim=True), out=scratch)  # 0 at the maxima, else 1
    rest = torch.ones_like(below[:, :, :1])  # 1 until a maximum is taken
    spare = torch.empty_like(rest)
    for j in range(x.shape[2]):
        torch.mul(rest, below[:, :, j : j + 1], out=spare)
        torch.sub(rest, spare, out=out[:, :, j : j + 1])
        rest, spare = spare, rest
    return out


class _ChannelConstraint(torch.autograd.Function):
    """``(l_dis, l_div)`` of one stage, optionally on top-down gated features
    ``features * gate`` (``gate`` ``[B, C/r, H, W]``, broadcast over groups of ``r`` channels).

    Block by block (:class:`_Blocks`: images, or classes of one image), in contiguous
    ``[b, k, xi, H*W]`` float32 (float64 for float64 features) buffers read from the features'
    own layout (contiguous or channels_last, :class:`_Images`): the forward keeps only
    per-class sums, the backward recomputes the block's softmax and writes its gradient in the
    features' layout and dtype. No full-size float32 temporary is made and none is saved.
    CCMP's gradient goes to the first maximal channel, as ``torch.max``'s does."""

    @staticmethod
    def forward(ctx, features, gate, mask, targets, xi, temperature):
        features = _dense(features)
        gate = None if gate is None else _dense(gate)
        b, c, h, w = features.shape
        k, n = c // xi, h * w
        acc = _accumulation_dtype(features)
        per = xi if gate is None else gate.shape[1] // k
        m = mask.to(acc).reshape(mask.shape[0], k, xi, 1)
        blocks = _Blocks(b, k, xi, n, per, acc, features.device, 4)
        images = _Images(features, blocks.images)
        gates = None if gate is None else _Images(gate, blocks.images)
        peak_sum = features.new_zeros((), dtype=acc)
        logits = features.new_empty(b, k, dtype=acc)
        for isl in blocks.image_slices:
            f_cn = images.load(isl)
            g_cn = None if gates is None else gates.load(isl)
            nb = f_cn.shape[0]
            for ks in blocks.class_slices:
                src = blocks.source(f_cn, g_cn, ks)[2]
                scratch = blocks.buf(3, nb, ks)
                prob = _softmax_positions(src, temperature, blocks.buf(2, nb, ks), scratch)
                peak_sum += prob.amax(2).sum()
                masked = torch.mul(src, m[isl if m.shape[0] > 1 else 0, ks], out=scratch)
                logits[isl, ks] = masked.amax(2).sum(-1) / n
        l_div = 1.0 - peak_sum / (b * k * xi)
        l_dis = F.cross_entropy(logits, targets)
        dlogits = torch.softmax(logits, dim=-1)
        dlogits[torch.arange(b, device=logits.device), targets] -= 1.0
        ctx.save_for_backward(features, gate, m, dlogits / b)
        ctx.xi, ctx.temperature = xi, temperature
        return l_dis, l_div

    @staticmethod
    @once_differentiable
    def backward(ctx, g_dis, g_div):
        features, gate, m, dlogits = ctx.saved_tensors
        xi, temperature = ctx.xi, ctx.temperature
        b, c, h, w = features.shape
        k, n = c // xi, h * w
        acc = m.dtype
        per = xi if gate is None else gate.shape[1] // k
        blocks = _Blocks(b, k, xi, n, per, acc, features.device, 5)
        images = _Images(features, blocks.images)
        grads = _Images(torch.empty_like(features), blocks.images)
        gates = None if gate is None else _Images(gate, blocks.images)
        want_gate = gate is not None and ctx.needs_input_grad[1]
        gate_grads = _Images(torch.empty_like(gate), blocks.images) if want_gate else None
        # L_div = 1 - sum(peak) / (b k xi): dL/dprob = c at each position's first maximal
        # channel (one-hot G), 0 elsewhere; through the softmax dL/dz = c * prob * (G - won),
        # won = sum over positions of G * prob (the peaks each channel wins).
        c_div = -g_div / (b * k * xi * temperature)
        # L_dis: logits = mean_n max_j(src * m); dL/dlogits = (softmax - onehot) / B.
        w_dis = dlogits * (g_dis / n)
        for isl in blocks.image_slices:
            f_cn = images.load(isl)
            g_cn = None if gates is None else gates.load(isl)
            grad_cn = grads.empty(isl)
            gate_grad_cn = None if gate_grads is None else gate_grads.empty(isl)
            nb = f_cn.shape[0]
            for ks in blocks.class_slices:
                feats, gate_block, src = blocks.source(f_cn, g_cn, ks)
                scratch, onehot = blocks.buf(3, nb, ks), blocks.buf(4, nb, ks)
                grad = _softmax_positions(src, temperature, blocks.buf(2, nb, ks), scratch)
                _first_max(grad, onehot, scratch)
                won = torch.mul(onehot, grad, out=scratch).sum(-1, keepdim=True)
                grad.mul_(onehot.sub_(won)).mul_(c_div)
                mb = m[isl if m.shape[0] > 1 else 0, ks]
                _first_max(torch.mul(src, mb, out=scratch), onehot, scratch)
                grad.addcmul_(onehot, mb * w_dis[isl, ks, None, None])
                if gate_block is not None:
                    per_gate = grad.unflatten(2, (per, -1))
                    if gate_grad_cn is not None:
                        prod = torch.mul(grad, feats, out=scratch).unflatten(2, (per, -1))
                        summed = torch.sum(prod, 3, keepdim=True, out=blocks.gate_buf(1, nb, ks))
                        gate_grad_cn[:, ks.start * per : ks.stop * per] = summed.view(nb, -1, n)
                    per_gate.mul_(gate_block)
                grad_cn[:, ks.start * xi : ks.stop * xi] = grad.view(nb, -1, n)
            grads.store(isl)
            if gate_grads is not None:
                gate_grads.store(isl)
        return grads.t, None if gate_grads is None else gate_grads.t, None, None, None, None


def _constraint(
    features: Tensor,
    targets: Tensor,
    xi: int,
    mask: Tensor | None,
    keep: int | None,
    generator: torch.Generator | None,
    div_temperature: float,
    gate: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Validate and compute ``(l_dis, l_div)`` of ``features`` (times ``gate`` when given)."""
    num_classes = _check_features(features, xi)
    _check_targets(targets, features.shape[0], num_classes)
    if not div_temperature > 0:
        raise ValueError(f"div_temperature must be > 0, got {div_temperature!r}")
    if mask is None:
        mask = random_channel_mask(
            num_classes, xi, keep, device=features.device, generator=generator
        )
    m = _mask_view(mask, features, num_classes, xi)
    return _ChannelConstraint.apply(features, gate, m, targets.long(), xi, float(div_temperature))


def channel_constraint(
    features: Tensor,
    targets: Tensor,
    xi: int,
    *,
    mask: Tensor | None = None,
    keep: int | None = None,
    generator: torch.Generator | None = None,
    div_temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """The channel-constraint losses ``(l_dis, l_div)`` of one stage (float32 scalars, float64
    for float64 features).

    ``l_div = 1 - mean_{b,k} sum_hw CCMP(softmax_hw(F / T)) / xi`` on the unmasked features,
    in ``[0, 1 - 1/xi]`` (the softmax runs in float32 even under autocast; ``T = 1`` is the
    published method, other values a labelled ablation). ``l_dis = CE(GAP(CCMP(F * mask)), y)``
    with ``mask`` of shape ``[K*xi]`` (one for the batch, as published) or ``[B, K*xi]``; kept
    channels are not rescaled; the mask is a constant (no gradient). When ``mask`` is None one
    is drawn with :func:`random_channel_mask` (``keep`` channels per class, from
    ``generator``); ``keep`` is only used then. Where several channels tie for a maximum, the
    gradient goes to the first, as with ``torch.max``.

    Book: chapter 2, *Discriminality: $L_{dis}$*.
    """
    return _constraint(features, targets, xi, mask, keep, generator, div_temperature)


def _attention_map(high: Tensor, mid: Tensor) -> tuple[Tensor, int]:
    """``sigmoid(nearest-upsample(high))`` at mid's size, ``[B, C_high, H_mid, W_mid]``, and
    the channel ratio ``r = C_mid / C_high``."""
    if high.dim() != 4 or mid.dim() != 4:
        raise ValueError(
            f"high and mid must be 4-D [B, C, H, W], got high {_shape(high)}, mid {_shape(mid)}"
        )
    if high.shape[0] != mid.shape[0]:
        raise ValueError(
            f"high has batch size {high.shape[0]} but mid has batch size {mid.shape[0]}: "
            f"expected the same batch"
        )
    c_high, c_mid = high.shape[1], mid.shape[1]
    if c_high == 0 or c_mid % c_high:
        raise ValueError(
            f"mid has C_mid={c_mid} channels and high C_high={c_high}: the ratio "
            f"C_mid / C_high must be an integer (xi_mid a multiple of xi_high)"
        )
    # Sigmoid commutes with nearest upsampling: apply it on the smaller map.
    gate = F.interpolate(torch.sigmoid(high), size=tuple(mid.shape[-2:]), mode="nearest")
    return gate, c_mid // c_high


def top_down_attention(high: Tensor, mid: Tensor) -> Tensor:
    """The top-down gate map ``A`` at mid's shape ``[B, C_mid, H_mid, W_mid]``.

    ``A = sigmoid(nearest-upsample(high to mid's H x W))`` with high channel ``i`` repeated for
    mid channels ``i*r .. i*r+r-1``, ``r = C_mid / C_high`` (an integer, else ValueError).
    With post-ReLU ``high``, ``A`` lies in ``[0.5, 1)``. Nothing is detached.

    Book: chapter 3, *The gate*.
    """
    gate, r = _attention_map(high, mid)
    return gate.repeat_interleave(r, dim=1)


def top_down_gate(high: Tensor, mid: Tensor) -> Tensor:
    """The gated mid-level features ``mid * top_down_attention(high, mid)``.

    The gate is broadcast over each group of ``r`` mid channels rather than materialised at
    mid's size. Gradients reach ``high`` through the gate.

    Book: chapter 3, *The gate*.
    """
    gate, r = _attention_map(high, mid)
    b, c_mid, h, w = mid.shape
    gated = mid.reshape(b, c_mid // r, r, h, w) * gate.unsqueeze(2)
    return gated.reshape(b, c_mid, h, w)


def mc_loss_weights(mu: float, lam: float, xi: int) -> tuple[float, float]:
    """Convert MC-Loss paper weights ``(mu, lambda)`` to this code's ``(alpha, beta)``.

    The MC-Loss paper writes ``L_CE + mu * (L_dis - lambda * L_div')`` with ``L_div'`` the
    un-normalised diversity (``mean_{b,k} h_{b,k}`` in ``[1, xi]``); this code writes
    ``L_CE + alpha * L_dis + beta * L_div`` with ``L_div = 1 - L_div' / xi``. With
    ``alpha = mu`` and ``beta = mu * lambda * xi`` the two agree up to the constant
    ``mu * lambda * xi``, so they have the same gradients.

    Book: code_vs_paper.md, *The two loss forms*.
    """
    return float(mu), float(mu) * float(lam) * check_stage_xi(xi)


_STAGES = ("mid", "high")


class TDSALoss(nn.Module):
    """The full TDSA training loss.

    ``total = ce + aux_scale * (alpha_mid*dis_mid + beta_mid*div_mid + alpha_high*dis_high +
    beta_high*div_high)``, where the mid-level terms use the top-down gated mid features
    (:func:`top_down_gate`; raw mid features with ``top_down=False``, the ablation) and the
    high-level terms the high features. A stage whose alpha and beta are both 0 is skipped
    (its terms are zero tensors). ``keep_*`` are the channels kept per class by the random
    mask (default ``ceil(xi/2)``); ``div_temperature`` is an ablation of the diversity
    softmax (1 is the published method).

    Book: chapter 3, *Gradients flow through the gate into the high level*.
    """

    def __init__(
        self,
        num_classes: int,
        xi_mid: int = DEFAULT_XI[0],
        xi_high: int = DEFAULT_XI[1],
        alpha_mid: float = 1.5,
        beta_mid: float = 15.0,
        alpha_high: float = 1.5,
        beta_high: float = 15.0,
        top_down: bool = True,
        keep_mid: int | None = None,
        keep_high: int | None = None,
        div_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        _check_classes(num_classes)
        xi_mid, xi_high = check_xi((xi_mid, xi_high), top_down)
        if not div_temperature > 0:
            raise ValueError(f"div_temperature must be > 0, got {div_temperature!r}")
        self.num_classes = num_classes
        self.xi = {"mid": xi_mid, "high": xi_high}
        self.alpha = {"mid": float(alpha_mid), "high": float(alpha_high)}
        self.beta = {"mid": float(beta_mid), "high": float(beta_high)}
        self.keep = {
            "mid": _resolve_keep(xi_mid, keep_mid),
            "high": _resolve_keep(xi_high, keep_high),
        }
        self.top_down = bool(top_down)
        self.div_temperature = float(div_temperature)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, xi_mid={self.xi['mid']}, "
            f"xi_high={self.xi['high']}, alpha_mid={self.alpha['mid']}, "
            f"beta_mid={self.beta['mid']}, alpha_high={self.alpha['high']}, "
            f"beta_high={self.beta['high']}, top_down={self.top_down}, "
            f"keep_mid={self.keep['mid']}, keep_high={self.keep['high']}, "
            f"div_temperature={self.div_temperature}"
        )

    def active(self, stage: str) -> bool:
        """Whether ``stage`` (``"mid"`` or ``"high"``) has a non-zero weight and is computed.
        """
        return self.alpha[stage] != 0.0 or self.beta[stage] != 0.0

    def _check_inputs(self, logits: Tensor, mid: Tensor, high: Tensor) -> None:
        for stage, t in (("mid", mid), ("high", high)):
            want = self.num_classes * self.xi[stage]
            if t.dim() != 4 or t.shape[1] != want:
                raise ValueError(
                    f"{stage} features must be [B, num_classes*xi_{stage}={want}, H, W] "
                    f"(num_classes={self.num_classes}, xi_{stage}={self.xi[stage]}), "
                    f"got shape {_shape(t)}"
                )
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits must be [B, num_classes={self.num_classes}], got shape {_shape(logits)}"
            )
        batches = {"logits": logits.shape[0], "mid": mid.shape[0], "high": high.shape[0]}
        if len(set(batches.values())) != 1:
            raise ValueError(f"logits, mid and high must have the same batch size, got {batches}")

    def forward(
        self,
        logits: Tensor,
        mid: Tensor,
        high: Tensor,
        targets: Tensor,
        masks: dict[str, Tensor] | None = None,
        *,
        generator: torch.Generator | None = None,
        aux_scale: float | Tensor = 1.0,
    ) -> dict[str, Tensor]:
        """The loss terms ``{total, ce, dis_mid, div_mid, dis_high, div_high}``.

        ``masks`` is None or ``{"mid": mask, "high": mask}`` (a missing stage draws its own
        mask from ``generator``); ``aux_scale`` multiplies the auxiliary terms (a ramp-in).
        """
        self._check_inputs(logits, mid, high)
        _check_targets(targets, logits.shape[0], self.num_classes)
        masks = {} if masks is None else masks
        if not isinstance(masks, Mapping):
            raise TypeError(
                f"masks must be None or a dict with keys 'mid' and/or 'high' (one 0/1 channel "
                f"mask each), got a {type(masks).__name__}"
            )
        unknown = set(masks) - set(_STAGES)
        if unknown:
            raise ValueError(f"masks keys must be 'mid' and/or 'high', got {sorted(unknown)}")
        ce = F.cross_entropy(logits, targets.long())
        out = {"ce": ce}
        aux = ce.new_zeros(())
        for stage in _STAGES:
            if not self.active(stage):
                out[f"dis_{stage}"] = ce.new_zeros(())
                out[f"div_{stage}"] = ce.new_zeros(())
                continue
            # The mid gate is applied inside the fused stage loss: the same values as
            # channel_constraint(top_down_gate(high, mid), ...) with fewer large temporaries.
            gate = _attention_map(high, mid)[0] if stage == "mid" and self.top_down else None
            dis, div = _constraint(
                high if stage == "high" else mid,
                targets,
                self.xi[stage],
                masks.get(stage),
                self.keep[stage],
                generator,
                self.div_temperature,
                gate,
            )
            out[f"dis_{stage}"], out[f"div_{stage}"] = dis, div
            aux = aux + self.alpha[stage] * dis + self.beta[stage] * div
        out["total"] = ce + aux_scale * aux
        return {k: out[k] for k in ("total", "ce", "dis_mid", "div_mid", "dis_high", "div_high")}
