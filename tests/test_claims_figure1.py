"""Figure 1's claims (bnpaper.experiments.figure1): the measurements and the protocol's verdicts on
synthetic numbers, each verdict reachable, both sides of each boundary."""

import math

import numpy as np
import pytest

from bnpaper.experiments import figure1 as f1

BY_ID = {c.id: c for c in f1.CLAIMS}


def judge(cid, m, profile="quick"):
    return BY_ID[cid].judge(m, profile)


def seeds(base, step=0.001, n=10):
    return [base + step * i for i in range(n)]


@pytest.mark.parametrize(
    "bn, no_bn, verdict",
    [
        (seeds(0.95), seeds(0.93, 0.0012), "holds"),
        (seeds(0.90), seeds(0.93, 0.0012), "does_not_hold"),
        ([0.95, 0.90] * 5, [0.92, 0.93] * 5, "inconclusive"),
        (seeds(0.93, 0.0012), seeds(0.93, 0.0012), "does_not_hold"),  # identical: [0, 0] is below d = 0.005
        (
            [0.9302, 0.9312, 0.9322] * 3 + [0.9302],
            [0.93, 0.931, 0.932] * 3 + [0.93],
            "does_not_hold",
        ),  # +0.0002
        ([0.9362, 0.9352, 0.9372] * 3 + [0.9362], [0.93, 0.931, 0.932] * 3 + [0.93], "holds"),  # +0.0052
    ],
)
def test_accuracy_claim(bn, no_bn, verdict):
    m = {"bn": {"final_test_acc": bn}, "no_bn": {"final_test_acc": no_bn}}
    assert judge("fig1-accuracy", m)[0] == verdict


def _steps(bn, no_bn):
    t = f1.TARGETS[-1]
    return {"eval_every": 250, "steps": 5000, "bn": {f"steps_to_{t}": bn}, "no_bn": {f"steps_to_{t}": no_bn}}


def test_faster_claim_counts_runs_that_never_reach_the_target():
    v, e = judge("fig1-faster", _steps([500.0] * 10, [2000.0] * 10))
    assert v == "holds" and e.value == 4.0 and e.note["reached"] == {"no_bn": 10, "bn": 10}
    v, e = judge("fig1-faster", _steps([500.0] * 10, [math.inf] * 10))  # no BN never gets there
    assert v == "holds" and e.note["reached"]["no_bn"] == 0 and e.lo == 5000 / 500  # at least 10x
    assert judge("fig1-faster", _steps([2000.0] * 10, [500.0] * 10))[0] == "does_not_hold"
    # one evaluation apart: the resolution (250 steps) keeps it from clearing 1, and 1.5 < 750 / 250
    assert judge("fig1-faster", _steps([500.0] * 10, [750.0] * 10))[0] == "inconclusive"
    assert judge("fig1-faster", _steps([math.inf] * 10, [math.inf] * 10))[0] == "inconclusive"
    # BN never gets there, no BN does at 1,000: the ratio is at most 1000 / 5000: does not hold
    assert judge("fig1-faster", _steps([math.inf] * 10, [1000.0] * 10))[0] == "does_not_hold"


@pytest.mark.parametrize(
    "no_bn, bn, verdict",
    [
        (seeds(1.0, 0.01), seeds(0.2, 0.002), "holds"),  # 5x less drift with BN
        (seeds(1.0, 0.01), seeds(0.8, 0.008), "does_not_hold"),  # 1.25x: below the margin of 2
        (seeds(1.0, 0.01), [0.3, 0.9] * 5, "inconclusive"),
    ],
)
def test_drift_claim(no_bn, bn, verdict):
    assert judge("fig1-stable-inputs", {"no_bn": {"drift": no_bn}, "bn": {"drift": bn}})[0] == verdict


def test_init_claim_and_ranges_count_a_diverged_run_as_chance():
    sweep = {
        "no_bn": {"0.01": [0.11] * 10, "0.1": [0.9] * 10, "1.0": [None] * 10},
        "bn": {"0.01": [0.9] * 10, "0.1": [0.91] * 10, "1.0": [0.905] * 10},
    }
    r = f1.init_ranges(sweep)
    assert r["no_bn"] == pytest.approx([0.8] * 10) and r["bn"] == pytest.approx([0.01] * 10)
    assert (
        judge("init-insensitive", {"no_bn": [0.8 + 0.01 * i for i in range(10)], "bn": seeds(0.01)})[0]
        == "holds"
    )
    assert judge("init-insensitive", {"no_bn": seeds(0.01), "bn": seeds(0.3)})[0] == "does_not_hold"
    assert judge("init-insensitive", {"no_bn": [0.1, 0.0] * 5, "bn": [0.0, 0.1] * 5})[0] == "inconclusive"


def test_drift_excludes_the_warm_up():
    steps, T, U = 1000, 50, 4
    track = list(np.linspace(20, steps, T).astype(int))
    p = np.zeros((T, U, 3))
    p[:, :, 0], p[:, :, 2] = -1.0, 1.0  # spread 2
    early = np.asarray(track) <= f1.WARMUP * steps
    p[early, :, 1] = 5.0  # the median jumps only during the warm-up
    d = f1.drift(p.tolist(), track, steps, windows=4)["median_range"]
    assert d.shape == (4, U) and np.all(d == 0.0)
    p[-1, :, 1] = 1.0  # a move after the warm-up, of half the spread, in the last window
    d = f1.drift(p.tolist(), track, steps, windows=4)["median_range"]
    assert np.allclose(d[-1], 0.5) and np.all(d[:-1] == 0.0)
    with pytest.raises(ValueError, match="after the warm-up"):
        f1.drift(p[:3].tolist(), track[:3], steps, windows=4)


def test_steps_to_and_epoch_matched_step():
    r = {"eval_steps": [250, 500, 750], "val_acc": [0.5, 0.91, 0.95]}
    assert f1.steps_to(r, 0.9) == 500.0 and f1.steps_to(r, 0.99) == math.inf
    assert f1.epoch_matched_step(5000, 250, 3000) == 2500  # 50 epochs of 3,000 digits in batches of 60
    assert f1.epoch_matched_step(1000, 250, 3000) == 1000  # capped at the run's length
    assert f1.epoch_matched_step(50000, 1000, 50000) == 42000  # full MNIST: 41,667 rounded to an evaluation


@pytest.mark.parametrize(
    "windows, shape",
    [
        ([[0.6, 0.2, 0.1, 0.05], [0.5, 0.1, 0.1, 0.1]], "front"),  # first quarter > half the total
        ([[0.5, 0.25, 0.1875, 0.0625]], "falling"),  # exactly half: not front
        ([[0.1, 0.2, 0.3, 0.35], None], "rising"),  # a diverged run is left out
        ([[0.2, 0.2, 0.3, 0.35]], "mixed"),  # a flat step is not rising
    ],
)
def test_drift_shape_says_where_the_drift_happened(windows, shape):
    means, found = f1.drift_shape(windows)
    assert found == shape and len(means) == 4
