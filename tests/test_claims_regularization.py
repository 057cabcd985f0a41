"""Chapter 04's claims: each estimate on synthetic measurements, every verdict reachable on both
sides of each boundary, and the frozen-statistics arm's mechanism."""

import math
from dataclasses import replace

import pytest
import torch

from bnpaper import profiles, tuning
from bnpaper.experiments import regularization as reg
from bnpaper.layers import BatchNorm
from bnpaper.models import convnet
from bnpaper.train import TrainConfig, accuracy

BY_ID = reg.CLAIM_BY_ID


def verdict(claim_id: str, m: dict, profile: str = "quick") -> str:
    return BY_ID[claim_id].judge(m, profile)[0]


def shifted(base: list[float], delta: float) -> list[float]:
    return [b + delta for b in base]


# A spread of ten per-seed values (std ~ 0.00303): the per-seed differences of the tests below
NOISE = [0.003, -0.002, 0.001, -0.004, 0.002, 0.0, -0.001, 0.004, -0.003, 0.0]
WIDE = [3 * x for x in NOISE]  # an interval wider than the smallest effect of interest (0.005)


def grid(diffs_vs_bn: dict[str, list[float]]) -> dict:
    """A measurement with bn-d0 at 0.97 and every other arm at 0.97 - diff (per seed)."""
    bn = [0.97] * 10
    acc = {"bn-d0": bn, **{arm: [b - d for b, d in zip(bn, ds)] for arm, ds in diffs_vs_bn.items()}}
    return {"seeds": list(range(10)), "test_acc": acc, "train_acc": acc, "final_loss": acc}


# ----------------------------------------------------------------------------- the claims' shape


def test_claims_have_v2_protocols_and_the_declared_tunings():
    assert [c.id for c in reg.CLAIMS] == [
        "nondeterministic-output",
        "reduces-dropout",
        "improves-generalization",
        "noise-regularizes",
    ]
    for c in reg.CLAIMS:
        assert c.chapter == "04_regularization" and c.protocol.fixed == "2026-11-25"
        assert c.protocol.changes[0] and c.protocol.changes[1]
    assert {c.id: c.protocol.version for c in reg.CLAIMS} == {
        "nondeterministic-output": 3,
        "reduces-dropout": 3,
        "improves-generalization": 3,
        "noise-regularizes": 3,
    }
    p = BY_ID["reduces-dropout"].protocol
    assert (p.kind, p.margin, p.interval) == ("equivalent", 0.005, "paired t")
    assert [t.key for t in reg.TUNINGS] == [f"regularization/{c}" for c in [*reg.CELLS, reg.FROZEN]]
    for t in reg.TUNINGS:
        assert all(b / a == 2 for a, b in zip(t.grid, t.grid[1:]))  # a 2x grid
        cell = t.key.split("/")[1]
        bn, p = reg.CELLS["bn-d0" if cell == reg.FROZEN else cell]  # the frozen arm is the BN cell's net
        cfg = t.base("quick", profiles.tuning_seeds("quick")[0])
        assert (cfg.bn, cfg.dropout, cfg.model) == (bn, p, "convnet")
        assert cfg.steps == profiles.settings("regularization", "quick")["steps"]
    assert set(reg.TUNING_BY_CELL) >= set(reg.CELLS)
    assert isinstance(reg.TUNINGS[0], tuning.Tuning)


# ----------------------------------------------------------------------------- nondeterministic-output


def nd(ratios: list[float], eval_diff: float = 0.0) -> dict:
    large = [0.1] * len(ratios)
    return {
        "m_small": 2,
        "m_large": 128,
        "std_small": [r * b for r, b in zip(ratios, large)],
        "std_large": large,
        "eval_diff": [eval_diff] * len(ratios),
    }


def test_nondeterminism_estimate_is_the_mean_log_ratio():
    est = reg.estimate_nondeterminism(nd([2.0, 4.0] * 5))
    assert est.value == pytest.approx((math.log(2) + math.log(4)) / 2)
    assert est.n == 10 and est.method == "t"


def test_nondeterminism_verdicts_on_both_sides():
    spread = [math.exp(v) for v in NOISE]  # log ratios = NOISE: mean 0, straddles 0
    assert verdict("nondeterministic-output", nd([3.0 * s for s in spread])) == "holds"
    assert verdict("nondeterministic-output", nd(spread)) == "inconclusive"
    assert verdict("nondeterministic-output", nd([s / 3.0 for s in spread])) == "does_not_hold"
    # just above / just below 0: log ratios NOISE + c with c the t half-width +- a little
    est0 = reg.estimate_nondeterminism(nd(spread))
    half = est0.hi - est0.value
    assert verdict("nondeterministic-output", nd([s * math.exp(half * 1.01) for s in spread])) == "holds"
    assert (
        verdict("nondeterministic-output", nd([s * math.exp(half * 0.99) for s in spread])) == "inconclusive"
    )
    assert (
        verdict("nondeterministic-output", nd([s * math.exp(-half * 1.01) for s in spread]))
        == "does_not_hold"
    )


def test_nondeterminism_needs_an_exactly_deterministic_eval_mode():
    m = nd([3.0] * 5 + [3.5] * 5)
    assert verdict("nondeterministic-output", m) == "holds"
    m["eval_diff"][3] = 1e-12  # the smallest change in eval mode voids the measurement
    est = reg.estimate_nondeterminism(m)
    assert math.isnan(est.value) and est.note == {"eval_mode_nondeterministic": True}
    assert verdict("nondeterministic-output", m) == "inconclusive"


def test_nondeterminism_zero_stds():
    assert reg.estimate_nondeterminism(nd([1.0] * 10)).value == 0.0
    both_zero = {
        "m_small": 2,
        "m_large": 8,
        "std_small": [0.0] * 10,
        "std_large": [0.0] * 10,
        "eval_diff": [0.0] * 10,
    }
    assert reg.estimate_nondeterminism(both_zero).value == 0.0  # no spread at all: no decrease
    assert (
        verdict("nondeterministic-output", both_zero) == "inconclusive"
    )  # a zero-width interval at the margin
    one_zero = nd([2.0] * 10)
    one_zero["std_large"][0] = 0.0
    assert math.isnan(reg.estimate_nondeterminism(one_zero).value)
    with pytest.raises(ValueError):
        reg.estimate_nondeterminism({**nd([2.0] * 10), "eval_diff": [0.0]})
    bad = nd([2.0] * 10)
    bad["std_small"][0] = -1.0
    with pytest.raises(ValueError):
        reg.estimate_nondeterminism(bad)


def test_nondeterminism_needs_ten_nets_in_quick():
    m = nd([3.0] * 4 + [3.5] * 5)  # 9 nets
    assert verdict("nondeterministic-output", m, "quick") == "inconclusive"
    assert verdict("nondeterministic-output", m, "smoke") == "holds"


# ----------------------------------------------------------------------------- reduces-dropout (TOST)


def test_reduces_dropout_equivalence_verdicts():
    same = grid({"bn-d0.5": NOISE})  # mean 0, 90% interval about +-0.0018: inside +-0.005
    assert verdict("reduces-dropout", same) == "holds"
    assert reg.estimate_reduces_dropout(same).value == pytest.approx(0.0, abs=1e-12)
    # Dropout helps BN by 0.02 (BN without Dropout is worse): outside the margin
    assert verdict("reduces-dropout", grid({"bn-d0.5": shifted(NOISE, -0.02)})) == "does_not_hold"
    assert verdict("reduces-dropout", grid({"bn-d0.5": shifted(NOISE, 0.02)})) == "does_not_hold"
    # the mean at the margin: neither equivalent nor clearly outside
    assert verdict("reduces-dropout", grid({"bn-d0.5": shifted(NOISE, -0.005)})) == "inconclusive"


def test_reduces_dropout_boundaries():
    est = reg.estimate_reduces_dropout(grid({"bn-d0.5": NOISE}))
    h90 = est.hi90 - est.value  # half-width of the 90% interval
    h95 = est.hi - est.value
    margin = 0.005
    # the 90% interval just inside / outside +margin (the estimate is bn-d0 - bn-d0.5 = -diff)
    inside = grid({"bn-d0.5": shifted(NOISE, -(margin - h90) * 0.999)})
    outside = grid({"bn-d0.5": shifted(NOISE, -(margin - h90) * 1.001)})
    assert verdict("reduces-dropout", inside) == "holds"
    assert verdict("reduces-dropout", outside) == "inconclusive"
    # the 90% interval's lower end just above / just below +margin (symmetric: the same level)
    assert (
        verdict("reduces-dropout", grid({"bn-d0.5": shifted(NOISE, -(margin + h90) * 1.001)}))
        == "does_not_hold"
    )
    assert (
        verdict("reduces-dropout", grid({"bn-d0.5": shifted(NOISE, -(margin + h90) * 0.999)}))
        == "inconclusive"
    )
    assert h95 > h90  # the 95% interval would have kept this one inconclusive


def test_a_diverged_seed_drops_the_pair_and_too_few_pairs_is_inconclusive():
    m = grid({"bn-d0.5": NOISE})
    m["test_acc"]["bn-d0.5"][0] = None
    est = reg.estimate_reduces_dropout(m)
    assert est.n == 9
    assert verdict("reduces-dropout", m, "quick") == "inconclusive"


# ----------------------------------------------------------------------------- improves-generalization


def test_improves_generalization_verdicts_and_edges():
    d = 0.005  # the smallest effect of interest: half a point
    assert verdict("improves-generalization", grid({"no_bn-d0": shifted(NOISE, 0.01)})) == "holds"
    assert verdict("improves-generalization", grid({"no_bn-d0": WIDE})) == "inconclusive"
    assert verdict("improves-generalization", grid({"no_bn-d0": NOISE})) == "does_not_hold"  # a precise 0
    assert verdict("improves-generalization", grid({"no_bn-d0": shifted(NOISE, -0.01)})) == "does_not_hold"
    est = reg.estimate_generalization(grid({"no_bn-d0": WIDE}))
    assert est.value == pytest.approx(0.0, abs=1e-12)
    h = est.hi - est.value
    # the lower end just above / below the margin 0 (the upper end far above d)
    assert verdict("improves-generalization", grid({"no_bn-d0": shifted(WIDE, h * 1.001)})) == "holds"
    assert verdict("improves-generalization", grid({"no_bn-d0": shifted(WIDE, h * 0.999)})) == "inconclusive"
    # the upper end just below / above d: does not hold / inconclusive
    below = grid({"no_bn-d0": shifted(WIDE, (d - h) - 1e-5)})
    assert verdict("improves-generalization", below) == "does_not_hold"
    assert (
        verdict("improves-generalization", grid({"no_bn-d0": shifted(WIDE, (d - h) + 1e-5)}))
        == "inconclusive"
    )


def test_identical_arms_do_not_hold_never_pass():
    m = grid({"no_bn-d0": [0.0] * 10})  # a zero-width interval at 0: wholly below d = 0.005
    assert verdict("improves-generalization", m) == "does_not_hold"


# ----------------------------------------------------------------------------- noise-regularizes


def test_noise_claim_verdicts():
    assert verdict("noise-regularizes", grid({reg.FROZEN: shifted(NOISE, 0.01)})) == "holds"
    assert verdict("noise-regularizes", grid({reg.FROZEN: WIDE})) == "inconclusive"
    assert verdict("noise-regularizes", grid({reg.FROZEN: NOISE})) == "does_not_hold"
    assert verdict("noise-regularizes", grid({reg.FROZEN: shifted(NOISE, -0.01)})) == "does_not_hold"


def test_summaries_and_measurement_from_rows():
    def row(seed, acc, diverged=False):
        h = {
            "diverged": diverged,
            "final_train_acc": acc + 0.01,
            "final_val_acc": acc,
            "final_test_acc": acc,
            "loss": [0.5, 0.2],
            "eval_steps": [1, 2],
            "val_acc": [0.5, acc],
        }
        return reg._row(seed, h)

    runs = {"bn-d0": [row(1, 0.9), row(0, 0.8)], "no_bn-d0": [row(0, 0.7), row(1, 0.6, diverged=True)]}
    m = reg.grid_measurement(runs)
    assert m["seeds"] == [0, 1]
    assert m["test_acc"] == {"bn-d0": [0.8, 0.9], "no_bn-d0": [0.7, None]}
    assert m["final_loss"]["bn-d0"] == [0.2, 0.2]
    s = reg.summarize(runs)
    assert s["no_bn-d0"]["diverged"] == 1 and s["no_bn-d0"]["test_acc"] == (0.7, 0.0)
    assert s["bn-d0"]["gap"][0] == pytest.approx(0.01)


# ----------------------------------------------------------------------------- frozen statistics


def _bn_net(seed=0):
    torch.manual_seed(seed)
    return convnet(bn=True)


def test_frozen_statistics_stop_using_the_mini_batch():
    torch.manual_seed(1)
    x = torch.randn(9, 1, 28, 28)
    net = _bn_net()
    net.train()
    for _ in range(3):  # give the running statistics something to hold
        net(torch.randn(16, 1, 28, 28))
    # ordinary BN in training mode: example 0's output depends on its companions
    a, b = net(x[:5])[0], net(torch.cat([x[:1], x[5:]]))[0]
    assert (a - b).abs().max().item() > 1e-4
    bns = [m for m in net.modules() if isinstance(m, BatchNorm)]
    assert reg.freeze_batch_statistics(net) == len(bns) == 3
    assert reg.freeze_batch_statistics(net) == 0  # already frozen
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bns]
    net.train()
    a, b = net(x[:5])[0], net(torch.cat([x[:1], x[5:]]))[0]
    assert torch.equal(a, b)  # companions no longer matter
    for m, (mu, var, k) in zip(bns, saved):  # and the statistics no longer move
        assert (
            torch.equal(m.running_mean, mu)
            and torch.equal(m.running_var, var)
            and torch.equal(m.num_batches_tracked, k)
        )
    # train.accuracy toggles train() / eval(): the freeze survives it
    accuracy(net, x, torch.zeros(9, dtype=torch.long))
    assert net.training
    net.train()
    assert torch.equal(net(x[:5])[0], a)
    net.eval()
    assert torch.equal(net(x[:5])[0], a)  # the same map as eval-mode BN (Alg. 2)
    # gamma and beta still learn
    net.train()
    net(x).sum().backward()
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in bns)


def test_train_frozen_freezes_at_the_warmup_step():
    cfg = TrainConfig(model="convnet", bn=True, steps=6, eval_every=3, batch_size=16, lr=0.01)
    h = reg.train_frozen(cfg, warmup=2)
    assert h["frozen_at"] == 2 and h["frozen_layers"] == 3 and not h["diverged"]
    with pytest.raises(ValueError):
        reg.train_frozen(cfg, warmup=6)
    with pytest.raises(ValueError):
        reg.train_frozen(replace(cfg, bn=False), warmup=2)


def test_train_frozen_differs_from_ordinary_bn_only_after_the_warmup():
    cfg = TrainConfig(
        model="convnet", bn=True, steps=4, eval_every=2, batch_size=16, lr=0.01, final_train_acc=False
    )
    from bnpaper.train import train

    _, plain = train(cfg)
    frozen = reg.train_frozen(cfg, warmup=2)
    assert frozen["loss"][0] == plain["loss"][0]  # steps 1-2: identical
    assert frozen["loss"][1] != plain["loss"][1]  # steps 3-4: no mini-batch statistics
