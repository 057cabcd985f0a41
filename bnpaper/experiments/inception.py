"""Chapter "The accelerated-BN recipe at small scale" (paper Sec. 4.2, Figures 2 and 3), and its claims.

The paper's models, on a small Inception-style net (bnpaper.models.inception_net):

  Baseline       no BN, dropout, L2 weight decay wd, learning rate lr (TUNED: a 2x grid, validation
                 accuracy, tuning seeds), exponential decay to `decay_total` of it over the run
  BN-Baseline    the same with BN before every nonlinearity, at the Baseline's lr (as the paper)
  BN-x5          BN with the changes of Sec. 4.2.1 that apply here: dropout removed, L2 cut 5x,
                 learning-rate decay 6x faster, and 5x the Baseline's learning rate
  BN-x30         the same with 30x the learning rate
  BN-x5-Sigmoid  BN-x5 with sigmoid instead of ReLU (Glorot init)
  Inception-Sigmoid  Baseline with sigmoid instead of ReLU (Glorot init, its own TUNED lr; the
                 paper: never above 1/1000 accuracy)

The accelerated models (BN-x5, BN-x30, BN-x5-Sigmoid) decay 6x faster, so after a third of the
Baseline's steps their rate is 1/100 of where it started: they train for `accelerated_share` of
the Baseline's steps with the same per-step decay (their first steps are exactly those of a
full-length run). Every shortening works against the claims: a model that would have reached the
target later counts as never reaching it, and its final accuracy is read earlier.

Changes of Sec. 4.2.1 that do not apply: removing Local Response Normalization (the net has none),
shuffling more thoroughly (every epoch is already a fresh permutation), fewer photometric
distortions (no data augmentation is used).

The ablation (`ABLATION`) applies each applicable change alone, to the Baseline and to BN-Baseline,
and trains only where the profile's `ablation_seeds` is above 0.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from functools import partial

from bnpaper import profiles
from bnpaper.engine import trained_many
from bnpaper.protocol import Claim, Estimate, Protocol, censored_median_ratio, confirmatory, paired_t
from bnpaper.text import Catalog, tuning_seed_fields
from bnpaper.train import TrainConfig
from bnpaper.tuning import Tuning

T = Catalog(__name__)  # this experiment's English and Arabic text: inception.yml

settings = partial(profiles.settings, "inception")  # (profile, steps=0) -> this experiment's numbers

MODELS = ("Baseline", "BN-Baseline", "BN-x5", "BN-x30", "BN-x5-Sigmoid", "Inception-Sigmoid")
# Sec. 4.2.1's changes that apply here, each alone (the ablation); "higher lr" is the 5x of BN-x5
CHANGES = ("higher_lr", "no_dropout", "less_l2", "faster_decay")
ABLATION = tuple(f"{arm}+{c}" for arm in ("Baseline", "BN-Baseline") for c in CHANGES)
LR_GRID = tuple(0.01 * 2**k for k in range(6))  # 0.01 ... 0.32, a 2x grid
CHANCE = 0.1  # ten classes: a diverged run's final accuracy counts as chance


@dataclass
class RecipeConfig:
    steps: int = 800  # the Baseline's SGD steps per run
    eval_every: int = 50  # steps between validation evaluations
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    lr: float = 0.08  # the Baseline's learning rate (tuned; the paper's Inception used 0.0015 on ImageNet)
    sigmoid_lr: float = 0.08  # Inception-Sigmoid's learning rate (tuned on its own)
    accelerated_share: float = 1 / 3  # BN-x5, BN-x30, BN-x5-Sigmoid train this share of `steps`
    bn_baseline_share: float = 0.5  # BN-Baseline trains this share of `steps` (works against its claim)
    momentum: float = 0.9
    weight_decay: float = 5e-4  # Baseline's L2 (Sec. 4.2.1 cuts it 5x for the accelerated models)
    dropout: float = 0.4  # Baseline's dropout before the classifier (GoogLeNet's 40%)
    decay_total: float = 0.1  # Baseline's lr falls to this fraction over the run (exponential)
    batch_size: int = 32  # the paper's mini-batch size in Sec. 4.2
    ablation_seeds: int = 0  # runs per ablation arm (0: the ablation is not trained)
    data_dir: str = ""
    device: str = "cpu"


def accelerated_steps(cfg: RecipeConfig, share: float | None = None) -> int:
    """The accelerated models' steps (or those of another `share`): `accelerated_share` of the
    Baseline's, a whole number of evaluation intervals (at least one)."""
    share = cfg.accelerated_share if share is None else share
    k = max(1, round(cfg.steps * share / cfg.eval_every))
    return min(cfg.steps, k * cfg.eval_every)


def model_config(cfg: RecipeConfig, name: str, seed: int) -> TrainConfig:
    """The TrainConfig of one model (or ablation arm "<Baseline|BN-Baseline>+<change>") and seed."""
    per_step = cfg.decay_total ** (1 / cfg.steps)  # Baseline: lr * decay_total at the end
    base = TrainConfig(
        model="inception",
        bn=False,
        activation="relu",
        dropout=cfg.dropout,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        lr_decay_every=1,
        lr_decay_factor=per_step,
        batch_size=cfg.batch_size,
        steps=cfg.steps,
        eval_every=cfg.eval_every,
        seed=seed,
        data_dir=cfg.data_dir,
        device=cfg.device,
        init="he",
        final_train_acc=False,
    )
    change = {  # Sec. 4.2.1, each alone
        "higher_lr": dict(lr=5 * cfg.lr),
        "no_dropout": dict(dropout=0.0),
        "less_l2": dict(weight_decay=cfg.weight_decay / 5),
        "faster_decay": dict(lr_decay_factor=per_step**6),
    }
    accelerated = dict(
        bn=True,
        steps=accelerated_steps(cfg),
        **change["no_dropout"],
        **change["less_l2"],
        **change["faster_decay"],
    )
    sigmoid = dict(activation="sigmoid", init="glorot")
    if "+" in name:
        arm, what = name.split("+", 1)
        if arm not in ("Baseline", "BN-Baseline") or what not in change:
            raise ValueError(f"an ablation arm is one of {', '.join(ABLATION)}, got {name!r}")
        return replace(model_config(cfg, arm, seed), **change[what])  # the arm with one change
    if name == "Baseline":
        return base
    if name == "BN-Baseline":
        return replace(base, bn=True, steps=accelerated_steps(cfg, cfg.bn_baseline_share))
    if name == "BN-x5":
        return replace(base, **accelerated, lr=5 * cfg.lr)
    if name == "BN-x30":
        return replace(base, **accelerated, lr=30 * cfg.lr)
    if name == "BN-x5-Sigmoid":
        return replace(base, **accelerated, **sigmoid, lr=5 * cfg.lr)
    if name == "Inception-Sigmoid":
        return replace(base, **sigmoid, lr=cfg.sigmoid_lr)
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")


def recipe_config(profile: str, **kw) -> RecipeConfig:
    """The profile's RecipeConfig (bnpaper/profiles.py), with keyword overrides."""
    s = settings(profile)
    fields = dict(
        steps=s["steps"],
        eval_every=s["eval_every"],
        accelerated_share=s["accelerated_share"],
        bn_baseline_share=s["bn_baseline_share"],
        ablation_seeds=s["ablation_seeds"],
        seeds=profiles.eval_seeds(profile),
    )
    fields.update(kw)
    return RecipeConfig(**fields)


def _tuning_base(name: str):
    def base(profile: str, seed: int) -> TrainConfig:
        return replace(model_config(recipe_config(profile), name, seed), read_test=False)

    return base


TUNINGS = (
    Tuning("inception/Baseline", "lr", LR_GRID, _tuning_base("Baseline")),
    Tuning("inception/Inception-Sigmoid", "lr", LR_GRID, _tuning_base("Inception-Sigmoid")),
)


TARGET_SHARE = 0.99  # the target is 99% of the tuned Baseline's validation accuracy (see target_from_tuning)


def target_from_tuning(entry: dict) -> float:
    """The fixed validation target: TARGET_SHARE of the tuned Baseline's mean final validation
    accuracy over the tuning seeds (read from the tuning's record, before any evaluation run).
    The mean itself would be missed by about half of the Baseline's own runs through seed noise
    alone, which makes the Baseline's median steps to it +inf and every ratio unbounded."""
    return TARGET_SHARE * float(entry["scores"][repr(entry["value"])])


RECORDED = (
    "eval_steps",
    "val_acc",
    "loss",
    "final_val_acc",
    "final_test_acc",
    "diverged",
    "diverged_at",
    "train_seconds",
)


def run(cfg: RecipeConfig) -> dict:
    """Validation accuracy and training-loss curves, final accuracies, of every model and seed
    (and of the ablation arms, if cfg.ablation_seeds)."""
    cells = [(name, s) for name in MODELS for s in cfg.seeds]
    cells += [(name, s) for name in ABLATION for s in cfg.seeds[: cfg.ablation_seeds]]
    done = trained_many([model_config(cfg, name, s) for name, s in cells], desc="inception recipe")
    out: dict[str, list] = {}
    for (name, _s), (_, h) in zip(cells, done):
        out.setdefault(name, []).append({k: h[k] for k in RECORDED})
    return out


def ms_per_step(runs: list[dict]) -> float:
    """Median wall-clock milliseconds per training step (evaluations included) over the runs that did
    not diverge, as measured in this build (each run on one core of a worker process)."""
    return 1000 * statistics.median(
        r["train_seconds"] / r["eval_steps"][-1] for r in runs if not r["diverged"]
    )


def steps_to(run_: dict, target: float) -> float:
    """The first evaluation step at which a run's validation accuracy is at or above target; +inf
    if it never is (a diverged run counts only its evaluations before it diverged)."""
    return float(next((s for s, a in zip(run_["eval_steps"], run_["val_acc"]) if a >= target), math.inf))


def final_acc(run_: dict, key: str = "final_test_acc") -> float:
    """A run's final accuracy; a diverged run (None) counts as chance."""
    v = run_[key]
    return CHANCE if v is None else float(v)


def measurements(result: dict, cfg: RecipeConfig, target: float) -> dict:
    """Per model, per seed (in seed order): steps to the fixed target (+inf: never), final
    validation and test accuracy (a diverged run: chance), diverged; plus the target and the
    evaluation interval (the resolution of a step count)."""
    m: dict = {"target": target, "eval_every": cfg.eval_every, "n": len(cfg.seeds), "models": {}}
    for name, runs in result.items():
        m["models"][name] = {
            "steps_to_target": [steps_to(r, target) for r in runs],
            "final_val_acc": [final_acc(r, "final_val_acc") for r in runs],
            "final_test_acc": [final_acc(r) for r in runs],
            "diverged": [bool(r["diverged"]) for r in runs],
            "trained_steps": model_config(cfg, name, 0).steps,
        }
    return m


def reached(steps: list[float]) -> int:
    return sum(math.isfinite(s) for s in steps)


def summarize(m: dict) -> dict:
    """Figure 3's columns per model: median steps to the target (inf: at most half reached it),
    how many runs reached it, the speed-up over the Baseline (ratio of medians), and the final
    validation and test accuracy (mean, std)."""
    rows = {}
    base = statistics.median(m["models"]["Baseline"]["steps_to_target"])
    for name, r in m["models"].items():
        med = statistics.median(r["steps_to_target"])
        n = len(r["steps_to_target"])
        rows[name] = {
            "median_steps": med,
            "reached": reached(r["steps_to_target"]),
            "runs": n,
            "speedup": base / med if math.isfinite(base) and math.isfinite(med) else math.nan,
            "final_val_acc": _mean_sd(r["final_val_acc"]),
            "final_test_acc": _mean_sd(r["final_test_acc"]),
            "diverged": sum(r["diverged"]),
            "trained_steps": r["trained_steps"],
        }
    return rows


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def plateau_gain(curves: list[list[float]], share: float = 0.25) -> float:
    """How much validation accuracy still rises over the last `share` of the run (a converged
    Baseline gains little): mean over runs of the mean of the last `share` of the evaluations minus
    the mean of the `share` before them."""
    k = max(1, round((len(curves[0]) - 1) * share))
    if 2 * k > len(curves[0]):
        raise ValueError(f"{len(curves[0])} evaluations are too few to compare two windows of {k}")
    return statistics.fmean(statistics.fmean(c[-k:]) - statistics.fmean(c[-2 * k : -k]) for c in curves)


# ----------------------------------------------------------------------------- claims

FIXED = "2026-11-25"
_tune, _eval = profiles.tuning_seeds("quick"), profiles.eval_seeds("quick")
_TS = T("ts", **tuning_seed_fields(_tune, with_noun=False))
_ES = f"{_eval[0]}-{_eval[-1]}"
_GRID = f"{LR_GRID[0]:g} ... {LR_GRID[-1]:g}"
BN_SHARE = RecipeConfig.bn_baseline_share
TUNED = T("tuned", grid=_GRID, ts=_TS, target_share=TARGET_SHARE, bn_share=BN_SHARE, es=_ES)
ARMS_SPEED = {name: T("arms_speed", name=name) for name in ("BN-Baseline", "BN-x5")}


def _steps_stat(model: str) -> tuple[str, str]:
    return T("steps_stat", m=model)


def _speedup(name: str):
    def estimate(m: dict) -> Estimate:
        base, model = m["models"]["Baseline"]["steps_to_target"], m["models"][name]["steps_to_target"]
        limits = (m["models"]["Baseline"]["trained_steps"], m["models"][name]["trained_steps"])
        e = censored_median_ratio(base, model, *limits, m["eval_every"])
        note = {
            "reached": {"Baseline": reached(base), name: reached(model)},
            "runs": len(model),
            "target": m["target"],
        }
        return replace(e, note=note)

    return estimate


def _acc_diff(a: str, b: str):
    def estimate(m: dict) -> Estimate:
        return paired_t(m["models"][a]["final_test_acc"], m["models"][b]["final_test_acc"])

    return estimate


_V1_SPEED = T("v1_speed")


def _v1(t: str) -> tuple[str, str]:
    return (_V1_SPEED[0].format(t=t), _V1_SPEED[1].format(t=t))


CLAIMS = (
    Claim(
        id="bn-baseline-faster",
        **T.fields("bn-baseline-faster.claim", "en", "ar"),
        where="paper 4.2, Fig. 3",
        **T.fields("bn-baseline-faster.paper", "paper", "paper_ar"),
        chapter="06_inception",
        label="sec-inception-table",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=ARMS_SPEED["BN-Baseline"],
            tuned=TUNED,
            statistic=_steps_stat("BN-Baseline"),
            interval="censored median ratio",
            kind="greater",
            margin=1.0,
            scale="ratio",
            changes=_v1("2x"),
        ),
        estimate=_speedup("BN-Baseline"),
    ),
    Claim(
        id="bn-x5-faster",
        **T.fields("bn-x5-faster.claim", "en", "ar"),
        where="paper 4.2, Fig. 3",
        **T.fields("bn-x5-faster.paper", "paper", "paper_ar"),
        chapter="06_inception",
        label="sec-inception-table",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=ARMS_SPEED["BN-x5"],
            tuned=TUNED,
            statistic=T(
                "bn-x5-faster.statistic",
                steps_stat=_steps_stat("BN-x5"),
            ),
            interval="censored median ratio",
            kind="greater",
            margin=3.0,
            scale="ratio",
            changes=_v1("5x"),
        ),
        estimate=_speedup("BN-x5"),
    ),
    Claim(
        id="bn-x30-higher-max",
        **T.fields("bn-x30-higher-max.claim", "en", "ar"),
        where="paper 4.2, Fig. 3",
        **T.fields("bn-x30-higher-max.paper", "paper", "paper_ar"),
        chapter="06_inception",
        label="sec-inception-table",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=T("bn-x30-higher-max.arms"),
            tuned=TUNED,
            statistic=T("bn-x30-higher-max.statistic"),
            interval="paired t",
            kind="greater",
            margin=0.0,
            changes=T("bn-x30-higher-max.changes"),
        ),
        estimate=_acc_diff("BN-x30", "Baseline"),
    ),
    Claim(
        id="sigmoid-inception",
        **T.fields("sigmoid-inception.claim", "en", "ar"),
        where="paper 4.2, Fig. 3",
        **T.fields("sigmoid-inception.paper", "paper", "paper_ar"),
        chapter="06_inception",
        label="sec-inception-table",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=T("sigmoid-inception.arms"),
            tuned=TUNED,
            statistic=T("sigmoid-inception.statistic"),
            interval="paired t",
            kind="greater",
            margin=0.1,
            changes=T("sigmoid-inception.changes"),
        ),
        estimate=_acc_diff("BN-x5-Sigmoid", "Inception-Sigmoid"),
    ),
    Claim(
        id="ensemble-imagenet",
        **T.fields("ensemble-imagenet.claim", "en", "ar"),
        where="paper 4.2.3, Fig. 4",
        **T.fields("ensemble-imagenet.paper", "paper", "paper_ar"),
        chapter="06_inception",
        label="sec-inception-table",
        protocol=None,
        estimate=None,
        **T.fields("ensemble-imagenet.untestable", "untestable_en", "untestable_ar"),
    ),
)

# The confirmatory version of every claim above (bnpaper.protocol.confirmatory): each claim's
# smallest effect of interest, and the statistics that are true by construction (checks).
CLAIMS = confirmatory(
    CLAIMS,
    sesoi={
        "bn-baseline-faster": (1.25, "speed"),
        "bn-x30-higher-max": (0.005, "accuracy"),
    },
)
