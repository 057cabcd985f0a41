"""The claims ledger: verdicts come from recorded measurements; a missing one is "not run"."""

import json

import pytest

from bnpaper import ledger


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("BNPAPER_LEDGER", str(tmp_path))
    return tmp_path


def test_missing_results_show_as_not_run_never_as_a_pass(folder):
    rows = ledger.rows("quick")
    assert len(rows) == len(ledger.CLAIMS)
    for r in rows:
        expected = "not_testable" if r["claim"].rule is None else "not_run"
        assert r["verdict"] == expected and r["record"] is None


def test_recorded_measurement_gets_its_verdict(folder):
    ledger.record(
        "conv-bias",
        {"max_output_diff": 1e-16, "max_abs_grad_bias": 2e-15, "max_abs_bias": 9.0},
        profile="quick",
        n=1,
    )
    ledger.record("fig1-stable-inputs", {"bn": (0.9, 0.1), "no_bn": (1.0, 0.1), "n": 3}, profile="quick", n=3)
    by_id = {r["claim"].id: r for r in ledger.rows("quick")}
    assert by_id["conv-bias"]["verdict"] == "holds"
    assert by_id["fig1-stable-inputs"]["verdict"] == "partly"  # lower drift with BN, but not by half
    assert by_id["conv-fold"]["verdict"] == "not_run"
    assert ledger.rows("paper")[0]["verdict"] == "not_run"  # another profile's records are separate
    assert {r["claim"].id: r for r in ledger.rows("quick", data_dir="/some/mnist")}["conv-bias"][
        "verdict"
    ] == "not_run"


def test_a_failing_measurement_does_not_hold(folder):
    ledger.record(
        "conv-bias",
        {"max_output_diff": 0.3, "max_abs_grad_bias": 2e-15, "max_abs_bias": 9.0},
        profile="quick",
        n=1,
    )
    ledger.record(
        "higher-learning-rates",
        {
            "lr_bn": {"mlp": 1.0, "convnet": 0.3},
            "lr_no_bn": {"mlp": 1.0, "convnet": 0.1},
            "ratios": {"mlp": 1.0, "convnet": 3.0},
        },
        profile="quick",
        n=3,
    )
    by_id = {r["claim"].id: r for r in ledger.rows("quick")}
    assert by_id["conv-bias"]["verdict"] == "does_not_hold"
    assert by_id["higher-learning-rates"]["verdict"] == "partly"
    assert "mlp: 1.0 → 1.0" in by_id["higher-learning-rates"]["measured"]


def test_corrupt_record_is_not_a_pass(folder):
    path = ledger.record(
        "conv-bias", {"max_output_diff": 0.0, "max_abs_grad_bias": 0.0, "max_abs_bias": 1.0}, profile="quick"
    )
    path.write_text("{ broken")
    row = {r["claim"].id: r for r in ledger.rows("quick")}["conv-bias"]
    assert row["verdict"] == "not_run" and "unreadable" in row["measured"]
    path.write_text(json.dumps({"measurement": {"wrong": 1}}))
    assert {r["claim"].id: r for r in ledger.rows("quick")}["conv-bias"]["verdict"] == "not_run"


def test_records_hash_changes_with_records(folder):
    h0 = ledger.records_hash("quick")
    ledger.record(
        "conv-bias", {"max_output_diff": 0.0, "max_abs_grad_bias": 0.0, "max_abs_bias": 1.0}, profile="quick"
    )
    assert ledger.records_hash("quick") != h0
    with pytest.raises(KeyError, match="unknown claim"):
        ledger.record("nope", {}, profile="quick")


def test_every_claim_points_at_a_labelled_section():
    from bnpaper.book.chapters import chapters

    chs = chapters()
    for c in ledger.CLAIMS:
        assert c.chapter in chs, c.id
        if c.rule is not None:
            assert f"({c.label})=" in chs[c.chapter].source_text, (
                f"{c.id}: label {c.label} missing in {c.chapter}"
            )


def test_recording_the_same_measurement_again_changes_nothing(folder):
    """The other edition records the same numbers: the ledger page must not re-execute for that."""
    m = {"max_output_diff": 0.0, "max_abs_grad_bias": 0.0, "max_abs_bias": 1.0}
    path = ledger.record("conv-bias", m, profile="quick", n=1)
    h, stamp = ledger.records_hash("quick"), path.read_text()
    ledger.record("conv-bias", dict(m), profile="quick", n=1)
    assert ledger.records_hash("quick") == h and path.read_text() == stamp
    ledger.record("conv-bias", {**m, "max_abs_bias": 2.0}, profile="quick", n=1)
    assert ledger.records_hash("quick") != h
