"""Chapter 09's measurements against independent references (float64), and its claims' rules on
both sides of their margins."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from bnpaper import engine, ledger
from bnpaper.experiments import ics
from bnpaper.train import TrainConfig, build_model

SMALL = dict(model="mlp", hidden=[6, 5], activation="sigmoid", init_std=0.3, dtype="float64")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")


def test_distribution_drift_is_zero_when_still_and_scale_free():
    rng = np.random.default_rng(0)
    means, stds = rng.normal(size=(4, 2, 7)), rng.uniform(0.5, 2, size=(4, 2, 7))
    still = ics.distribution_drift(np.repeat(means[:1], 4, 0), np.repeat(stds[:1], 4, 0))
    assert still.shape == (3, 2) and np.all(still == 0)
    d = ics.distribution_drift(means, stds)
    assert np.allclose(ics.distribution_drift(5 * means, 5 * stds), d)  # inputs scaled by 5: same drift
    # one unit, one run: mean 0 -> 1 with std 2 -> 4: |1| / 2 + |log 2|
    one = ics.distribution_drift(np.array([[[0.0]], [[1.0]]]), np.array([[[2.0]], [[4.0]]]))
    assert one[0, 0] == pytest.approx(0.5 + np.log(2))


def test_effective_beta_and_slope():
    change = np.array([[1.0, 2.0], [4.0, 2.0]])  # (eta, runs)
    eta = np.array([[0.5, 0.5], [2.0, 2.0]])
    assert np.allclose(ics.effective_beta(change, eta, np.array([1.0, 2.0])), [2.0, 2.0])
    assert ics.slope([1, 2, 3, 4], [3, 5, 7, 9]) == pytest.approx(2.0)


def _runs(bn: bool, seeds=(0, 1)):
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(build_model(TrainConfig(**SMALL, bn=bn, seed=s)))
    return engine.Runs(models).train(True), models


def _loss(model, x, y):
    return TF.cross_entropy(model(x), y)


def _data(n=12):
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("bn", [True, False], ids=["bn", "no_bn"])
def test_gradient_shift_and_landscape_match_one_model_at_a_time(bn):
    """_Probe measures R runs at once through torch.func; each run is checked here on its own
    nn.Module with torch.autograd, the earlier layers stepped by hand."""
    runs, models = _runs(bn)
    x, y = _data()
    lr = torch.tensor([0.1, 0.3], dtype=torch.float64)
    out = ics._Probe(runs, x, y, lr, power_iters=3).measure()
    for r, model in enumerate(models):
        model = copy.deepcopy(model).train()
        linear = [i for i, m in enumerate(model) if isinstance(m, torch.nn.Linear)]
        params = dict(model.named_parameters())
        grads = dict(zip(params, torch.autograd.grad(_loss(model, x, y), list(params.values()))))
        for k, i in enumerate(linear[1:-1]):
            moved = copy.deepcopy(model)
            with torch.no_grad():
                for name, p in moved.named_parameters():
                    if int(name.split(".")[0]) < i:
                        p -= lr[r] * grads[name]
            w = dict(moved.named_parameters())[f"{i}.weight"]
            g2 = torch.autograd.grad(_loss(moved, x, y), [w])[0]
            g1 = grads[f"{i}.weight"]
            assert out["ics_rel"][k][r] == pytest.approx(float((g1 - g2).norm() / g1.norm()), rel=1e-9)
        gnorm = torch.sqrt(sum(g.pow(2).sum() for g in grads.values()))
        assert out["grad_norm"][r] == pytest.approx(float(gnorm), rel=1e-9)
        for e, eta in enumerate(ics.ETA):
            stepped = copy.deepcopy(model)
            with torch.no_grad():
                for name, p in stepped.named_parameters():
                    p -= eta * lr[r] * grads[name]
            assert out["loss_eta"][e][r] == pytest.approx(float(_loss(stepped, x, y)), rel=1e-9)


def test_top_eigenvalue_matches_the_full_hessian():
    """Power iteration on Hessian-vector products (double backward through bnpaper's BN) against
    the eigenvalue of largest magnitude of the Hessian built by torch.autograd.functional."""
    runs, models = _runs(True, seeds=(0,))
    x, y = _data()
    probe = ics._Probe(runs, x, y, torch.tensor([0.1], dtype=torch.float64), power_iters=200)
    lam = float(probe.top_eigenvalue({k: v.detach().clone() for k, v in runs.params.items()})[0])
    model = models[0].train()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def loss_of(flat):
        pieces, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            pieces[n] = flat[i : i + k].reshape(s)
            i += k
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        return TF.cross_entropy(torch.func.functional_call(model, (pieces, buffers), (x,)), y)

    h = torch.autograd.functional.hessian(loss_of, flat0)
    eig = torch.linalg.eigvalsh((h + h.T) / 2)
    top = float(eig[eig.abs().argmax()])
    assert lam == pytest.approx(top, rel=1e-4)


def test_a_tiny_sweep_and_depth_run_end_to_end():
    cfg = ics.ICSConfig(
        steps=6, seeds=[0, 1], eval_every=3, measure_every=3, measure_images=20, power_iters=2
    )
    res = ics.run(cfg)
    assert set(res["arms"]) == set(ics.ARMS)
    for arm, s in res["summary"].items():
        assert len(s["drift"]) == 2 and all(v is None or np.isfinite(v) for v in s["drift"]), arm
        assert all(v is not None for v in s["final_val_acc"]), arm
    assert all(v is None for v in res["summary"]["no_bn"]["eff_lr_final"])  # no weights before a BN
    assert all(v > 0 for v in res["summary"]["bn_wd"]["eff_lr_final"])
    curve = ics.series(res["arms"]["bn"][0])
    assert curve["steps"] == [1, 3, 6] and len(curve["drift"]) == 2 and len(curve["w_norm"]) == 3
    depth = ics.run_depth(ics.DepthConfig(depths=[2, 4], seeds=[0, 1], width=8, batch=16))
    assert np.asarray(depth["bn"]["ratio"]).shape == (2, 2) and len(depth["no_bn"]["slope"]) == 2
    with pytest.raises(ValueError, match="arm"):
        ics.arm_configs(cfg, "layer_norm")


def _arms(**per_arm):
    base = {k: [1.0] * 10 for k in ("drift", "ics_rel", "beta", "eff_lr_final", "final_val_acc")}
    return {arm: {**base, **per_arm.get(arm, {})} for arm in ics.ARMS}


def _noisy(values, spread=0.01):
    return [v * (1 + spread * ((-1) ** i)) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "cid,holds,fails",
    [
        (
            "ics-distribution",
            _arms(bn={"drift": _noisy([0.5] * 10)}),
            _arms(bn={"drift": _noisy([2.0] * 10)}),
        ),
        (
            "ics-gradient",
            _arms(bn={"ics_rel": _noisy([0.9] * 10)}),
            _arms(bn={"ics_rel": _noisy([0.5] * 10)}),
        ),
        ("bn-smoother", _arms(bn={"beta": _noisy([0.5] * 10)}), _arms(bn={"beta": _noisy([2.0] * 10)})),
        (
            "wd-raises-effective-lr",
            _arms(bn_wd={"eff_lr_final": _noisy([2.0] * 10)}),
            _arms(bn_wd={"eff_lr_final": _noisy([0.5] * 10)}),
        ),
        (
            "noisy-bn-as-fast",
            _arms(noisy_bn={"final_val_acc": _noisy([1.0] * 10, 0.001)}),
            _arms(noisy_bn={"final_val_acc": _noisy([0.9] * 10, 0.001)}),
        ),
        (
            "noisy-bn-beats-no-bn",
            _arms(noisy_bn={"final_val_acc": _noisy([0.9] * 10, 0.001)}, no_bn={"final_val_acc": [0.8] * 10}),
            _arms(noisy_bn={"final_val_acc": _noisy([0.7] * 10, 0.001)}, no_bn={"final_val_acc": [0.8] * 10}),
        ),
        (
            "bn-same-lr",
            _arms(bn_low_lr={"final_val_acc": _noisy([1.0] * 10, 0.001)}),
            _arms(bn_low_lr={"final_val_acc": _noisy([1.05] * 10, 0.001)}),
        ),
        (
            "bn-gain-from-lr",
            _arms(bn={"final_val_acc": _noisy([0.95] * 10, 0.001)}, bn_low_lr={"final_val_acc": [0.9] * 10}),
            _arms(bn={"final_val_acc": _noisy([0.85] * 10, 0.001)}, bn_low_lr={"final_val_acc": [0.9] * 10}),
        ),
        (
            "bn-gradients-explode-with-depth",
            {"bn": {"slope": _noisy([0.2] * 10)}},
            {"bn": {"slope": _noisy([-0.2] * 10)}},
        ),
        (
            "bn-depth-worse-than-he",
            {"bn": {"slope": _noisy([0.2] * 10)}, "no_bn": {"slope": [0.0] * 10}},
            {"bn": {"slope": _noisy([-0.2] * 10)}, "no_bn": {"slope": [0.0] * 10}},
        ),
    ],
)
def test_each_claim_holds_and_fails_on_either_side(cid, holds, fails):
    claim = ledger.by_id()[cid]
    assert claim.judge(holds, "quick")[0] == "holds"
    assert claim.judge(fails, "quick")[0] == "does_not_hold"


def test_every_chapter_claim_is_a_later_finding_but_the_papers_own():
    later = {c.id: c.later for c in ics.CLAIMS}
    assert later.pop("ics-distribution") is False and all(later.values())


def _verdicts(**changes):
    v = {c.id: "holds" for c in ics.CLAIMS}
    v.update({k.replace("_", "-"): x for k, x in changes.items()})
    return v


VALUES = {
    "ics-distribution": 0.045,
    "ics-gradient": 0.67,
    "bn-smoother": 0.53,
    "wd-raises-effective-lr": 6.5,
    "noisy_drift": 2.7,
}


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_conclusion_follows_the_verdicts(lang):
    from bnpaper.protocol import Estimate

    lower = Estimate(-0.005, -0.009, -0.001, 10, "paired t")
    gain = Estimate(0.01, 0.004, 0.016, 10, "paired t")
    against = ics.conclusion(_verdicts(), VALUES, gain, lang)
    # noisy BN no longer matches BN: the last sentence no longer dismisses the paper's explanation
    open_ = ics.conclusion(_verdicts(noisy_bn_as_fast="does_not_hold"), VALUES, gain, lang)
    # BN ends no higher: there is nothing to explain, and the paragraph weighs no mechanism
    no_gain = ics.conclusion(_verdicts(), VALUES, lower, lang)
    assert ics._VERDICT_OF_MECHANISM["no_benefit"][k := 0 if lang == "en" else 1] in no_gain
    assert ics._VERDICT_OF_MECHANISM["against"][k].split("{")[0] not in no_gain
    assert ics._ENDPOINT["lower"][k].split("{")[0] in no_gain
    k = 0 if lang == "en" else 1
    assert ics._VERDICT_OF_MECHANISM["against"][k].split("{")[0] in against
    assert (
        ics._VERDICT_OF_MECHANISM["open"][k] in open_ and ics._VERDICT_OF_MECHANISM["open"][k] not in against
    )
    assert ics._SAID["noisy-bn-as-fast"]["does_not_hold"][k].split("{")[0] in open_
    for value in ("0.045", "0.67", "0.53", "6.5", "2.7", "1.0"):
        assert value in against, value
    level = ics.conclusion(_verdicts(), VALUES, Estimate(0.001, -0.002, 0.004, 10, "paired t"), lang)
    higher = ics.conclusion(_verdicts(), VALUES, Estimate(0.01, 0.004, 0.016, 10, "paired t"), lang)
    assert "[-0.2, 0.4]" in level and ics._ENDPOINT["higher"][k].split("{")[0] in higher
    # one reason left: no list punctuation; none left: the open sentence
    one = ics.conclusion(
        _verdicts(bn_gain_from_lr="inconclusive", wd_raises_effective_lr="inconclusive"), VALUES, gain, lang
    )
    assert ics._REASONS["bn-smoother"][k] + (" instead." if lang == "en" else ".") in one
    none = ics.conclusion(
        _verdicts(
            bn_smoother="inconclusive", bn_gain_from_lr="inconclusive", wd_raises_effective_lr="inconclusive"
        ),
        VALUES,
        None,
        lang,
    )
    assert ics._VERDICT_OF_MECHANISM["open"][k] in none
    if lang == "ar":
        import re

        plain = re.sub(r"\$[^$]*\$|\u2066[^\u2069]*\u2069", "", against)
        assert set(re.findall(r"[A-Za-z]+", plain)) <= {"He"}, re.findall(r"[A-Za-z]+", plain)


def test_the_geometric_mean_ratio_leaves_out_a_seed_without_a_number():
    summary = {"bn": {"drift": [1.0, 4.0, None]}, "no_bn": {"drift": [4.0, 4.0, 2.0]}}
    assert ics.geo_ratio(summary, "bn", "no_bn", "drift") == pytest.approx(0.5)  # sqrt(1/4 * 1)
