"""Chapter 11, the worked example of extending the book: BN's successors against BN.

Two questions, each a claim with its protocol fixed before the runs:

* Batch Renormalization (Ioffe 2017) was made for small mini-batches: on the Sec. 4.1 network at
  mini-batches of 4, does it end above BN? Both arms tuned on validation, n seeds, paired.
* LayerNorm (Ba et al. 2016) normalizes each example over its own features, so it does not depend
  on the batch at all; on convolutional networks it is reported to trail BN (Wu and He 2018,
  Fig. 1 and Table 1): on the book's conv net at mini-batches of 64, does it?

Everything here goes through the same machinery a reader's own module uses (see
experiments/_template.py): `TrainConfig.norm`, the engine, tuned arms, `Protocol`, the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from bnpaper import counting, profiles
from bnpaper.engine import map_tasks, train_many
from bnpaper.experiments.figure1 import LR_GRID, paper_network
from bnpaper.protocol import Claim, Protocol, confirmatory, paired_t
from bnpaper.text import Catalog, tuning_seed_fields
from bnpaper.train import TrainConfig
from bnpaper.tuning import Tuning

T = Catalog(__name__)  # this experiment's English and Arabic text: successors.yml

settings = partial(profiles.settings, "successors")  # (profile, steps=0) -> this experiment's numbers

SMALL_BATCH = 4  # the small-batch question's mini-batch (Ioffe 2017's microbatches are 4 examples)
CONV_BATCH = 64
ARMS = {  # arm -> (network, norm, mini-batch)
    "mlp_bn": ("mlp", "batch", SMALL_BATCH),
    "mlp_renorm": ("mlp", "batch_renorm", SMALL_BATCH),
    "conv_bn": ("convnet", "batch", CONV_BATCH),
    "conv_ln": ("convnet", "layer", CONV_BATCH),
}


def arm_config(
    arm: str, steps: int, seed: int, lr: float, eval_every: int, data_dir: str = "", device: str = "cpu"
):
    model, norm, batch = ARMS[arm]
    if model == "mlp":  # the Sec. 4.1 network (sigmoid, N(0, 0.1^2)), as chapters 07 and 09
        return paper_network(
            steps, seed, True, norm=norm, batch_size=batch, lr=lr, eval_every=eval_every,
            final_train_acc=False, data_dir=data_dir, device=device,
        )  # fmt: skip
    return TrainConfig(
        model="convnet", bn=True, norm=norm, batch_size=batch, steps=steps, lr=lr, seed=seed,
        eval_every=eval_every, final_train_acc=False, data_dir=data_dir, device=device,
    )  # fmt: skip


def _steps(arm: str, profile: str) -> tuple[int, int]:
    s = settings(profile)
    key = "mlp" if arm.startswith("mlp") else "conv"
    return s[f"{key}_steps"], s[f"{key}_eval_every"]


def _tuning_base(arm: str):
    def base(profile: str, seed: int) -> TrainConfig:
        steps, every = _steps(arm, profile)
        return arm_config(arm, steps, seed, 0.01, every)

    return base


# at mini-batches of 4 the MLP's best rates lie below the book's grid (its first tuning chose 0.01, the
# grid's lowest value, for both arms): its grid runs 16 times lower, over the same 11 doublings
SMALL_LR_GRID = tuple(v / 16 for v in LR_GRID)  # 0.000625 ... 0.64
GRIDS = {arm: SMALL_LR_GRID if arm.startswith("mlp") else LR_GRID for arm in ARMS}
TUNINGS = tuple(Tuning(f"successors/{arm}", "lr", GRIDS[arm], _tuning_base(arm)) for arm in ARMS)


@dataclass
class SuccessorsConfig:
    lr: dict  # arm -> its tuned learning rate
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    mlp_steps: int = 1000
    mlp_eval_every: int = 100
    conv_steps: int = 250
    conv_eval_every: int = 50
    data_dir: str = ""
    device: str = "cpu"


def run_arm(cfg: SuccessorsConfig, arm: str) -> dict:
    mlp = arm.startswith("mlp")
    steps, every = (cfg.mlp_steps, cfg.mlp_eval_every) if mlp else (cfg.conv_steps, cfg.conv_eval_every)
    cfgs = [arm_config(arm, steps, s, cfg.lr[arm], every, cfg.data_dir, cfg.device) for s in cfg.seeds]
    hists = [h for _, h in train_many(cfgs, desc=f"successors {arm}")]
    return {
        "final_val_acc": [h["final_val_acc"] for h in hists],
        "final_test_acc": [h["final_test_acc"] for h in hists],
        "diverged": [h["diverged"] for h in hists],
        "val_acc": [h["val_acc"] for h in hists],
        "eval_steps": hists[0]["eval_steps"],
    }


def run(cfg: SuccessorsConfig) -> dict:
    """Every arm over the same seeds, side by side in the engine's workers."""
    return dict(zip(ARMS, map_tasks(run_arm, [(cfg, arm) for arm in ARMS])))


def profile_config(profile: str, lr: dict, data_dir: str = "", device: str = "cpu") -> SuccessorsConfig:
    s = settings(profile)
    return SuccessorsConfig(lr=lr, seeds=profiles.eval_seeds(profile), data_dir=data_dir, device=device, **s)


# ----------------------------------------------------------------------------- claims

FIXED = "2026-11-26"
NEW = T("new")
_tune = profiles.tuning_seeds("quick")


def _tuned(arms: tuple[str, str], grid: tuple) -> tuple[str, str]:
    return T(
        "tuned",
        arms=arms,
        grid_first=grid[0],
        grid_last=grid[-1],
        **tuning_seed_fields(_tune),
    )


def _diff(a: str, b: str):
    def estimate(m: dict):
        return paired_t(m[a]["final_val_acc"], m[b]["final_val_acc"])

    return estimate


CLAIMS = (
    Claim(
        id="renorm-small-batch",
        **T.fields(
            "renorm-small-batch.claim",
            "en",
            "ar",
            small_batch=SMALL_BATCH,
            small_batch_examples=counting.counted(SMALL_BATCH, "example", "ar"),
        ),
        where="Ioffe 2017",
        **T.fields("renorm-small-batch.paper", "paper", "paper_ar"),
        chapter="11_extending",
        label="sec-extending-successors",
        protocol=Protocol(
            version=1,
            fixed=FIXED,
            arms=T("renorm-small-batch.arms", small_batch=SMALL_BATCH),
            tuned=_tuned(T("renorm-small-batch.tuned_arms"), SMALL_LR_GRID),
            statistic=T("renorm-small-batch.statistic"),
            interval="paired t",
            kind="greater",
            margin=0.0,
            changes=NEW,
        ),
        estimate=_diff("mlp_renorm", "mlp_bn"),
        later=True,
    ),
    Claim(
        id="layernorm-trails-bn-conv",
        **T.fields(
            "layernorm-trails-bn-conv.claim",
            "en",
            "ar",
            conv_batch=CONV_BATCH,
            conv_batch_examples=counting.counted(CONV_BATCH, "example", "ar"),
        ),
        where="Wu and He 2018",
        **T.fields("layernorm-trails-bn-conv.paper", "paper", "paper_ar"),
        chapter="11_extending",
        label="sec-extending-successors",
        protocol=Protocol(
            version=1,
            fixed=FIXED,
            arms=T("layernorm-trails-bn-conv.arms", conv_batch=CONV_BATCH),
            tuned=_tuned(T("layernorm-trails-bn-conv.tuned_arms"), LR_GRID),
            statistic=T("layernorm-trails-bn-conv.statistic"),
            interval="paired t",
            kind="greater",
            margin=0.0,
            changes=NEW,
        ),
        estimate=_diff("conv_bn", "conv_ln"),
        later=True,
    ),
)

# The confirmatory version of every claim above (bnpaper.protocol.confirmatory): each claim's
# smallest effect of interest, and the statistics that are true by construction (checks).
CLAIMS = confirmatory(
    CLAIMS,
    sesoi={
        "renorm-small-batch": (0.005, "accuracy"),
        "layernorm-trails-bn-conv": (0.005, "accuracy"),
    },
)
