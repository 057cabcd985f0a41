"""A claim of your own: copy this to bnpaper/experiments/<name>.py and _template.yml (its English and
Arabic words: the claim, the protocol's text) to <name>.yml, and edit both.

Nothing else needs editing: `bnpaper.experiments.names()` finds every module of this package (this
one is skipped because its name starts with "_"), and the ledger (`bnpaper.ledger.claims()`) lists
each module's CLAIMS. The parts, as every chapter's experiment module has them:

1. a dataclass config (everything a run depends on: the cache keys results by it);
2. `run(config) -> dict`, training through the multi-run engine (seeds batched, results cached);
3. the measurement: per-seed numbers, one list per arm, in a plain dict;
4. CLAIMS: each with a Protocol fixed before the run (arms, what is tuned, the statistic, the
   interval, the kind, the margin, the smallest effect of interest with its reason) and an
   estimate turning the measurement into the statistic.

Then lock the protocol (`bnpaper lock`, and commit bnpaper/data/protocols.lock: that commit is the
proof it came first), and measure and record on the profile's evaluation seeds (in a notebook, or
a script):

    from bnpaper import ledger, profiles
    from bnpaper.experiments import my_claim
    seeds = profiles.eval_seeds("quick")
    res = my_claim.run(my_claim.Config(seeds=seeds))
    ledger.record("my-claim", res, profile="quick", n=len(seeds), seeds=seeds)
    print(ledger.rows("quick"))   # the row of "my-claim", with its verdict

This template's claim: at a learning rate ten times smaller than BN needs, BN still trains the
Sec. 4.1 network at least as well as the network without BN (a reader's question, not the paper's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bnpaper.engine import trained_many
from bnpaper.experiments.figure1 import paper_network
from bnpaper.protocol import Claim, Protocol, paired_t
from bnpaper.text import Catalog

T = Catalog(__name__)  # this experiment's English and Arabic text: _template.yml


@dataclass
class Config:
    steps: int = 1000
    lr: float = 0.01  # fixed, not tuned: the claim is about this rate (say so in the protocol)
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    hidden: list[int] = field(default_factory=lambda: [100, 100, 100])


def run(cfg: Config) -> dict:
    """Both arms over the same seeds (paired), through the engine and its store."""
    out = {}
    for arm, bn in (("no_bn", False), ("bn", True)):
        cfgs = [paper_network(cfg.steps, s, bn, lr=cfg.lr, hidden=list(cfg.hidden)) for s in cfg.seeds]
        out[arm] = {
            "final_val_acc": [h["final_val_acc"] for _, h in trained_many(cfgs, desc=f"my claim {arm}")]
        }
    return out


def _bn_minus_no_bn(m: dict):
    return paired_t(m["bn"]["final_val_acc"], m["no_bn"]["final_val_acc"])


CLAIMS = (
    Claim(
        id="small-lr-bn-no-worse",
        **T.fields("small-lr-bn-no-worse.claim", "en", "ar"),
        where="paper 4.1",
        paper="-",
        chapter="11_extending",
        label="sec-extending-template",
        protocol=Protocol(
            version=1,
            fixed="2026-11-26",
            arms=T("small-lr-bn-no-worse.arms"),
            tuned=T("small-lr-bn-no-worse.tuned"),
            statistic=T("small-lr-bn-no-worse.statistic"),
            interval="paired t",
            kind="greater",
            margin=-0.01,  # "at least as well": no worse than one point below
            sesoi=0.0,  # does not hold if BN is surely worse than no BN at all
            sesoi_reason="margin",
        ),
        estimate=_bn_minus_no_bn,
    ),
)
