"""Chapter 06's claims (bnpaper.experiments.inception): the estimates on synthetic measurements,
every verdict reachable, both sides of each margin, runs that never reach the target."""

from __future__ import annotations

import math

import pytest

from bnpaper import profiles
from bnpaper.experiments import inception as inc
from bnpaper.protocol import MIN_N

CLAIMS = {c.id: c for c in inc.CLAIMS}
INF = math.inf


def meas(steps: dict | None = None, test: dict | None = None, eval_every: int = 50, n: int = MIN_N) -> dict:
    """A synthetic measurement: per model, per seed, steps to the target and final test accuracy."""
    models = {}
    for name in inc.MODELS:
        s = (steps or {}).get(name, [400.0] * n)
        t = (test or {}).get(name, [0.9] * n)
        models[name] = {
            "steps_to_target": list(s),
            "final_val_acc": list(t),
            "final_test_acc": list(t),
            "diverged": [False] * len(s),
            "trained_steps": 800,
        }
    return {"target": 0.9, "eval_every": eval_every, "n": n, "models": models}


def verdict(cid: str, m: dict, profile: str = "quick") -> str:
    return CLAIMS[cid].judge(m, profile)[0]


def spread(center: float, n: int = MIN_N, step: float = 10.0) -> list[float]:
    return [center + step * (i - (n - 1) / 2) for i in range(n)]


# ----------------------------------------------------------------------------- the claims' shape


def test_claims_and_protocols():
    assert [c.id for c in inc.CLAIMS] == [
        "bn-baseline-faster",
        "bn-x5-faster",
        "bn-x30-higher-max",
        "sigmoid-inception",
        "ensemble-imagenet",
    ]
    kinds = {
        c.id: (c.protocol.kind, c.protocol.margin, c.protocol.interval) for c in inc.CLAIMS if c.protocol
    }
    assert kinds == {
        "bn-baseline-faster": ("greater", 1.0, "censored median ratio"),
        "bn-x5-faster": ("greater", 3.0, "censored median ratio"),
        "bn-x30-higher-max": ("greater", 0.0, "paired t"),
        "sigmoid-inception": ("greater", 0.1, "paired t"),
    }
    for c in inc.CLAIMS[:4]:
        assert c.protocol.version == 3 and c.protocol.changes[0] and c.protocol.changes[1]
    ens = CLAIMS["ensemble-imagenet"]
    assert ens.protocol is None and ens.estimate is None and ens.untestable_en and ens.untestable_ar
    with pytest.raises(ValueError, match="not testable"):
        ens.judge({}, "quick")


# ----------------------------------------------------------------------------- "faster": ratio of medians


@pytest.mark.parametrize("cid,model", [("bn-baseline-faster", "BN-Baseline"), ("bn-x5-faster", "BN-x5")])
def test_faster_holds_does_not_hold_inconclusive(cid, model):
    base = spread(600.0)
    fast = meas({"Baseline": base, model: spread(100.0, step=5.0)})  # about 6x fewer steps
    assert verdict(cid, fast) == "holds"
    slow = meas({"Baseline": base, model: spread(1200.0)})  # twice as many
    assert verdict(cid, slow) == "does_not_hold"
    p = CLAIMS[cid].protocol
    at_margin = meas({"Baseline": base, model: [b / p.margin for b in base]})
    # ratio = margin: the interval straddles it; where the smallest effect of interest lies above the
    # margin (1.25 for BN-Baseline), the whole interval lies below it: does not hold
    expected = "inconclusive" if p.smallest_effect == p.margin else "does_not_hold"
    assert verdict(cid, at_margin) == expected


def test_x5_far_sooner_margin_is_three():
    """BN-Baseline-like speed (2x) is faster but not "far sooner"."""
    base = spread(600.0, step=2.0)
    twice = meas({"Baseline": base, "BN-x5": spread(300.0, step=1.0)}, eval_every=10)
    bnb = meas({"Baseline": base, "BN-Baseline": spread(300.0, step=1.0)}, eval_every=10)
    assert verdict("bn-baseline-faster", bnb) == "holds"
    assert verdict("bn-x5-faster", twice) == "does_not_hold"


@pytest.mark.parametrize(
    "cid,model,margin,sesoi",
    [("bn-baseline-faster", "BN-Baseline", 1.0, 1.25), ("bn-x5-faster", "BN-x5", 3.0, 3.0)],
)
def test_faster_at_the_boundaries_exactly(cid, model, margin, sesoi):
    """With resolution 0 and equal runs the interval is one point. At the margin it touches it; a
    hair below the smallest effect of interest does not hold; at or above it, beyond the margin, holds."""

    def at(ratio):
        return verdict(cid, meas({"Baseline": [ratio * 100.0] * MIN_N, model: [100.0] * MIN_N}, eval_every=0))

    assert at(margin) == ("inconclusive" if sesoi == margin else "does_not_hold")
    assert at(sesoi + 1e-5) == "holds"
    assert at(sesoi - 1e-5) == "does_not_hold"
    if sesoi > margin:
        assert at(sesoi) == "holds"  # the interval reaches d: an effect of interest is possible
        assert at(margin + 1e-5) == "does_not_hold"  # faster, but by less than a quarter


def test_faster_floating_point_edge():
    """0.3 / 0.1 is 2.9999999999999996: at a margin of 3 that is "at", not below."""
    m = meas({"Baseline": [0.3] * MIN_N, "BN-x5": [0.1] * MIN_N}, eval_every=0)
    est = CLAIMS["bn-x5-faster"].estimate(m)
    assert est.value < 3.0
    assert verdict("bn-x5-faster", m) == "inconclusive"


def test_faster_resolution_widens_the_interval():
    """The same step counts: exact without resolution (holds), straddling with a coarse one."""
    steps = {"Baseline": [250.0] * MIN_N, "BN-x5": [50.0] * MIN_N}  # ratio 5
    assert verdict("bn-x5-faster", meas(steps, eval_every=0)) == "holds"
    assert verdict("bn-x5-faster", meas(steps, eval_every=100)) == "inconclusive"  # lo = 5 * 150 / 250 = 3


def test_faster_runs_that_never_reach_the_target():
    n = MIN_N
    # the model never reaches the target: ratio 0, does not hold
    never = meas({"Baseline": spread(600.0), "BN-x5": [INF] * n})
    assert verdict("bn-x5-faster", never) == "does_not_hold"
    est = CLAIMS["bn-x5-faster"].estimate(never)
    assert est.note["reached"] == {"Baseline": n, "BN-x5": 0} and est.note["runs"] == n
    # the Baseline never reaches it, the model always does: holds
    base_never = meas({"Baseline": [INF] * n, "BN-Baseline": spread(300.0)})
    assert verdict("bn-baseline-faster", base_never) == "holds"
    # neither ever reaches it: the ratio is undefined, inconclusive
    neither = meas({"Baseline": [INF] * n, "BN-Baseline": [INF] * n})
    assert verdict("bn-baseline-faster", neither) == "inconclusive"
    # the model reaches it in fewer than half of its runs: median +inf, does not hold
    mostly_never = meas({"Baseline": spread(600.0), "BN-Baseline": [100.0] + [INF] * (n - 1)})
    assert verdict("bn-baseline-faster", mostly_never) == "does_not_hold"
    assert CLAIMS["bn-baseline-faster"].estimate(mostly_never).note["reached"]["BN-Baseline"] == 1
    # a few runs that never reach it in each arm: still judged on the medians
    few = meas({"Baseline": spread(600.0)[:9] + [INF], "BN-x5": [INF] + spread(60.0, step=2.0)[1:]})
    assert verdict("bn-x5-faster", few) == "holds"


def test_faster_baseline_mostly_never_reaches():
    n = MIN_N
    m = meas({"Baseline": [500.0] * 4 + [INF] * (n - 4), "BN-Baseline": spread(200.0)})
    assert verdict("bn-baseline-faster", m) == "holds"


def test_too_few_runs_is_inconclusive_in_quick_and_paper_only():
    n = 3
    base = [0.90, 0.91, 0.92]
    m = meas(test={"Baseline": base, "BN-x30": [b + 0.05 for b in base]}, n=n)
    assert verdict("bn-x30-higher-max", m, "quick") == "inconclusive"
    assert verdict("bn-x30-higher-max", m, "paper") == "inconclusive"
    assert verdict("bn-x30-higher-max", m, "smoke") == "holds"
    # the order-statistic interval of the median needs 6 runs before it can exclude anything at 95%
    fast = meas({"Baseline": [600.0] * n, "BN-x5": [50.0] * n}, n=n, eval_every=0)
    assert verdict("bn-x5-faster", fast, "smoke") == "inconclusive"


# ----------------------------------------------------------------------------- final test accuracy


def test_x30_higher_accuracy():
    base = [0.90 + 0.002 * i for i in range(MIN_N)]
    up = [b + 0.02 + 0.001 * (i % 3) for i, b in enumerate(base)]
    down = [b - 0.02 - 0.001 * (i % 3) for i, b in enumerate(base)]
    noise = [b + (0.01 if i % 2 else -0.01) for i, b in enumerate(base)]
    assert verdict("bn-x30-higher-max", meas(test={"Baseline": base, "BN-x30": up})) == "holds"
    assert verdict("bn-x30-higher-max", meas(test={"Baseline": base, "BN-x30": down})) == "does_not_hold"
    assert verdict("bn-x30-higher-max", meas(test={"Baseline": base, "BN-x30": noise})) == "inconclusive"
    # equal accuracies: the one-point interval [0, 0] lies below the smallest effect of interest
    assert verdict("bn-x30-higher-max", meas(test={"Baseline": base, "BN-x30": base})) == "does_not_hold"


def test_sigmoid_margin_of_a_tenth():
    no_bn = [0.1] * MIN_N
    trains = [0.6 + 0.01 * (i % 4) for i in range(MIN_N)]
    assert (
        verdict("sigmoid-inception", meas(test={"BN-x5-Sigmoid": trains, "Inception-Sigmoid": no_bn}))
        == "holds"
    )
    barely = [0.15 + 0.005 * (i % 3) for i in range(MIN_N)]  # above chance, well under 0.1 above
    assert (
        verdict("sigmoid-inception", meas(test={"BN-x5-Sigmoid": barely, "Inception-Sigmoid": no_bn}))
        == "does_not_hold"
    )
    straddle = [0.2 + (0.05 if i % 2 else -0.05) for i in range(MIN_N)]  # mean 0.1 above, spread
    assert (
        verdict("sigmoid-inception", meas(test={"BN-x5-Sigmoid": straddle, "Inception-Sigmoid": no_bn}))
        == "inconclusive"
    )
    # floating-point edge: 0.6 - 0.5 is 0.09999999999999998, "at" the margin, not below it
    at = meas(test={"BN-x5-Sigmoid": [0.6] * MIN_N, "Inception-Sigmoid": [0.5] * MIN_N})
    assert CLAIMS["sigmoid-inception"].estimate(at).value < 0.1
    assert verdict("sigmoid-inception", at) == "inconclusive"
    above = meas(test={"BN-x5-Sigmoid": [0.6] * MIN_N, "Inception-Sigmoid": [0.4999] * MIN_N})
    assert verdict("sigmoid-inception", above) == "holds"
    below = meas(test={"BN-x5-Sigmoid": [0.6] * MIN_N, "Inception-Sigmoid": [0.5001] * MIN_N})
    assert verdict("sigmoid-inception", below) == "does_not_hold"


# ----------------------------------------------------------------------------- from runs to measurements


def fake_run(accs, diverged=False, test=0.95, every=50):
    return {
        "eval_steps": [every * (i + 1) for i in range(len(accs))],
        "val_acc": list(accs),
        "loss": [1.0] * len(accs),
        "final_val_acc": None if diverged else accs[-1],
        "final_test_acc": None if diverged else test,
        "diverged": diverged,
        "diverged_at": 3 if diverged else None,
    }


def test_steps_to_target_and_final_accuracy():
    assert inc.steps_to(fake_run([0.5, 0.89, 0.9, 0.95]), 0.9) == 150.0  # at or above
    assert inc.steps_to(fake_run([0.5, 0.8, 0.85]), 0.9) == INF
    assert inc.steps_to(fake_run([0.5], diverged=True), 0.9) == INF
    assert inc.final_acc(fake_run([0.5], diverged=True)) == inc.CHANCE
    assert inc.final_acc(fake_run([0.5], test=0.97)) == 0.97


def test_measurements_and_summary():
    cfg = inc.RecipeConfig(steps=200, eval_every=50, seeds=[0, 1, 2])
    result = {
        "Baseline": [
            fake_run([0.5, 0.7, 0.85, 0.9]),
            fake_run([0.5, 0.7, 0.91, 0.92]),
            fake_run([0.5, 0.6, 0.7, 0.8]),
        ],
        "BN-x5": [fake_run([0.92]), fake_run([0.8], diverged=True), fake_run([0.95])],
    }
    m = inc.measurements(result, cfg, 0.9)
    assert m["target"] == 0.9 and m["eval_every"] == 50 and m["n"] == 3
    assert m["models"]["Baseline"]["steps_to_target"] == [200.0, 150.0, INF]
    assert m["models"]["BN-x5"]["steps_to_target"] == [50.0, INF, 50.0]
    assert m["models"]["BN-x5"]["final_test_acc"] == [0.95, inc.CHANCE, 0.95]
    assert m["models"]["BN-x5"]["diverged"] == [False, True, False]
    assert m["models"]["BN-x5"]["trained_steps"] == inc.accelerated_steps(cfg) < cfg.steps
    rows = inc.summarize(m)
    assert rows["Baseline"]["median_steps"] == 200.0 and rows["Baseline"]["reached"] == 2
    assert rows["BN-x5"]["median_steps"] == 50.0 and rows["BN-x5"]["reached"] == 2
    assert rows["BN-x5"]["speedup"] == 4.0 and rows["BN-x5"]["diverged"] == 1
    never = inc.summarize(
        {**m, "models": {**m["models"], "BN-x5": {**m["models"]["BN-x5"], "steps_to_target": [INF] * 3}}}
    )
    assert math.isinf(never["BN-x5"]["median_steps"]) and math.isnan(never["BN-x5"]["speedup"])


def test_plateau_gain():
    flat = [[0.5, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]]
    rising = [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]]
    assert inc.plateau_gain(flat) == pytest.approx(0.0)
    assert inc.plateau_gain(rising) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="too few"):
        inc.plateau_gain([[0.5, 0.6, 0.7]], share=0.9)


def test_target_is_a_share_of_the_tuned_baselines_mean_final_validation_accuracy():
    entry = {"value": 0.08, "scores": {"0.04": 0.85, "0.08": 0.9125, "0.16": 0.88}}
    assert inc.target_from_tuning(entry) == pytest.approx(inc.TARGET_SHARE * 0.9125)
    assert inc.TARGET_SHARE < 1  # the Baseline's own mean would be missed by half its runs


# ----------------------------------------------------------------------------- the models


def test_model_configs_follow_the_paper():
    cfg = inc.RecipeConfig(steps=600, eval_every=50, lr=0.08, sigmoid_lr=0.02)
    base = inc.model_config(cfg, "Baseline", 0)
    bnb = inc.model_config(cfg, "BN-Baseline", 0)
    x5, x30 = inc.model_config(cfg, "BN-x5", 0), inc.model_config(cfg, "BN-x30", 0)
    sig, nsig = inc.model_config(cfg, "BN-x5-Sigmoid", 0), inc.model_config(cfg, "Inception-Sigmoid", 0)
    assert not base.bn and base.dropout == 0.4 and base.lr == 0.08 and base.steps == 600
    assert abs(base.lr_decay_factor**600 - cfg.decay_total) < 1e-12
    assert bnb.bn and bnb.lr == base.lr and bnb.dropout == base.dropout
    assert bnb.steps == inc.accelerated_steps(cfg, cfg.bn_baseline_share) == 300
    assert x5.bn and x5.lr == 5 * base.lr and x5.dropout == 0 and x5.weight_decay == base.weight_decay / 5
    assert abs(x5.lr_decay_factor - base.lr_decay_factor**6) < 1e-15
    assert x30.lr == 30 * base.lr and x5.steps == x30.steps == sig.steps == inc.accelerated_steps(cfg) == 200
    assert sig.activation == "sigmoid" and sig.init == "glorot" and sig.lr == 5 * base.lr and sig.bn
    assert nsig.activation == "sigmoid" and nsig.init == "glorot" and nsig.lr == 0.02 and not nsig.bn
    assert nsig.steps == base.steps and nsig.dropout == base.dropout
    with pytest.raises(ValueError, match="model must be one of"):
        inc.model_config(cfg, "BN-x7", 0)


def test_ablation_arms_change_one_thing():
    cfg = inc.RecipeConfig(steps=600, eval_every=50, lr=0.08)
    for arm in ("Baseline", "BN-Baseline"):
        ref = inc.model_config(cfg, arm, 0)
        for change, field_ in (
            ("higher_lr", "lr"),
            ("no_dropout", "dropout"),
            ("less_l2", "weight_decay"),
            ("faster_decay", "lr_decay_factor"),
        ):
            a = inc.model_config(cfg, f"{arm}+{change}", 0)
            differ = {k for k in vars(ref) if getattr(ref, k) != getattr(a, k)}
            assert differ == {field_}, (arm, change, differ)
    with pytest.raises(ValueError, match="ablation arm"):
        inc.model_config(cfg, "BN-x5+no_dropout", 0)


def test_accelerated_steps_are_whole_evaluation_intervals():
    assert inc.accelerated_steps(inc.RecipeConfig(steps=800, eval_every=50, accelerated_share=1 / 3)) == 250
    assert inc.accelerated_steps(inc.RecipeConfig(steps=20, eval_every=5, accelerated_share=0.5)) == 10
    assert inc.accelerated_steps(inc.RecipeConfig(steps=10, eval_every=50, accelerated_share=0.1)) == 10


def test_profiles_and_tunings():
    for p in profiles.PROFILE_NAMES:
        cfg = inc.recipe_config(p)
        assert len(cfg.seeds) == profiles.n_eval(p) and cfg.steps % cfg.eval_every == 0
    assert len(inc.recipe_config("quick").seeds) >= MIN_N
    keys = [t.key for t in inc.TUNINGS]
    assert keys == ["inception/Baseline", "inception/Inception-Sigmoid"]
    for t in inc.TUNINGS:
        assert all(b / a == pytest.approx(2.0) for a, b in zip(t.grid, t.grid[1:]))  # a 2x grid
        c = t.base("quick", profiles.tuning_seeds("quick")[0])
        assert c.read_test is False and c.seed >= profiles.TUNING_SEED0
    assert inc.TUNINGS[1].base("quick", 1000).activation == "sigmoid"
