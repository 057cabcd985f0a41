"""Numbers with their nouns in both editions: «10 بذور», «11 بذرةً», «بذرتين», "10 seeds".

The forms live in bnpaper/data/counted.yml, apart from the glossary: experiment modules word their
claims with them, and a run's cache key follows what its module imports, so editing the glossary,
its labels or the plotting code retrains nothing (tests/test_layers_cache.py).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

from bnpaper.errors import ConfigError, UnknownNameError


@lru_cache(maxsize=1)
def _forms() -> dict:
    text = resources.files("bnpaper").joinpath("data/counted.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["counted"]


def arabic_plural_category(n: int) -> str:
    """CLDR's Arabic plural categories, which decide the counted noun's form: zero, one, two,
    few (n % 100 in 3..10: plural), many (n % 100 in 11..99: accusative singular), other."""
    if n < 0:
        raise ConfigError(f"a count is >= 0, got {n}")
    if n == 0:
        return "zero"
    if n == 1:
        return "one"
    if n == 2:
        return "two"
    if 3 <= n % 100 <= 10:
        return "few"
    if 11 <= n % 100 <= 99:
        return "many"
    return "other"


def counted(n: int, noun: str, lang: str) -> str:
    """A number with its noun, agreeing for any n: counted(10, "seed", "ar") -> «10 بذور»,
    counted(11, ...) -> «11 بذرةً», counted(2, ...) -> «بذرتين», counted(1, ...) -> «بذرة واحدة».
    Nouns and their forms are in data/counted.yml `counted`. Glue the result whole ({glue:md})."""
    forms = _forms().get(noun)
    if forms is None:
        raise UnknownNameError(
            f"no counted noun {noun!r} in data/counted.yml; known: {', '.join(sorted(_forms()))}"
        )
    n = int(n)
    if lang == "en":
        return f"{n:,} {forms['en_one'] if n == 1 else forms['en_other']}"
    cat = arabic_plural_category(n)
    if cat == "one":
        return forms["one"]
    if cat == "two":
        return forms["two"]
    return f"{n:,} {forms[cat if cat in ('few', 'many') else 'other']}"


def and_list(items: list[str], lang: str) -> str:
    """Items joined as a sentence lists them: "a, b and c" in English, «a، وb، وc» in Arabic
    (the conjunction و joins each item, attached to it)."""
    if len(items) <= 1:
        return "".join(items)
    if lang == "ar":
        return "، و".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
