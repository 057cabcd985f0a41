"""A claim's protocol and result, as the chapters and the ledger page print them (EN / AR).

Numbers, formulas and intervals are wrapped LTR-isolated (U+2066 ... U+2069) in the Arabic
edition; every word comes from the glossary or the protocol's own Arabic text.
"""

from __future__ import annotations

import math

from bnpaper import plotting
from bnpaper.protocol import Claim, Estimate, Protocol

LRI, PDI = "\u2066", "\u2069"


def ltr(text: str, lang: str) -> str:
    return f"{LRI}{text}{PDI}" if lang == "ar" else text


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    a = abs(x)
    return f"{x:.1e}" if (a != 0 and (a < 1e-3 or a >= 1e5)) else f"{x:.4g}"


def interval_text(est: Estimate | None, lang: str) -> str:
    """'0.0123 [0.0051, 0.0195]' (or one number for a deterministic check), LTR-isolated."""
    if est is None:
        return "-"
    if est.method.startswith("deterministic"):
        return ltr(fmt(est.value), lang)
    return ltr(f"{fmt(est.value)} [{fmt(est.lo)}, {fmt(est.hi)}]", lang)


def rule_text(p: Protocol, lang: str) -> str:
    """The decision rule in words, from the protocol's kind and margin."""
    L = lambda k: plotting.label(k, lang)  # noqa: E731
    m = ltr(fmt(p.margin), lang)
    return L(f"rule_{p.kind}").format(margin=m)


def verdict_label(verdict: str, lang: str) -> str:
    return plotting.label("v_" + verdict, lang)


def protocol_table(claim: Claim, lang: str) -> str:
    """A two-column Markdown table: the protocol of one claim, as fixed before its evaluation."""
    p = claim.protocol
    L = lambda k: plotting.label(k, lang)  # noqa: E731
    if p is None:
        return claim.untestable_en if lang == "en" else claim.untestable_ar
    rows = [
        (L("protocol_version"), ltr(f"v{p.version} ({p.fixed})", lang)),
        (L("protocol_arms"), p.text("arms", lang)),
        (L("protocol_tuned"), p.text("tuned", lang)),
        (L("protocol_statistic"), p.text("statistic", lang)),
        (L("protocol_interval"), L("interval_" + p.interval.replace(" ", "_"))),
        (L("protocol_rule"), rule_text(p, lang)),
    ]
    if p.changes[0]:
        rows.append((L("protocol_changes"), p.text("changes", lang)))
    lines = [f"| {L('protocol')} | |", "|---|---|"] + [f"| {a} | {_cell(b)} |" for a, b in rows]
    return "\n".join(lines)


def result_line(claim: Claim, verdict: str, est: Estimate | None, lang: str) -> str:
    """'n = 10; statistic 0.012 [0.005, 0.019]; verdict: holds' in the page's language."""
    L = lambda k: plotting.label(k, lang)  # noqa: E731
    if est is None:
        return f"**{verdict_label(verdict, lang)}**"
    n = ltr(f"n = {est.n}", lang)
    verdict_md = f"**{verdict_label(verdict, lang)}**"
    return f"{n}; {L('estimate_95')}: {interval_text(est, lang)}; {L('verdict')}: {verdict_md}"


def show(claim: Claim, measurement: dict, profile: str, lang: str) -> tuple[str, str, Estimate]:
    """(Markdown of the protocol table and the result line, verdict, estimate) for a chapter."""
    verdict, est = claim.judge(measurement, profile)
    md = protocol_table(claim, lang) + "\n\n" + result_line(claim, verdict, est, lang)
    return md, verdict, est


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
