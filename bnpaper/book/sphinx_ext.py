"""A small Sphinx extension for the two editions (loaded by each edition's generated _config.yml).

* RTL: pydata-sphinx-theme writes `<html lang="ar">` but never `dir="rtl"`; after the build this
  adds `dir="rtl"` to every page of a right-to-left edition, and `rtl.css` keeps code, outputs and
  math left-to-right and mirrors the sidebar (book/_static/rtl.css).
* A language switch at the top of every page, pointing at the same page in the other edition
  (editions are sibling folders: html/en/<page>.html, html/ar/<page>.html).
* Arabic search (search_ar.py): Sphinx has no Arabic search language; this registers one, used only
  where the edition's language is `ar`.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from bnpaper.book import search_ar

RTL_LANGS = {"ar", "he", "fa", "ur"}
_HTML_TAG = re.compile(r"<html(?![^>]*\bdir=)")


def _switch(app, pagename, templatename, context, doctree):
    others = app.config.bnpaper_editions  # {lang: label} of the other editions
    if not others or "body" not in context:
        return
    up = "../" * (pagename.count("/") + 1)
    links = " · ".join(
        f'<a class="bnpaper-lang-link" hreflang="{lang}" lang="{lang}" '
        f'href="{up}{lang}/{pagename}.html">{html.escape(label)}</a>'
        for lang, label in others.items()
    )
    context["body"] = (
        f'<nav class="bnpaper-langswitch" aria-label="language">{links}</nav>\n' + context["body"]
    )


RLM = "\u200f"  # right-to-left mark
_CITATION = re.compile(r"^(?P<names>.+?)(?P<etal> et al\.)?, (?P<year>\d{4}[a-z]?)$")


def _cite_text(text: str, lang: str) -> str:
    """An author-year citation in the edition's language: 'Ioffe and Szegedy, 2015' ->
    'Ioffe و Szegedy، 2015'; 'Yang et al., 2019' -> 'Yang وآخرون، 2019'. Names stay as written,
    each followed by a right-to-left mark (U+200F), so that the Arabic comma and the year after a
    Latin name stay on the Arabic side instead of joining the name's left-to-right run."""
    m = _CITATION.match(text)
    if lang != "ar" or m is None:
        return text
    names = " و ".join(n + RLM for n in m["names"].split(" and "))
    return f"{names}{' وآخرون' if m['etal'] else ''}، {m['year']}"


def _localize_citations(app, doctree, docname):
    """sphinxcontrib-bibtex writes author-year citations in English; the Arabic edition writes
    'and', 'et al.' and the comma in Arabic (doctree-resolved runs after its post-transforms)."""
    from docutils import nodes

    if app.config.language != "ar":
        return
    for ref in list(doctree.findall(nodes.reference)):
        if "bibtex" not in " ".join(ref.get("classes", [])) and "references" not in ref.get("refuri", ""):
            continue
        text = ref.astext()  # "Yang <em>et al.</em>, 2019" is three nodes
        new = _cite_text(text, "ar")
        if new != text:
            ref.children = []
            ref += nodes.Text(new)
            after = ref.next_node(descend=False, siblings=True)  # "[A, 2019, B, 2017]": the list's comma
            if isinstance(after, nodes.Text) and after.astext() == ", ":
                after.parent.replace(after, nodes.Text("؛ "))


def _isolate_signed_numbers(app, doctree, docname):
    """Arabic edition: a signed number in prose (typed or glued: "-0.43", "+0.0534") is isolated
    left-to-right (bidi.isolate_signed_numbers), or the browser shows "0.43-". Code, math and raw
    output keep their text."""
    from docutils import nodes

    from bnpaper.bidi import isolate_signed_numbers

    if app.config.language != "ar":
        return
    keep = (nodes.literal, nodes.math, nodes.math_block, nodes.raw, nodes.FixedTextElement)  # + code blocks
    for text in list(doctree.findall(nodes.Text)):
        if any(isinstance(a, keep) for a in _ancestors(text)):  # the parent first
            continue
        new = isolate_signed_numbers(text.astext())
        if new != text.astext():
            text.parent.replace(text, nodes.Text(new))


def _ancestors(node):
    while node.parent is not None:
        node = node.parent
        yield node


def _finish_pages(app, exc):
    """After the build: dir="rtl" on every page of a right-to-left edition, the theme's own
    strings that Sphinx's catalog leaves in English (editions.yml theme_strings), and the
    bibliography marked as English, left-to-right (its entries stay in their own language)."""
    if exc is not None or app.builder.format != "html":
        return
    rtl = app.config.language in RTL_LANGS
    strings = app.config.bnpaper_theme_strings or {}
    if not rtl and not strings:
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = _HTML_TAG.sub('<html dir="rtl"', text, count=1) if rtl else text
        for en, local in strings.items():
            new = new.replace(en, local)
        if rtl:
            new = new.replace('class="citation-list">', 'class="citation-list" lang="en" dir="ltr">')
        if new != text:
            page.write_text(new, encoding="utf-8")


def _css(app):
    app.add_css_file("bnpaper.css")
    if app.config.language in RTL_LANGS:
        app.add_css_file("rtl.css")


def setup(app):
    app.add_config_value("bnpaper_editions", {}, "html")
    app.add_config_value("bnpaper_theme_strings", {}, "html")
    # in the HTML builder's config hash: a new Arabic stemmer version re-indexes every page
    app.add_config_value("bnpaper_search_ar_version", search_ar.VERSION, "html")
    app.add_search_language(search_ar.SearchArabic)
    app.connect("builder-inited", search_ar.remember_forms)
    app.connect("doctree-resolved", search_ar.note_written)
    app.connect("build-finished", search_ar.write_forms)
    app.connect("builder-inited", _css)
    app.connect("html-page-context", _switch)
    app.connect("doctree-resolved", _localize_citations)
    app.connect("doctree-resolved", _isolate_signed_numbers)
    app.connect("build-finished", _finish_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
