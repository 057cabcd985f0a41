"""An experiment's bilingual text as data: its claims, protocols and conclusions in <module>.yml.

Each experiment module keeps its words in a YAML catalog beside it (bnpaper/experiments/conv.yml
for conv.py), which a translator edits without touching Python. An entry is a nested key whose leaf
holds the two editions and the hash of the English the Arabic was written against:

    conv-bias:
      statistic:
        en: worst case over the seeds ...; a seed whose bias is below @{min_bias:g} ...
        ar: أسوأ حالة عبر البذور ...
        en_sha: 1a2b3c4d

`@{name}` and `@{name:spec}` are filled from the values the module passes (the numbers its code
uses, so the text cannot drift from them); a value given as an (English, Arabic) pair fills each
edition with its own half. Every other character is kept as written, LaTeX braces and the
`{x}` fields of sentences the module formats later included.

When the English of an entry changes, its Arabic is stale until revisited: `bnpaper i18n status`
lists it beside the chapters' stale twins, and `bnpaper i18n ok conv` (or `conv:conv-bias.statistic`)
records the review, as for chapters (bnpaper.i18n).
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

import yaml

from bnpaper.errors import ConfigError, MissingError, UnknownNameError

LANGS = ("en", "ar")
HASH_KEY = "en_sha"
FIELD = re.compile(r"@\{([a-z_][a-z0-9_]*)(?::([^{}]*))?\}")
EXPERIMENTS = Path(__file__).resolve().parent / "experiments"
HEADER = (
    "# The English and Arabic text of bnpaper/experiments/{module}.py: its claims, protocols and\n"
    "# conclusions (bnpaper.text). Edit the words here; @{{name}} and @{{name:spec}} are filled with the\n"
    "# numbers the code uses. en_sha is the English the Arabic was last written against\n"
    "# (`bnpaper i18n status` lists the stale ones, `bnpaper i18n ok {module}` records a review).\n"
)


def tuning_seed_fields(seeds: list[int], with_noun: bool = True) -> dict:
    """The fields a catalog entry names the tuning seeds by: n_tune, tune_first, tune_last, and
    (with_noun) n_tune_seeds, the count with its Arabic noun («10 بذور»; a pair: English has the
    number alone)."""
    from bnpaper.counting import counted

    n = len(seeds)
    fields = {"n_tune": n, "tune_first": seeds[0], "tune_last": seeds[-1]}
    return {**fields, "n_tune_seeds": (str(n), counted(n, "seed", "ar"))} if with_noun else fields


def text_hash(text: str) -> str:
    """8 hex digits of SHA-256 over the text with its whitespace runs collapsed (re-wrapping a
    paragraph does not make its translation stale; changing a word does). Chapters' twins use it too."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:8]


def _flatten(tree: dict, prefix: str = "") -> dict[str, dict]:
    out: dict[str, dict] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if not isinstance(v, dict):
            raise ConfigError(f"catalog entry {key!r}: expected a mapping with en and ar, got {v!r}")
        if "en" in v or "ar" in v:
            missing = [x for x in LANGS if not isinstance(v.get(x), str)]
            if missing:
                raise ConfigError(f"catalog entry {key!r}: no {' and no '.join(missing)} text")
            out[key] = v
        else:
            out.update(_flatten(v, key + "."))
    return out


def _nest(flat: dict[str, dict]) -> dict:
    tree: dict = {}
    for key, leaf in flat.items():
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = leaf
    return tree


def catalog_path(module: str) -> Path:
    return EXPERIMENTS / f"{module}.yml"


@functools.cache
def entries(module: str) -> dict[str, dict]:
    """key -> {"en", "ar", "en_sha"} of one experiment's catalog (module: "conv")."""
    path = catalog_path(module)
    if not path.is_file():
        raise MissingError(
            f"no text catalog {path.name} beside {module}.py: an experiment keeps its English and Arabic "
            f"words there (copy _template.yml to {path.name} to start one)"
        )
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    return _flatten(tree)


def write(module: str, flat: dict[str, dict]) -> None:
    """Write a catalog back (the header, then the entries nested, in the given order)."""
    body = yaml.safe_dump(_nest(flat), allow_unicode=True, sort_keys=False, width=100)
    catalog_path(module).write_text(HEADER.format(module=module) + body, encoding="utf-8")
    entries.cache_clear()


def fill(template: str, values: dict, lang: str, where: str) -> str:
    """The template with each @{name[:spec]} replaced by its value (a pair: this edition's half)."""
    missing = sorted({m.group(1) for m in FIELD.finditer(template)} - set(values))
    if missing:
        raise ConfigError(f"{where} ({lang}) needs the value(s) {', '.join(missing)}; got {sorted(values)}")

    def sub(m: re.Match) -> str:
        v = values[m.group(1)]
        if isinstance(v, tuple) and len(v) == 2:
            v = v[LANGS.index(lang)]
        return format(v, m.group(2) or "")

    return FIELD.sub(sub, template)


class Catalog:
    """One experiment's text: `T = Catalog("conv")`; `T("conv-bias.statistic", min_bias=MIN_BIAS)`
    gives the (English, Arabic) pair, `T.fields(key, "en", "ar")` the same as keyword arguments."""

    def __init__(self, module: str):
        self.module = module.rsplit(".", 1)[-1]
        self.used: set[str] = set()

    def __call__(self, key: str, **values) -> tuple[str, str]:
        table = entries(self.module)
        if key not in table:
            near = [k for k in table if k.split(".")[0] == key.split(".")[0]] or list(table)[:8]
            raise UnknownNameError(
                f"no entry {key!r} in {catalog_path(self.module).name}; entries like it: {', '.join(near)}"
            )
        self.used.add(key)
        entry = table[key]
        where = f"{self.module}.yml entry {key!r}"
        named = {m.group(1) for lang in LANGS for m in FIELD.finditer(entry[lang])}
        unused = sorted(set(values) - named)
        if unused:
            raise ConfigError(f"{where} has no field for the value(s) {', '.join(unused)}")
        en, ar = (fill(entry[lang], values, lang, where) for lang in LANGS)
        return en, ar

    def fields(self, key: str, en_name: str, ar_name: str, **values) -> dict[str, str]:
        en, ar = self(key, **values)
        return {en_name: en, ar_name: ar}


def stale(module: str) -> list[tuple[str, dict]]:
    """The entries of a catalog whose Arabic was written against another English (or never recorded)."""
    return [(k, e) for k, e in entries(module).items() if e.get(HASH_KEY) != text_hash(e["en"])]


def mark_reviewed(module: str, keys: list[str] | None = None) -> list[str]:
    """Record the current English hash in the named entries (all stale ones when keys is None)."""
    table = dict(entries(module))
    unknown = sorted(set(keys or ()) - set(table))
    if unknown:
        raise UnknownNameError(f"no entry {', '.join(unknown)} in {catalog_path(module).name}")
    changed = []
    for k, e in table.items():
        if (keys is None or k in keys) and e.get(HASH_KEY) != text_hash(e["en"]):
            table[k] = {**e, HASH_KEY: text_hash(e["en"])}
            changed.append(k)
    if changed:
        write(module, table)
    return changed


def catalogs() -> list[str]:
    """The experiments that keep their text in a catalog."""
    return sorted(p.stem for p in EXPERIMENTS.glob("*.yml"))
