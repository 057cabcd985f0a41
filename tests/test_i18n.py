"""Arabic twins record the hash of their English twin; an English edit without an Arabic review
makes the twin stale, and the test names it (bnpaper.i18n)."""

import shutil

import pytest

from bnpaper import i18n
from bnpaper.book.chapters import NOTEBOOKS, ChapterError, chapters, split
from bnpaper.cli import main


def test_no_arabic_twin_is_stale():
    stale = [t.describe() for ts in i18n.status().values() for t in ts]
    assert not stale, (
        "Arabic twins whose English changed since they were translated or reviewed (revise the Arabic, "
        "then run `bnpaper i18n ok CELL`):\n" + "\n".join(stale)
    )


def test_every_chapter_has_prose_and_caption_twins():
    all_twins = [t for ch in chapters().values() for t in i18n.twins(ch)]
    assert {t.kind for t in all_twins} == {"prose", "caption"}
    assert all(t.recorded is not None for t in all_twins)


@pytest.fixture
def sources(tmp_path):
    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, folder)
    return folder


def test_an_english_edit_makes_exactly_its_twin_stale_until_reviewed(sources):
    path = sources / "02_conv.md"
    text = path.read_text(encoding="utf-8")
    ch = chapters(sources)["02_conv"]
    prose = [t for t in i18n.twins(ch) if t.kind == "prose"]
    target = prose[2]
    sentence = target.en.split(". ")[0]
    assert text.count(sentence) == 1
    path.write_text(text.replace(sentence, sentence + " (edited)"), encoding="utf-8")
    stale = i18n.status(["02_conv"], sources)["02_conv"]
    assert [t.number for t in stale] == [target.number] and stale[0].kind == "prose"

    # re-wrapping a paragraph changes no word: not stale
    path.write_text(text.replace(sentence, sentence.replace(" ", "\n", 1)), encoding="utf-8")
    assert i18n.status(["02_conv"], sources)["02_conv"] == []

    path.write_text(text.replace(sentence, sentence + " (edited)"), encoding="utf-8")
    done = i18n.mark_reviewed([f"02_conv:{target.number}"], sources)
    assert [t.number for t in done] == [target.number]
    assert i18n.status(["02_conv"], sources)["02_conv"] == []
    after = path.read_text(encoding="utf-8")
    changed = [(a, b) for a, b in zip(text.splitlines(), after.splitlines()) if a != b]
    assert len(changed) == 2  # the edited English line and its twin's marker line
    new_en = target.en.replace(sentence, sentence + " (edited)", 1)
    assert changed[1][1] == f'+++ {{"lang": "ar", "en_sha": "{i18n.text_hash(new_en)}"}}'


def test_a_caption_edit_is_caught_and_recorded_in_place(sources):
    path = sources / "07_figure1.md"
    text = path.read_text(encoding="utf-8")
    ch = chapters(sources)["07_figure1"]
    cap = next(t for t in i18n.twins(ch) if t.kind == "caption")
    assert text.count(cap.en) == 1
    path.write_text(text.replace(cap.en, cap.en + " More."), encoding="utf-8")
    assert [t.cell for t in i18n.status(["07_figure1"], sources)["07_figure1"]] == [cap.cell]
    i18n.mark_reviewed(["07_figure1"], sources)  # the whole chapter: only the stale one changes
    after = path.read_text(encoding="utf-8")
    assert after.count(":caption_ar_sha:") == text.count(":caption_ar_sha:")  # replaced, not added
    assert f':caption_ar_sha: "{i18n.text_hash(cap.en + " More.")}"' in after
    assert i18n.status(["07_figure1"], sources)["07_figure1"] == []


def test_bad_cells_are_refused_with_the_valid_range(sources):
    n = len(i18n.twins(chapters(sources)["00_intro"]))
    with pytest.raises(ChapterError, match=f"00_intro has twins 1..{n}, got 99"):
        i18n.mark_reviewed(["00_intro:99"], sources)
    with pytest.raises(ChapterError, match="CHAPTER:N with N a number"):
        i18n.mark_reviewed(["00_intro:x"], sources)
    with pytest.raises(ChapterError, match="unknown chapter"):
        i18n.status(["99_nothing"], sources)


def test_the_records_do_not_reach_the_executed_notebooks():
    for ch in chapters().values():
        for lang in ("en", "ar"):
            for cell in split(ch, lang).cells:
                assert i18n.SHA_KEY not in cell.metadata and i18n.CAPTION_SHA_KEY not in cell.metadata


def test_cli(capsys):
    assert main(["i18n", "status"]) == 0
    assert "0 stale twin(s)" in capsys.readouterr().out
    assert main(["i18n", "ok", "00_intro:0"]) == 2
    assert "00_intro has twins 1.." in capsys.readouterr().err


@pytest.mark.parametrize(
    "n,expected",
    [
        (0, "0 بذرة"),
        (1, "بذرة واحدة"),
        (2, "بذرتين"),
        (3, "3 بذور"),
        (10, "10 بذور"),
        (11, "11 بذرةً"),
        (99, "99 بذرةً"),
        (100, "100 بذرة"),
        (102, "102 بذرة"),
        (103, "103 بذور"),
        (111, "111 بذرةً"),
        (1000, "1,000 بذرة"),
    ],
)
def test_counted_nouns_agree_on_both_sides_of_each_boundary(n, expected):
    from bnpaper.i18n import counted

    assert counted(n, "seed", "ar") == expected


def test_counted_in_english_and_errors():
    from bnpaper.i18n import counted

    assert counted(1, "step", "en") == "1 step" and counted(1500, "step", "en") == "1,500 steps"
    with pytest.raises(KeyError, match="known: claim"):
        counted(3, "apple", "ar")
    with pytest.raises(ValueError, match=">= 0"):
        counted(-1, "seed", "ar")
