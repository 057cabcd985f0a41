"""A small Sphinx extension for the two editions (loaded by each edition's generated _config.yml).

* RTL: pydata-sphinx-theme writes `<html lang="ar">` but never `dir="rtl"`; after the build this
  adds `dir="rtl"` to every page of a right-to-left edition, and `rtl.css` keeps code, outputs and
  math left-to-right and mirrors the sidebar (see ../shared/TOOLCHAIN.md).
* A language switch at the top of every page, pointing at the same page in the other edition
  (editions are sibling folders: html/en/<page>.html, html/ar/<page>.html).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

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


def _add_dir(app, exc):
    if exc is not None or app.builder.format != "html" or app.config.language not in RTL_LANGS:
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = _HTML_TAG.sub('<html dir="rtl"', text, count=1)
        if new != text:
            page.write_text(new, encoding="utf-8")


def _css(app):
    app.add_css_file("bnpaper.css")
    if app.config.language in RTL_LANGS:
        app.add_css_file("rtl.css")


def setup(app):
    app.add_config_value("bnpaper_editions", {}, "html")
    app.connect("builder-inited", _css)
    app.connect("html-page-context", _switch)
    app.connect("build-finished", _add_dir)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
