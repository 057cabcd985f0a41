"""Tuning (bnpaper.tuning): each arm on its own grid, validation only, tuning seeds apart from the
evaluation seeds; frozen choices carry their provenance; bad inputs stop the book before it starts."""

import json
from dataclasses import replace

import pytest

from bnpaper import profiles, tuning
from bnpaper.book import pipeline
from bnpaper.train import TrainConfig

TINY = TrainConfig(model="mlp", hidden=[16], steps=30, eval_every=15, batch_size=30, final_train_acc=False)


def base(profile, seed):
    return replace(TINY, seed=seed)


T = tuning.Tuning("test/mlp", "lr", (1e-4, 0.1, 1e4), base)


@pytest.fixture
def frozen(tmp_path, monkeypatch):
    path = tmp_path / "tuned.json"
    monkeypatch.setattr(tuning, "frozen_path", lambda profile="quick": path)
    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    return path


def test_tune_picks_the_best_validation_score_on_tuning_seeds_only(frozen):
    e = tuning.tune(T, "smoke")
    assert e["value"] == 0.1  # 1e-4 barely moves, 1e4 blows up (diverged: 0, or stuck at chance)
    assert e["scores"][repr(1e4)] <= 0.15 and e["scores"][repr(0.1)] > e["scores"][repr(1e-4)]
    assert e["tuning_seeds"] == profiles.tuning_seeds("smoke")
    assert not set(e["tuning_seeds"]) & set(profiles.eval_seeds("quick"))
    assert {"source", "date", "data", "command", "grid", "steps"} <= set(e)
    assert not e["at_grid_edge"]


def test_tie_goes_to_the_smaller_value(frozen, monkeypatch):
    from bnpaper import engine

    fake = [(None, {"diverged": False, "final_val_acc": 0.5})] * 3
    monkeypatch.setattr(engine, "trained_many", lambda cfgs, desc="": fake[: len(cfgs)])
    e = tuning.tune(T, "smoke")
    assert e["value"] == 1e-4 and e["at_grid_edge"]


def test_frozen_values_are_read_and_checked(frozen):
    with pytest.raises(KeyError, match="bnpaper tune --profile quick --only test/mlp"):
        tuning.tuned(T, "quick")
    entry = {"field": "lr", "grid": [1e-4, 0.1, 1e4], "value": 0.1, "steps": TINY.steps}
    frozen.write_text(json.dumps({"test/mlp": entry}))
    assert tuning.tuned(T, "quick")["value"] == 0.1
    assert tuning.tuned(T, "smoke")["value"] == 0.1  # smoke reads the quick profile's choices
    frozen.write_text(json.dumps({"test/mlp": {**entry, "steps": TINY.steps + 1}}))
    with pytest.raises(ValueError, match="runs of 31 steps, but the quick profile now trains 30"):
        tuning.tuned(T, "quick")  # a stale run length is refused, not silently used
    frozen.write_text(json.dumps({"test/mlp": entry}))
    other = tuning.Tuning("test/mlp", "lr", (0.01, 0.1), base)
    with pytest.raises(ValueError, match="protocol now tunes"):
        tuning.tuned(other, "quick")
    frozen.write_text("{ not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        tuning.read_frozen()


def test_tuning_grid_must_increase():
    with pytest.raises(ValueError, match="increasing"):
        tuning.Tuning("x", "lr", (0.1, 0.01), base)


def test_every_declared_tuning_is_frozen_in_the_repository():
    reg = tuning.registry()
    frozen = tuning.read_frozen()
    assert reg, "the experiments declare their tunings"
    for key, t in reg.items():
        assert key in frozen, f"{key}: run `bnpaper tune --only {key}`"
        assert [float(v) for v in frozen[key]["grid"]] == [float(v) for v in t.grid], key
        assert frozen[key]["tuning_seeds"] == profiles.tuning_seeds("quick"), key
    assert tuning.missing("quick") == []  # none stale either (the grid, the field, the run length)


def test_bad_data_dir_stops_the_book_before_any_chapter(tmp_path):
    with pytest.raises(pipeline.ChapterError, match="data_dir"):
        pipeline.check_inputs(str(tmp_path / "missing"), "quick")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"junk")
    with pytest.raises(pipeline.ChapterError, match="data_dir"):
        pipeline.check_inputs(str(tmp_path), "quick")


def test_missing_frozen_tuning_stops_the_book(frozen):
    frozen.write_text("{}")
    with pytest.raises(pipeline.ChapterError, match="bnpaper tune --profile quick --only"):
        pipeline.check_inputs("", "quick")


def test_each_profile_reads_its_own_frozen_file():
    assert tuning.frozen_path("smoke") == tuning.frozen_path("quick")
    assert tuning.frozen_path("paper").name == "tuned-paper.json" != tuning.frozen_path("quick").name
    with pytest.raises(ValueError, match="profile must be one of"):
        tuning.frozen_profile("fast")


def test_paper_build_without_paper_tunings_stops_before_any_chapter(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "frozen_path", lambda profile="quick": tmp_path / f"{profile}.json")
    with pytest.raises(pipeline.ChapterError, match="bnpaper tune --profile paper --only .*make paper"):
        pipeline.check_inputs("", "paper")


def test_execute_checks_the_chapters_own_profile(tmp_path, monkeypatch):
    """`bnpaper execute CH -p profile P` checks P's frozen tunings before the kernel starts: the
    paper's missing file stops a paper run, and does not stop a smoke run."""
    monkeypatch.setattr(tuning, "frozen_path", lambda profile="quick": tmp_path / f"{profile}.json")
    ran = []
    monkeypatch.setattr(pipeline, "execute", lambda *a, **k: ran.append(a[2]) or tmp_path / "out.ipynb")
    with pytest.raises(pipeline.ChapterError, match="tune --profile paper"):
        pipeline.execute_one("06", raw_params=[("profile", "paper")], build_dir=tmp_path)
    assert ran == []
    with pytest.raises(pipeline.ChapterError, match="tune --profile quick"):  # smoke reads quick's file
        pipeline.execute_one("06", raw_params=[("profile", "smoke")], build_dir=tmp_path)
    monkeypatch.setattr(tuning, "missing", lambda profile: [])
    pipeline.execute_one("06", raw_params=[("profile", "smoke")], build_dir=tmp_path)
    assert ran and ran[0]["profile"] == "smoke"


def test_retuning_keeps_what_it_replaces(frozen, monkeypatch):
    """Issue 25: the frozen file is append-only. Re-tuning an entry keeps the one it replaces (and
    that one's history) under "history", newest first; other entries are untouched."""
    picks = iter([0.1, 1e-4, 1e4])
    monkeypatch.setattr(tuning, "registry", lambda: {T.key: T})
    monkeypatch.setattr(tuning, "tune", lambda t, p, d="", dev="cpu": {"key": t.key, "value": next(picks)})
    frozen.write_text(json.dumps({"other/arm": {"value": 3.0}}))
    tuning.freeze([T.key])
    first = json.loads(frozen.read_text())
    assert first[T.key] == {"key": T.key, "value": 0.1} and first["other/arm"] == {"value": 3.0}
    tuning.freeze([T.key])
    tuning.freeze([T.key])
    entry = json.loads(frozen.read_text())[T.key]
    assert entry["value"] == 1e4
    assert [h["value"] for h in entry["history"]] == [1e-4, 0.1]
    assert all("history" not in h for h in entry["history"])  # flat: one list, newest first


def test_an_arm_that_trains_nowhere_on_its_grid_is_not_called_tuned():
    """Twice chance is the line: an arm whose best mean validation accuracy stays below it shows
    "does not train within N steps" in every edition, not a tuned value."""
    from bnpaper import claims_view
    from bnpaper.tuning import TRAINS, trains_on_grid

    entry = {"value": 0.01, "grid": [0.01, 0.02, 0.04], "steps": 600, "scores": {"0.01": 0.11, "0.02": 0.1}}
    assert not trains_on_grid(entry)
    assert (
        claims_view.tuned_value_text(entry, "en") == "none: no rate from 0.01 to 0.04 trains within 600 steps"
    )
    assert "لا معدل" in claims_view.tuned_value_text(entry, "ar")
    entry["scores"]["0.04"] = TRAINS  # at the line: it trains
    assert trains_on_grid(entry) and claims_view.tuned_value_text(entry, "en") == "0.01"
