"""Claims of chapters 02 and 03: each estimate on synthetic measurements, every verdict reachable,
both sides of each boundary (conv-bias, conv-per-map, conv-fold, alg2-moving-average)."""

import math

import pytest

from bnpaper import protocol
from bnpaper.experiments import conv, population

BY_ID = {c.id: c for c in (*conv.CLAIMS, *population.CLAIMS)}
N = 10


def judge(claim_id, m, profile="quick"):
    return BY_ID[claim_id].judge(m, profile)


# ----------------------------------------------------------------------------- conv-bias


def bias(out=1e-15, grad=5e-15, b=9.0, n=N):
    return {"max_output_diff": [out] * n, "max_abs_grad_bias": [grad] * n, "max_abs_bias": [b] * n}


def test_bias_holds_does_not_hold_and_is_inconclusive():
    assert judge("conv-bias", bias())[0] == "holds"
    assert judge("conv-bias", bias(out=0.3))[0] == "does_not_hold"  # the bias changed the output
    assert judge("conv-bias", bias(grad=1e-3))[0] == "does_not_hold"  # b would be trained
    assert judge("conv-bias", bias(b=0.5))[0] == "inconclusive"  # a bias too small to show an effect


def test_bias_boundaries():
    bound = conv.BIAS_BOUND
    assert judge("conv-bias", bias(out=bound * 0.99))[0] == "holds"
    assert judge("conv-bias", bias(out=bound))[0] == "does_not_hold"  # "below" is strict
    assert judge("conv-bias", bias(grad=bound * (1 + 1e-12)))[0] == "does_not_hold"
    assert judge("conv-bias", bias(b=conv.MIN_BIAS))[0] == "holds"
    assert judge("conv-bias", bias(b=math.nextafter(conv.MIN_BIAS, 0)))[0] == "inconclusive"


def test_bias_takes_the_worst_seed_and_refuses_nan():
    m = bias()
    m["max_abs_grad_bias"][7] = 2e-10  # one bad seed among ten
    verdict, est = judge("conv-bias", m)
    assert verdict == "does_not_hold" and est.value == 2e-10 and est.n == N
    m = bias()
    m["max_output_diff"][3] = float("nan")  # a NaN is never a pass, wherever it sits
    assert judge("conv-bias", m)[0] == "inconclusive"
    m = bias()
    m["max_output_diff"][0] = None
    assert judge("conv-bias", m)[0] == "inconclusive"
    m = bias()
    m["max_abs_bias"][9] = 0.1  # one seed whose bias is too small
    assert judge("conv-bias", m)[0] == "inconclusive"


def test_bias_accepts_a_single_run_and_rejects_unequal_lists():
    single = {"max_output_diff": 1e-16, "max_abs_grad_bias": 2e-15, "max_abs_bias": 9.0}
    verdict, est = judge("conv-bias", single)
    assert verdict == "holds" and est.n == 1  # deterministic: not subject to the n >= 10 rule
    with pytest.raises(ValueError, match="unequal lengths"):
        conv.estimate_bias(
            {"max_output_diff": [0.0] * 3, "max_abs_grad_bias": [0.0] * 2, "max_abs_bias": [9.0] * 3}
        )


def test_bias_estimate_on_the_real_check():
    m = conv.bias_over_seeds(conv.BiasSeeds(seeds=[0, 1, 2]))
    verdict, est = judge("conv-bias", m)
    assert verdict == "holds" and est.n == 3 and 0 <= est.value < 1e-12


# ----------------------------------------------------------------------------- conv-per-map


def per_map(pm=0.0, pa=250.0, n=N):
    return {"per_map": [pm] * n, "per_activation": [pa] * n}


def test_per_map_verdicts_and_the_detector():
    assert judge("conv-per-map", per_map())[0] == "holds"
    assert judge("conv-per-map", per_map(pm=0.5))[0] == "does_not_hold"
    # the per-activation detector fails: the test could not see any location dependence
    assert judge("conv-per-map", per_map(pa=0.0))[0] == "inconclusive"
    assert judge("conv-per-map", per_map(pm=0.5, pa=0.0))[0] == "inconclusive"


def test_per_map_boundaries():
    assert judge("conv-per-map", per_map(pm=conv.PER_MAP_BOUND * 0.99))[0] == "holds"
    assert judge("conv-per-map", per_map(pm=conv.PER_MAP_BOUND))[0] == "does_not_hold"
    assert judge("conv-per-map", per_map(pa=conv.DETECT))[0] == "inconclusive"  # must exceed, strictly
    assert judge("conv-per-map", per_map(pa=math.nextafter(conv.DETECT, 1)))[0] == "holds"


def test_per_map_detector_must_work_on_every_seed():
    m = per_map()
    m["per_activation"][4] = 1e-4
    verdict, est = judge("conv-per-map", m)
    assert verdict == "inconclusive" and est.note["detects"] is False
    m = per_map()
    m["per_activation"][4] = float("nan")
    assert judge("conv-per-map", m)[0] == "inconclusive"
    m = per_map()
    m["per_map"][9] = 1e-6
    assert judge("conv-per-map", m)[0] == "does_not_hold"


def test_per_map_estimate_on_the_real_check():
    m = conv.shift_over_seeds(conv.ShiftSeeds(seeds=[0, 1], base=conv.ShiftConfig(batch=16)))
    verdict, est = judge("conv-per-map", m)
    assert verdict == "holds" and est.note["weakest_per_activation"] > 1.0


# ----------------------------------------------------------------------------- conv-fold


def fold(diff=5e-6, acc=0.97, acc_f=None, n=N):
    return {
        "max_logit_diff": [diff] * n,
        "acc_bn": [acc] * n,
        "acc_folded": [acc if acc_f is None else acc_f] * n,
    }


def test_fold_verdicts():
    assert judge("conv-fold", fold())[0] == "holds"
    assert judge("conv-fold", fold(diff=1e-3))[0] == "does_not_hold"
    verdict, est = judge("conv-fold", fold(acc_f=0.969))  # a changed prediction: no bound allows it
    assert (
        verdict == "does_not_hold" and math.isinf(est.value) and est.note["nets_with_changed_accuracy"] == N
    )
    m = fold()
    m["max_logit_diff"][2] = float("nan")
    assert judge("conv-fold", m)[0] == "inconclusive"


def test_fold_boundaries():
    assert judge("conv-fold", fold(diff=conv.FOLD_BOUND * 0.99))[0] == "holds"
    assert judge("conv-fold", fold(diff=conv.FOLD_BOUND))[0] == "does_not_hold"
    m = fold()
    m["acc_folded"][5] = m["acc_bn"][5] + 0.001  # one digit on one net of ten
    assert judge("conv-fold", m)[0] == "does_not_hold"


def test_fold_needs_ten_nets_in_quick_but_not_in_smoke():
    verdict, est = judge("conv-fold", fold(n=3))
    assert verdict == "inconclusive" and est.note["too_few_runs"] is True
    assert judge("conv-fold", fold(n=3), profile="smoke")[0] == "holds"
    assert judge("conv-fold", fold(diff=1.0, n=3), profile="smoke")[0] == "does_not_hold"


def test_fold_rejects_unequal_lists():
    with pytest.raises(ValueError, match="unequal lengths"):
        conv.estimate_fold({"max_logit_diff": [0.0] * 2, "acc_bn": [0.9] * 2, "acc_folded": [0.9]})


# ----------------------------------------------------------------------------- alg2-moving-average


def alg2(diffs, base=0.97):
    return {"algorithm2": [base + d for d in diffs], "moving_average": [base] * len(diffs)}


def test_alg2_equivalent_holds_when_the_90_interval_is_inside_the_margin():
    m = alg2([0.001, -0.001, 0.002, 0.0, 0.001, -0.002, 0.001, 0.0, 0.002, -0.001])
    verdict, est = judge("alg2-moving-average", m)
    assert verdict == "holds" and est.n == N
    assert -population.MARGIN < est.lo90 and est.hi90 < population.MARGIN


def test_alg2_does_not_hold_when_the_95_interval_is_outside_the_margin():
    m = alg2([0.010, 0.012, 0.011, 0.009, 0.010, 0.013, 0.011, 0.010, 0.012, 0.009])
    assert judge("alg2-moving-average", m)[0] == "does_not_hold"
    m = alg2([-d for d in [0.010, 0.012, 0.011, 0.009, 0.010, 0.013, 0.011, 0.010, 0.012, 0.009]])
    assert judge("alg2-moving-average", m)[0] == "does_not_hold"  # either side


def test_alg2_inconclusive_when_noisy_or_straddling():
    noisy = alg2([0.02, -0.02, 0.015, -0.018, 0.01, -0.01, 0.02, -0.02, 0.0, 0.003])
    assert judge("alg2-moving-average", noisy)[0] == "inconclusive"  # mean near 0, interval too wide
    straddle = alg2(
        [0.005 + d for d in (0.001, -0.001, 0.002, -0.002, 0.0, 0.001, -0.001, 0.0, 0.002, -0.002)]
    )
    assert judge("alg2-moving-average", straddle)[0] == "inconclusive"  # mean at the margin


def test_alg2_boundary_exactly_at_the_margin():
    # every difference exactly the margin: a zero-width interval at the margin straddles it
    at = alg2([population.MARGIN] * N, base=0.5)
    assert judge("alg2-moving-average", at)[0] == "inconclusive"
    just_in = alg2([population.MARGIN * 0.98] * N, base=0.5)
    assert judge("alg2-moving-average", just_in)[0] == "holds"
    just_out = alg2([population.MARGIN * 1.02] * N, base=0.5)
    assert judge("alg2-moving-average", just_out)[0] == "does_not_hold"


def test_alg2_accuracy_steps_of_one_test_digit():
    """Accuracies come in steps of 1/1000; 0.975 - 0.970 is not exactly 0.005 in floating point."""
    m = {"algorithm2": [0.975] * N, "moving_average": [0.970] * N}
    assert judge("alg2-moving-average", m)[0] == "inconclusive"  # at the margin, within rounding
    m = {"algorithm2": [0.974] * N, "moving_average": [0.970] * N}
    assert judge("alg2-moving-average", m)[0] == "holds"
    m = {"algorithm2": [0.976] * N, "moving_average": [0.970] * N}
    assert judge("alg2-moving-average", m)[0] == "does_not_hold"


def test_alg2_needs_ten_nets_in_quick_and_paired_lists():
    m = alg2([0.0, 0.001, -0.001])
    verdict, est = judge("alg2-moving-average", m)
    assert verdict == "inconclusive" and est.note.get("too_few_runs") is True
    assert judge("alg2-moving-average", m, profile="smoke")[0] == "holds"
    with pytest.raises(ValueError, match="equal lengths"):
        population.estimate_alg2({"algorithm2": [0.9, 0.9], "moving_average": [0.9]})


def test_alg2_statistic_is_the_paired_mean_difference():
    m = {"algorithm2": [0.97, 0.98, 0.96], "moving_average": [0.96, 0.98, 0.95]}
    est = population.estimate_alg2(m)
    assert est.value == pytest.approx((0.01 + 0.0 + 0.01) / 3) and est.method == "paired t"
    assert est.lo90 > est.lo and est.hi90 < est.hi


# ----------------------------------------------------------------------------- protocols


def test_protocols_are_version_3_and_say_what_changed():
    for c in BY_ID.values():
        p = c.protocol
        assert p.version == 3 and p.changes[0] and p.changes[1], c.id
        assert protocol.decide(protocol.exact(math.nan), p.kind, p.margin) == "inconclusive"
    assert BY_ID["alg2-moving-average"].protocol.kind == "equivalent"
    assert BY_ID["alg2-moving-average"].protocol.interval == "paired t"
    assert {BY_ID[i].protocol.trains for i in ("conv-bias", "conv-per-map")} == {False}
    assert BY_ID["conv-fold"].protocol.trains and BY_ID["alg2-moving-average"].protocol.trains
