"""Tests of tdsa.losses against slow, loop-based references written here.

The references loop over batch, class, channel and position in plain Python (math.exp,
max, sums), so they share no code path with the vectorised implementation.
"""

from __future__ import annotations

import math

import pytest
import torch

from tdsa.losses import (
    TDSALoss,
    ccmp,
    channel_constraint,
    mc_loss_weights,
    random_channel_mask,
    top_down_attention,
    top_down_gate,
)

# (K, xi, H, W): several class counts, xi = 1, 2, 3, 4, 5, non-square maps.
CASES = [(1, 1, 3, 4), (3, 2, 2, 5), (7, 4, 3, 2), (3, 5, 4, 3), (1, 3, 5, 2), (7, 1, 2, 3)]


def _features(b: int, k: int, xi: int, h: int, w: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, k * xi, h, w, generator=gen, dtype=torch.float64) * 2


def _explicit_mask(b: int | None, k: int, xi: int, seed: int) -> torch.Tensor:
    """A 0/1 mask with at least one kept channel per class (batched if ``b`` is given)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (k * xi,) if b is None else (b, k * xi)
    mask = (torch.rand(shape, generator=gen) < 0.5).double()
    mask.view(-1, k, xi)[..., 0] = 1.0
    return mask


def ref_ccmp(f: torch.Tensor, xi: int) -> list:
    b, c, h, w = f.shape
    v = f.tolist()
    return [
        [
            [[max(v[i][k * xi + j][y][x] for j in range(xi)) for x in range(w)] for y in range(h)]
            for k in range(c // xi)
        ]
        for i in range(b)
    ]


def ref_div(f: torch.Tensor, xi: int) -> float:
    b, c, h, w = f.shape
    k_n = c // xi
    v = f.tolist()
    total = 0.0
    for i in range(b):
        for k in range(k_n):
            soft = []
            for j in range(xi):
                ch = v[i][k * xi + j]
                z = sum(math.exp(ch[y][x]) for y in range(h) for x in range(w))
                soft.append([[math.exp(ch[y][x]) / z for x in range(w)] for y in range(h)])
            total += sum(max(soft[j][y][x] for j in range(xi)) for y in range(h) for x in range(w))
    return 1.0 - total / (b * k_n) / xi


def ref_dis(f: torch.Tensor, targets: torch.Tensor, xi: int, mask: torch.Tensor) -> float:
    b, c, h, w = f.shape
    k_n = c // xi
    v = f.tolist()
    m = mask.tolist()
    loss = 0.0
    for i in range(b):
        mi = m[i] if mask.dim() == 2 else m
        logits = []
        for k in range(k_n):
            s = 0.0
            for y in range(h):
                for x in range(w):
                    s += max(v[i][k * xi + j][y][x] * mi[k * xi + j] for j in range(xi))
            logits.append(s / (h * w))
        z = sum(math.exp(a) for a in logits)
        loss += -math.log(math.exp(logits[int(targets[i])]) / z)
    return loss / b


def ref_gate(high: torch.Tensor, mid: torch.Tensor) -> list:
    b, c_mid, h, w = mid.shape
    c_high, hh, wh = high.shape[1:]
    r = c_mid // c_high
    hv, mv = high.tolist(), mid.tolist()
    out = []
    for i in range(b):
        chans = []
        for j in range(c_mid):
            rows = []
            for y in range(h):
                row = []
                for x in range(w):
                    src = hv[i][j // r][(y * hh) // h][(x * wh) // w]  # nearest: floor(dst*in/out)
                    row.append(mv[i][j][y][x] / (1.0 + math.exp(-src)))
                rows.append(row)
            chans.append(rows)
        out.append(chans)
    return out


# ---------------------------------------------------------------- ccmp, l_div, l_dis


@pytest.mark.parametrize(("k", "xi", "h", "w"), CASES)
def test_ccmp_matches_loop_reference(k, xi, h, w):
    f = _features(2, k, xi, h, w, seed=k * 10 + xi)
    out = ccmp(f, xi)
    assert out.shape == (2, k, h, w)
    torch.testing.assert_close(out, torch.tensor(ref_ccmp(f, xi), dtype=torch.float64))


@pytest.mark.parametrize(("k", "xi", "h", "w"), CASES)
def test_l_div_matches_loop_reference(k, xi, h, w):
    f = _features(3, k, xi, h, w, seed=k + xi)
    y = torch.arange(3) % k
    _, l_div = channel_constraint(f, y, xi, mask=torch.ones(k * xi, dtype=torch.float64))
    assert l_div.item() == pytest.approx(ref_div(f, xi), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("k", "xi", "h", "w"), CASES)
@pytest.mark.parametrize("batched", [False, True])
def test_l_dis_matches_loop_reference(k, xi, h, w, batched):
    b = 3
    f = _features(b, k, xi, h, w, seed=100 + k * xi)
    y = torch.tensor([k - 1, 0, (k // 2)])
    mask = _explicit_mask(b if batched else None, k, xi, seed=7 * k + xi)
    l_dis, _ = channel_constraint(f, y, xi, mask=mask)
    assert l_dis.item() == pytest.approx(ref_dis(f, y, xi, mask), rel=1e-9)


def test_l_dis_masked_channels_count_as_zero_not_skipped():
    # All features negative: a dropped channel (0) wins the max, kept channels are not rescaled.
    f = -torch.rand(1, 4, 2, 3, dtype=torch.float64) - 1.0
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    l_dis, _ = channel_constraint(f, torch.tensor([1]), 2, mask=mask)
    assert l_dis.item() == pytest.approx(ref_dis(f, torch.tensor([1]), 2, mask))
    logit1 = f[0, 2:].amax(0).mean()
    expect = -torch.log_softmax(torch.stack([torch.zeros((), dtype=f.dtype), logit1]), 0)[1]
    assert l_dis.item() == pytest.approx(expect.item())


@pytest.mark.parametrize("xi", [1, 2, 3, 5, 9])
def test_l_div_constant_features_and_range(xi):
    k = 3
    const = torch.full((2, k * xi, 3, 5), 0.7)
    _, l_div = channel_constraint(const, torch.tensor([0, 2]), xi)
    assert l_div.item() == pytest.approx(1 - 1 / xi, abs=1e-6)
    for seed in range(5):
        f = torch.randn(2, k * xi, 3, 5, generator=torch.Generator().manual_seed(seed)) * 4
        _, l_div = channel_constraint(f, torch.tensor([0, 1]), xi)
        assert -1e-6 <= l_div.item() <= 1 - 1 / xi + 1e-6


def test_l_div_reaches_zero_when_channels_are_disjoint_peaks():
    # Each channel of a group puts all its mass on a different position: h = xi, L_div = 0.
    xi, h, w = 3, 2, 2
    f = torch.full((1, xi, h, w), -60.0)
    for j in range(xi):
        f[0, j].view(-1)[j] = 60.0
    _, l_div = channel_constraint(f, torch.tensor([0]), xi)
    assert l_div.item() == pytest.approx(0.0, abs=1e-5)


def test_div_temperature_is_softmax_of_scaled_features():
    f = _features(2, 3, 2, 3, 4, seed=3)
    y = torch.tensor([0, 2])
    _, l_div = channel_constraint(f, y, 2, div_temperature=2.5)
    assert l_div.item() == pytest.approx(ref_div(f / 2.5, 2), rel=1e-9)


# ---------------------------------------------------------------- random mask


@pytest.mark.parametrize(
    ("k", "xi", "keep"),
    [(1, 1, None), (3, 2, None), (7, 5, None), (3, 9, None), (4, 9, 2), (2, 4, 4)],
)
def test_random_mask_keeps_exactly_keep_per_group(k, xi, keep):
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        mask = random_channel_mask(k, xi, keep, generator=gen)
        assert mask.shape == (k * xi,) and mask.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        want = math.ceil(xi / 2) if keep is None else keep
        assert mask.view(k, xi).sum(1).tolist() == [want] * k


def test_random_mask_is_reproducible_and_varies():
    a = random_channel_mask(50, 9, generator=torch.Generator().manual_seed(123))
    b = random_channel_mask(50, 9, generator=torch.Generator().manual_seed(123))
    assert torch.equal(a, b)
    gen = torch.Generator().manual_seed(5)
    draws = {tuple(random_channel_mask(50, 9, generator=gen).tolist()) for _ in range(5)}
    assert len(draws) == 5
    # every channel of a group is sometimes kept and sometimes dropped
    many = torch.stack([random_channel_mask(2, 3, generator=gen) for _ in range(200)])
    assert (many.mean(0) > 0.4).all() and (many.mean(0) < 0.95).all()


def test_drawn_mask_is_shared_by_the_batch_and_seeded():
    # With a drawn mask, l_dis equals the reference with the mask the same seed draws.
    k, xi = 3, 4
    f = _features(4, k, xi, 2, 3, seed=11)
    y = torch.tensor([0, 1, 2, 1])
    l_dis, _ = channel_constraint(f, y, xi, generator=torch.Generator().manual_seed(9))
    mask = random_channel_mask(k, xi, generator=torch.Generator().manual_seed(9)).double()
    assert l_dis.item() == pytest.approx(ref_dis(f, y, xi, mask), rel=1e-9)
    batched = mask.expand(4, -1)
    assert l_dis.item() == pytest.approx(ref_dis(f, y, xi, batched), rel=1e-9)
    l_keep, _ = channel_constraint(f, y, xi, keep=1, generator=torch.Generator().manual_seed(9))
    mask1 = random_channel_mask(k, xi, 1, generator=torch.Generator().manual_seed(9)).double()
    assert mask1.view(k, xi).sum(1).tolist() == [1.0] * k
    assert l_keep.item() == pytest.approx(ref_dis(f, y, xi, mask1), rel=1e-9)


# ---------------------------------------------------------------- top-down gate


@pytest.mark.parametrize(
    ("c_high", "r", "hh", "wh", "h", "w"),
    [(2, 3, 2, 3, 4, 6), (3, 1, 3, 2, 3, 2), (1, 4, 1, 2, 3, 5), (4, 2, 3, 3, 5, 4)],
)
def test_gate_matches_loop_reference(c_high, r, hh, wh, h, w):
    gen = torch.Generator().manual_seed(c_high * 7 + r)
    high = torch.randn(2, c_high, hh, wh, generator=gen, dtype=torch.float64)
    mid = torch.randn(2, c_high * r, h, w, generator=gen, dtype=torch.float64)
    expect = torch.tensor(ref_gate(high, mid), dtype=torch.float64)
    torch.testing.assert_close(top_down_gate(high, mid), expect)
    ones = torch.ones_like(mid)
    torch.testing.assert_close(
        top_down_attention(high, mid), torch.tensor(ref_gate(high, ones), dtype=torch.float64)
    )


def test_gate_in_half_open_unit_half_on_post_relu_features():
    gen = torch.Generator().manual_seed(0)
    high = torch.randn(3, 6, 7, 5, generator=gen).relu() * 3
    mid = torch.randn(3, 18, 14, 10, generator=gen)
    a = top_down_attention(high, mid)
    assert a.shape == mid.shape
    assert a.min().item() == 0.5 and a.max().item() < 1.0
    assert (a > 0.5).any()


def test_gradients_reach_high_through_the_gate_only_with_top_down():
    k, b = 3, 2
    gen = torch.Generator().manual_seed(1)
    y = torch.tensor([0, 2])
    masks = {"mid": torch.ones(k * 6), "high": torch.ones(k * 2)}
    for top_down in (True, False):
        mid = torch.randn(b, k * 6, 4, 6, generator=gen).relu().requires_grad_()
        high = torch.randn(b, k * 2, 2, 3, generator=gen).relu().requires_grad_()
        logits = torch.randn(b, k, generator=gen).requires_grad_()
        crit = TDSALoss(k, xi_mid=6, xi_high=2, alpha_high=0.0, beta_high=0.0, top_down=top_down)
        crit(logits, mid, high, y, masks)["total"].backward()
        assert mid.grad is not None and mid.grad.abs().sum() > 0
        if top_down:
            assert high.grad is not None and high.grad.abs().sum() > 0
        else:
            assert high.grad is None


def test_gradcheck_gate():
    gen = torch.Generator().manual_seed(2)
    high = torch.randn(1, 2, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    mid = torch.randn(1, 4, 3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(top_down_gate, (high, mid))


# ---------------------------------------------------------------- TDSALoss


def _stage_inputs(k=3, xi_mid=6, xi_high=2, b=4, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    mid = torch.randn(b, k * xi_mid, 6, 4, generator=gen, dtype=dtype).relu()
    high = torch.randn(b, k * xi_high, 3, 2, generator=gen, dtype=dtype).relu()
    logits = torch.randn(b, k, generator=gen, dtype=dtype)
    y = torch.randint(0, k, (b,), generator=gen)
    masks = {"mid": _explicit_mask(None, k, xi_mid, 1), "high": _explicit_mask(b, k, xi_high, 2)}
    return logits, mid, high, y, masks


def _stage_criterion(top_down: bool) -> TDSALoss:
    """The TDSALoss that matches `_stage_inputs` (3 classes, xi 6/2, distinct weights)."""
    return TDSALoss(3, xi_mid=6, xi_high=2, alpha_mid=0.7, beta_mid=2.0, alpha_high=1.3,
                    beta_high=5.0, top_down=top_down)


@pytest.mark.parametrize("top_down", [True, False])
def test_tdsa_total_is_weighted_sum_of_functional_terms(top_down):
    logits, mid, high, y, masks = _stage_inputs()
    crit = _stage_criterion(top_down)
    out = crit(logits, mid, high, y, masks, aux_scale=0.25)
    assert set(out) == {"total", "ce", "dis_mid", "div_mid", "dis_high", "div_high"}
    mid_in = top_down_gate(high, mid) if top_down else mid
    assert out["dis_mid"].item() == pytest.approx(ref_dis(mid_in, y, 6, masks["mid"]), rel=1e-9)
    assert out["div_mid"].item() == pytest.approx(ref_div(mid_in, 6), rel=1e-9)
    assert out["dis_high"].item() == pytest.approx(ref_dis(high, y, 2, masks["high"]), rel=1e-9)
    assert out["div_high"].item() == pytest.approx(ref_div(high, 2), rel=1e-9)
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert out["ce"].item() == pytest.approx(ce.item())
    expect = ce + 0.25 * (
        0.7 * out["dis_mid"] + 2.0 * out["div_mid"] + 1.3 * out["dis_high"] + 5.0 * out["div_high"]
    )
    assert out["total"].item() == pytest.approx(expect.item())


def test_tdsa_default_weights_and_repr():
    crit = TDSALoss(200)
    text = repr(crit)
    for part in (
        "num_classes=200",
        "xi_mid=9",
        "xi_high=3",
        "alpha_mid=1.5",
        "beta_mid=15.0",
        "top_down=True",
        "keep_mid=5",
        "keep_high=2",
    ):
        assert part in text


def test_tdsa_zero_weights_skip_the_stage(monkeypatch):
    import tdsa.losses as losses

    calls = []
    real = losses._constraint

    def spy(features, targets, xi, *args):
        calls.append(xi)
        return real(features, targets, xi, *args)

    monkeypatch.setattr(losses, "_constraint", spy)
    logits, mid, high, y, masks = _stage_inputs()
    ce = torch.nn.functional.cross_entropy(logits, y)
    only_ce = TDSALoss(3, 6, 2, 0.0, 0.0, 0.0, 0.0)(logits, mid, high, y, masks)
    assert calls == []
    for key in ("dis_mid", "div_mid", "dis_high", "div_high"):
        assert only_ce[key].item() == 0.0
    assert only_ce["total"].item() == pytest.approx(ce.item())
    high_only = TDSALoss(3, 6, 2, alpha_mid=0.0, beta_mid=0.0)(logits, mid, high, y, masks)
    assert calls == [2]
    assert high_only["div_high"].item() == pytest.approx(ref_div(high, 2), rel=1e-9)
    assert high_only["dis_mid"].item() == 0.0


def test_mc_loss_weights_agree_up_to_a_constant():
    _, _, high, y, masks = _stage_inputs()
    mu, lam, xi = 0.4, 2.5, 2
    alpha, beta = mc_loss_weights(mu, lam, xi)
    assert (alpha, beta) == pytest.approx((0.4, 0.4 * 2.5 * 2))
    l_dis, l_div = channel_constraint(high, y, xi, mask=masks["high"])
    div_unnorm = (1 - l_div) * xi  # mean_{b,k} h_{b,k}
    code = alpha * l_dis + beta * l_div
    paper = mu * (l_dis - lam * div_unnorm)
    assert (code - paper).item() == pytest.approx(mu * lam * xi)


# ---------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_value_errors():
    f = torch.randn(2, 6, 3, 4)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"C=6 .*xi=4.*num_classes\*xi"):
        channel_constraint(f, y, 4)
    with pytest.raises(ValueError, match=r"4-D"):
        channel_constraint(f[0], y, 3)
    with pytest.raises(ValueError, match=r"batch size 3 but features have batch size 2"):
        channel_constraint(f, torch.tensor([0, 1, 0]), 3)
    with pytest.raises(ValueError, match=r"1-D"):
        channel_constraint(f, y[:, None], 3)
    with pytest.raises(ValueError, match=r"\[0, 2\).*got value 2"):
        channel_constraint(f, torch.tensor([0, 2]), 3)
    with pytest.raises(ValueError, match=r"\[0, 2\).*got value -1"):
        channel_constraint(f, torch.tensor([-1, 0]), 3)
    with pytest.raises(ValueError, match=r"mask must have shape \[K\*xi\]=\[6\] or \[B, K\*xi\]"):
        channel_constraint(f, y, 3, mask=torch.ones(5))
    with pytest.raises(ValueError, match=r"keep must be an integer in \[1, xi=3\]"):
        random_channel_mask(2, 3, keep=4)
    with pytest.raises(ValueError, match=r"C_mid=7 .*C_high=2.*must be an integer"):
        top_down_gate(torch.randn(2, 2, 2, 2), torch.randn(2, 7, 4, 4))
    with pytest.raises(ValueError, match=r"high has batch size 3 but mid has batch size 2"):
        top_down_attention(torch.randn(3, 2, 2, 2), torch.randn(2, 4, 4, 4))
    with pytest.raises(ValueError, match=r"^xi=\[9, 4\] is invalid with top_down=true: xi_mid "
                                         r"must be a multiple of xi_high"):
        TDSALoss(5, xi_mid=9, xi_high=4)


def test_tdsa_wrong_channel_counts_and_batches_raise():
    logits, mid, high, y, masks = _stage_inputs()
    crit = TDSALoss(3, xi_mid=6, xi_high=2)
    with pytest.raises(ValueError, match=r"mid features must be \[B, num_classes\*xi_mid=18"):
        crit(logits, mid[:, :15], high, y)
    with pytest.raises(ValueError, match=r"high features must be \[B, num_classes\*xi_high=6"):
        crit(logits, mid, high[:, :4], y)
    with pytest.raises(ValueError, match=r"same batch size"):
        crit(logits[:3], mid, high, y)
    with pytest.raises(ValueError, match=r"batch size 3 but features have batch size 4"):
        crit(logits, mid, high, y[:3])
    with pytest.raises(ValueError, match=r"\[0, 3\).*got value 5"):
        crit(logits, mid, high, torch.tensor([0, 5, 1, 1]))
    with pytest.raises(ValueError, match=r"masks keys must be 'mid' and/or 'high'"):
        crit(logits, mid, high, y, {"low": masks["mid"]})


# ---------------------------------------------------------------- autocast, gradcheck


def test_bf16_autocast_agrees_with_fp32():
    # Tolerance: bf16 keeps 8 mantissa bits (relative rounding 2**-9 ~ 2e-3); the loss
    # terms are means of O(1) quantities, so we allow 2e-2 absolute on each term.
    logits, mid, high, y, masks = _stage_inputs(k=5, b=4, dtype=torch.float32, seed=3)
    crit = TDSALoss(5, xi_mid=6, xi_high=2)
    ref = crit(logits, mid, high, y, masks)
    conv = torch.nn.Conv2d(mid.shape[1], mid.shape[1], 1, bias=False)
    torch.nn.init.eye_(conv.weight.view(mid.shape[1], mid.shape[1]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mid_bf = conv(mid)  # an autocast op: bf16 output, as from a network
        assert mid_bf.dtype == torch.bfloat16
        out = crit(logits, mid_bf, high.bfloat16(), y, masks)
    for key in ref:
        assert out[key].dtype == torch.float32
        assert out[key].item() == pytest.approx(ref[key].item(), abs=2e-2), key


def test_bf16_autocast_backward_runs_and_roughly_agrees():
    # Gradients of a max are piecewise: bf16 rounding flips some argmax channels, which moves
    # their gradient elsewhere, so we compare norms: relative L2 difference <= 0.25 (measured
    # 0.003-0.14 over seeds); a sign error or a lost term gives >= 1.
    logits, mid, high, y, masks = _stage_inputs(k=5, b=4, dtype=torch.float32, seed=2)
    crit = TDSALoss(5, xi_mid=6, xi_high=2)
    m32, h32 = mid.clone().requires_grad_(), high.clone().requires_grad_()
    crit(logits, m32, h32, y, masks)["total"].backward()
    m16, h16 = mid.clone().requires_grad_(), high.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = crit(logits, m16.bfloat16(), h16.bfloat16(), y, masks)
    out["total"].backward()
    for got, want in ((m16.grad, m32.grad), (h16.grad, h32.grad)):
        assert torch.isfinite(got).all()
        assert ((got - want).norm() / want.norm()).item() <= 0.25


def test_softmax_of_diversity_stays_float32_under_autocast():
    # bf16 features, exactly representable: under autocast l_div must equal the float32
    # computation on the same values to float32 precision. A bf16 softmax would be off
    # by far more (checked below), so this test fails if the softmax drops to bf16.
    gen = torch.Generator().manual_seed(4)
    f_bf = (torch.randn(4, 30, 7, 9, generator=gen) * 3).bfloat16()
    y = torch.tensor([0, 3, 9, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, l_div = channel_constraint(f_bf, y, 3)
    _, l_div32 = channel_constraint(f_bf.float(), y, 3)
    assert l_div.dtype == torch.float32
    assert abs(l_div.item() - l_div32.item()) < 1e-6
    p16 = torch.softmax(f_bf.flatten(2), -1).view(4, 10, 3, -1).amax(2).sum(-1).mean().float()
    assert abs((1 - p16 / 3).item() - l_div32.item()) > 1e-5


@pytest.mark.parametrize("top_down", [True, False])
def test_tdsa_gradients_equal_the_unfused_composition(top_down):
    # TDSALoss fuses the gate into the stage loss; its gradients must equal autograd through
    # top_down_gate + channel_constraint, and a gradcheck of the whole loss must pass.
    logits, mid, high, y, masks = _stage_inputs(b=2)
    crit = _stage_criterion(top_down)

    def fused(lg, m, h):
        return crit(lg, m, h, y, masks)["total"]

    def unfused(lg, m, h):
        m_in = top_down_gate(h, m) if top_down else m
        d_m, v_m = channel_constraint(m_in, y, 6, mask=masks["mid"])
        d_h, v_h = channel_constraint(h, y, 2, mask=masks["high"])
        ce = torch.nn.functional.cross_entropy(lg, y)
        return ce + 0.7 * d_m + 2.0 * v_m + 1.3 * d_h + 5.0 * v_h

    inputs = [t.clone().requires_grad_() for t in (logits, mid, high)]
    got = torch.autograd.grad(fused(*inputs), inputs)
    want = torch.autograd.grad(unfused(*inputs), inputs)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)
    # with a constant (detached) high map, mid's gradient still goes through the gate
    frozen = [logits.clone().requires_grad_(), mid.clone().requires_grad_(), high]
    got = torch.autograd.grad(fused(*frozen), frozen[:2])
    want = torch.autograd.grad(unfused(*frozen), frozen[:2])
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)
    # gradcheck away from ties (post-ReLU zeros tie in the max, where it is not differentiable)
    gen = torch.Generator().manual_seed(8)
    smooth = [
        torch.randn(t.shape, generator=gen, dtype=t.dtype, requires_grad=True)
        for t in (logits, mid, high)
    ]
    assert torch.autograd.gradcheck(fused, smooth)


def test_gradcheck_channel_constraint():
    gen = torch.Generator().manual_seed(6)
    f = torch.randn(2, 6, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 0])
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)

    def fn(x):
        l_dis, l_div = channel_constraint(x, y, 3, mask=mask)
        return l_dis, l_div

    assert torch.autograd.gradcheck(fn, (f,))
    batched = _explicit_mask(2, 2, 3, seed=1)

    def tempered(x):
        return channel_constraint(x, y, 3, mask=batched, div_temperature=0.6)

    assert torch.autograd.gradcheck(tempered, (f,))


# ---------------------------------------------------------------- memory layout, blocks, ties


def _autograd_reference(f, y, xi, mask, gate=None, temperature=1.0):
    """(l_dis, l_div) by plain autograd ops on the whole map (torch.max sends a tie's gradient
    to the first maximal channel): no blocks, no hand-written backward."""
    if gate is not None:
        r = f.shape[1] // gate.shape[1]
        f = f * gate.repeat_interleave(r, dim=1)
    b, c, h, w = f.shape
    k = c // xi
    v = f.reshape(b, k, xi, h * w)
    prob = torch.softmax(v / temperature, dim=-1)
    l_div = 1.0 - prob.max(dim=2).values.sum() / (b * k * xi)
    logits = (v * mask.reshape(-1, k, xi, 1)).max(dim=2).values.mean(-1)
    return torch.nn.functional.cross_entropy(logits, y), l_div


def _tied_features(b, k, xi, h, w, seed):
    """fp64 features with exact ties in the max over each group: channel pairs copied, zeros."""
    f = _features(b, k, xi, h, w, seed).relu()
    f.view(b, k, xi, h, w)[:, :, -1] = f.view(b, k, xi, h, w)[:, :, 0]
    return f


@pytest.mark.parametrize("block", [None, 1, 40, 400])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gradients_equal_plain_autograd_with_ties_layouts_and_blocks(
    monkeypatch, block, channels_last
):
    # On the CPU the stage loss runs in blocks of images or of classes (one image is 180
    # elements here): block 1 and 40 give one class per block, 400 two images then one.
    # Values and gradients must equal plain autograd on the whole map, whatever the layout,
    # ties included.
    import tdsa.losses as losses

    if block is not None:
        monkeypatch.setattr(losses, "_BLOCK_ELEMENTS", block)
    k, xi, b = 5, 3, 3
    f = _tied_features(b, k, xi, 4, 3, seed=21)
    y = torch.tensor([4, 0, 2])
    mask = _explicit_mask(None, k, xi, seed=5)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    got_in = f.clone().contiguous(memory_format=fmt).requires_grad_()
    want_in = f.clone().requires_grad_()
    got = channel_constraint(got_in, y, xi, mask=mask, div_temperature=0.7)
    want = _autograd_reference(want_in, y, xi, mask, temperature=0.7)
    for g, w_ in zip(got, want, strict=True):
        assert g.item() == pytest.approx(w_.item(), rel=1e-12)
    (got[0] + 3.0 * got[1]).backward()
    (want[0] + 3.0 * want[1]).backward()
    assert got_in.grad.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(got_in.grad, want_in.grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("block", [None, 30, 1000])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gated_stage_equals_plain_autograd_in_every_layout(monkeypatch, block, channels_last):
    # TDSALoss's mid stage (gate fused in) against plain autograd through top_down_gate's
    # formula, gradients to both mid and high, in contiguous and channels_last memory.
    import tdsa.losses as losses

    if block is not None:
        monkeypatch.setattr(losses, "_BLOCK_ELEMENTS", block)
    logits, mid, high, y, masks = _stage_inputs(b=3, seed=4)
    mid.view(3, 3, 6, 6, 4)[:, :, 5] = mid.view(3, 3, 6, 6, 4)[:, :, 2]  # ties
    crit = TDSALoss(3, xi_mid=6, xi_high=2, alpha_high=0.0, beta_high=0.0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    m_got = mid.clone().contiguous(memory_format=fmt).requires_grad_()
    h_got = high.clone().contiguous(memory_format=fmt).requires_grad_()
    out = crit(logits, m_got, h_got, y, masks)
    (out["dis_mid"] + 2.0 * out["div_mid"]).backward()
    m_want, h_want = mid.clone().requires_grad_(), high.clone().requires_grad_()
    gate = torch.sigmoid(torch.nn.functional.interpolate(h_want, size=(6, 4), mode="nearest"))
    dis, div = _autograd_reference(m_want, y, 6, masks["mid"], gate=gate)
    (dis + 2.0 * div).backward()
    assert out["dis_mid"].item() == pytest.approx(dis.item(), rel=1e-12)
    assert out["div_mid"].item() == pytest.approx(div.item(), rel=1e-12)
    assert m_got.grad.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(m_got.grad, m_want.grad, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(h_got.grad, h_want.grad, rtol=1e-10, atol=1e-13)


def test_bf16_channels_last_matches_fp32_contiguous():
    # bf16 channels_last features (as a bf16 + channels_last network gives them): the losses
    # equal the float32 computation on the same bf16 values to float32 precision (the work
    # runs in float32), the gradients keep the input's dtype and layout and agree with the
    # float32 ones to bf16 rounding (relative 2**-8: the same values, so the same maxima).
    gen = torch.Generator().manual_seed(12)
    f = (torch.randn(2, 5 * 3, 6, 7, generator=gen) * 2).bfloat16()
    y = torch.tensor([1, 4])
    mask = _explicit_mask(None, 5, 3, seed=2).float()
    f_cl = f.contiguous(memory_format=torch.channels_last).requires_grad_()
    f32 = f.float().requires_grad_()
    got = channel_constraint(f_cl, y, 3, mask=mask)
    want = channel_constraint(f32, y, 3, mask=mask)
    for g, w_ in zip(got, want, strict=True):
        assert g.dtype == torch.float32
        assert abs(g.item() - w_.item()) < 1e-6
    (got[0] + got[1]).backward()
    (want[0] + want[1]).backward()
    assert f_cl.grad.dtype == torch.bfloat16
    assert f_cl.grad.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(f_cl.grad.float(), f32.grad, rtol=2**-8, atol=1e-7)
