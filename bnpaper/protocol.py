"""Claims as experiments with a protocol fixed before they run, and verdicts from 95% intervals.

A claim's `Protocol` says, before its evaluation runs: the arms, what is tuned on which grid (on
validation data, with tuning seeds disjoint from the evaluation seeds), the statistic, how its
interval is computed, the margin, and the direction claimed. The verdict is then mechanical:

  kind "greater" (the statistic exceeds the margin)
      holds          the whole 95% interval lies above the margin
      does_not_hold  the whole interval lies below it
      inconclusive   the interval contains the margin
  kind "less": the mirror image.
  kind "equivalent" (|statistic| < margin), by two one-sided tests (TOST) at the 5% level each:
      holds          both one-sided tests reject, i.e. the 90% interval lies inside (-margin, margin)
      does_not_hold  the 95% interval lies wholly outside [-margin, margin]
      inconclusive   otherwise
  kind "below" (a deterministic error bound, float64 arithmetic, no sampling):
      holds if the measured value is below the bound, does_not_hold otherwise.

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

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

VERDICTS = ("holds", "does_not_hold", "inconclusive", "not_testable", "not_run")
KINDS = ("greater", "less", "equivalent", "below")
REL_TOL = 1e-9  # interval ends this close (relatively) to the margin straddle it
CONFIDENCE = 0.95
MIN_N = 10  # evaluation runs every claim that trains needs, in the quick and paper profiles


@dataclass(frozen=True)
class Protocol:
    """What a claim's evaluation is, written before it runs. Text fields are (English, Arabic)."""

    version: int
    fixed: str  # ISO date the version was fixed, before its evaluation ran
    arms: tuple[str, str]
    tuned: tuple[str, str]  # what is tuned, on which grid, with which data and seeds ("nothing": say so)
    statistic: tuple[str, str]
    interval: str  # one of INTERVALS
    kind: str  # one of KINDS
    margin: float
    scale: str = "difference"  # "difference" or "ratio": how the statistic and margin read
    changes: tuple[str, str] = ("", "")  # what this version changed from the previous, and why
    trains: bool = True  # False for a deterministic (float64, sampling-free) check

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"protocol kind must be one of {KINDS}, got {self.kind!r}")
        if self.interval not in INTERVALS:
            raise ValueError(f"protocol interval must be one of {tuple(INTERVALS)}, got {self.interval!r}")
        if self.kind == "equivalent" and self.margin <= 0:
            raise ValueError(f"an equivalence margin must be positive, got {self.margin}")
        if self.scale == "ratio" and self.margin <= 0:
            raise ValueError(f"a ratio's margin must be positive, got {self.margin}")

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
    lo, hi = _t_bounds(mean, se, n - 1, CONFIDENCE)
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
    lo, hi = _t_bounds(mean, se, df, CONFIDENCE)
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
    if undefined.mean() > 0.025:  # more than the interval's tail: the ratio is not pinned down
        return Estimate(
            value, -math.inf, math.inf, n, method, note={"undefined_resamples": float(undefined.mean())}
        )
    # an undefined resample is neither faster nor slower: it counts at the low end (against the claim)
    boot = np.where(undefined, -math.inf, boot)
    lo, hi = (float(v) for v in np.quantile(boot, [0.025, 0.975], method="inverted_cdf"))
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


def exact(value: float, n: int = 1, method: str = "deterministic, float64") -> Estimate:
    """A sampling-free measurement (an error bound checked in float64): no interval to speak of."""
    return Estimate(float(value), float(value), float(value), n, method, float(value), float(value))


INTERVALS: dict[str, Callable] = {
    "paired t": paired_t,
    "Welch t": welch_t,
    "t": one_sample_t,
    "t on log ratios": log_ratio_t,
    "bootstrap ratio of medians": bootstrap_ratio_of_medians,
    "exact": exact,
}


def _above(x: float, margin: float) -> bool:
    """x clears the margin upwards: strictly, beyond rounding."""
    return x - margin > REL_TOL * abs(margin)


def _below(x: float, margin: float) -> bool:
    return margin - x > REL_TOL * abs(margin)


def decide(est: Estimate, kind: str, margin: float) -> str:
    """The verdict of an estimate under a protocol's kind and margin (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if any(math.isnan(v) for v in (est.value, est.lo, est.hi)):
        return "inconclusive"
    if kind == "below":
        return "holds" if _below(est.value, margin) else "does_not_hold"
    if kind == "greater":
        return (
            "holds"
            if _above(est.lo, margin)
            else ("does_not_hold" if _below(est.hi, margin) else "inconclusive")
        )
    if kind == "less":
        return (
            "holds"
            if _below(est.hi, margin)
            else ("does_not_hold" if _above(est.lo, margin) else "inconclusive")
        )
    # equivalent: TOST at 5% per side <=> the 90% interval inside (-margin, margin)
    if margin <= 0:
        raise ValueError(f"an equivalence margin must be positive, got {margin}")
    if (
        not (math.isnan(est.lo90) or math.isnan(est.hi90))
        and _above(est.lo90, -margin)
        and _below(est.hi90, margin)
    ):
        return "holds"
    if _above(est.lo, margin) or _below(est.hi, -margin):
        return "does_not_hold"
    return "inconclusive"


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


def check_n(n: int, profile: str) -> None:
    """Every claim that trains runs n >= MIN_N evaluation seeds in the quick and paper profiles."""
    if profile in ("quick", "paper") and n < MIN_N:
        raise ValueError(f"profile {profile!r} evaluates every claim on at least {MIN_N} seeds, got n = {n}")


@dataclass(frozen=True)
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
        return decide(est, self.protocol.kind, self.protocol.margin), est
