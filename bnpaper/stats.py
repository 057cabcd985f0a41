"""Summaries over seeds: every claim is reported as mean +- std over n runs."""

from __future__ import annotations

import statistics


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std (ddof 1) of the values that are not None; (nan, nan) if none, std 0 for one."""
    vals = [v for v in values if v is not None]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)
