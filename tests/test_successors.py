"""Chapter 11's worked example: its arms are the networks they claim to be, and its claims' rules
hold and fail on either side of their margins."""

import numpy as np
import pytest

from bnpaper import claims_view, ledger
from bnpaper.experiments import names, successors
from bnpaper.train import build_model


def test_arms_are_the_claimed_networks():
    kinds = {"batch": "BatchNorm", "batch_renorm": "BatchRenorm", "layer": "GroupNorm"}
    for arm, (model, norm, batch) in successors.ARMS.items():
        cfg = successors.arm_config(arm, 10, 0, 0.1, 5)
        assert (cfg.model, cfg.norm, cfg.batch_size) == (model, norm, batch)
        layers = {type(m).__name__ for m in build_model(cfg).modules()}
        assert kinds[norm] in layers, (arm, layers)


def test_found_without_being_listed():
    """The chapter's module is not in experiments.NAMES: the ledger finds it, as it would a reader's."""
    from bnpaper.experiments import NAMES

    assert "successors" not in NAMES and "successors" in names()
    assert {"renorm-small-batch", "layernorm-trails-bn-conv"} <= set(ledger.by_id())


def _m(**over):
    rng = np.random.default_rng(0)
    base = {arm: {"final_val_acc": list(0.9 + rng.normal(0, 0.002, 10))} for arm in successors.ARMS}
    for arm, shift in over.items():
        base[arm] = {"final_val_acc": [v + shift for v in base[arm]["final_val_acc"]]}
    return base


@pytest.mark.parametrize(
    "cid,holds,fails",
    [
        ("renorm-small-batch", _m(mlp_renorm=0.02), _m(mlp_renorm=-0.02)),
        ("layernorm-trails-bn-conv", _m(conv_ln=-0.02), _m(conv_ln=0.02)),
    ],
)
def test_each_claim_holds_and_fails_on_either_side(cid, holds, fails):
    claim = ledger.by_id()[cid]
    assert claim.judge(holds, "quick")[0] == "holds"
    assert claim.judge(fails, "quick")[0] == "does_not_hold"
    assert claim.judge(_m(), "quick")[0] == "does_not_hold"  # the same accuracies: a precise null
    rng = np.random.default_rng(3)
    wide = {arm: {"final_val_acc": list(0.9 + rng.normal(0, 0.01, 10))} for arm in successors.ARMS}
    assert claim.judge(wide, "quick")[0] == "inconclusive"  # noisy arms: the interval spans 0 and d


def test_locations_read_in_arabic():
    assert claims_view.where_text("Ioffe 2017", "ar") == "إيوفي 2017"
    assert claims_view.where_text("Wu and He 2018", "ar") == "يوشين وو وكايمينغ هي 2018"
