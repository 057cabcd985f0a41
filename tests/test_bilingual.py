"""Every chapter source: English and Arabic prose in twin cells, same equations and references,
glossary terms used consistently, code and equations shared, parameters cell first."""

import re
from importlib import resources

import pytest
import yaml

from bnpaper import i18n
from bnpaper.book.chapters import ChapterError, chapters, prose_pairs, read_chapter, split, structure
from bnpaper.glossary import label, missing_terms, plain_arabic, reserved_misuses, terms

CHAPTERS = chapters()
ARABIC = re.compile(r"[\u0600-\u06FF]")
GLOSSARY = yaml.safe_load(
    resources.files("bnpaper").joinpath("data/glossary.yml").read_text(encoding="utf-8")
)


def _describe(where: str, found: list[tuple[str, str, str, str, str]]) -> str:
    return "\n".join(
        f"{where}: «{text}»: {sense}; write «{use}» (reserved word «{word}»: {meaning}; glossary.yml)"
        for word, meaning, sense, use, text in found
    )


def test_there_are_chapters():
    assert "00_intro" in CHAPTERS and "01_bn_transform" in CHAPTERS


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_prose_cell_has_its_twin(name):
    ch = CHAPTERS[name]
    pairs = prose_pairs(ch)  # raises if an English cell lacks its Arabic twin or vice versa
    assert pairs, f"{name} has no prose"
    for en, ar in pairs:
        assert not ARABIC.search(re.sub(r"\$.*?\$", "", en.source)), (
            f"Arabic text in an English cell of {name}: {en.source[:80]}"
        )
        assert ARABIC.search(ar.source), f"an Arabic cell of {name} has no Arabic: {ar.source[:80]}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_twins_have_the_same_equations_references_and_headings(name):
    for en, ar in prose_pairs(CHAPTERS[name]):
        assert structure(en.source) == structure(ar.source), (
            f"{name}: twins differ in structure: {en.source[:80]}"
        )


@pytest.mark.parametrize("name", CHAPTERS)
def test_arabic_uses_the_glossary_terms(name):
    for en, ar in prose_pairs(CHAPTERS[name]):
        missing = missing_terms(en.source, ar.source)
        assert not missing, (
            f"{name}: the English cell uses {[t.en for t in missing]} but its Arabic twin lacks "
            f"{[t.ar for t in missing]} (glossary.yml lists accepted forms). English: {en.source[:100]}"
        )


@pytest.mark.parametrize("name", CHAPTERS)
def test_arabic_keeps_reserved_words_to_their_meaning(name):
    """Every Arabic prose cell, caption and title: no reserved word in a forbidden sense."""
    ch = CHAPTERS[name]
    texts = [(f"{name}, title", ch.titles["ar"])]
    texts += [(f"{name}, cell {name}:{t.number} ({t.kind})", t.ar) for t in i18n.twins(ch)]
    problems = [_describe(where, found) for where, text in texts if (found := reserved_misuses(text))]
    assert not problems, "\n".join(problems)


def test_arabic_labels_keep_reserved_words_to_their_meaning():
    problems = [
        _describe(f"glossary.yml, label {key}", found)
        for key, value in GLOSSARY["labels"].items()
        if (found := reserved_misuses(value["ar"]))
    ]
    assert not problems, "\n".join(problems)


def test_reserved_check_catches_a_misuse():
    bad = {
        "إصدارات الحزم": "حزمة",
        "مكتبة في حزمة بايثون": "حزمة",
        "جرّبنا شبكة القيم": "شبكة",
        "البحث الشبكي": "شبكة",
        "حيث يسمح الملف": "نمط التشغيل",
        "في الملف الشخصي": "نمط التشغيل",
        "بتقليل التحول التبايني الداخلي": "التباين",
        "تحويل أفيني": "تحويل تآلفي",
        "ترتيب الدقات النهائية": "الدقة",
        "(والصدفة 0.1)": "مستوى الصدفة",
        "والفرق المزدوج": "مقترن",
        "مزاحاً ببضع نقاط": "بكسل",
        "مزاحاً بمقدار (3, -2) نقطة": "بكسل",
    }
    for text, word in bad.items():
        assert word in [found[0] for found in reserved_misuses(text)], text
    good = (
        "نطبّع كل حزمة صغيرة في مكتبة بايثون `bnpaper` ونقيس دقة الشبكة، وقيم الدقة، عند مستوى الصدفة 0.1 "
        "وبدقة مستوى الصدفة، 0.1؛ من سلّم القيم في نمط التشغيل السريع؛ والفرق المقترن والصدقات؛ "
        "مزاحاً ببضعة بكسلات؛ والتباين؛ وتحويل تآلفي؛ ولماذا نصف نقطة؛ نقطة لكل بذرة"
    )
    assert reserved_misuses(good) == []


def test_reserved_words_are_well_formed():
    for r in GLOSSARY["reserved"]:
        assert ARABIC.search(r["word"]) and r["meaning_en"] and r["forbidden"], r
        for f in r["forbidden"]:
            assert f["sense"] and ARABIC.search(f["use"]), r["word"]
            assert isinstance(f["patterns"], list), r["word"]
            for pattern in f["patterns"]:
                re.compile(pattern)
            assert reserved_misuses(f["use"]) == [], f"{r['word']}: the replacement is itself forbidden"


@pytest.mark.parametrize("name", CHAPTERS)
def test_shared_markdown_holds_no_prose(name):
    """Markdown shared by both editions holds only equations or directives, never one language."""
    for cell in CHAPTERS[name].notebook.cells:
        if cell.cell_type == "markdown" and "lang" not in cell.metadata:
            text = re.sub(r"\$\$.*?\$\$(\s*\([\w-]+\))?", "", cell.source, flags=re.S).strip()
            assert text == "", f"{name}: shared markdown cell has prose (mark it with a lang): {text[:80]}"


@pytest.mark.parametrize("name", CHAPTERS)
@pytest.mark.parametrize("lang", ["en", "ar"])
def test_split_keeps_one_language_and_all_code(name, lang):
    ch = CHAPTERS[name]
    nb = split(ch, lang)
    other = "ar" if lang == "en" else "en"
    n_code = sum(c.cell_type == "code" for c in ch.notebook.cells)
    assert sum(c.cell_type == "code" for c in nb.cells) == n_code
    kept = [c for c in ch.notebook.cells if c.metadata.get("lang") == lang]
    dropped = [c for c in ch.notebook.cells if c.metadata.get("lang") == other]
    sources = [c.source for c in nb.cells]
    assert all(c.source in sources for c in kept) and not any(c.source in sources for c in dropped)
    assert nb.metadata["bnpaper"]["title"] == ch.titles[lang]
    for c in nb.cells:
        fig = c.metadata.get("mystnb", {}).get("figure")
        if fig and "caption" in fig:
            assert bool(ARABIC.search(fig["caption"])) == (lang == "ar")


def test_glossary_check_catches_a_wrong_term():
    en = "Batch normalization uses the mini-batch mean."
    good = "يستخدم تطبيع الحزمة متوسط الحزمة الصغيرة."
    bad = "يستخدم التسوية الدفعية متوسط الحزمة الصغيرة."  # another translation of the term
    assert missing_terms(en, good) == []
    assert {t.id for t in missing_terms(en, bad)} == {"batch-normalization", "normalize"}
    assert missing_terms("see $\\mathrm{BN}$ and `batch_norm`", "") == []  # math and code are not prose


def test_glossary_is_well_formed():
    ids = [t.id for t in terms()]
    assert len(ids) == len(set(ids))
    source_terms = {t.en for t in terms() if t.source}
    for required in (
        "batch normalization",
        "feature map",
        "sigmoid",
        "learning rate",
        "regularization",
        "activation",
    ):
        assert required in source_terms
    for t in terms():
        assert ARABIC.search(t.ar) and ARABIC.search(t.def_ar), t.id
        assert plain_arabic(t.ar) in [plain_arabic(f) for f in t.ar_forms] or any(
            plain_arabic(f) in plain_arabic(t.ar) for f in t.ar_forms
        ), t.id
        assert t.pattern.search(t.en), f"{t.id}: en_re does not match its own term"
    assert label("steps", "ar") == "خطوات التدريب"
    with pytest.raises(KeyError, match="no figure label"):
        label("nope", "en")


def test_chapter_source_errors(tmp_path):
    p = tmp_path / "09_bad.md"
    p.write_text(
        "---\nbnpaper:\n  title: {en: A}\n---\n\n```{code-cell} python\nx = 1\n```\n", encoding="utf-8"
    )
    with pytest.raises(ChapterError, match="one title per language"):
        read_chapter(p)
    p.write_text(
        "---\nbnpaper:\n  title: {en: A, ar: ب}\n---\n\n```{code-cell} python\nx = 1\n```\n", encoding="utf-8"
    )
    with pytest.raises(ChapterError, match="tagged `parameters`"):
        read_chapter(p)


@pytest.mark.parametrize(
    "value,en,ar",
    [
        (list(range(500, 510)), "500–509", "\u2066500–509\u2069"),  # consecutive seeds: a range
        ([0.01, 0.02], "0.01, 0.02", "\u20660.01\u2069، \u20660.02\u2069"),  # a grid: the edition's comma
        ([0, 2, 3], "0, 2, 3", "\u20660\u2069، \u20662\u2069، \u20663\u2069"),  # not consecutive: listed
        (
            {"no_bn": 0.64, "bn": 1.28},
            "`no_bn` 0.64, `bn` 1.28",
            "`no_bn` \u20660.64\u2069، `bn` \u20661.28\u2069",
        ),
        (5000, "5,000", "\u20665,000\u2069"),
        ("cpu", "`cpu`", "`cpu`"),
    ],
)
def test_status_values_read_as_prose_not_python(value, en, ar):
    """Issue 27: a chapter's status line wrote «البذور [0, 1, …, 9] · {'no_bn': 0.64}»."""
    from bnpaper.report import status_value

    assert status_value(value, "en") == en and status_value(value, "ar") == ar
    assert "[" not in status_value(value, "en") and "{" not in status_value(value, "en")
