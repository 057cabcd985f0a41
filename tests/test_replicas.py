"""Chapter 10: per-replica vs synchronized BN. Its measurements against references, the real
2-process equalities, its claims' rules on both sides of their margins, and its conclusion."""

import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from bnpaper import ledger
from bnpaper.experiments import replicas
from bnpaper.protocol import Estimate
from bnpaper.train import TrainConfig, build_model


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")


def _noisy(values, scale=0.01):
    rng = np.random.default_rng(0)
    return list(np.asarray(values, float) + rng.normal(0, scale, len(values)))


def _model(ghost=1, seed=0):
    torch.manual_seed(seed)
    return build_model(
        TrainConfig(
            model="mlp",
            hidden=[8, 6],
            activation="sigmoid",
            init_std=0.3,
            bn=True,
            ghost_batches=ghost,
            batch_size=8,
        )
    )


def test_train_mode_accuracy_leaves_the_running_averages_alone():
    m = _model(ghost=2)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 28, 28, generator=g), torch.randint(0, 10, (40,), generator=g)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.eval()
    acc = replicas.train_mode_accuracy(m, x, y, 8)
    assert 0 <= acc <= 1 and not m.training
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    # by hand: five batches of 8 in training mode, each split into two ghost batches of 4
    m.train()
    with torch.no_grad():
        hand = sum((m(x[i : i + 8]).argmax(1) == y[i : i + 8]).sum().item() for i in range(0, 40, 8)) / 40
    assert acc == hand


def test_statistics_noise_follows_the_sampling_law():
    """On 20,000 inputs, the batch mean's spread over m examples is close to 1/sqrt(m) (in units of the
    population's standard deviation), and the variance's to sqrt(2/m) for near-Gaussian inputs."""
    m = _model()
    x = torch.rand(20000, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    for size in (8, 32):
        mean_noise, var_noise = replicas.statistics_noise(m, x, size, draws=400, seed=0)
        assert mean_noise == pytest.approx(1 / np.sqrt(size), rel=0.15)
        assert var_noise == pytest.approx(np.sqrt(2 / size), rel=0.3)


def test_arm_configs_split_the_global_batch():
    cfg = replicas.ReplicasConfig(seeds=[0, 1])
    cfgs = replicas.arm_configs(cfg, 4)
    assert [c.ghost_batches for c in cfgs] == [4, 4] and cfgs[0].batch_size == 64 and cfgs[1].seed == 1
    with pytest.raises(ValueError, match="does not split into 3 replicas"):
        replicas.arm_configs(cfg, 3)


def test_two_real_processes_equal_one_process():
    """The chapter's equalities at a few steps: synchronized BN = one process; per-replica BN = one
    process with 2 ghost batches; and the two differ (the comparison can fail)."""
    cfg = replace(replicas.profile_config("smoke", 0.32), seeds=[0], equality_steps=4)
    eq = replicas.equality(cfg)
    assert eq["sync_vs_single"] < 1e-12 and eq["local_vs_ghost"] < 1e-12
    assert eq["local_vs_single"] > 1e-6


def _arms(**over):
    base = {f"k{k}": {"final_val_acc": [0.9] * 10, "gap": [0.01] * 10} for k in replicas.REPLICAS}
    for arm, vals in over.items():
        base[arm] = {**base[arm], **vals}
    return {**base, "equality": {"sync_vs_single": 1e-16, "local_vs_ghost": 1e-16}}


@pytest.mark.parametrize(
    "cid,holds,fails",
    [
        ("sync-equals-single", _arms(), {**_arms(), "equality": {"sync_vs_single": 1e-6}}),
        ("ghost-simulates-replicas", _arms(), {**_arms(), "equality": {"local_vs_ghost": 2e-9}}),
        (
            "ghost16-as-good",
            _arms(k4={"final_val_acc": _noisy([0.9] * 10, 0.001)}),
            _arms(k4={"final_val_acc": _noisy([0.85] * 10, 0.001)}),
        ),
        (
            "local8-hurts",
            _arms(k8={"final_val_acc": _noisy([0.85] * 10)}),
            _arms(k8={"final_val_acc": _noisy([0.95] * 10)}),
        ),
        ("gap8-larger", _arms(k8={"gap": _noisy([0.05] * 10)}), _arms(k8={"gap": _noisy([-0.03] * 10)})),
    ],
)
def test_each_claim_holds_and_fails_on_either_side(cid, holds, fails):
    claim = ledger.by_id()[cid]
    assert claim.judge(holds, "quick")[0] == "holds"
    assert claim.judge(fails, "quick")[0] == "does_not_hold"


def test_the_equality_margin_is_strict():
    claim = ledger.by_id()["sync-equals-single"]
    assert claim.judge({"equality": {"sync_vs_single": 0.999e-9}}, "quick")[0] == "holds"
    assert claim.judge({"equality": {"sync_vs_single": 1e-9}}, "quick")[0] == "does_not_hold"


@pytest.mark.parametrize(
    "v8,v16,expected",
    [
        ("holds", "holds", "small"),
        ("holds", "does_not_hold", "always"),
        ("holds", "inconclusive", "open"),
        ("inconclusive", "holds", "never"),
        ("does_not_hold", "holds", "never"),
        ("inconclusive", "inconclusive", "open"),
        ("does_not_hold", "does_not_hold", "open"),
    ],
)
def test_advice_follows_the_two_accuracy_verdicts(v8, v16, expected):
    assert replicas.advice({"local8-hurts": v8, "ghost16-as-good": v16}) == expected


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_conclusion_carries_the_numbers_and_the_verdicts(lang):
    est = Estimate(-0.02, -0.03, -0.01, 10, "paired t")
    eq = {"steps": 30, "sync_vs_single": 2.2e-16, "local_vs_ghost": 1.1e-16, "local_vs_single": 0.05}
    verdicts = {c.id: "holds" for c in replicas.CLAIMS}
    text = replicas.conclusion(verdicts, {c.id: est for c in replicas.CLAIMS}, eq, lang)
    k = 0 if lang == "en" else 1
    assert "2.2e-16" in text and "5.0e-02" in text and "-2.0 [-3.0, -1.0]" in text
    assert replicas._ADVICE["small"][k] in text
    other = replicas.conclusion(
        {**verdicts, "local8-hurts": "inconclusive"}, {c.id: est for c in replicas.CLAIMS}, eq, lang
    )
    assert replicas._ADVICE["never"][k] in other and replicas._SAID["local8-hurts"]["other"][k][:20] in other
    if lang == "ar":
        plain = re.sub(r"\$[^$]*\$|\u2066[^\u2069]*\u2069", "", text)
        assert not re.findall(r"[A-Za-z]+", plain), re.findall(r"[A-Za-z]+", plain)


def test_claims_of_later_papers_are_later_findings():
    later = {c.id: c.later for c in replicas.CLAIMS}
    assert later == {
        "sync-equals-single": False,
        "ghost-simulates-replicas": False,
        "ghost16-as-good": True,
        "local8-hurts": False,
        "gap8-larger": True,
    }
