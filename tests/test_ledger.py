"""The claims ledger: verdicts come from recorded measurements under the claim's current protocol;
a missing, stale or unreadable one is "not run", never a pass."""

import json

import pytest

from bnpaper import ledger, plotting


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("BNPAPER_LEDGER", str(tmp_path))
    return tmp_path


def acc(bn, no_bn):
    """A Figure 1 measurement with per-seed final test accuracies."""
    return {"bn": {"final_test_acc": bn}, "no_bn": {"final_test_acc": no_bn}}


HIGHER = acc([0.95 + 0.001 * i for i in range(10)], [0.93 + 0.0012 * i for i in range(10)])
LOWER = acc([0.90 + 0.001 * i for i in range(10)], [0.93 + 0.0012 * i for i in range(10)])
NOISY = acc([0.95, 0.90] * 5, [0.92, 0.93] * 5)


def test_missing_results_show_as_not_run_never_as_a_pass(folder):
    rows = ledger.rows("quick")
    assert len(rows) == len(ledger.claims()) > 15
    for r in rows:
        expected = "not_testable" if r["claim"].protocol is None else "not_run"
        assert r["verdict"] == expected and r["record"] is None


@pytest.mark.parametrize("m, verdict", [(HIGHER, "holds"), (LOWER, "does_not_hold"), (NOISY, "inconclusive")])
def test_recorded_measurement_gets_its_verdict(folder, m, verdict):
    ledger.record("fig1-accuracy", m, profile="quick", n=10)
    by_id = {r["claim"].id: r for r in ledger.rows("quick")}
    assert by_id["fig1-accuracy"]["verdict"] == verdict
    assert by_id["fig1-accuracy"]["estimate"].n == 10
    assert by_id["fig1-stable-inputs"]["verdict"] == "not_run"
    assert ledger.rows("paper")[0]["verdict"] in ("not_run", "not_testable")  # profiles are separate
    other = {r["claim"].id: r for r in ledger.rows("quick", data_dir="/some/mnist")}
    assert other["fig1-accuracy"]["verdict"] == "not_run"


def test_too_few_runs_are_inconclusive_in_quick(folder):
    few = acc([0.95, 0.951, 0.952], [0.90, 0.901, 0.9])
    ledger.record("fig1-accuracy", few, profile="quick", n=3)
    ledger.record("fig1-accuracy", few, profile="smoke", n=3)
    assert {r["claim"].id: r for r in ledger.rows("quick")}["fig1-accuracy"]["verdict"] == "inconclusive"
    assert {r["claim"].id: r for r in ledger.rows("smoke")}["fig1-accuracy"]["verdict"] == "holds"


def test_a_record_under_an_older_protocol_is_not_run(folder):
    path = ledger.record("fig1-accuracy", HIGHER, profile="quick", n=10)
    rec = json.loads(path.read_text())
    rec["protocol_version"] = rec["protocol_version"] - 1
    path.write_text(json.dumps(rec))
    row = {r["claim"].id: r for r in ledger.rows("quick")}["fig1-accuracy"]
    assert row["verdict"] == "not_run" and "protocol v1" in row["problem"]


def test_corrupt_record_is_not_a_pass(folder):
    path = ledger.record("fig1-accuracy", HIGHER, profile="quick")
    path.write_text("{ broken")
    row = {r["claim"].id: r for r in ledger.rows("quick")}["fig1-accuracy"]
    assert row["verdict"] == "not_run" and "unreadable" in row["problem"]
    path.write_text(json.dumps({"protocol_version": 2, "measurement": {"wrong": 1}}))
    assert {r["claim"].id: r for r in ledger.rows("quick")}["fig1-accuracy"]["verdict"] == "not_run"


def test_records_hash_changes_with_records(folder):
    h0 = ledger.records_hash("quick")
    ledger.record("fig1-accuracy", HIGHER, profile="quick")
    assert ledger.records_hash("quick") != h0
    with pytest.raises(KeyError, match="unknown claim"):
        ledger.record("nope", {}, profile="quick")
    with pytest.raises(ValueError, match="not testable"):
        ledger.record("ensemble-imagenet", {}, profile="quick")


def test_every_claim_points_at_a_labelled_section_and_has_a_bilingual_protocol():
    from bnpaper.book.chapters import chapters

    chs = chapters()
    for c in ledger.claims():
        assert c.chapter in chs, c.id
        assert f"({c.label})=" in chs[c.chapter].source_text, (
            f"{c.id}: label {c.label} missing in {c.chapter}"
        )
        if c.protocol is not None:
            p = c.protocol
            for name in ("arms", "tuned", "statistic"):
                en, ar = getattr(p, name)
                assert en and ar and en != ar, f"{c.id}: protocol {name} needs English and Arabic"
            if p.version > 1:
                assert p.changes[0] and p.changes[1], f"{c.id}: v{p.version} must say what changed"
            assert plotting.label("interval_" + p.interval.replace(" ", "_"), "ar")


def test_recording_the_same_measurement_again_changes_nothing(folder):
    """The other edition records the same numbers: the ledger page must not re-execute for that."""
    path = ledger.record("fig1-accuracy", HIGHER, profile="quick", n=10)
    h, stamp = ledger.records_hash("quick"), path.read_text()
    ledger.record("fig1-accuracy", json.loads(json.dumps(HIGHER)), profile="quick", n=10)
    assert ledger.records_hash("quick") == h and path.read_text() == stamp
    ledger.record("fig1-accuracy", LOWER, profile="quick", n=10)
    assert ledger.records_hash("quick") != h
