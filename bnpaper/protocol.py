"""Claims as experiments with a protocol fixed before they run, and verdicts from 95% intervals.

A claim's `Protocol` says, before its evaluation runs: the arms, what is tuned on which grid (on
validation data, with tuning seeds disjoint from the evaluation seeds), the statistic, how its
interval is computed, the margin, and the direction claimed. The verdict is then mechanical:

  kind "greater" (the statistic exceeds the margin m; the smallest effect of interest is d >= m)
      holds          the whole 95% interval lies above m (and does not lie wholly below d)
      does_not_hold  the whole 95% interval lies below d: whatever the effect is, it is smaller
                     than the smallest effect the claim is about (a wrong sign included)
      inconclusive   otherwise
  kind "less": the mirror image (d <= m).
  kind "equivalent" (|statistic| < margin): two one-sided tests (TOST) at the 5% level each, and
  the same level for the opposite conclusion, so the rule is symmetric:
      holds          the 90% interval lies inside (-margin, margin)
      does_not_hold  the 90% interval lies wholly outside [-margin, margin]
      inconclusive   otherwise
  kind "below" (a deterministic error bound, float64 arithmetic, no sampling): a *check*, not a
  claim: holds if the measured value is below the bound, does_not_hold otherwise.

Every claim can therefore come out "does not hold". Its smallest effect of interest (`sesoi`,
with its reason) is fixed in the protocol before the run; a margin of 0 alone could never be
cleared the other way by a true null. The ledger adjusts the verdicts of all sampling-based claims
together for multiplicity (Holm: `holm`), from p-values found by inverting each claim's own
interval (`decisive_p`), and shows the unadjusted verdicts beside them.

"Clears the margin" is strict, with a relative tolerance of 1e-9 of the margin for rounding (so
0.3 / 0.1, which is 2.9999999999999996 in floating point, is *at* a margin of 3, not below it): an
interval end within that tolerance of the margin straddles it (a margin of 0 is cleared by any
nonzero value of the right sign). A statistic that could not be computed (NaN,
too few runs) is inconclusive, never a pass.

Intervals (all 95%, two-sided):
  paired_t      mean of per-seed differences, Student t (arms share seeds: same batch order)
  welch_t       difference of means of independent samples, Welch-Satterthwaite t
  log_ratio_t   geometric mean of per-seed ratios, Student t on the logs; a grid of factor g makes
                each per-seed ratio known only to within a factor g, so the interval is widened by
                g at each end ("the grid resolution is part of it")
  bootstrap_ratio_of_medians  ratio of medians of two paired samples that may hold +inf ("never
                reached"), percentile bootstrap over seeds (pairs resampled together, 9,999
                resamples, fixed seed), widened by the measurement resolution
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import dataclasses
import hashlib
import inspect
import json
import math
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

VERDICTS = ("holds", "does_not_hold", "inconclusive", "not_testable", "not_run")
KINDS = ("greater", "less", "equivalent", "below")
REL_TOL = 1e-9  # interval ends this close (relatively) to the margin straddle it
CONFIDENCE = 0.95  # the level of every reported interval
ALPHA = 0.05  # the family-wise error rate the Holm adjustment keeps (two-sided scale, see decisive_p)
MIN_N = 10  # evaluation runs every claim that trains needs, in the quick and paper profiles
_LEVEL = contextvars.ContextVar("bnpaper_confidence", default=CONFIDENCE)


def confidence() -> float:
    """The level intervals are computed at now: CONFIDENCE, unless inside `at_confidence`."""
    return _LEVEL.get()


@contextlib.contextmanager
def at_confidence(level: float):
    """Compute every interval inside this block at `level` (to find where a bound crosses a margin)."""
    if not 0 < level < 1:
        raise ValueError(f"a confidence level lies in (0, 1), got {level}")
    token = _LEVEL.set(level)
    try:
        yield
    finally:
        _LEVEL.reset(token)


# Why a smallest effect of interest has the size it has: the shared reasons (English, Arabic).
SESOI_REASONS: dict[str, tuple[str, str]] = {
    "margin": (
        "the claim's own margin: an effect smaller than it is not what the claim says",
        "هامش الادعاء نفسه: الأثر الأصغر منه ليس ما يقوله الادعاء",
    ),
    "accuracy": (
        "half a point of accuracy: on 1,000 images one run's accuracy moves by about 0.7 points "
        "from sampling alone, and no reader would choose a method for a smaller gain",
        "نصف نقطة مئوية من الدقة: على 1,000 صورة تتحرك دقة التشغيل الواحد نحو 0.7 نقطة بفعل "
        "المعاينة وحدها، ولا يختار قارئ طريقةً لمكسب أصغر",
    ),
    "speed": (
        "a quarter fewer steps (a ratio of 1.25): a smaller saving is within one evaluation "
        "interval of most runs",
        "خطوات أقل بالربع (نسبة 1.25): التوفير الأصغر يقع ضمن فترة تقييم واحدة في أغلب التشغيلات",
    ),
    "reduction": (
        "a fifth less (a ratio of 0.8): a smaller reduction is not the stabilisation the claim describes",
        "أقل بالخُمس (نسبة 0.8): الانخفاض الأصغر ليس الاستقرار الذي يصفه الادعاء",
    ),
    "correlation": (
        "a tenth of a rank correlation: a smaller difference between the arms is noise in a "
        "correlation over a few dozen windows",
        "عُشر معامل ارتباط رتبي: الفرق الأصغر بين الذراعين ضجيج في ارتباط محسوب على بضع عشرات من النوافذ",
    ),
    "slope": (
        "0.01 per layer on the log scale: 1% per layer, about 1.6 times over 50 layers; a smaller "
        "slope is flat for every depth this book trains",
        "0.01 لكل طبقة على المقياس اللوغاريتمي: 1% لكل طبقة، أي نحو 1.6 مرة عبر 50 طبقة؛ والميل "
        "الأصغر مستوٍ في كل عمق يدربه هذا الكتاب",
    ),
}


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """What a claim's evaluation is, written before it runs. Text fields are (English, Arabic).

    Locked before its confirmatory run: `digest` (every field, the estimator's and the rule's
    source) must match the claim's entry in bnpaper/data/protocols.lock (`bnpaper lock`)."""

    version: int
    fixed: str  # ISO date this version was written (the lock's git commit is the proof of when)
    arms: tuple[str, str]
    tuned: tuple[str, str]  # what is tuned, on which grid, with which data and seeds ("nothing": say so)
    statistic: tuple[str, str]
    interval: str  # one of INTERVALS
    kind: str  # one of KINDS
    margin: float
    scale: str = "difference"  # "difference" or "ratio": how the statistic and margin read
    changes: tuple[str, str] = ("", "")  # what this version changed from the previous, and why
    trains: bool = True  # False for a deterministic (float64, sampling-free) check
    sesoi: float | None = None  # smallest effect of interest (greater / less); None: the margin
    sesoi_reason: str = "margin"  # a key of SESOI_REASONS
    check: bool = False  # true by construction or deterministic: a check, not an empirical claim
    check_reason: tuple[str, str] = ("", "")  # why a sampled statistic is a check (say it)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"protocol kind must be one of {KINDS}, got {self.kind!r}")
        if self.interval not in INTERVALS:
            raise ValueError(f"protocol interval must be one of {tuple(INTERVALS)}, got {self.interval!r}")
        if self.kind == "equivalent" and self.margin <= 0:
            raise ValueError(f"an equivalence margin must be positive, got {self.margin}")
        if self.scale == "ratio" and self.margin <= 0:
            raise ValueError(f"a ratio's margin must be positive, got {self.margin}")
        if self.sesoi_reason not in SESOI_REASONS:
            raise ValueError(f"sesoi_reason must be one of {tuple(SESOI_REASONS)}, got {self.sesoi_reason!r}")
        d = self.smallest_effect
        if self.kind == "greater" and d < self.margin or self.kind == "less" and d > self.margin:
            raise ValueError(
                f"the smallest effect of interest {d} lies on the null side of the margin {self.margin} "
                f"for a {self.kind!r} claim"
            )
        if self.check and self.kind != "below" and not all(self.check_reason):
            raise ValueError("a sampled statistic made a check says why, in English and Arabic")

    @property
    def smallest_effect(self) -> float:
        """The effect the claim is about: the margin where none is given (equivalence: the margin)."""
        return self.margin if self.sesoi is None or self.kind == "equivalent" else float(self.sesoi)

    @property
    def is_check(self) -> bool:
        """A check (an error bound, or a statistic true by construction), not a sampled claim: kept
        out of the multiplicity family and counted apart."""
        return self.check or self.kind == "below"

    def text(self, name: str, lang: str) -> str:
        pair = getattr(self, name)
        return pair[0] if lang == "en" else pair[1]


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95% interval over n runs (lo == hi == value for a deterministic check)."""

    value: float
    lo: float
    hi: float
    n: int
    method: str
    lo90: float = math.nan  # the 90% interval, for TOST
    hi90: float = math.nan
    note: dict = field(default_factory=dict)  # e.g. how many runs reached a target

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("value", "lo", "hi", "n", "method", "lo90", "hi90", "note")}


def _clean(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _t_bounds(mean: float, se: float, df: float, conf: float) -> tuple[float, float]:
    if not (df > 0 and math.isfinite(se)):
        return -math.inf, math.inf
    if se == 0:
        return mean, mean
    h = float(stats.t.ppf(0.5 + conf / 2, df)) * se
    return mean - h, mean + h


def paired_t(a: Sequence[float | None], b: Sequence[float | None]) -> Estimate:
    """Mean of a_i - b_i over the seeds where both are present (a seed missing in either drops)."""
    x, y = _clean(a), _clean(b)
    if x.shape != y.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(x)} and {len(y)}")
    d = (x - y)[np.isfinite(x - y)]
    return _t_estimate(d, "paired t")


def _t_estimate(d: np.ndarray, method: str) -> Estimate:
    n = len(d)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, method)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    lo, hi = _t_bounds(mean, se, n - 1, confidence())
    lo90, hi90 = _t_bounds(mean, se, n - 1, 0.90)
    return Estimate(mean, lo, hi, n, method, lo90, hi90)


def one_sample_t(values: Sequence[float | None]) -> Estimate:
    """Mean of one sample over seeds, Student t."""
    x = _clean(values)
    return _t_estimate(x[np.isfinite(x)], "t")


def welch_t(a: Sequence[float | None], b: Sequence[float | None]) -> Estimate:
    """mean(a) - mean(b) for independent samples, Welch's t interval."""
    x, y = _clean(a), _clean(b)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n = min(len(x), len(y))
    if len(x) == 0 or len(y) == 0:
        return Estimate(math.nan, math.nan, math.nan, n, "Welch t")
    mean = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return Estimate(mean, -math.inf, math.inf, n, "Welch t")
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)) if se > 0 else 1.0
    lo, hi = _t_bounds(mean, se, df, confidence())
    lo90, hi90 = _t_bounds(mean, se, df, 0.90)
    return Estimate(mean, lo, hi, n, "Welch t", lo90, hi90)


def log_ratio_t(
    num: Sequence[float | None], den: Sequence[float | None], grid_factor: float = 1.0
) -> Estimate:
    """Geometric mean of num_i / den_i over seeds with a t interval on the logs, widened by the grid.

    With values read off a grid of factor g (each true value lies in [v, g v)), a per-seed ratio is
    known only to within a factor g either way, so the interval's ends are divided and multiplied by g.
    A missing (None) or non-positive value drops that seed.
    """
    if grid_factor < 1:
        raise ValueError(
            f"grid_factor is the ratio between neighbouring grid points (>= 1), got {grid_factor}"
        )
    x, y = _clean(num), _clean(den)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    est = _t_estimate(np.log(x[ok] / y[ok]), f"t on log ratios, widened by the grid factor {grid_factor:g}")
    if est.n == 0:
        return est
    g = grid_factor
    return Estimate(
        math.exp(est.value),
        math.exp(est.lo) / g,
        math.exp(est.hi) * g,
        est.n,
        est.method,
        math.exp(est.lo90) / g,
        math.exp(est.hi90) * g,
    )


def grid_ratio(steps: Sequence[int | None], base: float) -> list[float | None]:
    """Ratios base**k computed from integer grid exponents k, exact (no 0.3 / 0.1 rounding)."""
    return [None if k is None else float(base) ** int(k) for k in steps]


def bootstrap_ratio_of_medians(
    num: Sequence[float | None], den: Sequence[float | None], resolution: float = 0.0, seed: int = 0
) -> Estimate:
    """median(num) / median(den) over paired seeds; +inf ("never reached") is allowed in either.

    The interval is a percentile bootstrap over seeds (pairs resampled together). `resolution` is
    the measurement step (e.g. steps between evaluations): the first evaluation at or above a target
    at step s means it was reached in (s - r, s], so the lower end is multiplied by
    (median(num) - r) / median(num) and the upper end by median(den) / (median(den) - r).
    """
    x, y = _clean(num), _clean(den)
    ok = ~np.isnan(x) & ~np.isnan(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "bootstrap")

    def ratio(a, b, axis=-1):
        ma, mb = np.median(a, axis=axis), np.median(b, axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.isinf(ma) & np.isinf(mb), np.nan, ma / mb)

    value = float(ratio(x, y))
    method = f"percentile bootstrap over seeds (9,999 resamples), widened by the resolution {resolution:g}"
    if n < 2 or not math.isfinite(value) and not math.isinf(value):
        return Estimate(value, -math.inf, math.inf, n, method)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(9999, n))
    boot = ratio(x[idx], y[idx])
    undefined = np.isnan(boot)  # resamples where neither arm's median reached the target
    if undefined.mean() > (1 - confidence()) / 2:  # more than the interval's tail: not pinned down
        return Estimate(
            value, -math.inf, math.inf, n, method, note={"undefined_resamples": float(undefined.mean())}
        )
    # an undefined resample is neither faster nor slower: it counts at the low end (against the claim)
    boot = np.where(undefined, -math.inf, boot)
    tail = (1 - confidence()) / 2
    lo, hi = (float(v) for v in np.quantile(boot, [tail, 1 - tail], method="inverted_cdf"))
    lo90, hi90 = (float(v) for v in np.quantile(boot, [0.05, 0.95], method="inverted_cdf"))
    if resolution > 0:  # a step count s means "reached in (s - r, s]"
        med_x, med_y = float(np.median(x)), float(np.median(y))
        down = (med_x - resolution) / med_x if math.isfinite(med_x) and med_x > 0 else 1.0
        up = (
            1.0
            if not math.isfinite(med_y)
            else (med_y / (med_y - resolution) if med_y > resolution else math.inf)
        )
        lo, lo90 = lo * max(down, 0.0), lo90 * max(down, 0.0)
        hi, hi90 = hi * up, hi90 * up
    return Estimate(value, lo, hi, n, method, lo90, hi90)


def censored_median_ratio(
    num: Sequence[float | None],
    den: Sequence[float | None],
    num_limit: float,
    den_limit: float,
    resolution: float = 0.0,
) -> Estimate:
    """The median over paired seeds of num_i / den_i, for steps to a target that some runs never
    reach (+inf: censored at their run's length, num_limit or den_limit steps).

    Each seed's ratio is known only within bounds: a step count s read off evaluations every r
    steps means "reached in (s - r, s]"; a run that never reached the target reached it, if ever,
    after its limit. So r_low = (num - r) / den and r_high = num / (den - r), with a censored num
    giving r_low = num_limit / den, r_high = +inf, a censored den r_low = 0, r_high = num / den_limit,
    and both censored (0, +inf). The interval is distribution-free: order statistics k and n + 1 - k
    of r_low and r_high, with k the largest index whose binomial(n, 1/2) tail stays within the level
    (at n = 10 and 95%: the 2nd and 9th, coverage 97.9% for any continuous distribution of ratios).
    The estimate is the median of the seeds' ratios, each censored run counted at its limit
    ("at least", or "at most"). A seed missing in either arm (None) drops."""
    x, y = _clean(num), _clean(den)
    ok = ~np.isnan(x) & ~np.isnan(y)
    x, y = x[ok], y[ok]
    n = len(x)
    method = f"median of per-seed ratios, order-statistic interval, resolution {resolution:g}"
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, method)
    r = float(resolution)
    lo_r, hi_r, point = np.empty(n), np.empty(n), np.empty(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, (a, b) in enumerate(zip(x, y)):
            fa, fb = math.isfinite(a), math.isfinite(b)
            if fa and fb:
                lo_r[i] = max(a - r, 0.0) / b
                hi_r[i] = a / (b - r) if b > r else math.inf
                point[i] = a / b
            elif fb:  # num never reached it: at least num_limit / b
                lo_r[i], hi_r[i], point[i] = num_limit / b, math.inf, num_limit / b
            elif fa:  # den never reached it: at most a / den_limit
                lo_r[i], hi_r[i], point[i] = 0.0, a / den_limit, a / den_limit
            else:
                lo_r[i], hi_r[i], point[i] = 0.0, math.inf, math.nan
    value = float(np.median(point[~np.isnan(point)])) if (~np.isnan(point)).any() else math.nan

    def bounds(level: float) -> tuple[float, float]:
        tail = (1 - level) / 2
        k = 0
        while k + 1 <= n and stats.binom.cdf(k, n, 0.5) <= tail:
            k += 1  # P(fewer than k of n below the median) <= tail
        if k == 0:
            return 0.0, math.inf
        return float(np.sort(lo_r)[k - 1]), float(np.sort(hi_r)[n - k])

    lo, hi = bounds(confidence())
    lo90, hi90 = bounds(0.90)
    return Estimate(value, lo, hi, n, method, lo90, hi90)


def exact(value: float, n: int = 1, method: str = "deterministic, float64") -> Estimate:
    """A sampling-free measurement (an error bound checked in float64): no interval to speak of."""
    return Estimate(float(value), float(value), float(value), n, method, float(value), float(value))


INTERVALS: dict[str, Callable] = {
    "paired t": paired_t,
    "Welch t": welch_t,
    "t": one_sample_t,
    "t on log ratios": log_ratio_t,
    "bootstrap ratio of medians": bootstrap_ratio_of_medians,
    "censored median ratio": censored_median_ratio,
    "exact": exact,
}


def _above(x: float, margin: float) -> bool:
    """x clears the margin upwards: strictly, beyond rounding."""
    return x - margin > REL_TOL * abs(margin)


def _below(x: float, margin: float) -> bool:
    return margin - x > REL_TOL * abs(margin)


def decide(est: Estimate, kind: str, margin: float, sesoi: float | None = None) -> str:
    """The verdict of an estimate under a protocol's kind, margin and smallest effect of interest
    (see the module docstring); sesoi None means the margin itself."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if any(math.isnan(v) for v in (est.value, est.lo, est.hi)):
        return "inconclusive"
    d = margin if sesoi is None else sesoi
    if kind == "below":
        return "holds" if _below(est.value, margin) else "does_not_hold"
    if kind == "greater":
        if _below(est.hi, d):
            return "does_not_hold"
        return "holds" if _above(est.lo, margin) else "inconclusive"
    if kind == "less":
        if _above(est.lo, d):
            return "does_not_hold"
        return "holds" if _below(est.hi, margin) else "inconclusive"
    # equivalent: TOST at 5% per side <=> the 90% interval inside (-margin, margin); the opposite
    # conclusion at the same level: the 90% interval wholly outside
    if margin <= 0:
        raise ValueError(f"an equivalence margin must be positive, got {margin}")
    lo90, hi90 = est.lo90, est.hi90
    if math.isnan(lo90) or math.isnan(hi90):
        return "inconclusive"
    if _above(lo90, -margin) and _below(hi90, margin):
        return "holds"
    if _above(lo90, margin) or _below(hi90, -margin):
        return "does_not_hold"
    return "inconclusive"


def flags(est: Estimate | None, p: Protocol) -> list[str]:
    """What a reader should notice beside the verdict: "wrong_side" (the estimate lies on the
    other side of the margin from the claim), "below_sesoi" (clears the margin, yet the whole
    interval lies short of the smallest effect of interest)."""
    if est is None or p.is_check or any(math.isnan(v) for v in (est.value, est.lo, est.hi)):
        return []
    out = []
    d = p.smallest_effect
    if p.kind == "greater" and est.value < p.margin or p.kind == "less" and est.value > p.margin:
        out.append("wrong_side")
    if p.kind == "equivalent" and abs(est.value) >= p.margin:
        out.append("wrong_side")
    if p.kind == "greater" and _above(est.lo, p.margin) and _below(est.hi, d):
        out.append("below_sesoi")
    if p.kind == "less" and _below(est.hi, p.margin) and _above(est.lo, d):
        out.append("below_sesoi")
    return out


def _clears(est: Estimate, kind: str, margin: float, d: float, which: str) -> bool:
    """Does the interval (lo, hi), at whatever level it was computed, reach conclusion `which`?"""
    if any(math.isnan(v) for v in (est.lo, est.hi)):
        return False
    if which == "holds":
        if kind == "greater":
            return _above(est.lo, margin)
        if kind == "less":
            return _below(est.hi, margin)
        return _above(est.lo, -margin) and _below(est.hi, margin)
    if kind == "greater":
        return _below(est.hi, d)
    if kind == "less":
        return _above(est.lo, d)
    return _above(est.lo, margin) or _below(est.hi, -margin)


def decisive_p(estimate: Callable[[], Estimate], p: Protocol) -> dict[str, float]:
    """p-values of the two conclusions a claim can reach, found by inverting its own interval.

    For "holds" and "does_not_hold", the smallest 1 - c at which the level-c interval reaches that
    conclusion (bisection on log10(1 - c)); on the two-sided scale of `decide`, so p < ALPHA gives
    exactly the unadjusted verdict: a directional claim's 95% interval, an equivalence claim's 90%
    interval (whose p is halved: TOST's level is one-sided). 1.0 where even a 50% interval does not
    reach it. Works for every interval method, the bootstrap included (its resolution limits small
    p-values to about 2e-4)."""
    d = p.smallest_effect
    scale = 0.5 if p.kind == "equivalent" else 1.0
    out = {}
    for which in ("holds", "does_not_hold"):

        def reaches(log_tail: float, which: str = which) -> bool:
            with at_confidence(1 - 10**log_tail):
                try:
                    return _clears(estimate(), p.kind, p.margin, d, which)
                except OverflowError:  # an interval too wide to compute (exp of a huge t bound)
                    return False

        lo, hi = -15.0, math.log10(0.5)  # log10(1 - c): c from 1 - 1e-15 to 0.5
        if not reaches(hi):
            out[which] = 1.0
            continue
        if reaches(lo):
            out[which] = 10**lo * scale
            continue
        for _ in range(40):  # reaches(hi) is True, reaches(lo) False: the crossing lies between
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
        out[which] = 10**hi * scale
    return out


def holm(pvalues: dict[str, float], alpha: float = ALPHA) -> dict[str, float]:
    """Holm's step-down adjusted p-values (reject where adjusted < alpha keeps the family-wise
    error rate at alpha): the i-th smallest of m is multiplied by m - i + 1, then made monotone."""
    order = sorted(pvalues, key=lambda k: (pvalues[k], k))
    m, running, out = len(order), 0.0, {}
    for i, key in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[key]))
        out[key] = running
    return out


def adjusted_verdict(adjusted: dict[str, float], alpha: float = ALPHA) -> str:
    """A claim's verdict from its two Holm-adjusted p-values (does not hold wins a tie, as in decide)."""
    if adjusted["does_not_hold"] < alpha:
        return "does_not_hold"
    return "holds" if adjusted["holds"] < alpha else "inconclusive"


def tost_p(diffs: Sequence[float], margin: float) -> float:
    """The TOST p-value (the larger of the two one-sided p-values) for |mean diff| < margin."""
    d = _clean(diffs)
    d = d[np.isfinite(d)]
    p_low = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    p_high = stats.ttest_1samp(d, margin, alternative="less").pvalue
    return float(max(p_low, p_high))


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of several parts: holds if all hold, does_not_hold if any does not, else inconclusive."""
    if not verdicts:
        raise ValueError("combine needs at least one verdict")
    if "does_not_hold" in verdicts:
        return "does_not_hold"
    if all(v == "holds" for v in verdicts):
        return "holds"
    return "inconclusive"


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A claim the book tests, owned by the experiment module that measures it.

    `estimate` turns the chapter's recorded measurement (a dict of per-seed numbers) into the
    protocol's statistic with its interval; `decide` with the protocol's kind and margin gives the
    verdict. A claim without a protocol cannot be tested here (say why in both languages).
    """

    id: str
    en: str  # the claim in one line
    ar: str
    where: str  # where it is made: paper section (source text section)
    paper: str  # the paper's number, or "-"
    chapter: str  # the chapter that measures it
    label: str  # the MyST label of the section that measures it
    protocol: Protocol | None
    estimate: Callable[[dict], Estimate] | None
    untestable_en: str = ""
    untestable_ar: str = ""
    paper_ar: str = ""  # the paper's number in Arabic, where `paper` has words and not only numbers
    later: bool = (
        False  # a claim of a later paper (`where` names it), shown among the ledger's later findings
    )

    def __post_init__(self):
        if (self.protocol is None) != (self.estimate is None):
            raise ValueError(f"claim {self.id}: a protocol and an estimate go together")
        if self.protocol is None and not (self.untestable_en and self.untestable_ar):
            raise ValueError(f"claim {self.id}: an untestable claim says why, in English and Arabic")
        if re.search("[A-Za-z]", self.paper) and not self.paper_ar:
            raise ValueError(f"claim {self.id}: the paper number {self.paper!r} has words; add paper_ar")

    def judge(self, measurement: dict, profile: str) -> tuple[str, Estimate]:
        """(verdict, estimate) of a measurement under this claim's protocol; too few runs for the
        profile is inconclusive (and says so in the estimate's note)."""
        if self.protocol is None or self.estimate is None:
            raise ValueError(f"claim {self.id} is not testable here")
        est = self.estimate(measurement)
        if self.protocol.trains and profile in ("quick", "paper") and est.n < MIN_N:
            return "inconclusive", Estimate(
                est.value,
                est.lo,
                est.hi,
                est.n,
                est.method,
                est.lo90,
                est.hi90,
                {**est.note, "too_few_runs": True},
            )
        return decide(est, self.protocol.kind, self.protocol.margin, self.protocol.sesoi), est


# ----------------------------------------------------------------------------- pre-registration


def _code(fn: Callable) -> str:
    """A function's code as the digest sees it: its syntax tree (comments and layout do not count),
    and the simple values it closes over (a factory's arm names, say)."""
    try:
        src = textwrap.dedent(inspect.getsource(fn))
        try:
            text = ast.dump(ast.parse(src))
        except SyntaxError:  # a lambda cut out of a longer expression
            text = " ".join(src.split())
    except (OSError, TypeError):
        text = getattr(fn, "__qualname__", repr(fn))
    cells = [c.cell_contents for c in (getattr(fn, "__closure__", None) or ())]
    plain = [
        repr(v) if isinstance(v, (str, int, float, tuple, bool, type(None))) else type(v).__name__
        for v in cells
    ]
    return text + "|" + ",".join(plain)


RULE_CODE = (decide, _above, _below, _clears, flags)


def digest(claim: Claim) -> str:
    """16 hex digits of SHA-256 over everything that decides a claim's verdict: every field of its
    protocol but the date it was typed, the source of its estimator, of its interval method and of
    the rule (decide and the margin tests, REL_TOL, MIN_N). Editing any of them changes the digest,
    and the ledger then refuses the claim until the new protocol is locked as a new version."""
    p = claim.protocol
    if p is None:
        raise ValueError(f"claim {claim.id} has no protocol to digest")
    fields = {f.name: getattr(p, f.name) for f in dataclasses.fields(p) if f.name != "fixed"}
    parts = [
        claim.id,
        json.dumps(fields, sort_keys=True, default=str),
        _code(claim.estimate),
        _code(INTERVALS[p.interval]),
        *(_code(f) for f in RULE_CODE),
        f"REL_TOL={REL_TOL} MIN_N={MIN_N}",
    ]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------- the confirmatory version

CONFIRMATORY = (
    "v{v}, the confirmatory version, locked by digest before its run: a smallest effect of interest "
    'with its reason, so that the claim can come out "does not hold"; the equivalence rule symmetric '
    "(both conclusions at the 90% level); the verdict adjusted for multiplicity with every other claim "
    "(Holm) in the ledger; evaluated once, on evaluation seeds never used before.",
    "الإصدار {v}، الإصدار التأكيدي، مقفل ببصمته قبل تشغيله: أصغر أثر ذي أهمية مع سببه، ليمكن أن يخرج "
    'الادعاء بحكم "لا يصح"؛ وقاعدة التكافؤ متناظرة (الخلاصتان كلتاهما بمستوى 90%)؛ والحكم معدَّل '
    "للتعدد مع كل ادعاء آخر (طريقة هولم) في السجل؛ ويُقيَّم مرة واحدة، على بذور تقييم لم تُستعمل من قبل.",
)


def confirmatory(
    claims: Sequence[Claim],
    sesoi: dict[str, tuple[float, str]] | None = None,
    checks: dict[str, tuple[str, str]] | None = None,
) -> tuple[Claim, ...]:
    """Each claim's next protocol version, the confirmatory one: its smallest effect of interest
    (`sesoi`: claim id -> (value, a key of SESOI_REASONS); the margin itself where none is given),
    and for `checks` (claim id -> why, in English and Arabic) the mark of a check that is true by
    construction. The version history is kept: `changes` says what this version changed, then
    what the one before it had changed."""
    sesoi, checks = sesoi or {}, checks or {}
    unknown = (set(sesoi) | set(checks)) - {c.id for c in claims}
    if unknown:
        raise ValueError(f"confirmatory: no claim {sorted(unknown)} among {[c.id for c in claims]}")
    out = []
    for c in claims:
        p = c.protocol
        if p is None:
            out.append(c)
            continue
        v = p.version + 1
        new = tuple(t.format(v=v) for t in CONFIRMATORY)
        before = (f"v{p.version}: ", f"الإصدار {p.version}: ")
        changes = tuple(n + (f" {b}{old}" if old else "") for n, b, old in zip(new, before, p.changes))
        value, reason = sesoi.get(c.id, (None, "margin"))
        q = dataclasses.replace(
            p,
            version=v,
            changes=changes,
            sesoi=value,
            sesoi_reason=reason,
            check=c.id in checks,
            check_reason=checks.get(c.id, ("", "")),
        )
        out.append(dataclasses.replace(c, protocol=q))
    return tuple(out)
