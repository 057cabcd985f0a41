"""The experiments' bilingual text lives in catalogs beside their modules (bnpaper.text): no Arabic
in their Python, every entry used, fields filled from the code's values, stale Arabic caught."""

import importlib
import re

import pytest

from bnpaper import i18n, protocol, text
from bnpaper.errors import ConfigError, UnknownNameError
from bnpaper.experiments import names

ARABIC = re.compile("[\u0600-\u06ff]")


@pytest.mark.parametrize("name", [*names(), "_template"])
def test_an_experiment_keeps_its_words_in_its_catalog_and_uses_every_entry(name):
    path = text.EXPERIMENTS / f"{name}.py"
    source = path.read_text(encoding="utf-8")
    assert not ARABIC.findall(source), f"{path.name} has Arabic text: move it to {name}.yml"
    if name not in text.catalogs():
        assert "Catalog(" not in source
        return
    mod = importlib.import_module(f"bnpaper.experiments.{name}")
    unused = set(text.entries(name)) - mod.T.used
    assert not unused, f"{name}.yml entries no code uses (remove them, or use them): {sorted(unused)}"


def test_every_claims_words_come_from_a_catalog():
    """Each testable claim's sentence and protocol text are catalog entries, filled (no @{...} left)."""
    from bnpaper import ledger

    claims = ledger.claims()
    assert len(claims) > 30
    for c in claims:
        fields = [c.en, c.ar]
        if c.protocol:
            fields += [*c.protocol.arms, *c.protocol.tuned, *c.protocol.statistic, *c.protocol.changes]
        for f in fields:
            assert f and "@{" not in f, (c.id, f)


@pytest.fixture
def catalog(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "EXPERIMENTS", tmp_path)
    text.entries.cache_clear()
    flat = {
        "demo.statistic": {
            "en": r"worst case below @{bound:g} over @{seeds} seeds, $\mathrm{BN}$ and {x}",
            "ar": r"أسوأ حالة دون @{bound:g} عبر @{seeds} في $\mathrm{BN}$ و{x}",
        },
        "demo.claim": {"en": "BN helps.", "ar": "يساعد تطبيع الحزمة."},
    }
    text.write("demo", {k: {**v, "en_sha": text.text_hash(v["en"])} for k, v in flat.items()})
    yield text.Catalog("bnpaper.experiments.demo")
    text.entries.cache_clear()


def test_fields_are_filled_from_values_and_pairs_give_each_edition_its_half(catalog):
    en, ar = catalog("demo.statistic", bound=1e-10, seeds=("10", "10 بذور"))
    assert en == r"worst case below 1e-10 over 10 seeds, $\mathrm{BN}$ and {x}"
    assert ar == r"أسوأ حالة دون 1e-10 عبر 10 بذور في $\mathrm{BN}$ و{x}"  # LaTeX and {x} as written
    assert catalog.fields("demo.claim", "en", "ar") == {"en": "BN helps.", "ar": "يساعد تطبيع الحزمة."}
    assert catalog.used == {"demo.statistic", "demo.claim"}


def test_a_missing_an_unused_or_an_unknown_name_is_refused_with_what_was_expected(catalog):
    with pytest.raises(ConfigError, match=r"'demo.statistic' \(en\) needs the value\(s\) seeds"):
        catalog("demo.statistic", bound=1.0)
    with pytest.raises(ConfigError, match="has no field for the value.s. margin"):
        catalog("demo.statistic", bound=1.0, seeds=3, margin=2)
    with pytest.raises(UnknownNameError, match="no entry 'demo.arms'.*demo.statistic"):
        catalog("demo.arms")


def test_a_catalog_without_both_editions_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "EXPERIMENTS", tmp_path)
    text.entries.cache_clear()
    (tmp_path / "bad.yml").write_text("demo:\n  claim:\n    en: BN helps.\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'demo.claim': no ar text"):
        text.entries("bad")
    text.entries.cache_clear()


def test_an_english_edit_makes_its_catalog_entry_stale_until_reviewed(catalog, monkeypatch):
    assert text.stale("demo") == []
    path = text.EXPERIMENTS / "demo.yml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("BN helps.", "BN helps a lot."), encoding="utf-8"
    )
    text.entries.cache_clear()
    assert [k for k, _ in text.stale("demo")] == ["demo.claim"]
    monkeypatch.setattr(i18n, "chapters", lambda *a: {})  # the catalogs alone
    listed = i18n.status(["demo"])["demo"]
    assert [(t.cell, t.key) for t in listed] == [("demo:2", "demo.claim")]
    changed = i18n.mark_reviewed(["demo:2"])
    assert [t.key for t in changed] == ["demo.claim"] and text.stale("demo") == []
    assert "@{bound:g}" in path.read_text(encoding="utf-8")  # the rewrite keeps every entry as it was


def test_the_catalogs_reproduce_the_locked_protocols_byte_for_byte():
    """Moving the words out of the code changed no digest: every locked protocol still matches."""
    from bnpaper import ledger, prereg

    assert prereg.differences(ledger.owned(), prereg.read_lock()) == {}
    assert protocol.digest  # the digest covers every text field (bnpaper.protocol.digest)


def test_a_module_without_its_catalog_says_which_file_to_create(tmp_path, monkeypatch):
    from bnpaper.errors import MissingError

    monkeypatch.setattr(text, "EXPERIMENTS", tmp_path)
    text.entries.cache_clear()
    with pytest.raises(
        MissingError, match="no text catalog my_claim.yml beside my_claim.py.*copy _template.yml"
    ):
        text.Catalog("bnpaper.experiments.my_claim")("x.claim")
    text.entries.cache_clear()
