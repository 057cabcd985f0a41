"""Arabic search (bnpaper/book/search_ar.py): normalisation, the stemmer, and a tiny Sphinx project
built with the book's extension (seconds, not the whole book): its index, the JS dictionary in
language_data.js, the JS stemmer run by node, and the search page in headless Chromium."""

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from sphinx.cmd.build import build_main

from bnpaper.book import chromium
from bnpaper.book.search_ar import SearchArabic, normalise

PAGES = {
    "index": """
        تطبيع الحزمة
        ============

        يجعل تطبيعُ الحزمة التدريبَ أسرع، والقيم المطبَّعة في الشبكة.

        .. toctree::

           other
           third
        """,
    "other": """
        مثال آخر
        ========

        كل حزمة من الأمثلة، مع Normalization في networks.
        """,
    "third": """
        صفحة ثالثة
        ==========

        الشبكات العصبية.
        """,
}
JS_PROBE = """
const fs = require("fs"), vm = require("vm");
const ctx = {};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
const words = JSON.parse(process.argv[3]);
console.log(JSON.stringify(vm.runInContext(`(() => {
  const s = new Stemmer();
  const w = ${JSON.stringify(words)};
  return {stem: w.map((x) => s.stemWord(x)), split: w.map((x) => splitQuery(x)),
          norm: w.map((x) => bnpaperArNormalise(x)), stopwords: stopwords};
})()`, ctx)));
"""


def make_project(root: Path, language: str = "ar") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "conf.py").write_text(
        f'extensions = ["bnpaper.book.sphinx_ext"]\nlanguage = "{language}"\nhtml_theme = "basic"\n',
        encoding="utf-8",
    )
    for name, text in PAGES.items():
        (root / f"{name}.rst").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def build(src: Path) -> Path:
    out = src / "_build"
    assert build_main(["-b", "html", "-q", str(src), str(out)]) == 0
    return out


def index_of(out: Path) -> dict:
    text = (out / "searchindex.js").read_text(encoding="utf-8")
    return json.loads(text[len("Search.setIndex(") : -1])


def forms_of(out: Path) -> dict:
    text = (out / "_static" / "language_data.js").read_text(encoding="utf-8")
    start = text.index("/*bnpaper-ar-forms*/") + len("/*bnpaper-ar-forms*/")
    return json.loads(text[start : text.index("/*end-bnpaper-ar-forms*/")])


@pytest.fixture(scope="module")
def lang():
    return SearchArabic({})


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build(make_project(tmp_path_factory.mktemp("ar")))


def test_normalise():
    assert normalise("المطبَّعةُ") == "المطبعة"  # shadda, damma
    assert normalise("كتـــاب") == "كتاب"  # tatweel
    assert normalise("الرَّحْمٰن") == "الرحمن"  # sukun, dagger alef
    assert normalise("أإآٱ ؤ ئ ى") == "اااا و ي ي"
    assert normalise("ة") == "ة"  # kept: Snowball strips it as a suffix
    assert normalise("BatchNorm 2") == "BatchNorm 2"


def test_split_keeps_diacritised_words(lang):
    assert lang.split("المطبَّعة، والتدريبُ") == ["المطبعة", "والتدريب"]


def test_stem(lang):
    assert lang.stem("المطبَّعة") == lang.stem("المطبعة")
    assert lang.stem("الحزمة") == lang.stem("بالحزمة") == lang.stem("حزمة") == "حزم"
    assert lang.stem("والتدريب") == lang.stem("التدريب")  # Snowball alone keeps و before ال
    assert lang.stem("networks") == "network"
    assert lang.forms["بالحزمة"] == "حزم"


def test_stopwords(lang):
    for word in ["فِي", "إلى", "الذي", "أيضًا", "the"]:
        assert not lang.word_filter(lang.stem(word)), word
        assert not lang.word_filter(word), word
    assert lang.word_filter(lang.stem("الشبكة"))


def pages_with(index: dict, term: str, key: str = "terms") -> set[str]:
    found = index[key].get(term, [])
    return {index["docnames"][i] for i in ([found] if isinstance(found, int) else found)}


def test_index_holds_stems(site):
    index = index_of(site)
    assert pages_with(index, "مطبع") == {"index"}  # «المطبَّعة»
    assert pages_with(index, "حزم", "titleterms") == {"index"} and pages_with(index, "حزم") == {"other"}
    assert pages_with(index, "شبك") == {"index", "third"}  # «الشبكة», «الشبكات»
    assert "في" not in index["terms"] and pages_with(index, "network") == {"other"}


def test_language_data_holds_dictionary(site):
    forms = forms_of(site)
    assert forms["الحزمة"] == forms["حزمة"] == "حزم"
    assert forms["المطبعة"] == "مطبع"
    assert "في" not in forms and "بالحزمة" not in forms


def test_english_edition_unchanged(tmp_path):
    out = build(make_project(tmp_path, "en"))
    assert "bnpaper" not in (out / "_static" / "language_data.js").read_text(encoding="utf-8")


def test_incremental_build_keeps_dictionary(tmp_path):
    src = make_project(tmp_path)
    build(src)
    third = src / "third.rst"
    third.write_text(third.read_text(encoding="utf-8") + "\nالطبقات.\n", encoding="utf-8")
    out = build(src)  # writes third (and index, whose toctree lists it), not other
    forms = forms_of(out)
    assert forms["حزمة"] == "حزم"  # only in other.rst, known from the previous language_data.js
    assert "الطبقات" in forms


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_stemmer(site, lang):
    words = ["بالحزمة", "الحزمة", "حزمة", "المطبَّعة", "والشبكة", "للشبكة", "networks", "كلمات", "بالمطبعات"]
    probe = site.parent / "probe.js"
    probe.write_text(JS_PROBE, encoding="utf-8")
    lang_data = site / "_static" / "language_data.js"
    run = subprocess.run(
        ["node", str(probe), str(lang_data), json.dumps(words)], capture_output=True, text=True, check=True
    )
    r = json.loads(run.stdout)
    assert r["stem"][:3] == ["حزم"] * 3  # «بالحزمة» never occurs: the proclitic is stripped
    assert r["stem"][3:7] == ["مطبع", "شبك", "شبك", "network"]
    assert r["stem"][7] == "كلمات"  # unknown: the normalised word
    assert r["stem"][8] == "مطبع"  # unknown, but without بال and ات a stem of the index
    assert r["norm"] == [normalise(w) for w in words]
    assert r["split"][3] == ["المطبعة"]  # the default splitter would cut at the shadda
    tricky = "أُسُّ الـمـؤشِّرِ إلى ٱلْقِيمَة"
    probe2 = subprocess.run(
        ["node", str(probe), str(lang_data), json.dumps([tricky])], capture_output=True, text=True, check=True
    )
    assert json.loads(probe2.stdout)["norm"] == [normalise(tricky)]
    assert set(json.loads(probe2.stdout)["stopwords"]) == lang.stopwords


@pytest.mark.browser
def test_search_page_finds_proclitic_form(site):
    if chromium.executable() is None:
        pytest.skip(chromium.MISSING)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = chromium.launch(p)
        try:
            page = browser.new_context(offline=True).new_page()
            page.goto((site / "search.html").as_uri() + "?q=" + "بالحزمة")
            page.wait_for_function(  # searchtools.js stops its pulse when the last result is shown
                "() => document.querySelector('#search-results ul.search') && Search._pulse_status === -1",
                timeout=20000,
            )
            links = page.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.href)")
        finally:
            browser.close()
    found = {Path(h.split("?")[0].split("#")[0]).stem for h in links}
    assert {"index", "other"} <= found and "third" not in found
