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
        (0.006, 0.008, 0.0051, 0.009, "does_not_hold"),  # 90% wholly above +margin
        (0.006, 0.008, 0.004, 0.009, "does_not_hold"),  # symmetric: 90% decides both ways (95% may touch)
        (0.005, 0.008, 0.004, 0.009, "inconclusive"),  # 90% touches +margin
        (0.0050001, 0.008, 0.004, 0.009, "does_not_hold"),
        (-0.009, -0.007, -0.01, -0.0051, "does_not_hold"),  # wholly below -margin
        (-0.009, -0.005, -0.01, -0.004, "inconclusive"),  # touches -margin
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
        version=1,
        fixed="2026-11-25",
        arms=("a", "أ"),
        tuned=("-", "-"),
        statistic=("s", "س"),
        interval="paired t",
        kind=kw.pop("kind", "greater"),
        margin=0.0,
    )
    return P.Claim(
        id="c",
        en="en",
        ar="ar",
        where="w",
        paper="-",
        chapter="ch",
        label="lab",
        protocol=proto,
        estimate=lambda m: P.paired_t(m["a"], m["b"]),
    )


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
        P.Protocol(
            version=1,
            fixed="d",
            arms=("", ""),
            tuned=("", ""),
            statistic=("", ""),
            interval="t",
            kind="bigger",
            margin=0.0,
        )
    with pytest.raises(ValueError, match="interval"):
        P.Protocol(
            version=1,
            fixed="d",
            arms=("", ""),
            tuned=("", ""),
            statistic=("", ""),
            interval="z test",
            kind="greater",
            margin=0.0,
        )
    with pytest.raises(ValueError, match="equivalence margin"):
        P.Protocol(
            version=1,
            fixed="d",
            arms=("", ""),
            tuned=("", ""),
            statistic=("", ""),
            interval="paired t",
            kind="equivalent",
            margin=0.0,
        )
    with pytest.raises(ValueError, match="why"):
        P.Claim(
            id="x",
            en="en",
            ar="ar",
            where="w",
            paper="-",
            chapter="ch",
            label="lab",
            protocol=None,
            estimate=None,
        )
    untestable = dict(untestable_en="e", untestable_ar="ع")
    with pytest.raises(ValueError, match="paper_ar"):  # the paper's number has words: say them in Arabic
        P.Claim(
            id="x",
            en="en",
            ar="ar",
            where="w",
            paper="74.8% vs 72.2%",
            chapter="ch",
            label="lab",
            protocol=None,
            estimate=None,
            **untestable,
        )
    P.Claim(
        id="x",
        en="en",
        ar="ar",
        where="w",
        paper="74.8%",
        chapter="ch",
        label="lab",
        protocol=None,
        estimate=None,
        **untestable,
    )  # numbers only
    P.Claim(
        id="x",
        en="en",
        ar="ar",
        where="w",
        paper="74.8% vs 72.2%",
        chapter="ch",
        label="lab",
        protocol=None,
        estimate=None,
        paper_ar="74.8% مقابل 72.2%",
        **untestable,
    )


def test_seeds_never_meet():
    """The confirmatory seeds are new: not the exploratory 0-9, not a tuning seed."""
    assert profiles.eval_seeds("quick") == list(range(500, 510))
    for prof in ("quick", "paper"):
        seen = set(profiles.EXPLORATORY_SEEDS) | set(profiles.tuning_seeds(prof))
        assert not set(profiles.eval_seeds(prof)) & seen
    with pytest.raises(ValueError, match="tuning seeds"):
        profiles.eval_seeds("quick", first=495)
    with pytest.raises(ValueError, match="profile"):
        profiles.settings("figure1", "fast")


# ----------------------------------------------------------------------------- the smallest effect


@pytest.mark.parametrize(
    "lo, hi, expected",
    [
        (0.006, 0.02, "holds"),  # beyond the margin, reaching past d
        (0.001, 0.02, "holds"),  # beyond the margin; d inside the interval: an effect of interest possible
        (0.001, 0.005, "holds"),  # hi exactly at d: not wholly below it
        (0.001, 0.0049999, "does_not_hold"),  # real but smaller than d: below the smallest effect
        (-0.01, 0.004, "does_not_hold"),  # a true null: wholly below d (impossible with margin 0 alone)
        (-0.01, 0.006, "inconclusive"),  # straddles the margin, reaches past d
        (0.0, 0.006, "inconclusive"),  # touches the margin
    ],
)
def test_greater_with_a_smallest_effect(lo, hi, expected):
    assert P.decide(est(lo, hi), "greater", 0.0, 0.005) == expected


@pytest.mark.parametrize(
    "lo, hi, expected",
    [
        (0.5, 0.7, "holds"),  # below 1, reaching below d = 0.8
        (0.85, 0.95, "does_not_hold"),  # below 1 but wholly above d: too small a reduction
        (0.8, 0.95, "holds"),  # lo at d: not wholly above it
        (0.9, 1.2, "does_not_hold"),  # straddles 1, wholly above d
        (0.7, 1.2, "inconclusive"),
    ],
)
def test_less_with_a_smallest_effect(lo, hi, expected):
    assert P.decide(est(lo, hi), "less", 1.0, 0.8) == expected


def test_every_claim_can_come_out_does_not_hold():
    """For every sampling-based claim of the book, an interval exists that gives "does not hold"."""
    from bnpaper import ledger

    for c in ledger.claims():
        p = c.protocol
        if p is None or p.is_check:
            continue
        d, m = p.smallest_effect, p.margin
        if p.kind == "greater":
            e = est(d - 3 * abs(d) - 1, d - abs(d) / 2 - 0.5)
        elif p.kind == "less":
            e = est(d + abs(d) / 2 + 0.5, d + 3 * abs(d) + 1)
        else:
            e = est(2 * m, 3 * m, 2.5 * m, 2 * m, 3 * m)
        assert P.decide(e, p.kind, m, p.sesoi) == "does_not_hold", c.id


def test_a_smallest_effect_on_the_null_side_is_refused():
    base = dict(version=1, fixed="d", arms=("", ""), tuned=("", ""), statistic=("", ""), interval="t")
    with pytest.raises(ValueError, match="null side"):
        P.Protocol(**base, kind="greater", margin=0.0, sesoi=-0.01)
    with pytest.raises(ValueError, match="null side"):
        P.Protocol(**base, kind="less", margin=1.0, sesoi=1.2)
    with pytest.raises(ValueError, match="sesoi_reason"):
        P.Protocol(**base, kind="greater", margin=0.0, sesoi=0.01, sesoi_reason="because")


def test_flags_name_a_wrong_side_and_an_effect_below_interest():
    p = P.Protocol(
        version=1, fixed="d", arms=("", ""), tuned=("", ""), statistic=("", ""), interval="t",
        kind="greater", margin=0.0, sesoi=0.005, sesoi_reason="accuracy",
    )  # fmt: skip
    assert P.flags(est(-0.02, 0.01, -0.005), p) == ["wrong_side"]
    assert P.flags(est(0.001, 0.004), p) == ["below_sesoi"]
    assert P.flags(est(0.001, 0.02), p) == []


# ----------------------------------------------------------------------------- multiplicity


def test_holm_against_a_hand_computed_example():
    adj = P.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    # sorted: d 0.005*4 = 0.02, a 0.01*3 = 0.03, c 0.03*2 = 0.06, b 0.04*1 = 0.04 -> monotone 0.06
    assert adj == pytest.approx({"d": 0.02, "a": 0.03, "c": 0.06, "b": 0.06})
    assert P.holm({"x": 0.6, "y": 0.7}) == pytest.approx({"x": 1.0, "y": 1.0})


def test_holm_agrees_with_statsmodels_style_reference():
    """Against the definition written the other way: adjusted p_(i) = max_{j<=i} min(1, (m-j+1) p_(j))."""
    rng = np.random.default_rng(5)
    p = dict(enumerate(rng.uniform(0, 0.2, 12)))
    order = sorted(p, key=p.get)
    ref, best = {}, 0.0
    for j, k in enumerate(order):
        best = max(best, min(1.0, (len(p) - j) * p[k]))
        ref[k] = best
    assert P.holm(p) == pytest.approx(ref)


def test_adjusted_verdicts_from_adjusted_p():
    assert P.adjusted_verdict({"holds": 0.01, "does_not_hold": 1.0}) == "holds"
    assert P.adjusted_verdict({"holds": 0.06, "does_not_hold": 1.0}) == "inconclusive"
    assert P.adjusted_verdict({"holds": 0.01, "does_not_hold": 0.02}) == "does_not_hold"


@pytest.mark.parametrize("shift", [-0.01, -0.004, 0.0, 0.002, 0.004, 0.006, 0.012])
def test_decisive_p_below_5_percent_is_exactly_the_unadjusted_verdict(shift):
    """Inverting the interval gives p-values on the scale of the rule: p < 0.05 reproduces decide()."""
    rng = np.random.default_rng(int(abs(shift) * 1e4) + 50)
    a, b = rng.normal(0.9 + shift, 0.004, 10), rng.normal(0.9, 0.004, 10)
    for kind, margin, sesoi in (("greater", 0.0, 0.005), ("equivalent", 0.005, None), ("less", 0.0, -0.005)):
        proto = P.Protocol(
            version=1, fixed="d", arms=("", ""), tuned=("", ""), statistic=("", ""), interval="paired t",
            kind=kind, margin=margin, sesoi=sesoi, sesoi_reason="accuracy" if sesoi else "margin",
        )  # fmt: skip
        e = P.paired_t(a, b)
        verdict = P.decide(e, kind, margin, sesoi)
        pv = P.decisive_p(lambda: P.paired_t(a, b), proto)
        from_p = P.adjusted_verdict(pv)  # one test alone: no adjustment
        assert from_p == verdict, (kind, shift, pv, e)
        if kind == "greater":  # against scipy's one-sided t test (two-sided scale: doubled)
            ref = stats.ttest_rel(a, b, alternative="greater").pvalue * 2
            assert pv["holds"] == pytest.approx(min(ref, 1.0), rel=1e-6, abs=1e-12) or pv["holds"] == 1.0


# ----------------------------------------------------------------------------- coverage


def _coverage(sample, interval, truth, reps=2000, seed=0) -> float:
    """Share of `reps` simulated experiments of n = 10 whose 95% interval contains the truth."""
    rng = np.random.default_rng(seed)
    hit = 0
    for _ in range(reps):
        e = interval(*sample(rng))
        hit += e.lo <= truth <= e.hi
    return hit / reps


COVERAGE = {}  # name -> coverage, collected by the tests below (the closing note quotes them)


@pytest.mark.parametrize(
    "name, sample, interval, truth",
    [
        (  # paired accuracy differences: normal seed-to-seed noise, correlated arms
            "paired t, normal differences",
            lambda r: (0.9 + (s := r.normal(0, 0.01, 10)) + r.normal(0.005, 0.004, 10), 0.9 + s),
            P.paired_t,
            0.005,
        ),
        (  # skewed differences (gamma, shape 4: skewness 1, mean 0.01): a few seeds far from the rest
            "paired t, skewed differences (skewness 1)",
            lambda r: (r.gamma(4, 0.0025, 10), np.zeros(10)),
            P.paired_t,
            0.01,
        ),
        (  # log-normal per-seed ratios (true geometric mean 2)
            "t on log ratios, lognormal ratios",
            lambda r: (2 * np.exp(r.normal(0, 0.4, 10)), np.ones(10)),
            lambda a, b: P.log_ratio_t(a, b),
            2.0,
        ),
    ],
)
def test_interval_coverage_at_n_10(name, sample, interval, truth):
    cov = _coverage(sample, interval, truth)
    COVERAGE[name] = cov
    assert cov >= 0.93, f"{name}: 95% interval covers {cov:.3f}"


def test_a_mixture_with_runs_at_chance_is_where_t_intervals_fail():
    """Runs that sit at chance (a diverged seed scored 0.1) mixed with trained ones: the t interval
    of the mean difference still covers the mean, but only because the rare mixture widens it;
    measured, not assumed (the book's accuracy claims score a diverged run as chance)."""

    def sample(r):
        bn = 0.95 + r.normal(0, 0.005, 10)
        no_bn = np.where(r.uniform(size=10) < 0.1, 0.1, 0.93 + r.normal(0, 0.005, 10))
        return bn, no_bn

    truth = 0.95 - (0.9 * 0.93 + 0.1 * 0.1)
    skewed = _coverage(lambda r: (r.exponential(0.01, 10), np.zeros(10)), P.paired_t, 0.01, reps=3000)
    COVERAGE["paired t, exponential differences (skewness 2)"] = skewed
    assert 0.85 < skewed < 0.95  # t undercovers at this skew: reported, and why n >= 10 is a floor
    cov = _coverage(sample, P.paired_t, truth, reps=3000)
    COVERAGE["paired t, 10% of runs at chance"] = cov
    assert 0.5 < cov < 1.0  # reported in the closing note, not promised


def test_decisive_p_survives_an_interval_too_wide_to_compute():
    """Two seeds of a log ratio: at levels near 1 the t bound's exp overflows; that level reaches
    nothing, and the p-value is still found."""
    proto = P.Protocol(
        version=1, fixed="d", arms=("", ""), tuned=("", ""), statistic=("", ""), interval="t on log ratios",
        kind="greater", margin=2.0, scale="ratio",
    )  # fmt: skip
    pv = P.decisive_p(lambda: P.log_ratio_t([1.0, 1.3], [0.2, 0.3]), proto)
    assert 0.0 < pv["holds"] < 1.0 and pv["does_not_hold"] == 1.0


def test_the_censored_median_ratio_covers_at_n_10_with_coarse_evaluations_and_censoring():
    """Steps to a target, as chapter 06 reads them: each run's step rounded up to the next
    evaluation (every 50 steps) and censored at its run length; the median of per-seed ratios
    (true median 2) is covered at least 95% of the time (the order statistics promise 97.9%)."""

    def interval(rng):
        den = 400 * np.exp(rng.normal(0, 0.3, 10))  # the accelerated model's true steps
        num = 2 * 400 * np.exp(rng.normal(0, 0.3, 10))  # the Baseline's: twice as many, in median
        read = lambda s, limit: np.where(s > limit, np.inf, np.ceil(s / 50) * 50)  # noqa: E731
        return P.censored_median_ratio(read(num, 1500), read(den, 750), 1500, 750, resolution=50)

    rng = np.random.default_rng(0)
    hits = sum(e.lo <= 2.0 <= e.hi for e in (interval(rng) for _ in range(2000)))
    COVERAGE["censored median ratio, steps read every 50, censored"] = hits / 2000
    assert hits / 2000 >= 0.95
