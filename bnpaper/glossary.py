"""The bilingual glossary (bnpaper/data/glossary.yml): terms, figure labels, and the term check."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import yaml

from bnpaper.errors import ConfigError, UnknownNameError

LANGS = ("en", "ar")


@dataclass(frozen=True)
class Term:
    id: str
    en: str
    ar: str
    en_re: str
    ar_forms: tuple[str, ...]
    def_en: str
    def_ar: str
    source: bool = False
    pattern: re.Pattern = field(compare=False, repr=False, default=None)


@lru_cache(maxsize=1)
def _load() -> dict:
    text = resources.files("bnpaper").joinpath("data/glossary.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@lru_cache(maxsize=1)
def terms() -> tuple[Term, ...]:
    out = []
    for t in _load()["terms"]:
        en_re = t.get("en_re") or re.escape(t["en"])
        out.append(
            Term(
                id=t["id"],
                en=t["en"],
                ar=t["ar"],
                en_re=en_re,
                ar_forms=tuple(t.get("ar_forms") or [t["ar"]]),
                def_en=t["def_en"],
                def_ar=t["def_ar"],
                source=bool(t.get("source", False)),
                pattern=re.compile(en_re, re.IGNORECASE),
            )
        )
    return tuple(out)


def label(key: str, lang: str) -> str:
    """A figure label in the chapter's language, e.g. label("steps", "ar")."""
    if lang not in LANGS:
        raise ConfigError(f"lang must be one of {LANGS}, got {lang!r}")
    labels = _load()["labels"]
    if key not in labels:
        raise UnknownNameError(f"no figure label {key!r} in glossary.yml; known: {', '.join(sorted(labels))}")
    return labels[key][lang]


_MATH = re.compile(
    r"\$\$.*?\$\$|\$[^$\n]+\$|`[^`]*`|\{[a-z:]+\}`[^`]*`|\(https?://[^)]*\)|^\([\w-]+\)=$",
    re.DOTALL | re.MULTILINE,
)


def strip_math_and_code(text: str) -> str:
    """Prose only: drop $math$, $$math$$, `code`, roles and link targets before term matching."""
    return _MATH.sub(" ", text)


_TASHKEEL = re.compile("[\u064b-\u0652\u0670\u0640]")  # Arabic diacritics and tatweel


def plain_arabic(text: str) -> str:
    """Arabic without diacritics (shadda, fatha, ...) or tatweel, so المطبعة matches المطبَّعة."""
    return _TASHKEEL.sub("", text)


def missing_terms(en_text: str, ar_text: str) -> list[Term]:
    """Terms the English prose uses whose Arabic term (in any listed form) its twin lacks."""
    en, ar = strip_math_and_code(en_text), plain_arabic(ar_text)
    return [t for t in terms() if t.pattern.search(en) and not any(plain_arabic(f) in ar for f in t.ar_forms)]


def reserved_misuses(text: str) -> list[tuple[str, str, str, str, str]]:
    """(word, its meaning, forbidden sense, what to write instead, the text found) for every
    mechanically detectable misuse of a reserved Arabic word (glossary.yml `reserved`: one meaning
    per Arabic word, e.g. حزمة = batch only) in Arabic text."""
    plain = plain_arabic(strip_math_and_code(text))
    return [
        (r["word"], r["meaning_en"], f["sense"], f["use"], m.group(0))
        for r in _load()["reserved"]
        for f in r["forbidden"]
        for pattern in f["patterns"]
        for m in re.finditer(pattern, plain)
    ]
