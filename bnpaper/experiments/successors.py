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
from bnpaper.train import TrainConfig
from bnpaper.tuning import Tuning

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
NEW = ("a new claim of this book: version 1", "ادعاء جديد في هذا الكتاب: الإصدار 1")
_tune = profiles.tuning_seeds("quick")


def _tuned(arms: str, arms_ar: str, grid: tuple) -> tuple[str, str]:
    return (
        f"the learning rate of each arm ({arms}) on its own, on the 2x grid {grid[0]:g} to {grid[-1]:g}, "
        f"by mean final validation accuracy over {len(_tune)} tuning seeds ({_tune[0]}-{_tune[-1]}) "
        "(`bnpaper tune`, keys `successors/...`)",
        f"معدل التعلم لكل ذراع ({arms_ar}) على حدة، على سلّم القيم (كل قيمة ضعف سابقتها) من {grid[0]:g} "
        f"إلى {grid[-1]:g}، بمتوسط دقة التحقق النهائية عبر {counting.counted(len(_tune), 'seed', 'ar')} ضبط "
        f"({_tune[0]}-{_tune[-1]}) (`bnpaper tune`، المفاتيح `successors/...`)",
    )


def _diff(a: str, b: str):
    def estimate(m: dict):
        return paired_t(m[a]["final_val_acc"], m[b]["final_val_acc"])

    return estimate


CLAIMS = (
    Claim(
        id="renorm-small-batch",
        en=f"At mini-batches of {SMALL_BATCH}, Batch Renormalization ends above BN (Ioffe 2017).",
        ar=f"عند حزم صغيرة من {counting.counted(SMALL_BATCH, 'example', 'ar')}، تنتهي إعادة تطبيع الحزمة بدقة أعلى من دقة "
        "تطبيع الحزمة (إيوفي 2017).",
        where="Ioffe 2017",
        paper="Batch Renorm > BN at small batches (Inception, ImageNet)",
        chapter="11_extending",
        label="sec-extending-successors",
        protocol=Protocol(
            version=1,
            fixed=FIXED,
            arms=(
                f"the Sec. 4.1 MLP at mini-batches of {SMALL_BATCH}, with BN and with Batch Renormalization "
                "(rmax 3, dmax 5 from the first step), each at its tuned rate",
                f"شبكة القسم 4.1 بحزم صغيرة من {SMALL_BATCH} أمثلة، مع تطبيع الحزمة ومع إعادة تطبيع الحزمة "
                "($r_{\\max} = 3$، $d_{\\max} = 5$ منذ الخطوة الأولى)، كلٌّ بمعدله المضبوط",
            ),
            tuned=_tuned("mlp_bn, mlp_renorm", "`mlp_bn` و`mlp_renorm`", SMALL_LR_GRID),
            statistic=(
                "final validation accuracy, Batch Renormalization minus BN, paired by seed",
                "دقة التحقق النهائية، إعادة تطبيع الحزمة ناقص تطبيع الحزمة، مقترنة بالبذرة",
            ),
            interval="paired t",
            kind="greater",
            margin=0.0,
            changes=NEW,
        ),
        estimate=_diff("mlp_renorm", "mlp_bn"),
        paper_ar="إعادة تطبيع الحزمة > تطبيع الحزمة بالحزم الصغيرة (Inception، ImageNet)",
        later=True,
    ),
    Claim(
        id="layernorm-trails-bn-conv",
        en=f"On the conv net at mini-batches of {CONV_BATCH}, LayerNorm ends below BN (Wu and He 2018).",
        ar=f"على الشبكة الالتفافية بحزم صغيرة من {counting.counted(CONV_BATCH, 'example', 'ar')}، ينتهي تطبيع الطبقة بدقة أدنى "
        "من دقة تطبيع الحزمة (يوشين وو وكايمينغ هي 2018).",
        where="Wu and He 2018",
        paper="LN below BN at 32 images per GPU (ResNet-50, ImageNet)",
        chapter="11_extending",
        label="sec-extending-successors",
        protocol=Protocol(
            version=1,
            fixed=FIXED,
            arms=(
                f"the conv net of Sec. 3.2 (two 3x3 conv blocks) at mini-batches of {CONV_BATCH}, with BN and with "
                "LayerNorm (over each example's channels and positions), each at its tuned rate",
                f"الشبكة الالتفافية في القسم 3.2 (كتلتان التفافيتان $3 \\times 3$) بحزم صغيرة من {CONV_BATCH} مثالاً، "
                "مع تطبيع الحزمة ومع تطبيع الطبقة (على قنوات كل مثال ومواضعه)، كلٌّ بمعدله المضبوط",
            ),
            tuned=_tuned("conv_bn, conv_ln", "`conv_bn` و`conv_ln`", LR_GRID),
            statistic=(
                "final validation accuracy, BN minus LayerNorm, paired by seed",
                "دقة التحقق النهائية، تطبيع الحزمة ناقص تطبيع الطبقة، مقترنة بالبذرة",
            ),
            interval="paired t",
            kind="greater",
            margin=0.0,
            changes=NEW,
        ),
        estimate=_diff("conv_bn", "conv_ln"),
        paper_ar="تطبيع الطبقة أدنى من تطبيع الحزمة عند 32 صورة لكل وحدة معالجة رسومية (ResNet-50، ImageNet)",
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
