"""Chapter 05's claims (bnpaper.experiments.learning_rate): each estimate on synthetic measurements,
every verdict reachable, both sides of each boundary (the grid edge and the float edges included),
and the measurements themselves against independent computations."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from bnpaper.experiments import learning_rate as lr_exp
from bnpaper.protocol import MIN_N

CLAIMS = {c.id: c for c in lr_exp.CLAIMS}
N = MIN_N


def judge(claim_id: str, m: dict, profile: str = "quick") -> str:
    return CLAIMS[claim_id].judge(m, profile)[0]


def noisy(center: float, spread: float, n: int = N, seed: int = 0) -> list[float]:
    return list(center + spread * np.random.default_rng(seed).standard_normal(n))


def test_the_chapter_declares_its_claims_and_tunings():
    assert list(CLAIMS) == [
        "scale-identities",
        "larger-weights-smaller-gradients",
        "jacobian-singular-values",
        "higher-learning-rates",
        "saturating-nonlinearities",
    ]
    assert all(
        c.protocol.version == 3 and c.protocol.changes[0] and c.protocol.changes[1] for c in lr_exp.CLAIMS
    )
    assert not CLAIMS["scale-identities"].protocol.trains
    assert {t.key for t in lr_exp.TUNINGS} == {"learning_rate/deep_bn", "learning_rate/deep_no_bn"}
    grid = lr_exp.DEEP_LRS
    assert all(b / a == 2.0 for a, b in zip(grid, grid[1:]))  # a 2x grid, exact powers of two


# ----------------------------------------------------------------------------- scale identities


def _ident(dev0: float, out_eps: float, bound: float) -> dict:
    zero = [
        {"a": a, "output": dev0, "grad_u": dev0 / 2, "grad_W": 0.0, "output_bound": 0.0} for a in (0.1, 10.0)
    ]
    eps = [
        {"a": a, "output": out_eps, "grad_u": 0.0, "grad_W": 0.0, "output_bound": bound} for a in (0.1, 10.0)
    ]
    return {"0.0": zero, "0.001": eps}


@pytest.mark.parametrize(
    "dev0, expected",
    [
        (2.7e-12, "holds"),
        (1e-10 * (1 - 1e-6), "holds"),
        (1e-10 * (1 - 1e-12), "does_not_hold"),  # within rounding of the allowance: not below it
        (1e-10, "does_not_hold"),
        (1e-6, "does_not_hold"),
    ],
)
def test_scale_identities_rule(dev0, expected):
    m = lr_exp.identity_measurement(_ident(dev0, 1e-4, 2e-4))
    assert m["exact_max"] == dev0 and m["a_min"] == 0.1 and m["a_max"] == 10.0
    assert judge("scale-identities", m) == expected
    assert judge("scale-identities", m, "smoke") == expected  # deterministic: no n requirement


def test_scale_identities_bound_flag():
    assert lr_exp.identity_measurement(_ident(0.0, 1e-4, 1e-4))["within_bound"] is True
    assert lr_exp.identity_measurement(_ident(0.0, 1e-4 * (1 + 1e-12), 1e-4))["within_bound"] is False


def test_identities_measured_in_float64():
    ident = lr_exp.identities(
        lr_exp.IdentityConfig(scales=[0.1, 10.0], eps_values=[0.0, 1e-3], shape=[16, 8, 4])
    )
    m = lr_exp.identity_measurement(ident)
    assert m["exact_fraction"] < 1 and m["within_bound"]
    assert all(r["output"] > 0 for r in ident["0.001"])  # eps > 0 really perturbs the output


# ----------------------------------------------------------------------------- weight growth


def test_rank_correlation():
    steps = list(range(10, 110, 10))
    w = [1.0 + 0.1 * i for i in range(10)]
    assert lr_exp.rank_correlation(steps, w, [1 / x for x in w], 100) == pytest.approx(-1.0)
    assert lr_exp.rank_correlation(steps, w, w, 100) == pytest.approx(1.0)
    # the first tenth is left out: a spike at step 10 does not count
    g = [1 / x for x in w]
    g[0] = 1e-6
    assert lr_exp.rank_correlation(steps, w, g, 100) == pytest.approx(-1.0)
    assert lr_exp.rank_correlation(steps, w, g, 100, skip=0.0) > -1.0
    assert math.isnan(lr_exp.rank_correlation(steps[:3], w[:3], g[:3], 100))  # 2 windows after the skip
    assert math.isnan(lr_exp.rank_correlation(steps, [1.0] * 10, g, 100))  # constant weights


def _growth_rec(g_of_w, diverged=(False, False)) -> dict:
    steps = [10, 20, 30, 40, 50]
    w = [[[1.0 + 0.1 * t + 0.01 * r] for r in range(2)] for t in range(5)]
    g = [[[g_of_w(w[t][r][0])] for r in range(2)] for t in range(5)]
    return {"steps": steps, "w_norm": w, "g_norm": g, "w_norm0": [[1.0], [1.0]], "diverged": list(diverged)}


def test_growth_measurement():
    m = lr_exp.growth_measurement(
        {"bn": _growth_rec(lambda w: 1 / w), "no_bn": _growth_rec(lambda w: w, (False, True))}, 50
    )
    assert m["rho_bn"] == [pytest.approx(-1.0), pytest.approx(-1.0)]
    assert m["rho_no_bn"][0] == pytest.approx(1.0) and m["rho_no_bn"][1] is None  # diverged: left out
    assert m["growth_bn"][0] == pytest.approx(1.4) and m["growth_no_bn"][1] is None


@pytest.mark.parametrize(
    "bn, no_bn, expected",
    [
        (noisy(-0.9, 0.05), noisy(0.2, 0.1, seed=1), "holds"),  # BN's gradient falls as ||W|| grows
        (noisy(0.5, 0.05), noisy(-0.5, 0.1, seed=1), "does_not_hold"),
        (noisy(0.0, 0.5), noisy(0.0, 0.5, seed=1), "inconclusive"),
    ],
)
def test_growth_rule(bn, no_bn, expected):
    assert judge("larger-weights-smaller-gradients", {"rho_bn": bn, "rho_no_bn": no_bn}) == expected


def test_growth_rule_margin_edge_and_too_few_seeds():
    # every paired difference exactly 0: the interval is the point 0, at the margin and wholly above
    # the smallest effect of interest (-0.1): a precise null does not hold
    assert (
        judge("larger-weights-smaller-gradients", {"rho_bn": [-0.5] * N, "rho_no_bn": [-0.5] * N})
        == "does_not_hold"
    )
    # a real but smaller drop than -0.1: does not hold either; a drop reaching -0.1: holds
    assert judge(
        "larger-weights-smaller-gradients", {"rho_bn": noisy(-0.55, 0.005), "rho_no_bn": [-0.5] * N}
    ) == ("does_not_hold")
    assert judge(
        "larger-weights-smaller-gradients", {"rho_bn": noisy(-0.65, 0.05), "rho_no_bn": [-0.5] * N}
    ) == ("holds")

    # a difference just below 0 (beyond rounding) with no spread clears the margin, yet lies wholly
    # above d = -0.1: does not hold; exactly d: holds (the interval reaches it); a hair above d: does not
    def point(diff):
        return judge(
            "larger-weights-smaller-gradients", {"rho_bn": [-0.5 + diff] * N, "rho_no_bn": [-0.5] * N}
        )

    assert point(-1e-6) == "does_not_hold"
    assert point(-0.1 - 1e-6) == "holds"
    assert point(-0.1 + 1e-6) == "does_not_hold"
    few = {"rho_bn": noisy(-0.9, 0.05, n=N - 1), "rho_no_bn": noisy(0.2, 0.1, n=N - 1, seed=1)}
    assert judge("larger-weights-smaller-gradients", few) == "inconclusive"  # quick needs 10 seeds
    assert judge("larger-weights-smaller-gradients", few, "smoke") == "holds"


def test_growth_config_needs_plain_sgd():
    with pytest.raises(ValueError, match="momentum 0"):
        lr_exp.GrowthConfig(train=lr_exp.mlp_config("smoke", momentum=0.9))


def test_weight_growth_reads_the_gradient_norm(tmp_path, monkeypatch):
    """||dW|| / lr of a window of one step equals the gradient norm the plain loop sees."""
    from bnpaper.train import train

    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path))
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    cfg = lr_exp.mlp_config("smoke", steps=3, eval_every=3, hidden=[16, 16])
    growth = lr_exp.weight_growth(lr_exp.GrowthConfig(train=cfg, seeds=[0, 1], track_every=1))
    for key, bn in (("bn", True), ("no_bn", False)):
        rec = growth[key]
        assert rec["steps"] == [1, 2, 3] and np.array(rec["w_norm"]).shape == (3, 2, 2)
        for r, seed in enumerate((0, 1)):
            seen = []

            def on_step(step, model, seen=seen):
                lins = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][:-1]
                seen.append(
                    ([float(m.weight.grad.norm()) for m in lins], [float(m.weight.norm()) for m in lins])
                )

            train(replace(cfg, bn=bn, seed=seed), on_step=on_step)
            for t in range(3):
                assert rec["g_norm"][t][r] == pytest.approx(seen[t][0], rel=1e-4)
                assert rec["w_norm"][t][r] == pytest.approx(seen[t][1], rel=1e-5)


# ----------------------------------------------------------------------------- learning-rate sweep


def _row(seed, acc, diverged=False):
    return {
        "seed": seed,
        "diverged": diverged,
        "diverged_at": 3 if diverged else None,
        "final_val_acc": None if diverged else acc,
    }


def test_stable_threshold_edges():
    assert lr_exp.stable(_row(0, lr_exp.LEARNED))  # at the threshold: stable
    assert not lr_exp.stable(_row(0, np.nextafter(lr_exp.LEARNED, 0)))
    assert not lr_exp.stable(_row(0, 0.99, diverged=True))


def test_max_stable_exponent():
    by_k = {
        "-1": [_row(0, 0.9), _row(1, 0.9), _row(2, 0.2)],
        "0": [_row(0, 0.9), _row(1, 0.4), _row(2, 0.2)],
        "1": [_row(0, 0.9, diverged=True), _row(1, 0.6), _row(2, 0.2)],
    }
    # seed 1: k = 1 stable although k = 0 was not (the largest stable rate, not the first failure)
    assert lr_exp.max_stable_exponent(by_k, [0, 1, 2]) == [0, 1, None]


def _sweep(diffs, k_no=-2, k_max=6):
    kb = [k_no + d for d in diffs]
    return {
        "k_bn": kb,
        "k_no_bn": [k_no] * len(diffs),
        "grid_steps": 2,
        "k_min": -4,
        "k_max": k_max,
        "learned": 0.5,
    }


R2 = math.sqrt(2)


@pytest.mark.parametrize(
    "diffs, expected",
    [
        ([4] * N, "holds"),  # ratio 4 exactly: [4 / sqrt 2, 4 sqrt 2] = [2.83, 5.66] after the grid widening
        ([3] * N, "inconclusive"),  # ratio 2 sqrt 2: its lower end is 2 up to rounding -> at the margin
        ([2] * N, "inconclusive"),  # ratio 2: [1.41, 2.83] straddles 2
        ([1] * N, "inconclusive"),  # ratio sqrt 2: upper end 2 up to rounding -> at the margin
        ([0] * N, "does_not_hold"),  # ratio 1: [0.71, 1.41]
        ([2, 6] * (N // 2), "inconclusive"),  # ratios 2 and 8: too spread to clear 2
        ([4, 5] * (N // 2), "holds"),
    ],
)
def test_lr_rule(diffs, expected):
    assert judge("higher-learning-rates", _sweep(diffs)) == expected


def test_lr_grid_edges_in_floating_point():
    # the grid edge: ratio 2 sqrt 2 widened by sqrt 2 lands on the margin 2, a hair off in float64
    v, est = CLAIMS["higher-learning-rates"].judge(_sweep([3] * N), "quick")
    assert v == "inconclusive" and est.lo == pytest.approx(2.0, rel=1e-15)
    v, est = CLAIMS["higher-learning-rates"].judge(_sweep([4] * N), "quick")
    assert v == "holds" and est.value == 4.0  # whole doublings are exact: 2 ** (4 / 2)
    assert est.lo == pytest.approx(4 / R2, rel=1e-15) and est.hi == pytest.approx(4 * R2, rel=1e-15)
    # rates read off a 3x grid would not be: 0.3 / 0.1 != 3; the exponents give the same ratio anywhere
    assert 0.3 / 0.1 != 3.0
    assert lr_exp.lr_of(2) / lr_exp.lr_of(-2) == 4.0 and lr_exp.grid_ratio([4, None, -2]) == [4.0, None, 0.5]


def test_lr_rule_missing_and_censored_seeds():
    m = _sweep([4] * N)
    m["k_no_bn"][0] = None  # no stable rate without BN on one seed: it drops, n = 9 < 10
    v, est = CLAIMS["higher-learning-rates"].judge(m, "quick")
    assert v == "inconclusive" and est.n == N - 1 and est.note["no_stable_rate"] == 1
    m = _sweep([8] * N, k_no=-2, k_max=6)  # BN still stable at the grid's top on every seed
    assert CLAIMS["higher-learning-rates"].judge(m, "quick")[1].note["bn_at_grid_top"] == N


def test_sweep_measurement():
    by_k = {"0": [_row(0, 0.9), _row(1, 0.9)], "1": [_row(0, 0.2), _row(1, 0.9)]}
    m = lr_exp.sweep_measurement({"bn": by_k, "no_bn": by_k}, [0, 1], [0, 1])
    assert (
        m["k_bn"] == [0, 1] and m["k_min"] == 0 and m["k_max"] == 1 and m["grid_steps"] == lr_exp.GRID_STEPS
    )


# ----------------------------------------------------------------------------- deep sigmoid


@pytest.mark.parametrize(
    "bn, no_bn, expected",
    [
        (noisy(0.90, 0.01), noisy(0.10, 0.001, seed=1), "holds"),
        (noisy(0.90, 0.002), noisy(0.895, 0.002, seed=1), "does_not_hold"),  # real, but below the margin
        (noisy(0.90, 0.05), noisy(0.88, 0.05, seed=1), "inconclusive"),
    ],
)
def test_sigmoid_rule(bn, no_bn, expected):
    assert judge("saturating-nonlinearities", {"bn": bn, "no_bn": no_bn}) == expected


def test_sigmoid_rule_margin_edge_and_diverged_runs():
    base = [0.5] * N
    assert (
        judge("saturating-nonlinearities", {"bn": [0.52] * N, "no_bn": base}) == "inconclusive"
    )  # 0.52 - 0.5 ~ margin
    assert judge("saturating-nonlinearities", {"bn": [0.5201] * N, "no_bn": base}) == "holds"
    assert judge("saturating-nonlinearities", {"bn": [0.5199] * N, "no_bn": base}) == "does_not_hold"
    # a diverged run (None) scores 0: it counts against its arm, it does not drop
    est = CLAIMS["saturating-nonlinearities"].judge({"bn": [0.9] * N, "no_bn": [None] * N}, "quick")[1]
    assert est.n == N and est.value == pytest.approx(0.9)


# ----------------------------------------------------------------------------- Jacobians


def test_near_one_share_edges():
    assert lr_exp.near_one_share([[0.5, 2.0, 1.0, np.nextafter(0.5, 0)]]) == 0.75
    assert lr_exp.near_one_share([[1.0, 3.0], [np.nextafter(2.0, 3), 1.0]]) == 0.5


@pytest.mark.parametrize(
    "shares, expected",
    [
        (noisy(0.7, 0.02), "holds"),
        (noisy(0.3, 0.02), "does_not_hold"),
        (noisy(0.5, 0.1), "inconclusive"),
        ([0.5] * N, "inconclusive"),  # exactly at the margin
        ([0.5 + 1e-6] * N, "holds"),
    ],
)
def test_jacobian_rule(shares, expected):
    assert judge("jacobian-singular-values", {"bn_trained": shares}) == expected


def test_jacobian_measurement_drops_diverged():
    row = {"share_per_layer": [0.6, 0.8]}
    m = lr_exp.jacobian_measurement({"bn/trained": [row, None], "bn/init": [row, row]})
    assert m == {"bn_trained": [pytest.approx(0.7), None], "bn_init": [pytest.approx(0.7)] * 2}


def _small_net(bn: bool, seed: int = 0):
    from bnpaper.train import build_model

    torch.manual_seed(seed)
    cfg = lr_exp.deep_config("smoke", bn=bn, hidden=[5, 5, 5])
    model = build_model(cfg).double()
    with torch.no_grad():  # trained-looking gamma / beta, so that they are not the identity
        for mod in model.modules():
            if isinstance(mod, lr_exp.BatchNorm):
                mod.weight.uniform_(0.5, 2.0)
                mod.bias.uniform_(-0.5, 0.5)
    return model.train()


def test_bn_spectra_against_the_model_own_layers():
    """The BN-to-BN Jacobian of `spectra`, against one built from the network's own BN modules."""
    model = _small_net(bn=True)
    m, d = 4, 5
    x = torch.randn(m, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    sp = lr_exp.spectra(model, x)
    assert len(sp["singular_values"]) == 2 and all(len(s) == d * (m - 2) for s in sp["singular_values"])
    mods = list(model)  # Flatten, Linear, BN, Sigmoid, Linear, BN, Sigmoid, ...
    lin1, bn1, lin2, bn2 = mods[1], mods[2], mods[4], mods[5]
    bn1.track_running_stats = bn2.track_running_stats = False  # batch statistics, no running update
    with torch.no_grad():
        xhat1 = (bn1(lin1(x.flatten(1))) - bn1.bias) / bn1.weight

    def f(v):
        y = bn2(lin2(torch.sigmoid(bn1.weight * v.view(m, d) + bn1.bias)))
        return ((y - bn2.bias) / bn2.weight).reshape(-1)

    J = torch.func.jacrev(f)(xhat1.reshape(-1)).detach()
    ref = torch.linalg.svdvals(J)
    assert np.allclose(sp["singular_values"][0], ref[: d * (m - 2)].numpy(), rtol=1e-8, atol=1e-10)
    assert float(ref[d * (m - 1) :].max()) < 1e-6  # each unit's mean direction: exactly null
    assert sp["gain"][0] == pytest.approx(float(J.norm()) / math.sqrt(d * (m - 2)), rel=1e-9)


def test_no_bn_spectra_against_autograd():
    model = _small_net(bn=False)
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    sp = lr_exp.spectra(model, x)
    mods = list(model)  # Flatten, Linear, Sigmoid, Linear, ...
    with torch.no_grad():
        z = mods[1](x.flatten(1))
    ref = [
        torch.linalg.svdvals(torch.func.jacrev(lambda v: mods[3](torch.sigmoid(v)))(z[i])) for i in range(3)
    ]
    assert np.allclose(sp["singular_values"][0], torch.cat(ref).detach().numpy(), rtol=1e-10)


# ----------------------------------------------------------------------------- BN at work: histograms


def test_layer_histograms_see_the_vanishing_gradient_that_bn_removes(tmp_path, monkeypatch):
    """At Glorot initialization a deep sigmoid MLP's gradient shrinks by sigma' <= 1/4 per layer on
    its way back; BN's per-layer rescaling keeps it level. The histograms count every value, and
    the saturated share is the mass of the outermost bins' range."""
    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path))
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    deep = lr_exp.DeepSigmoidConfig(
        bn=lr_exp.deep_config("smoke", bn=True, lr=0.1, steps=2, eval_every=2, hidden=[32] * 5),
        no_bn=lr_exp.deep_config("smoke", bn=False, lr=0.1, steps=2, eval_every=2, hidden=[32] * 5),
        seeds=[3],
    )
    cfg = lr_exp.HistogramConfig(deep=deep, examples=200, bins=20)  # bins of 0.05: saturation = the ends
    hist = lr_exp.layer_histograms(cfg)
    for key in ("bn/init", "bn/trained", "no_bn/init", "no_bn/trained"):
        assert len(hist[key]) == 5
        for layer in hist[key]:
            act, grad = np.asarray(layer["act_hist"]), np.asarray(layer["grad_hist"])
            assert act.sum() == grad.sum() == 200 * 32
            assert layer["saturated"] == pytest.approx((act[0] + act[-1]) / act.sum(), abs=1e-3)
    rms = {arm: [layer["grad_rms"] for layer in hist[f"{arm}/init"]] for arm in ("bn", "no_bn")}
    assert all(a < b for a, b in zip(rms["no_bn"], rms["no_bn"][1:]))  # shrinks towards the input
    summary = lr_exp.histogram_summary(hist)
    assert summary["no_bn"]["grad_first_over_last_init"] < 0.1
    assert 0.5 < summary["bn"]["grad_first_over_last_init"] < 2
    assert summary["bn"]["grad_first_over_last_init"] == pytest.approx(rms["bn"][0] / rms["bn"][-1])
