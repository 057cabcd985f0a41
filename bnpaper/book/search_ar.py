"""Arabic full-text search for the Arabic edition (Sphinx 7.4 ships none; sphinx_ext registers this).

Python side (the index): text is normalised (diacritics U+064B-U+0652, U+0670 and tatweel removed;
أ إ آ ٱ → ا, ؤ → و, ئ ى → ي; ة is kept: Snowball strips it as a suffix, folding it into ه would
make it look like the pronoun suffix ه) and then split, so that a diacritic does not cut a word in
two (`\\w` does not match combining marks). Arabic words go through Snowball's Arabic stemmer,
with و/ف first taken off و‍ال/ف‍ال words that Snowball leaves whole («والتدريب»); Latin words
through Porter, like the English edition. Stopwords are matched after normalisation.

JS side (the query): Sphinx has no JS Arabic stemmer, so the browser looks words up in the
dictionary of every normalised Arabic form the index saw → its stem. `language_data.js`, which
holds the stemmer, is rendered while copying assets, before any page is indexed, so it carries a
placeholder that `write_forms` (build-finished) fills in. Forms the dictionary lacks lose their
proclitics (و ف, then ب ك ل, then ال/لل) until one is found: «بالحزمة» → «الحزمة» → «حزم»; failing
that, a common suffix, when what is left is a stem of the index («بالمطبعات» → «مطبع»); failing
that, the normalised word (Sphinx still matches it as a part of longer index terms).
Incremental builds index only the pages they write, so the previous dictionary's forms are read
back from the old `language_data.js` (`remember_forms`) unless every page is written again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import snowballstemmer
from sphinx.search import SearchLanguage
from sphinx.search.en import SearchEnglish, english_stopwords
from sphinx.util import logging

logger = logging.getLogger(__name__)

VERSION = "1"  # bump when stem() changes: a config value, so Sphinx then rewrites (re-indexes) every page
_STRIP = "\u064b-\u0652\u0670\u0640"  # a regex character class: harakat, dagger alef, tatweel
_FOLD = {
    "\u0623": "\u0627",  # أ → ا
    "\u0625": "\u0627",  # إ → ا
    "\u0622": "\u0627",  # آ → ا
    "\u0671": "\u0627",  # ٱ → ا
    "\u0624": "\u0648",  # ؤ → و
    "\u0626": "\u064a",  # ئ → ي
    "\u0649": "\u064a",  # ى → ي
}
_STRIP_RE = re.compile(f"[{_STRIP}]")
_TABLE = str.maketrans(_FOLD)
_ARABIC = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff"
_ARABIC_RE = re.compile(f"[{_ARABIC}]")
_MARKER = re.compile(r"/\*bnpaper-ar-forms\*/(.*?)/\*end-bnpaper-ar-forms\*/", re.S)
_PLACEHOLDER = "/*bnpaper-ar-forms*/{}/*end-bnpaper-ar-forms*/"
# normalised noun/verb endings, longest first: the JS fallback for forms that are not in the dictionary
_SUFFIXES = sorted("تين تان ات ان ين ون ية يه ها هم هما كم نا ة ه ي".split(), key=len, reverse=True)


def normalise(text: str) -> str:
    return _STRIP_RE.sub("", text).translate(_TABLE)


# function words, written here as usual and compared after normalisation (so «إلى» is «الي»)
ARABIC_STOPWORDS = {
    normalise(w)
    for w in """
    في من على إلى عن مع أن إن أو ثم قد لا لم لن ما هذا هذه ذلك تلك التي الذي الذين هو هي هم
    كان كانت كما لكن بل إذا حتى أي عند بين كل هنا أيضا و ف ب ل ك
    """.split()
}

_JS = r"""
var bnpaperArNormalise = (s) => s
  .replace(/[@STRIP@]/g, "")
  .replace(/[@FOLD_KEYS@]/g, (c) => (@FOLD@)[c]);

var BNPAPER_AR_FORMS = @FORMS@;

/* the form without its proclitics, longest first: و ف, then ب ك ل, then ال (لل = ل + ال) */
var bnpaperArCandidates = (w) => {
  const out = [];
  const add = (c) => { if (c.length >= 3 && !out.includes(c)) out.push(c); };
  const bases = [w];
  if (w.length > 3 && (w[0] === "\u0648" || w[0] === "\u0641")) bases.push(w.slice(1));
  for (const b of bases) {
    add(b);
    let c = b;
    if (b.startsWith("\u0644\u0644")) { add("\u0627" + b.slice(1)); c = b.slice(2); }
    else if ("\u0628\u0643\u0644".includes(b[0])) { c = b.slice(1); }
    add(c);
    if (c.startsWith("\u0627\u0644")) add(c.slice(2));
  }
  return out.filter((c) => c !== w);
};

/* suffixes tried, longest first, on a form none of whose candidates is known */
var BNPAPER_AR_SUFFIXES = @SUFFIXES@;

var Stemmer = function() {
  const porter = new BnpaperPorterStemmer();
  const arabic = /[@ARABIC@]/;
  const has = (k) => Object.prototype.hasOwnProperty.call(BNPAPER_AR_FORMS, k);
  const stems = new Set(Object.values(BNPAPER_AR_FORMS));
  this.stemWord = function(word) {
    const w = bnpaperArNormalise(word);
    if (!arabic.test(w)) return porter.stemWord(w.toLowerCase());
    if (has(w)) return BNPAPER_AR_FORMS[w];
    const candidates = bnpaperArCandidates(w);
    for (const c of candidates) if (has(c)) return BNPAPER_AR_FORMS[c];
    for (const c of [w, ...candidates])
      for (const s of BNPAPER_AR_SUFFIXES)
        if (c.endsWith(s) && c.length - s.length >= 3 && stems.has(c.slice(0, -s.length)))
          return c.slice(0, -s.length);
    return w;
  };
};
"""

_JS_SPLITTER = r"""
var splitQuery = (query) => bnpaperArNormalise(query)
  .split(/[^\p{Letter}\p{Number}_\p{Emoji_Presentation}]+/gu)
  .filter((term) => term);
"""


def _js_stemmer_code() -> str:
    porter = SearchEnglish.js_stemmer_code
    renamed = porter.replace("var Stemmer = function()", "var BnpaperPorterStemmer = function()", 1)
    if renamed == porter:
        raise RuntimeError("Sphinx's Porter stemmer JS changed: sphinx.search.en.js_porter_stemmer")
    keys = "".join(_FOLD)
    return renamed + (
        _JS.replace("@STRIP@", _STRIP.encode("unicode_escape").decode())
        .replace("@FOLD_KEYS@", keys.encode("unicode_escape").decode())
        .replace("@FOLD@", json.dumps(_FOLD))
        .replace("@ARABIC@", _ARABIC.encode("unicode_escape").decode())
        .replace("@FORMS@", _PLACEHOLDER)
        .replace("@SUFFIXES@", json.dumps(_SUFFIXES))
    )


class SearchArabic(SearchLanguage):
    lang = "ar"
    language_name = "Arabic"
    stopwords = ARABIC_STOPWORDS | english_stopwords
    js_stemmer_rawcode = ""  # a file name under sphinx/search/ in Sphinx 7.4: the code is inline instead
    js_stemmer_code = _js_stemmer_code()
    js_splitter_code = _JS_SPLITTER

    def init(self, options: dict[str, str]) -> None:
        self.arabic = snowballstemmer.stemmer("arabic")
        self.latin = snowballstemmer.stemmer("porter")
        self.forms: dict[str, str] = {}  # normalised Arabic form → stem, every one stem() saw

    def split(self, input: str) -> list[str]:
        return self._word_re.findall(normalise(input))

    def _stem_arabic(self, w: str) -> str:
        base = w
        if len(w) >= 6 and w[0] in "\u0648\u0641" and w.startswith("\u0627\u0644", 1):
            base = w[1:]  # و/ف + ال: Snowball keeps the conjunction when an alef follows it
        stem = self.arabic.stemWord(base)
        return w if stem in self.stopwords else stem  # a stem must not be dropped as a stopword

    def stem(self, word: str) -> str:
        w = normalise(word)
        if not _ARABIC_RE.search(w):
            return self.latin.stemWord(w.lower())
        if w in self.stopwords:
            return w  # word_filter drops it
        stem = self.forms[w] = self._stem_arabic(w)
        return stem

    def word_filter(self, word: str) -> bool:
        return super().word_filter(word) and normalise(word).lower() not in self.stopwords

    def dictionary(self, forms) -> dict[str, str]:
        return {w: self._stem_arabic(w) for w in sorted(forms) if w not in self.stopwords}


def _language_data(app) -> Path:
    return Path(app.outdir) / "_static" / "language_data.js"


def remember_forms(app) -> None:
    """builder-inited: the forms of the previous build's dictionary, before copying assets replaces it."""
    if app.builder.format != "html":
        return
    app.builder._bnpaper_ar_forms = set()
    app.builder._bnpaper_ar_written = set()
    try:
        m = _MARKER.search(_language_data(app).read_text(encoding="utf-8"))
        app.builder._bnpaper_ar_forms = set(json.loads(m.group(1))) if m else set()
    except (OSError, ValueError, AttributeError):
        pass


def note_written(app, doctree, docname) -> None:
    """doctree-resolved: the pages this build writes (and so indexes)."""
    written = getattr(app.builder, "_bnpaper_ar_written", None)
    if written is not None:
        written.add(docname)


def write_forms(app, exc) -> None:
    """build-finished: put the dictionary into language_data.js, in place of its placeholder."""
    indexer = getattr(app.builder, "indexer", None)
    if exc is not None or indexer is None or not isinstance(indexer.lang, SearchArabic):
        return
    path = _language_data(app)
    text = path.read_text(encoding="utf-8")
    forms = set(indexer.lang.forms)
    if not set(app.env.all_docs) <= getattr(app.builder, "_bnpaper_ar_written", set()):
        forms |= getattr(app.builder, "_bnpaper_ar_forms", set())  # pages not written keep their index terms
    data = json.dumps(indexer.lang.dictionary(forms), sort_keys=True, separators=(",", ":"))
    new, n = _MARKER.subn(lambda _: f"/*bnpaper-ar-forms*/{data}/*end-bnpaper-ar-forms*/", text, count=1)
    if n != 1:
        raise RuntimeError(f"{path}: no Arabic search dictionary placeholder")
    path.write_text(new, encoding="utf-8")
    logger.info("Arabic search: %d word forms in language_data.js (%d KiB)", len(forms), len(data) // 1024)
