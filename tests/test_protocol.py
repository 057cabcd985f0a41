"""Verdict rules and intervals (bnpaper.protocol): every verdict reachable, both sides of each
boundary, floating-point edges, against scipy.stats as an independent reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bnpaper import profiles
from bnpaper import protocol as P


def est(lo, hi, value=None, lo90=None, hi90=None):
    value = (lo + hi) / 2 if value is None else value
    return P.Estimate(value, lo, hi, 10, "test", lo if lo90 is None else lo90, hi if hi90 is None else hi90)


@pytest.mark.parametrize(
    "lo, hi, margin, expected",
    [
        (0.01, 0.02, 0.0, "holds"),  # wholly above
        (-0.02, -0.01, 0.0, "does_not_hold"),  # wholly below
        (-0.01, 0.01, 0.0, "inconclusive"),  # straddles
        (0.0, 0.02, 0.0, "inconclusive"),  # touches the margin: does not clear it
        (-0.02, 0.0, 0.0, "inconclusive"),
        (1e-12, 0.02, 0.0, "holds"),  # a margin of 0 is cleared by any positive value
        (1e-8 * (1 - 1e-10), 0.02, 1e-8, "inconclusive"),  # within rounding of a small margin
        (1e-8 * (1 + 1e-8), 0.02, 1e-8, "holds"),
        (0.3 / 0.1, 5.0, 3.0, "inconclusive"),  # 2.9999999999999996 is AT a margin of 3, not below it
        (3.0 * (1 + 1e-8), 5.0, 3.0, "holds"),
        (1.0, 3.0 * (1 - 1e-8), 3.0, "does_not_hold"),
        (1.0, 0.9 / 0.3, 3.0, "inconclusive"),  # 3.0000000000000004: at the margin
    ],
)
def test_greater(lo, hi, margin, expected):
    assert P.decide(est(lo, hi), "greater", margin) == expected


@pytest.mark.parametrize(
    "lo, hi, expected",
    [
        (-0.2, -0.1, "holds"),
        (0.1, 0.2, "does_not_hold"),
        (-0.1, 0.1, "inconclusive"),
        (-0.1, 0.0, "inconclusive"),
    ],
)
def test_less(lo, hi, expected):
    assert P.decide(est(lo, hi), "less", 0.0) == expected


@pytest.mark.parametrize(
    "lo90, hi90, lo, hi, expected",
    [
        (-0.004, 0.004, -0.006, 0.006, "holds"),  # 90% inside +-0.005 (95% may stick out)
        (-0.004, 0.0049999, -0.006, 0.006, "holds"),
        (-0.004, 0.005, -0.006, 0.006, "inconclusive"),  # touches the margin
        (-0.004, 0.006, -0.005, 0.007, "inconclusive"),
        (0.006, 0.008, 0.0051, 0.009, "does_not_hold"),  # 95% wholly above +margin
        (0.006, 0.008, 0.005, 0.009, "inconclusive"),  # 95% touches +margin
        (-0.009, -0.007, -0.01, -0.0051, "does_not_hold"),  # wholly below -margin
    ],
)
def test_equivalent(lo90, hi90, lo, hi, expected):
    assert P.decide(est(lo, hi, 0.0, lo90, hi90), "equivalent", 0.005) == expected


@pytest.mark.parametrize(
    "value, expected", [(1e-12, "holds"), (2e-10, "does_not_hold"), (1e-10, "does_not_hold")]
)
def test_below(value, expected):
    assert P.decide(P.exact(value), "below", 1e-10) == expected


def test_nan_is_inconclusive_never_a_pass():
    for kind in ("greater", "less", "equivalent"):
        assert P.decide(P.Estimate(math.nan, math.nan, math.nan, 0, "t"), kind, 0.1) == "inconclusive"


def test_paired_t_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.9, 0.01, 10), rng.normal(0.89, 0.01, 10)
    e = P.paired_t(a, b)
    ref = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert e.n == 10 and abs(e.lo - ref.low) < 1e-12 and abs(e.hi - ref.high) < 1e-12
    assert abs(e.value - (a - b).mean()) < 1e-15
    ref90 = stats.ttest_rel(a, b).confidence_interval(0.90)
    assert abs(e.lo90 - ref90.low) < 1e-12 and abs(e.hi90 - ref90.high) < 1e-12


def test_paired_t_drops_missing_pairs_and_needs_two():
    e = P.paired_t([0.9, None, 0.8], [0.7, 0.6, None])
    assert e.n == 1 and e.lo == -math.inf and P.decide(e, "greater", 0.0) == "inconclusive"
    with pytest.raises(ValueError, match="equal lengths"):
        P.paired_t([1, 2], [1])


def test_welch_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 0.3, 12), rng.normal(0.7, 0.1, 9)
    e = P.welch_t(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert abs(e.lo - ref.low) < 1e-9 and abs(e.hi - ref.high) < 1e-9


def test_tost_agrees_with_the_90_percent_interval():
    rng = np.random.default_rng(2)
    for shift in (0.0, 0.003, 0.006):
        d = rng.normal(shift, 0.003, 10)
        e = P.paired_t(d, np.zeros(10))
        inside = e.lo90 > -0.005 and e.hi90 < 0.005
        assert (P.tost_p(d, 0.005) < 0.05) == inside


def test_log_ratio_widened_by_the_grid():
    e = P.log_ratio_t(P.grid_ratio([3] * 10, 2.0), [1.0] * 10, grid_factor=2.0)
    assert (e.value, e.lo, e.hi) == pytest.approx((8.0, 4.0, 16.0), rel=1e-12)  # one grid step either way
    assert P.decide(e, "greater", 3.0) == "holds"
    assert P.decide(e, "greater", 4.0) == "inconclusive"  # 4.0 is the end: does not clear
    e2 = P.log_ratio_t(P.grid_ratio([1] * 10, 2.0), [1.0] * 10, grid_factor=2.0)
    assert P.decide(e2, "greater", 5.0) == "does_not_hold"  # at most 4x, below 5
    with pytest.raises(ValueError, match="grid_factor"):
        P.log_ratio_t([1], [1], grid_factor=0.5)


def test_grid_ratio_is_exact():
    assert P.grid_ratio([2, None, 0], 3**0.5)[0] == pytest.approx(3.0)
    assert P.grid_ratio([1], 3.0)[0] == 3.0 and 0.3 / 0.1 != 3.0


def test_bootstrap_ratio_of_medians_with_never_reached():
    fast, slow = [100.0] * 10, [400.0] * 10
    e = P.bootstrap_ratio_of_medians(slow, fast)
    assert e.value == 4.0 and e.lo == 4.0 and e.hi == 4.0
    e = P.bootstrap_ratio_of_medians(slow, fast, resolution=50)
    assert e.lo == pytest.approx(4.0 * 350 / 400) and e.hi == pytest.approx(4.0 * 100 / 50)
    never = P.bootstrap_ratio_of_medians([math.inf] * 10, fast)  # the slow arm never reached it
    assert never.value == math.inf and P.decide(never, "greater", 2.0) == "holds"
    both = P.bootstrap_ratio_of_medians([math.inf] * 10, [math.inf] * 10)
    assert P.decide(both, "greater", 1.0) == "inconclusive"
    mixed = P.bootstrap_ratio_of_medians([400.0, math.inf] * 5, [100.0, 200.0] * 5)
    assert mixed.n == 10 and mixed.hi == math.inf and mixed.lo >= 2.0


def test_combine():
    assert P.combine(["holds", "holds"]) == "holds"
    assert P.combine(["holds", "inconclusive"]) == "inconclusive"
    assert P.combine(["holds", "does_not_hold"]) == "does_not_hold"
    with pytest.raises(ValueError):
        P.combine([])


def _claim(**kw):
    proto = P.Protocol(
        1, "2026-11-25", ("a", "أ"), ("-", "-"), ("s", "س"), "paired t", kw.pop("kind", "greater"), 0.0
    )
    return P.Claim("c", "en", "ar", "w", "-", "ch", "lab", proto, lambda m: P.paired_t(m["a"], m["b"]))


def test_claim_needs_ten_runs_in_quick_and_paper():
    c = _claim()
    m = {"a": [0.9 + 0.001 * i for i in range(5)], "b": [0.8] * 5}
    assert c.judge(m, "smoke")[0] == "holds"
    verdict, e = c.judge(m, "quick")
    assert verdict == "inconclusive" and e.note["too_few_runs"]
    m10 = {"a": [0.9 + 0.001 * i for i in range(10)], "b": [0.8] * 10}
    assert c.judge(m10, "quick")[0] == "holds"


def test_protocol_and_claim_validate():
    with pytest.raises(ValueError, match="kind"):
        P.Protocol(1, "d", ("", ""), ("", ""), ("", ""), "t", "bigger", 0.0)
    with pytest.raises(ValueError, match="interval"):
        P.Protocol(1, "d", ("", ""), ("", ""), ("", ""), "z test", "greater", 0.0)
    with pytest.raises(ValueError, match="equivalence margin"):
        P.Protocol(1, "d", ("", ""), ("", ""), ("", ""), "paired t", "equivalent", 0.0)
    with pytest.raises(ValueError, match="why"):
        P.Claim("x", "en", "ar", "w", "-", "ch", "lab", None, None)
    untestable = dict(untestable_en="e", untestable_ar="ع")
    with pytest.raises(ValueError, match="paper_ar"):  # the paper's number has words: say them in Arabic
        P.Claim("x", "en", "ar", "w", "74.8% vs 72.2%", "ch", "lab", None, None, **untestable)
    P.Claim("x", "en", "ar", "w", "74.8%", "ch", "lab", None, None, **untestable)  # numbers only
    P.Claim(
        "x",
        "en",
        "ar",
        "w",
        "74.8% vs 72.2%",
        "ch",
        "lab",
        None,
        None,
        paper_ar="74.8% مقابل 72.2%",
        **untestable,
    )


def test_seeds_never_meet():
    assert profiles.eval_seeds("quick") == list(range(10))
    assert not set(profiles.eval_seeds("paper")) & set(profiles.tuning_seeds("paper"))
    with pytest.raises(ValueError, match="tuning seeds"):
        profiles.eval_seeds("quick", first=995)
    with pytest.raises(ValueError, match="profile"):
        profiles.settings("figure1", "fast")
