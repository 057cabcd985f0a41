"""`bnpaper run`: settings parsed and checked before anything trains, arms paired by seed, intervals."""

import json

import pytest

from bnpaper import cli, sweep


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path):
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path / "cache"))


def test_values_parse_by_the_fields_type():
    got = sweep.parse_settings(
        ["norm=layer", "steps=30", "lr=0.5", "bn=false", "hidden=16,8", "bn_momentum=none"]
    )
    assert got == {
        "norm": "layer",
        "steps": 30,
        "lr": 0.5,
        "bn": False,
        "hidden": [16, 8],
        "bn_momentum": None,
    }


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "mlp", "--set", "nrm=layer"], "unknown key 'nrm'; valid keys: activation, batch_size"),
        (["run", "mlp", "--set", "steps=many"], "steps='many': expected int"),
        (["run", "mlp", "--set", "norm=weight"], "norm must be one of batch, none, layer"),
        (["run", "mlp", "--set", "steps"], "--set takes key=value"),
        (["run", "resnet"], "unknown experiment 'resnet'; choose one of mlp, convnet, inception"),
        (["run", "mlp", "--compare", "norm=layer"], "--compare takes key=a,b"),
        (["run", "mlp", "--compare", "norm=a,b,c"], "exactly two values"),
        (["run", "mlp", "--seeds", "0"], "--seeds must be between 1 and 1000"),
        (["run", "mlp", "--set", "ghost_batches=7"], "does not split into 7 equal ghost batches"),
    ],
)
def test_bad_input_is_named_before_anything_trains(argv, message, capsys, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("trained before checking")

    monkeypatch.setattr("bnpaper.engine.trained_many", no_training)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_compare_prints_arms_and_the_paired_difference(tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = ["run", "mlp", "--set", "steps=10", "hidden=8", "eval_every=5", "--seeds", "3"]
    assert cli.main(argv + ["--compare", "norm=batch,layer", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert (
        "norm=batch" in text
        and "norm=layer" in text
        and "paired difference, norm=layer minus norm=batch" in text
    )
    res = json.loads(out.read_text())
    a, b = res["arms"]["norm=batch"], res["arms"]["norm=layer"]
    assert a["val"]["n"] == 3 and len(a["final_val_acc"]) == 3 and a["config"]["norm"] == "batch"
    diffs = [y - x for x, y in zip(a["final_val_acc"], b["final_val_acc"])]
    assert res["difference"]["val"]["value"] == pytest.approx(sum(diffs) / 3)
    lo, hi = res["difference"]["val"]["lo"], res["difference"]["val"]["hi"]
    assert lo <= res["difference"]["val"]["value"] <= hi
    # the same command again retrains nothing: the store answers
    assert cli.main(argv + ["--compare", "norm=batch,layer", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["arms"]["norm=layer"]["final_val_acc"] == b["final_val_acc"]
