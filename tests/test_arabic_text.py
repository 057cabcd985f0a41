"""The Arabic edition's words, checked at their source (issue 12): claims and protocols in the
experiment modules, and the glossary's labels, hold no English outside code, math and names."""

import re

import pytest

from bnpaper import claims_view, ledger
from bnpaper.book.audit import latin_words
from bnpaper.glossary import _load, reserved_misuses, strip_math_and_code

PROTOCOL_FIELDS = ("arms", "tuned", "statistic", "changes")


def arabic_texts():
    for c in ledger.claims():
        yield f"{c.id}: claim", c.ar
        yield f"{c.id}: paper", claims_view.paper_text(c, "ar")
        yield f"{c.id}: where", claims_view.where_text(c.where, "ar")
        if c.protocol is None:
            yield f"{c.id}: untestable", c.untestable_ar
            continue
        for name in PROTOCOL_FIELDS:
            yield f"{c.id}: protocol {name}", c.protocol.text(name, "ar")
        yield f"{c.id}: rule", claims_view.rule_text(c.protocol, "ar")


def leaked(text: str) -> list[str]:
    """Latin words outside math, code and {placeholders} (filled in with numbers)."""
    return sorted(latin_words(re.sub(r"\{\w*(?::[^}]*)?\}", " ", strip_math_and_code(text))))


def _offenders(check) -> dict[str, list]:
    """Every Arabic claim text that a rule flags, with what it flags: one test per rule reports
    all offenders at once (issue 24: one test per text made ~600 tests of one line each)."""
    return {where: found for where, text in arabic_texts() if (found := check(text))}


def test_claim_texts_hold_no_english():
    bad = _offenders(leaked)
    assert bad == {}, f"English in Arabic claim texts: {bad}"


def test_claim_texts_use_reserved_words_in_their_one_sense():
    bad = _offenders(reserved_misuses)
    assert bad == {}, f"a reserved word in another sense: {bad}"


def test_the_claim_text_rules_see_offenders():
    assert leaked("الخسارة loss هنا") == ["loss"]
    assert _offenders(lambda text: []) == {}


def test_labels_are_arabic():
    bad = {k: leaked(v["ar"]) for k, v in _load()["labels"].items() if leaked(v["ar"])}
    assert bad == {}, f"glossary.yml labels with English in their Arabic form: {bad}"


def test_latin_words_sees_words_but_not_numbers_names_or_symbols():
    text = "الخسارة 1.2e-16 و 9.5e+00 و 3x3 و f4791227 في torch مع m = 64 و x_hat و top-5 و BN-x5 quick"
    assert sorted(latin_words(text)) == ["quick", "top-5", "x_hat"]


def test_where_text_writes_every_location_in_arabic():
    assert re.search("[A-Za-z]", claims_view.where_text("paper 4.1, Fig. 1(b, c)", "ar")) is None
    with pytest.raises(ValueError, match="where_text"):
        claims_view.where_text("appendix B", "ar")


# a math span that ends in a relation or operator, followed by a glued value: half a formula
PARTIAL_MATH_GLUE = re.compile(
    r"\$[^$\n]*(?:=|<|>|\\in|\\le|\\ge|\\leq|\\geq|\\approx|\\sim|\\times|\\cdot|\+|-)\s*\$\s*\{glue(?::\w+)?\}"
    r"|\{glue(?::\w+)?\}`[^`]*`\s*\$\s*(?:=|<|>|\\in|\\le|\\ge|\\approx|\\times|\\cdot)"
    r"|\$[^$\n]+\$\s*[=<>≤≥]\s*\{glue"  # "$m$ = {glue}": the relation outside the math
    r"|\{glue:text\}`[^`]*`\s*±\s*\{glue"  # "{glue} ± {glue}": glue claims_view.pm(...) whole
)


def partial_math_glue(text: str) -> list[str]:
    return [m.group(0) for m in PARTIAL_MATH_GLUE.finditer(text)]


def test_partial_math_glue_is_found():
    assert partial_math_glue("حيث $m' =$ {glue:text}`mp:.0f` قيمة") != []
    assert partial_math_glue("with $m \\in$ {glue:md}`ms`") != []
    assert partial_math_glue("{glue:text}`lr:.2f` $\\times$ the rate") != []
    assert partial_math_glue("with $m$ = {glue:text}`m_batch` examples") != []
    assert partial_math_glue("{glue:text}`acc:.4f` ± {glue:text}`sd:.4f` over seeds") != []
    assert partial_math_glue("the rate $\\eta$ is {glue:text}`lr:.2f`, and $a = b$.") == []


def test_no_glue_completes_half_a_formula():
    """Glue whole formulas or whole numbers: never `$m' =$ {glue}` (issue 12)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "notebooks"
    chapters = sorted(root.glob("[0-9][0-9]_*.md"))
    found = {p.name: partial_math_glue(p.read_text(encoding="utf-8")) for p in chapters}
    found = {k: v for k, v in found.items() if v}
    assert found == {}, f"glue completing a formula (glue the whole formula as math instead): {found}"


COUNTED_FORMS = (
    "بذور",
    "بذرة",
    "خطوة",
    "خطوات",
    "رقماً",
    "أرقام",
    "مرة",
    "مرات",
    "معاملاً",
    "شبكات",
    "شبكة",
    "سحبات",
    "سحبة",
)


def test_no_glued_count_before_a_fixed_noun_form():
    """«{glue:text}`n_seeds` بذور» is wrong for 2 or 11 seeds: glue i18n.counted(...) whole."""
    from pathlib import Path

    from bnpaper.book.chapters import LANGS  # noqa: F401  (the twin format: +++ {"lang": "ar"})

    root = Path(__file__).resolve().parents[1] / "notebooks"
    # a count: no format, or an integer one (a ratio glued with :.1f may take «مرة»)
    pattern = re.compile(r"\{glue:text\}`\w+(?::[,d]*)?` (" + "|".join(COUNTED_FORMS) + r")(?=[\s،,.:)؛])")
    bad = {}
    for path in sorted(root.glob("[0-9][0-9]_*.md")):
        blocks = re.split(r"\n\+\+\+ ([^\n]*)\n", path.read_text(encoding="utf-8"))
        for meta, body in zip(blocks[1::2], blocks[2::2]):
            if '"ar"' in meta:
                prose = body.split("```{code-cell}")[0]
                bad.setdefault(path.name, []).extend(m.group(0) for m in pattern.finditer(prose))
    bad = {k: v for k, v in bad.items() if v}
    assert bad == {}, f"a glued count before a fixed noun form (use i18n.counted): {bad}"


def test_isolate_formulas_wraps_fragile_pieces_and_leaves_brackets_outside():
    from bnpaper.claims_view import LRI, PDI, isolate_formulas

    assert isolate_formulas("(3 × 100 وحدة، m = 60)، ثم") == f"({LRI}3 × 100{PDI} وحدة، {LRI}m = 60{PDI})، ثم"
    assert isolate_formulas("تهيئة N(0, 0.1²)) دون") == f"تهيئة {LRI}N(0, 0.1²){PDI}) دون"
    assert isolate_formulas("يُعدّ +∞)؛ و") == f"يُعدّ {LRI}+∞{PDI})؛ و"
    assert isolate_formulas("في [0.5, 2]، متوسطةً") == f"في {LRI}[0.5, 2]{PDI}، متوسطةً"
    untouched = f"ReLU و k حزمة و 64 رقماً و $a = -b$ و `x=-1` و {LRI}n = 3{PDI}"
    assert isolate_formulas(untouched) == untouched  # words, plain numbers, math, code, isolates


def _fragile_outside(text: str) -> list[str]:
    from bnpaper.claims_view import FRAGILE

    plain = re.sub("\u2066[^\u2069]*\u2069", " ", strip_math_and_code(text))
    plain = re.sub(r"\{glue:\w+\}`[^`]*`", " ", plain)
    return [plain[max(0, m.start() - 20) : m.end() + 10] for m in PROSE_FRAGILE(FRAGILE).finditer(plain)]


def PROSE_FRAGILE(fragile):  # noqa: N802 the detector, plus a relation left beside removed math
    return re.compile(fragile.pattern + r"|(?:^|\s)[=<>≤≥]\s*[-\d]")


def test_claim_texts_read_in_order_once_isolated():
    from bnpaper.claims_view import arabic_text

    bad = _offenders(lambda text: _fragile_outside(arabic_text(text, "ar")))
    assert bad == {}, f"bidi-fragile pieces left outside an isolate: {bad}"
    assert _fragile_outside("متوسطه -0.43 هنا") != []  # the detector sees a signed number


def test_arabic_prose_and_captions_keep_formulas_in_math():
    """«1/a» in Arabic prose shows as «a/1»: every formula, signed number, interval or equation in
    an Arabic cell or caption is $math$ (or code, or a glued value, which the page isolates)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "notebooks"
    bad = {}
    for path in sorted(root.glob("[0-9][0-9]_*.md")):
        text = path.read_text(encoding="utf-8")
        blocks = re.split(r"\n\+\+\+ ([^\n]*)\n", text)
        pieces = [b.split("```{code-cell}")[0] for m, b in zip(blocks[1::2], blocks[2::2]) if '"ar"' in m]
        pieces += [line for line in text.split("\n") if line.startswith(":caption_ar:")]
        found = [f for p in pieces for f in _fragile_outside(p)]
        if found:
            bad[path.name] = found
    assert bad == {}, f"formulas outside math in Arabic text: {bad}"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("ميلاً متوسطه -0.43 هنا", "ميلاً متوسطه \u2066-0.43\u2069 هنا"),
        ("فرق +0.0534 و−2%", "فرق \u2066+0.0534\u2069 و\u2066−2%\u2069"),
        ("(-0.014)", "(\u2066-0.014\u2069)"),
        ("الفصول 09-11 و3.5-4", "الفصول 09-11 و3.5-4"),  # a hyphen between digits is no sign
        ("x - 1 و1e-5 وa-1", "x - 1 و1e-5 وa-1"),  # a spaced operator, an exponent, a name
        ("\u2066-0.5 [−1, 0]\u2069", "\u2066-0.5 [−1, 0]\u2069"),  # already isolated: left alone
    ],
)
def test_signed_numbers_are_isolated_in_arabic_prose(text, expected):
    from bnpaper.bidi import isolate_signed_numbers, loose_signed_numbers

    assert isolate_signed_numbers(text) == expected
    assert loose_signed_numbers(expected) == []
    assert (loose_signed_numbers(text) == []) == (text == expected)
