"""A claim's protocol and result, as the chapters and the ledger page print them (EN / AR).

Numbers, formulas and intervals are wrapped LTR-isolated (U+2066 ... U+2069) in the Arabic
edition; every word comes from the glossary or the protocol's own Arabic text.
"""

from __future__ import annotations

import math
import re

from bnpaper import ledger, prereg
from bnpaper.bidi import LRI, PDI, ltr
from bnpaper.counting import counted
from bnpaper.glossary import label as _label
from bnpaper.protocol import SESOI_REASONS, Claim, Estimate, Protocol, digest, flags


def pm(mean: float, std: float | None, lang: str, digits: int = 4) -> str:
    """'mean ± std', LTR-isolated in Arabic so that an RTL table cell keeps its order; the mean
    alone when std is None (one run)."""
    text = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")
    return ltr(text, lang)


# Bidi-fragile pieces of text: a signed number, a fraction, a power, a root, a tuple or interval,
# an equation or inequality, an infinity with its sign. In right-to-left text each is reordered
# (1/a shows as a/1, -0.4 as 0.4-, [0.5, 2] as [2 ,0.5]) unless it is math or LTR-isolated.
FRAGILE = re.compile(
    r"(?<![\w\u2066])[-+±−]\s?\d|\d\s*/\s*[A-Za-z\d]|[A-Za-z\d)]\^|√\d|[A-Za-z\d]\s*[×·]\s*\d"
    r"|\(\s*-?\d+(?:\.\d+)?\s*,\s*-?\d|\[\s*-?\d+(?:\.\d+)?\s*,|[A-Za-z\d)]\s*[=<>≤≥≈]\s*[-\dA-Za-z(]|[+−-]∞"
)
_PROTECTED = re.compile(r"(\$[^$]*\$|`[^`]*`|\u2066[^\u2069]*\u2069)")  # math, code, isolates
_LTR_RUN = re.compile(r"[^\u0600-\u06ff\u2066-\u2069«»]+")  # no Arabic letter or punctuation
_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _balanced_core(run: str) -> tuple[int, int]:
    """(start, end) of run without spaces, trailing punctuation and the brackets at its ends that
    close or open outside it; (0, 0) when a bracket inside it is unmatched (left alone)."""
    start, end = 0, len(run)
    while start < end:
        core = run[start:end]
        stripped = core.strip(" ,.;:")
        if stripped != core:
            if not stripped:
                return 0, 0
            start += core.index(stripped)
            end = start + len(stripped)
            continue
        unbalanced = [(o, c) for o, c in _PAIRS.items() if core.count(o) != core.count(c)]
        if not unbalanced:
            return start, end
        o, c = unbalanced[0]
        if core[0] in (o, c) and (core[0] == c or core.count(o) > core.count(c)):
            start += 1
        elif core[-1] in (o, c) and (core[-1] == o or core.count(c) > core.count(o)):
            end -= 1
        else:
            return 0, 0
    return 0, 0


def isolate_formulas(text: str) -> str:
    """Arabic text with every bidi-fragile formula or number outside math, code and existing
    isolates wrapped LTR (U+2066 ... U+2069), its unmatched brackets left outside: «(m = 60، ...)»
    becomes «(⁦m = 60⁩، ...)». Plain numbers and words are left alone."""

    def fix(segment: str) -> str:
        def wrap(m: re.Match) -> str:
            run = m.group(0)
            a, b = _balanced_core(run)
            core = run[a:b]
            if not core or not FRAGILE.search(core):
                return run
            return f"{run[:a]}{LRI}{core}{PDI}{run[b:]}"

        return _LTR_RUN.sub(wrap, segment)

    return "".join(p if _PROTECTED.fullmatch(p) else fix(p) for p in _PROTECTED.split(text) if p)


def arabic_text(text: str, lang: str) -> str:
    """Text for a page: in Arabic, its formulas isolated (isolate_formulas); English as is."""
    return isolate_formulas(text) if lang == "ar" else text


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    a = abs(x)
    return f"{x:.1e}" if (a != 0 and (a < 1e-3 or a >= 1e5)) else f"{x:.4g}"


def interval_text(est: Estimate | None, lang: str) -> str:
    """'0.0123 [0.0051, 0.0195]' (or one number for a deterministic check), LTR-isolated; an interval
    open on one side (censored runs) reads as the bound it is: '1.8 [≥ 1.4]', not '[1.4, ∞]'."""
    if est is None:
        return "-"
    if est.value is None or (isinstance(est.value, float) and math.isnan(est.value)):
        return _label("no_estimate", lang)  # no run gave a number (n = 0 or all undefined)
    if est.method.startswith("deterministic"):
        return ltr(fmt(est.value), lang)
    if math.isinf(est.hi) and est.hi > 0 and math.isfinite(est.lo):
        return ltr(f"{fmt(est.value)} [≥ {fmt(est.lo)}]", lang)
    if math.isinf(est.lo) and est.lo < 0 and math.isfinite(est.hi):
        return ltr(f"{fmt(est.value)} [≤ {fmt(est.hi)}]", lang)
    return ltr(f"{fmt(est.value)} [{fmt(est.lo)}, {fmt(est.hi)}]", lang)


_WHERE = [  # the parts of Claim.where ("paper 4.1, Fig. 1(a)": the paper's numbers only), in words
    (re.compile(r"paper (\d[\d.]*)"), "where_paper"),
    (re.compile(r"Alg\. (\d+)"), "where_algorithm"),
    (re.compile(r"Fig\. (\d+(?:\([a-c, ]+\))?)"), "where_figure"),
    (re.compile(r"(Santurkar|Bjorck|Yang|Hoffer) et al\. (\d{4})"), "where_et_al"),
    (re.compile(r"(Wu) and (Johnson|He) (\d{4})"), "where_two_authors"),
    (re.compile(r"(van Laarhoven|Arora|Ioffe) (\d{4})"), "where_author"),
    (re.compile(r"Sec\. (\d[\d.]*)"), "where_section"),
]


def panel_letters(text: str, lang: str) -> str:
    """Panel letters of a figure in the edition's alphabet: 'a, b, c' -> 'أ، ب، ج' in Arabic."""
    if lang == "en":
        return text
    letters = dict(zip("abcdefgh", _label("panel_letters", lang)))
    return re.sub("[a-h]", lambda m: letters[m.group(0)], text).replace(", ", "، ")


def _where_part(key: str, m: re.Match, lang: str) -> str:
    L = _label
    if key in ("where_paper", "where_section"):
        return L(key, lang).format(ltr(m.group(1), lang))  # «القسم 3.2»: a word, not a section sign
    if key == "where_figure":
        return L(key, lang).format(panel_letters(m.group(1), lang))
    if key in (
        "where_et_al",
        "where_author",
    ):  # a later paper: its first author's name in the edition's script
        return L(key, lang).format(L("author_" + m.group(1).replace(" ", "_"), lang), m.group(2))
    if key == "where_two_authors":
        return L(key, lang).format(
            L("author_" + m.group(1), lang), L("author_" + m.group(2), lang), m.group(3)
        )
    return L(key, lang).format(m.group(1))


def where_text(where: str, lang: str) -> str:
    """Claim.where in the page's language: 'paper 3.2, Fig. 3' -> 'الورقة، القسم 3.2، الشكل 3'."""
    if lang == "en":
        return where
    out = where
    for pattern, key in _WHERE:
        out = pattern.sub(lambda m, key=key: _where_part(key, m, lang), out)
    out = out.replace(", ", "، ")
    if re.search("[A-Za-z]", out.replace(LRI, " ")):
        raise ValueError(f"claim location {where!r}: a part where_text cannot write in {lang} (see _WHERE)")
    return out


def paper_text(claim: Claim, lang: str) -> str:
    """The paper's number as the ledger shows it: the Arabic text where the number has words."""
    if lang == "ar" and claim.paper_ar:
        return claim.paper_ar
    return ltr(claim.paper, lang)


def version_text(p: Protocol, lang: str) -> str:
    """'v3' in English, «3» in Arabic (the header names it)."""
    return ltr(f"v{p.version}" if lang == "en" else str(p.version), lang)


def lock_text(claim: Claim, lang: str) -> str:
    """'1a2b3c4d, commit 89ab012' (or 'not yet committed' / 'not locked'): where the digest of the
    claim's current protocol stands in bnpaper/data/protocols.lock and in git."""
    now = digest(claim)
    entry = prereg.entry_for(claim, prereg.read_lock())
    short = f"`{now[:8]}`"  # hashes are code in both editions
    if entry is None or entry["digest"] != now:
        return f"{short} ({_label('lock_missing', lang)})"
    commit = prereg.locked_in(now)
    where = _label("lock_uncommitted", lang) if commit in ("uncommitted", "no git") else f"`{commit}`"
    return f"{short}، {where}" if lang == "ar" else f"{short}, {where}"


def sesoi_text(p: Protocol, lang: str) -> str:
    """The smallest effect of interest with its reason."""
    value = ltr(("±" if p.kind == "equivalent" else "") + fmt(p.smallest_effect), lang)
    reason = SESOI_REASONS[p.sesoi_reason][0 if lang == "en" else 1]
    return f"{value}: {arabic_text(reason, lang)}"


def rule_text(p: Protocol, lang: str) -> str:
    """The decision rule in words, from the protocol's kind, margin and smallest effect."""
    L = lambda k: _label(k, lang)  # noqa: E731
    m = ltr(fmt(p.margin), lang)
    return L(f"rule_{p.kind}").format(
        margin=m, pm_margin=ltr("±" + fmt(p.margin), lang), sesoi=ltr(fmt(p.smallest_effect), lang)
    )


def verdict_label(verdict: str, lang: str) -> str:
    """The verdict as a label (a table cell, a heading): "holds", "inconclusive"."""
    return _label("v_" + verdict, lang)


def verdict_predicate(verdict: str, lang: str) -> str:
    """The verdict as the predicate of a sentence about the claim: "the claim {holds | is
    inconclusive | was not run}"; chapters glue this one into their prose."""
    return _label("vp_" + verdict, lang)


def protocol_table(claim: Claim, lang: str) -> str:
    """A two-column Markdown table: the protocol of one claim, as locked before its evaluation."""
    p = claim.protocol
    L = lambda k: _label(k, lang)  # noqa: E731
    if p is None:
        return claim.untestable_en if lang == "en" else arabic_text(claim.untestable_ar, lang)
    rows = [
        (L("protocol_version"), version_text(p, lang)),
        (L("protocol_lock"), lock_text(claim, lang)),
        (L("protocol_arms"), arabic_text(p.text("arms", lang), lang)),
        (L("protocol_tuned"), arabic_text(p.text("tuned", lang), lang)),
        (L("protocol_statistic"), arabic_text(p.text("statistic", lang), lang)),
        (L("protocol_interval"), L("interval_" + p.interval.replace(" ", "_"))),
        (L("protocol_rule"), rule_text(p, lang)),
    ]
    if p.check and p.kind != "below":
        rows.append((L("protocol_check"), arabic_text(p.text("check_reason", lang), lang)))
    elif p.kind != "below":
        rows.append((L("protocol_sesoi"), sesoi_text(p, lang)))
    if p.changes[0]:
        changes = re.sub(
            r"((?:version|الإصدار) (\d+): )(?:version|الإصدار) \2: ", r"\1", p.text("changes", lang)
        )
        rows.append(
            (L("protocol_changes"), arabic_text(changes, lang))
        )  # (a history quoting "version 2:" once)
    lines = [f"| {L('protocol')} | |", "|---|---|"] + [f"| {a} | {md_cell(b)} |" for a, b in rows]
    return "\n".join(lines)


def folded(title: str, body: str) -> str:
    """Markdown that shows `title` and opens to `body` (a dropdown admonition: the protocol stays
    one click away from the verdict instead of standing between the reader and the prose)."""
    return f"::::{{admonition}} {title}\n:class: dropdown\n\n{body}\n::::"


def flags_text(flags: list[str], lang: str) -> str:
    sep = "; " if lang == "en" else "؛ "
    return sep.join(_label("flag_" + f, lang) for f in flags)


def result_line(claim: Claim, verdict: str, est: Estimate | None, lang: str) -> str:
    """'n = 10; estimate [95% interval]: 0.012 [0.005, 0.019]; verdict of this claim alone: holds
    (the ledger adjusts it ...)' in the page's language."""
    L = lambda k: _label(k, lang)  # noqa: E731
    if est is None:
        return f"**{verdict_label(verdict, lang)}**"
    n = ltr(f"n = {est.n}", lang)
    sep = "؛ " if lang == "ar" else "; "
    p = claim.protocol
    if p is not None and p.is_check:
        return (
            f"{n}{sep}{L('check_result')}: {interval_text(est, lang)}{sep}**{verdict_label(verdict, lang)}**"
        )
    line = (
        f"{n}{sep}{L('estimate_95')}: {interval_text(est, lang)}{sep}{L('verdict_alone')}: "
        f"**{verdict_label(verdict, lang)}** ({L('adjusted_in_ledger')})"
    )
    found = flags(est, p) if p is not None else []
    return line + (f"{sep}{flags_text(found, lang)}" if found else "")


def show(claim: Claim, measurement: dict, profile: str, lang: str) -> tuple[str, str, Estimate]:
    """(Markdown: the result line, then the protocol folded; verdict; estimate) for a chapter."""
    verdict, est = claim.judge(measurement, profile)
    p = claim.protocol
    title = _label("protocol_title", lang).format(
        version=version_text(p, lang), digest=f"`{digest(claim)[:8]}`"
    )
    md = result_line(claim, verdict, est, lang) + "\n\n" + folded(title, protocol_table(claim, lang))
    return md, verdict, est


def report(claim: Claim, measurement: dict, lang: str, *, profile: str, **where) -> tuple[str, str, Estimate]:
    """A chapter's one call per claim: store the measurement in the ledger with what it was
    measured under (`where`: data_dir, n, data, seeds, lengths, config, run, as ledger.record takes
    them), then judge it once and return show's (Markdown, verdict, estimate) for the chapter to glue."""
    ledger.record(claim.id, measurement, profile=profile, **where)
    return show(claim, measurement, profile, lang)


def reporter(lang: str, glue, *, measurement: dict | None = None, **where):
    """A chapter's `record(claim_id, measurement=..., **overrides) -> Markdown`: `report` with what
    every claim of the chapter shares (`where`, as report takes it; `measurement` by default), the
    verdict glued as `v_<claim id>` (a predicate the prose reads: "holds", "does not hold here").
    `record.judged` keeps claim id -> (verdict, estimate) of every claim recorded, judged once, for
    the chapter's summary table and its conclusion."""

    def record(cid: str, measurement: dict | None = measurement, **overrides) -> str:
        md, verdict, est = report(ledger.by_id()[cid], measurement, lang, **{**where, **overrides})
        glue(f"v_{cid}", verdict_predicate(verdict, lang))
        record.judged[cid] = (verdict, est)
        return md

    record.judged = {}
    return record


def verdicts_table(claims, judged: dict, lang: str) -> str:
    """A chapter's verdicts in one place: each claim (its math renders in a Markdown table), where
    it is made, and the verdict its protocol gave (`judged`: claim id -> (verdict, estimate))."""
    L = lambda key: _label(key, lang)
    lines = [f"| {L('claim')} | {L('where_made')} | {L('verdict_alone')} |", "|---|---|---|"]  # not Holm's
    for c in claims:
        text = c.en if lang == "en" else arabic_text(c.ar, lang)
        label = verdict_label(judged[c.id][0] if c.id in judged else "not_run", lang)
        lines.append(f"| {md_cell(text)} | {where_text(c.where, lang)} | **{label}** |")
    return "\n".join(lines)


def tuned_value_text(entry: dict, lang: str) -> str:
    """A frozen tuning's value as a table shows it; for an arm that trains nowhere on its grid
    (tuning.trains_on_grid), "does not train within N steps on the grid a to b" instead."""
    from bnpaper.tuning import trains_on_grid

    if trains_on_grid(entry):
        return ltr(f"{entry['value']:g}", lang)
    grid = entry["grid"]
    steps = counted(entry["steps"], "step", lang)
    return _label("tuned_none", lang).format(
        steps=steps, lo=ltr(f"{grid[0]:g}", lang), hi=ltr(f"{grid[-1]:g}", lang)
    )


def pm_runs(values: list, lang: str, scale: float = 1.0, digits: int = 4) -> str:
    """'mean ± std' over the runs that gave a number (a diverged run gives None), times `scale`;
    '-' when none did."""
    v = [x * scale for x in values if x is not None]
    if not v:
        return "-"
    mean = math.fsum(v) / len(v)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else None
    return pm(mean, std, lang, digits)


def ledger_verdict_cell(r: dict, lang: str) -> str:
    """The Holm-adjusted verdict, the verdict alone beneath it, and what the reader should notice."""
    V = lambda v: verdict_label(v, lang)
    if r["verdict"] == "not_run" and r["problem"]:
        return f"**{V('not_run')}**: {ltr(md_cell(r['problem']), lang)}"
    text = f"**{V(r['verdict'])}**"
    if r["kind"] == "claim" and r["unadjusted"] != "not_run":
        text += f"<br>{_label('verdict_unadjusted', lang)}: {V(r['unadjusted'])}"
    if r["flags"]:
        text += "<br>⚠ " + flags_text(r["flags"], lang)
    return text


def _ledger_history_cell(cid: str, lang: str, explored: dict, other: str, other_rows: dict) -> str:
    """The exploratory pass (seeds 0-9, before the lock) over the other profile's confirmatory
    verdict, one line each, as the column's two-line header names them."""
    V = lambda v: verdict_label(v, lang)
    e, o = explored.get(cid), other_rows.get(cid)
    first = V(e["verdict"]) if e else V("not_run")
    second = V(o["verdict"]) if o and o["record"] else V("not_run")
    return f"{first}<br>{second}"


def ledger_table(
    numbered: list, title_key: str, lang: str, *, explored: dict, other: str, other_rows: dict
) -> str:
    """The ledger page's table, one row per (number, ledger.rows row): the claim with where it is
    made, its section and lock digest; n; the estimate with its 95% interval; the smallest effect of
    interest; the adjusted verdict (and alone); the exploratory and the other profile's verdicts."""
    L = lambda key: _label(key, lang)
    history_head = f"{L('exploratory_short')}<br>{L('other_profile_short').format(profile=f'`{other}`')}"
    lines = [
        f"| # | {L(title_key)} | n | {L('estimate_95')} | {L('sesoi_short')} | {L('verdict_holm')} "
        f"| {history_head} |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in numbered:
        c, est, p = r["claim"], r["estimate"], r["claim"].protocol
        text = c.en if lang == "en" else arabic_text(c.ar, lang)
        digest_code = f"`{r['digest'][:8]}`"  # a hash: code in both editions
        paper = "" if c.paper == "-" else f"<br>{L('paper_value')}: {md_cell(paper_text(c, lang))}"
        claim_cell = (
            f"{md_cell(text)}<br>{where_text(c.where, lang)} · {{ref}}`{c.label}` · "
            f"{L('lock_short')} {digest_code}{paper}"
        )
        sesoi = ltr(md_cell(("±" if p.kind == "equivalent" else "") + fmt(p.smallest_effect)), lang)
        n = ltr(md_cell(est.n), lang) if est else "-"
        estimate = interval_text(est, lang) if est else "-"
        history = _ledger_history_cell(c.id, lang, explored, other, other_rows)
        lines.append(
            f"| {ltr(md_cell(i), lang)} | {claim_cell} | {n} | {estimate} | {sesoi} "
            f"| {ledger_verdict_cell(r, lang)} | {history} |"
        )
    return "\n".join(lines)


def profile_agreement(numbered: list, other: str, other_rows: dict, source: dict, lang: str) -> str:
    """One sentence under the ledger: where the other profile's verdicts come from, on how many of
    the claims both profiles measured they agree, and the numbers (as in the table) of those they
    do not: a verdict that the run length decides is a finding, not a footnote."""
    L = lambda key: _label(key, lang)
    name = f"`{other}`"  # a name: code in both editions
    if source["kind"] == "none":
        return L("other_profile_none").format(profile=name)
    where = L("other_profile_built") if source["kind"] == "built" else L("other_profile_frozen")
    where = where.format(commit=f"`{source.get('commit', '')}`", date=ltr(source.get("date", ""), lang))
    both = [(i, r) for i, r in numbered if r["record"] is not None and r["claim"].id in other_rows]
    differ = [i for i, r in both if other_rows[r["claim"].id]["verdict"] != r["verdict"]]
    text = L("other_profile_agrees").format(
        profile=name, source=where, agree=ltr(len(both) - len(differ), lang), both=ltr(len(both), lang)
    )
    if differ:
        listed = ("، " if lang == "ar" else ", ").join(ltr(f"#{i}", lang) for i in differ)
        return text + L("other_profile_differs").format(claims=listed)
    return text + "."


def checks_table(check_rows: list, untestable_rows: list, lang: str) -> str:
    """The ledger page's checks (deterministic or true by construction: result, bound, verdict),
    then the statements this book cannot test, with why."""
    L = lambda key: _label(key, lang)
    lines = [
        f"| # | {L('claim')} | {L('check_result')} | {L('bound_short')} | {L('verdict')} |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(check_rows, 1):
        c, est, p = r["claim"], r["estimate"], r["claim"].protocol
        text = c.en if lang == "en" else arabic_text(c.ar, lang)
        bound = ltr(md_cell(("<\u00a0" if p.kind == "below" else ">\u00a0") + fmt(p.margin)), lang)
        result = interval_text(est, lang) if est else "-"
        lines.append(
            f"| {ltr(md_cell(i), lang)} | {md_cell(text)}<br>{{ref}}`{c.label}` | {result} | {bound} "
            f"| {ledger_verdict_cell(r, lang)} |"
        )
    if untestable_rows:  # what this book cannot run, and why
        lines += [
            "",
            f"**{L('untestable_heading')}**",
            "",
            f"| {L('claim')} | {L('why_not')} | {L('verdict')} |",
        ]
        lines.append("|---|---|---|")
        for r in untestable_rows:
            c = r["claim"]
            text = c.en if lang == "en" else arabic_text(c.ar, lang)
            why = c.untestable_en if lang == "en" else arabic_text(c.untestable_ar, lang)
            no = verdict_label("not_testable", lang)
            lines.append(f"| {md_cell(text)}<br>{{ref}}`{c.label}` | {md_cell(why)} | **{no}** |")
    return "\n".join(lines)


def protocol_blocks(numbered: list, check_rows: list, lang: str) -> str:
    """Every protocol in full, folded, numbered as the ledger's tables number its claims (checks ✓1, ...)."""
    blocks = []
    for i, r in numbered + [(f"✓{j}", r) for j, r in enumerate(check_rows, 1)]:
        c = r["claim"]
        title = c.en if lang == "en" else arabic_text(c.ar, lang)
        blocks.append(folded(f"{ltr(md_cell(i), lang)}. {title}", protocol_table(c, lang)))
    return "\n\n".join(blocks)


def md_cell(text) -> str:
    """Text for one cell of a Markdown table: a norm written \\| in math becomes \\Vert (the
    table's own pipe escaping would otherwise eat its backslash), other pipes are escaped, newlines
    become spaces."""
    return str(text).replace("\\|", "\\Vert ").replace("|", "\\|").replace("\n", " ")
