"""Chapter 10: BN across replicas. Whose mini-batch is "the mini-batch" in data-parallel training?

Ioffe & Szegedy (2015) normalize over "the mini-batch" (Alg. 1). With k data-parallel replicas and a
global batch of B examples, per-replica BN normalizes each replica's B / k examples apart ("ghost"
batches, Hoffer, Hubara & Soudry 2017); synchronized BN (`bnpaper.sync`) normalizes over all B.

Two parts:

* real processes, float64: synchronized BN on 2 gloo processes trains the same weights as one
  process, and per-replica BN on 2 processes trains the same weights as one process with 2 ghost
  batches. The second equality is what licenses simulating k = 4 and 8 replicas with ghost batches
  on this 2-core machine (`TrainConfig.ghost_batches`).
* the sweep: the Sec. 4.1 network at a fixed global batch of 64, k = 1, 2, 4, 8 replicas
  (64, 32, 16, 8 examples each), n seeds per arm through the multi-run engine: validation accuracy,
  the train/eval gap (validation accuracy with the running averages minus with the statistics of
  local batches) and the noise of the batch statistics against the local batch size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import partial

import torch

from bnpaper import counting, profiles
from bnpaper import data as data_mod
from bnpaper.bidi import ltr
from bnpaper.device import resolve_device
from bnpaper.engine import map_tasks, train_many
from bnpaper.experiments.figure1 import LR_GRID, paper_network, tuning_base
from bnpaper.protocol import Claim, Protocol, confirmatory, exact, paired_t
from bnpaper.text import Catalog, tuning_seed_fields
from bnpaper.train import TrainConfig
from bnpaper.tuning import Tuning

T = Catalog(__name__)  # this experiment's English and Arabic text: replicas.yml

settings = partial(profiles.settings, "replicas")  # (profile, steps=0) -> this experiment's numbers

REPLICAS = (1, 2, 4, 8)  # k: replicas sharing one global batch (1 = one process, or synchronized BN)
GLOBAL_BATCH = 64  # examples per step over all replicas (the paper's MNIST runs use 60; 64 splits 8 ways)
ARMS = tuple(f"k{k}" for k in REPLICAS)

TUNINGS = (  # the Sec. 4.1 network with BN over the whole global batch, at this chapter's run length
    Tuning("replicas/sync", "lr", LR_GRID, tuning_base(True, "replicas", batch_size=GLOBAL_BATCH)),
)


@dataclass
class ReplicasConfig:
    steps: int = 1000  # SGD steps per run
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    lr: float = 0.64  # the tuned rate of k = 1, shared by every arm (changing k does not re-tune)
    eval_every: int = 100
    replicas: tuple = REPLICAS
    global_batch: int = GLOBAL_BATCH
    noise_draws: int = 50  # local batches drawn per run to measure the statistics' noise
    equality_steps: int = 30  # float64 steps of the real 2-process runs
    data_dir: str = ""
    device: str = "cpu"


def arm_configs(cfg: ReplicasConfig, k: int) -> list[TrainConfig]:
    if cfg.global_batch % k:
        raise ValueError(f"the global batch {cfg.global_batch} does not split into {k} replicas")
    return [
        paper_network(
            cfg.steps,
            s,
            True,
            lr=cfg.lr,
            batch_size=cfg.global_batch,
            ghost_batches=k,
            eval_every=cfg.eval_every,
            final_train_acc=False,
            data_dir=cfg.data_dir,
            device=cfg.device,
        )
        for s in cfg.seeds
    ]


# ----------------------------------------------------------------------------- measurements


@torch.no_grad()
def train_mode_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """Accuracy with BN in training mode over consecutive batches of `batch` examples (a ghost BN
    splits each into its parts: the statistics a replica sees), running averages left untouched."""
    saved = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    was = model.training
    model.train()
    n = len(y) - len(y) % batch
    correct = sum(
        (model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item() for i in range(0, n, batch)
    )
    model.load_state_dict(saved, strict=False)
    model.train(was)
    return correct / n


@torch.no_grad()
def statistics_noise(
    model: torch.nn.Module, x: torch.Tensor, m: int, draws: int, seed: int
) -> tuple[float, float]:
    """How far the first BN layer's batch statistics over m examples stray from the whole set's:
    the standard deviation over `draws` random batches of mu_B / sigma and of sigma2_B / sigma^2,
    averaged over units. x: the training images; returns (mean noise, variance noise)."""
    z = model[1](model[0](x))  # (N, 100): the input of the first BN (Flatten, Linear)
    mu, var = z.mean(0), z.var(0, unbiased=False)
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randperm(len(x), generator=g)[:m] for _ in range(draws)])  # (draws, m)
    zb = z[idx]  # (draws, m, 100)
    mu_b, var_b = zb.mean(1), zb.var(1, unbiased=False)
    mean_noise = ((mu_b - mu) / var.sqrt()).std(0).mean().item()
    var_noise = (var_b / var).std(0).mean().item()
    return mean_noise, var_noise


def run_arm(cfg: ReplicasConfig, k: int) -> list[dict]:
    """Every seed of one arm (k replicas, simulated as k ghost batches), batched by the engine."""
    ds = data_mod.load(cfg.data_dir)
    device = resolve_device(cfg.device)
    x_va, y_va = ds.x_val.to(device), ds.y_val.to(device)
    x_tr = ds.x_train.to(device)
    out = []
    cfgs = arm_configs(cfg, k)
    for (model, h), c in zip(train_many(cfgs, desc=f"replicas k={k}"), cfgs):
        row = {"seed": c.seed, "k": k, "local_batch": cfg.global_batch // k, "diverged": h["diverged"]}
        row.update(final_val_acc=h["final_val_acc"], final_test_acc=h["final_test_acc"], val_acc=h["val_acc"])
        row["eval_steps"] = h["eval_steps"]
        if h["diverged"]:
            row.update(train_mode_acc=None, gap=None, mean_noise=None, var_noise=None)
        else:
            model = model.to(device)
            row["train_mode_acc"] = train_mode_accuracy(model, x_va, y_va, cfg.global_batch)
            row["gap"] = h["final_val_acc"] - row["train_mode_acc"]
            row["mean_noise"], row["var_noise"] = statistics_noise(
                model, x_tr, cfg.global_batch // k, cfg.noise_draws, c.seed
            )
        out.append(row)
    return out


def summarize(rows: list[dict]) -> dict:
    return {
        key: [r[key] for r in rows]
        for key in ("final_val_acc", "train_mode_acc", "gap", "mean_noise", "var_noise")
    }


# ----------------------------------------------------------------------------- real processes


def _replica_training(tc: dict, bn: str) -> dict | None:
    """In each of the launched replicas: train with DDP; rank 0 returns the weights."""
    import torch.distributed as dist

    from bnpaper.distributed import train_ddp

    out = train_ddp(TrainConfig(**tc), bn)
    return out["state"] if dist.get_rank() == 0 else None


def max_difference(a: dict, b: dict) -> float:
    """The largest absolute difference between two state dicts (parameters and running statistics)."""
    if list(a) != list(b):
        raise ValueError(f"the two networks differ in their tensors: {sorted(set(a) ^ set(b))}")
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def equality(cfg: ReplicasConfig) -> dict:
    """Synchronized and per-replica BN on 2 real gloo processes against one process, float64.

    sync_vs_single: 2 processes with SyncBatchNorm against one process over the global batch;
    local_vs_ghost: 2 processes with per-replica BN against one process with 2 ghost batches;
    local_vs_single: the same per-replica run against one process (a check that can fail)."""
    from bnpaper.distributed import launch
    from bnpaper.train import train

    tc = replace(
        arm_configs(cfg, 1)[0],
        steps=cfg.equality_steps,
        eval_every=cfg.equality_steps,
        dtype="float64",
        read_test=False,
    )
    sync = launch(_replica_training, 2, asdict(tc), "sync", timeout_s=300)[0]
    local = launch(_replica_training, 2, asdict(tc), "local", timeout_s=300)[0]
    single = train(tc)[0].state_dict()
    ghost = train(replace(tc, ghost_batches=2))[0].state_dict()
    return {
        "steps": cfg.equality_steps,
        "sync_vs_single": max_difference(sync, single),
        "local_vs_ghost": max_difference(local, ghost),
        "local_vs_single": max_difference(local, single),
    }


def run(cfg: ReplicasConfig) -> dict:
    """The sweep over k (arms side by side in the engine's workers) and the 2-process equalities."""
    arms = dict(zip((f"k{k}" for k in cfg.replicas), map_tasks(run_arm, [(cfg, k) for k in cfg.replicas])))
    return {
        "arms": arms,
        "summary": {arm: summarize(rows) for arm, rows in arms.items()},
        "equality": equality(cfg),
    }


# ----------------------------------------------------------------------------- claims

FIXED = "2026-11-26"
NEW = T("new")
_tune = profiles.tuning_seeds("quick")
NET = T("net", global_batch=GLOBAL_BATCH)
TUNED = T(
    "tuned",
    lr_grid_first=LR_GRID[0],
    lr_grid_last=LR_GRID[-1],
    **tuning_seed_fields(_tune),
)
EQ_STEPS = 30  # float64 steps of the 2-process equality runs (quick and paper)
EXACT_TUNED = T("exact_tuned")


def _arms(k: int) -> tuple[str, str]:
    m = GLOBAL_BATCH // k
    return T("arms", net=NET, k=k, m=m, m_examples=counting.counted(m, "example", "ar"))


def _acc(arm: str):
    def estimate(m: dict):
        return paired_t(m[arm]["final_val_acc"], m["k1"]["final_val_acc"])

    return estimate


def _gap(arm: str):
    def estimate(m: dict):
        return paired_t(m[arm]["gap"], m["k1"]["gap"])

    return estimate


def _exact(key: str):
    def estimate(m: dict):
        return exact(m["equality"][key])

    return estimate


def _claim(cid, en, ar, where, label, protocol, estimate, paper="-", paper_ar=""):
    return Claim(
        id=cid,
        en=en,
        ar=ar,
        where=where,
        paper=paper,
        chapter="10_replicas",
        label=label,
        protocol=protocol,
        estimate=estimate,
        paper_ar=paper_ar,
        later=not where.startswith("paper"),
    )


_EQ_STAT = T("eq_stat", eq_steps=EQ_STEPS, eq_steps_counted=counting.counted(EQ_STEPS, "step", "ar"))


def _eq_protocol(arms):
    return Protocol(
        version=1,
        fixed=FIXED,
        arms=arms,
        tuned=EXACT_TUNED,
        statistic=_EQ_STAT,
        interval="exact",
        kind="below",
        margin=1e-9,
        changes=NEW,
        trains=False,
    )


CLAIMS = (
    _claim(
        "sync-equals-single",
        *T("sync-equals-single.claim"),
        "paper 3, Alg. 1",
        "sec-replicas-equal",
        _eq_protocol(
            T(
                "sync-equals-single.arms",
                net=NET,
                eq_steps=EQ_STEPS,
                eq_steps_counted=counting.counted(EQ_STEPS, "step", "ar"),
            )
        ),
        _exact("sync_vs_single"),
    ),
    _claim(
        "ghost-simulates-replicas",
        *T("ghost-simulates-replicas.claim"),
        "paper 3, Alg. 1",
        "sec-replicas-equal",
        _eq_protocol(
            T(
                "ghost-simulates-replicas.arms",
                net=NET,
                eq_steps=EQ_STEPS,
                eq_steps_counted=counting.counted(EQ_STEPS, "step", "ar"),
            )
        ),
        _exact("local_vs_ghost"),
    ),
    _claim(
        "ghost16-as-good",
        *T("ghost16-as-good.claim"),
        "Hoffer et al. 2017",
        "sec-replicas-sweep",
        Protocol(
            version=1,
            fixed=FIXED,
            arms=_arms(4),
            tuned=TUNED,
            statistic=T("ghost16-as-good.statistic"),
            interval="paired t",
            kind="equivalent",
            margin=0.01,
            changes=NEW,
        ),
        _acc("k4"),
        **T.fields("ghost16-as-good.paper", "paper", "paper_ar"),
    ),
    _claim(
        "local8-hurts",
        *T("local8-hurts.claim"),
        "paper 3",
        "sec-replicas-sweep",
        Protocol(
            version=1,
            fixed=FIXED,
            arms=_arms(8),
            tuned=TUNED,
            statistic=T("local8-hurts.statistic"),
            interval="paired t",
            kind="less",
            margin=0.0,
            changes=NEW,
        ),
        _acc("k8"),
    ),
    _claim(
        "gap8-larger",
        *T("gap8-larger.claim"),
        "Wu and Johnson 2021",
        "sec-replicas-sweep",
        Protocol(
            version=1,
            fixed=FIXED,
            arms=_arms(8),
            tuned=TUNED,
            statistic=T("gap8-larger.statistic"),
            interval="paired t",
            kind="greater",
            margin=0.0,
            changes=NEW,
        ),
        _gap("k8"),
        **T.fields("gap8-larger.paper", "paper", "paper_ar"),
    ),
)

# The confirmatory version of every claim above (bnpaper.protocol.confirmatory): each claim's
# smallest effect of interest, and the statistics that are true by construction (checks).
CLAIMS = confirmatory(
    CLAIMS,
    sesoi={
        "local8-hurts": (-0.005, "accuracy"),
        "gap8-larger": (0.005, "accuracy"),
    },
)


def profile_config(
    profile: str, lr: float, data_dir: str = "", device: str = "cpu", steps: int = 0
) -> ReplicasConfig:
    s = settings(profile, steps=steps)
    return ReplicasConfig(
        steps=s["steps"],
        seeds=profiles.eval_seeds(profile),
        lr=lr,
        eval_every=s["eval_every"],
        noise_draws=s["noise_draws"],
        equality_steps=s["equality_steps"],
        data_dir=data_dir,
        device=device,
    )


# ----------------------------------------------------------------------------- the chapter's conclusion

_SAID = {  # (English, Arabic), picked by verdict; {d}: a difference in points with its interval
    "ghost16-as-good": {
        "holds": T("said.ghost16-as-good.holds"),
        "does_not_hold": T("said.ghost16-as-good.does_not_hold"),
        "other": T("said.ghost16-as-good.other"),
    },
    "local8-hurts": {
        "holds": T("said.local8-hurts.holds"),
        "other": T("said.local8-hurts.other"),
    },
    "gap8-larger": {
        "holds": T("said.gap8-larger.holds"),
        "other": T("said.gap8-larger.other"),
    },
}
_EXACT = T("exact")
_ADVICE = {
    "small": T("advice.small"),
    "always": T("advice.always"),
    "never": T("advice.never"),
    "open": T("advice.open"),
}


def advice(verdicts: dict) -> str:
    """Which closing advice the verdicts of the two accuracy claims support."""
    v8, v16 = verdicts["local8-hurts"], verdicts["ghost16-as-good"]
    if v8 == "holds":
        return {"holds": "small", "does_not_hold": "always"}.get(v16, "open")
    if v16 == "holds":  # no measurable cost at 8 (or a gain), none at 16
        return "never"
    return "open"


def conclusion(verdicts: dict, estimates: dict, equality: dict, lang: str) -> str:
    """The closing paragraph: every sentence picked by a verdict and filled with what was measured.
    estimates: claim id -> Estimate (a difference of accuracies); equality: `equality()`'s dict."""
    k = 0 if lang == "en" else 1

    def points(est) -> str:
        text = f"{est.value * 100:+.1f} [{est.lo * 100:+.1f}, {est.hi * 100:+.1f}]"
        return ltr(text, lang)

    def sci(v: float) -> str:
        return ltr(f"{v:.1e}", lang)

    steps = equality["steps"] if lang == "en" else counting.counted(equality["steps"], "step", "ar")
    out = [
        _EXACT[k].format(
            a=sci(equality["sync_vs_single"]),
            b=sci(equality["local_vs_ghost"]),
            c=sci(equality["local_vs_single"]),
            s=steps,
        )
    ]
    for cid, said in _SAID.items():
        out.append(said.get(verdicts[cid], said["other"])[k].format(d=points(estimates[cid])))
    out.append(_ADVICE[advice(verdicts)][k])
    return " ".join(out)
