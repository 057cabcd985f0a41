"""The pipeline end to end (smoke profile, both editions), then checks on the built HTML."""

import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from bnpaper.book.chapters import ChapterError, chapters
from bnpaper.book.pipeline import build_book

pytestmark = pytest.mark.book
CHAPTERS = list(chapters())
GENERATED = ["glossary", "reproducibility", "references"]


class Assets(HTMLParser):
    """Collects <html> attributes, script/stylesheet/img sources and a few classes."""

    def __init__(self):
        super().__init__()
        self.html_attrs, self.scripts, self.styles, self.images, self.classes = {}, [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.html_attrs = a
        elif tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        elif tag == "link" and "stylesheet" in (a.get("rel") or ""):
            self.styles.append(a.get("href", ""))
        elif tag == "img":
            self.images.append(a.get("src", ""))
        self.classes += (a.get("class") or "").split()


def parse(path):
    p = Assets()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_every_page_in_both_editions(smoke_book):
    assert (smoke_book / "index.html").exists()
    chooser = (smoke_book / "index.html").read_text(encoding="utf-8")
    assert 'href="en/index.html"' in chooser and 'href="ar/index.html"' in chooser
    for lang in ("en", "ar"):
        for page in CHAPTERS + GENERATED:
            assert (smoke_book / lang / f"{page}.html").exists(), f"{lang}/{page}.html missing"


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_no_asset_from_another_host(smoke_book, lang):
    for page in (smoke_book / lang).glob("*.html"):
        p = parse(page)
        remote = [u for u in p.scripts + p.styles if re.match(r"(https?:)?//", u)]
        assert not remote, f"{page.name} loads {remote}"
    assert (smoke_book / lang / "_static" / "mathjax" / "tex-chtml.js").exists()


def content_pages(folder):
    return [p for p in folder.glob("*.html") if p.name != "index.html"]  # index.html: Jupyter Book's redirect


def test_arabic_pages_are_rtl_and_english_ltr(smoke_book):
    assert "00_intro.html" in (smoke_book / "ar" / "index.html").read_text()
    for page in content_pages(smoke_book / "ar"):
        attrs = parse(page).html_attrs
        assert attrs.get("lang") == "ar" and attrs.get("dir") == "rtl", f"{page.name}: {attrs}"
    for page in content_pages(smoke_book / "en"):
        attrs = parse(page).html_attrs
        assert attrs.get("lang") == "en" and attrs.get("dir", "ltr") == "ltr"
    css = (smoke_book / "ar" / "_static" / "rtl.css").read_text()
    assert "mjx-container" in css and "direction: ltr" in css


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_chapter_pages_have_equations_figures_switch_and_download(smoke_book, lang):
    other = "ar" if lang == "en" else "en"
    page = smoke_book / lang / "01_bn_transform.html"
    text = page.read_text(encoding="utf-8")
    p = parse(page)
    assert text.count('class="math notranslate nohighlight"') >= 11  # eqs (1)-(11), numbered
    assert re.search(r'id="equation-eq-collapsed"', text)
    pngs = [s for s in p.images if s.endswith(".png")]
    assert len(pngs) >= 2, p.images
    for src in pngs:
        assert (page.parent / src).exists()
    assert f'href="../{other}/01_bn_transform.html"' in text  # the language switch
    assert "_downloads" in text and "01_bn_transform.ipynb" in text  # the executed notebook
    assert "ioffe2015batch" in text or "Ioffe" in text  # the citation
    assert "{glue" not in text and "glue:text" not in text  # every inline number was filled in


def test_arabic_edition_is_in_arabic(smoke_book):
    text = (smoke_book / "ar" / "01_bn_transform.html").read_text(encoding="utf-8")
    assert "تحويل تطبيع الحزمة وتدرجه" in text
    assert "أظهر محتوى الخلية" in text  # interface strings
    assert "الشكل 1" in text and "Fig. 1" not in text  # figure numbers in Arabic
    assert "The backward pass, step by step" not in text  # no English prose
    glossary = (smoke_book / "ar" / "glossary.html").read_text(encoding="utf-8")
    assert "تطبيع الحزمة" in glossary and "batch normalization" in glossary


def test_reproducibility_page(smoke_book):
    text = (smoke_book / "en" / "reproducibility.html").read_text(encoding="utf-8")
    for name in CHAPTERS:
        assert name in text
    assert "smoke" in text and "torch" in text and "git revision" in text


BAD_CHAPTER = """---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
bnpaper:
  title: {en: Broken, ar: معطوب}
---

+++ {"lang": "en"}

# Broken

+++ {"lang": "ar"}

# معطوب

```{code-cell} python
:tags: [parameters]
profile = "quick"
device = "auto"
lang = "en"
```

```{code-cell} python
x = 1
```

```{code-cell} python
raise ValueError("this chapter is broken on purpose")
```
"""


def test_failing_cell_stops_the_build_and_keeps_the_old_book(tmp_path, monkeypatch):
    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "notebooks"
    src.mkdir()
    (src / "05_broken.md").write_text(BAD_CHAPTER, encoding="utf-8")
    build = tmp_path / "build"
    (build / "html" / "en").mkdir(parents=True)
    (build / "html" / "en" / "index.html").write_text("the previous complete book")
    with pytest.raises(ChapterError) as e:
        build_book(
            profile="smoke", device="cpu", langs="en", build_dir=build, notebooks_dir=src, progress=False
        )
    msg = str(e.value)
    assert "chapter 05_broken (en) failed in code cell 3 of 05_broken.md" in msg
    assert "ValueError: this chapter is broken on purpose" in msg
    assert "no edition was published" in msg
    assert (build / "html" / "en" / "index.html").read_text() == "the previous complete book"
    assert (build / "executed" / "en" / "failed" / "05_broken.ipynb").exists()
    assert not (build / "executed" / "en" / "05_broken.ipynb").exists()


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_claims_ledger_page(smoke_book, lang):
    import html

    from bnpaper.ledger import CLAIMS
    from bnpaper.plotting import label

    text = (smoke_book / lang / "08_claims.html").read_text(encoding="utf-8")
    plain = html.unescape(text).replace("\u2019", "'").replace("\u2018", "'")  # MyST typesets quotes
    for c in CLAIMS:
        words = max(re.split(r"\$[^$]*\$", c.en if lang == "en" else c.ar), key=len).strip()  # math renders
        assert words[:25] in plain, c.id
        if c.protocol is not None:
            assert f'href="{c.chapter}.html#{c.label}"' in text, c.id
    assert (
        f"<strong>{label('v_not_run', lang)}</strong>" not in text
    )  # the smoke build measured every testable claim
    assert text.count(f"<strong>{label('v_not_testable', lang)}</strong>") == sum(
        c.protocol is None for c in CLAIMS
    )
    later = [c for c in CLAIMS if c.later]  # the later papers' claims, in their own table below the paper's
    assert later and label("later_findings", lang) in html.unescape(text)
    heading = html.unescape(text).index(label("later_findings", lang))
    for c in later:
        words = max(re.split(r"\$[^$]*\$", c.en if lang == "en" else c.ar), key=len).strip()
        assert plain.index(words[:25]) > heading, c.id


def test_every_ledger_record_names_the_run_that_made_it(smoke_book):
    """Issues 24 and 25: every record a chapter writes carries its protocol's digest, the seeds, the
    run lengths, and the config and store key of the run that produced it (claims_view.report)."""
    import json

    records = sorted((smoke_book.parent / "ledger" / "smoke").rglob("*.json"))
    assert len(records) >= 30
    missing = {}
    for path in records:
        rec = json.loads(path.read_text(encoding="utf-8"))
        lacks = [k for k in ("digest", "seeds", "config") if not rec.get(k)]
        if not re.fullmatch(r"[0-9a-f]{20}", rec.get("cache_key", "")):
            lacks.append("cache_key")
        if lacks:
            missing[rec["claim"]] = lacks
    assert missing == {}, f"records without their provenance: {missing}"


def test_figure_data_is_downloadable(smoke_book):
    import json

    files = list((smoke_book / "en" / "_downloads").rglob("*.json"))
    names = {f.name for f in files}
    for expected in (
        "01_bn_transform-bn-distributions.json",
        "02_conv-conv-training.json",
        "07_figure1-figure1bc.json",
        "06_inception-inception-curves.json",
        "04_regularization-dropout-grid.json",
    ):
        assert expected in names, sorted(names)
    record = json.loads(next(f for f in files if f.name == "02_conv-conv-training.json").read_text())
    assert (
        record["chapter"] == "02_conv"
        and "config" in record
        and "result" in record
        and record["bnpaper_source"]
    )
    repro = (smoke_book / "en" / "reproducibility.html").read_text(encoding="utf-8")
    assert "02_conv-conv-training.json" in repro


def test_pages_hold_no_warning_traceback_or_build_path(smoke_book):
    """The smoke build runs with progress bars on, as `make book` does: the bars go to the
    terminal, and no warning, traceback, object repr or absolute path of this machine reaches a page."""
    from bnpaper.cache import PACKAGE_DIR

    repo = str(PACKAGE_DIR.parent)
    # a warning, a traceback, or an object's repr where a glued value belongs (a str glued by
    # report.glue is Markdown: {glue:text} would show "<IPython.core.display.Markdown object>")
    warning = re.compile(
        r"\b\w*Warning\b|Traceback \(most recent call last\)|IProgress|IPython\.core\.display|object at 0x"
    )
    for lang in ("en", "ar"):
        for page in CHAPTERS + GENERATED:
            html = (smoke_book / lang / f"{page}.html").read_text(encoding="utf-8")
            text = re.sub(r"<script.*?</script>|<[^>]+>", " ", html, flags=re.S)
            found = warning.search(text)
            assert not found, f"{lang}/{page}: {text[max(0, found.start() - 80) : found.end() + 80]!r}"
            assert repo not in html and "/.venv/" not in html, (
                f"{lang}/{page} shows a path of the build machine"
            )
            assert "output stderr" not in html, f"{lang}/{page} shows a cell's stderr"


def test_arabic_pages_have_no_english(smoke_book):
    """Issue 12: the visible text of every built Arabic page (header, sidebar, outputs, captions,
    tables, the ledger, footer) holds no Latin word outside code, math, text marked lang="en"
    and the names in bnpaper.book.audit.ALLOWED. Before this check: 766 words on the smoke build."""
    from bnpaper.book.audit import scan

    found = scan(smoke_book / "ar")
    report = {page: dict(c.most_common(8)) for page, c in found.items()}
    assert found == {}, (
        f"English words in Arabic pages ({sum(sum(c.values()) for c in found.values())}): {report}"
    )


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_the_injected_parameters_cell_is_not_on_the_page(smoke_book, lang):
    """Issue 27: papermill's injected cell (this build's parameters, which the status line states)
    showed as an empty "Show code cell source" toggle under every chapter's parameters cell."""
    paths = [smoke_book / lang / f"{name}.html" for name in CHAPTERS]
    pages = {p.name: p.read_text(encoding="utf-8") for p in paths if p.exists()}
    shown = [name for name, html in pages.items() if "tag_injected-parameters" in html]
    assert shown == [], f"the injected parameters cell is on {shown}"
    assert any("tag_parameters" in html for html in pages.values())
    # the parameters a reader sees are this build's: the Arabic page says lang "ar", smoke says smoke
    executed = smoke_book.parent / "executed" / lang
    nbs = [nbformat.read(p, as_version=4) for p in sorted(executed.glob("*.ipynb"))]
    params = [c.source for nb in nbs for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert params and all(
        f'lang = "{lang}"' in s and 'profile = "smoke"' in s for s in params if "lang =" in s
    )


def test_arabic_signed_numbers_keep_their_sign_in_front(smoke_book):
    """Issue 27: a signed number in Arabic prose ("-0.43") must be isolated left-to-right, or the
    browser shows "0.43-". Every page's visible text outside code and math: prose, captions, lists.
    Output table cells are left out: rtl.css gives them `unicode-bidi: plaintext`, so a cell without
    an Arabic letter ("-0.22") is laid out left-to-right on its own."""
    from bs4 import BeautifulSoup

    from bnpaper.bidi import loose_signed_numbers
    from bnpaper.book.audit import visible_text

    css = (Path(__file__).parent.parent / "book" / "_static" / "rtl.css").read_text(encoding="utf-8")
    assert re.search(r"div\.cell_output td[^{]*\{[^}]*unicode-bidi: plaintext", css)
    loose = {}
    for page in sorted((smoke_book / "ar").glob("*.html")):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for cell in soup.select("div.cell_output td, div.cell_output th"):
            cell.decompose()
        found = loose_signed_numbers(visible_text(str(soup)))
        if found:
            loose[page.name] = found[:8]
    assert loose == {}, f"signed numbers not isolated in Arabic pages: {loose}"


def test_arabic_citations_read_in_arabic(smoke_book):
    """«Ioffe و Szegedy، 2015», «Yang وآخرون، 2019», and «؛» between the works of one citation."""
    import re

    page = (smoke_book / "ar" / "09_ics.html").read_text(encoding="utf-8")
    refs = re.findall(
        r'<a class="reference internal" href="references.html#[^"]*" title="[^"]*">([^<]*)</a>(.{0,2})', page
    )
    assert refs, "no citation found on the Arabic chapter 09"
    assert all("et al" not in t and " and " not in t and re.search(r"، \d{4}", t) for t, _ in refs), refs
    assert all(re.search(r"[A-Za-z]\u200f", t) for t, _ in refs), refs  # an RLM after each Latin name
    follow = [sep for _, sep in refs if not sep.startswith("]")]
    assert follow and set(follow) == {"؛ "}, follow  # chapter 09 cites two works at once
    en = (smoke_book / "en" / "09_ics.html").read_text(encoding="utf-8")
    assert "<em>et al.</em>, 2019</a>, " in en  # the English edition keeps its own


def test_the_ledger_page_runs_after_every_chapter_that_records():
    """08_claims reads the ledger that 09_ics (a later file name) writes: it must run last."""
    from bnpaper.book.pipeline import execution_order

    order = list(execution_order(chapters()))
    readers = [n for n, ch in chapters().items() if ch.reads_ledger]
    assert readers == ["08_claims"] and order[-1] == "08_claims"
    assert order[:-1] == sorted(order[:-1])


def test_a_parameters_cell_shows_the_values_it_ran_with():
    from bnpaper.book.pipeline import with_values

    source = 'profile = "quick"  # smoke | quick | paper\nlang = "en"  # en | ar\nseeds = 10\nnote = 1'
    assert with_values(source, {"lang": "ar", "seeds": 3, "profile": "smoke"}) == (
        'profile = "smoke"  # smoke | quick | paper\nlang = "ar"  # en | ar\nseeds = 3\nnote = 1'
    )
