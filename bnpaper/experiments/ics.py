"""Chapter "Does BN work by reducing internal covariate shift?": the paper's title claim against
what came after (Santurkar et al. 2018; Bjorck et al. 2018; van Laarhoven 2017; Arora et al.
2019; Yang et al. 2019), on the Sec. 4.1 MNIST network, and its claims.

One training sweep, measured as it trains: the Sec. 4.1 MLP (3 x 100 sigmoid units, mini-batches
of 60, SGD with momentum 0.9, N(0, 0.1^2) init; `figure1.paper_network`) in five arms over the
same evaluation seeds:

  no_bn      without BN, at its own tuned learning rate;
  bn         with BN, at its own tuned learning rate;
  noisy_bn   with BN and Santurkar et al.'s noise after every BN (`models.BNNoise`: a per-unit
             shift and scale drawn afresh each step), at BN's tuned rate, as they did;
  bn_low_lr  with BN at the no-BN network's tuned rate (Bjorck et al.);
  bn_wd      with BN and weight decay WEIGHT_DECAY, at BN's rate (van Laarhoven; Arora et al.).

Every `measure_every` steps, on a fixed set of training digits in train mode (the running
averages are put back afterwards):

  * distributional shift (the paper's sense): each hidden layer's input, per unit mean and std;
    the drift between measurements in units of the earlier std (`distribution_drift`);
  * gradient-based shift (Santurkar et al.): for hidden layer i >= 2, G = dL/dW_i, and G' = dL/dW_i
    after layers 1 .. i-1 take a plain SGD step of the arm's rate on the same digits;
    ||G - G'|| / ||G|| and cos(G, G');
  * the landscape along the gradient g: for steps eta = ETA x the arm's rate, the loss and the
    gradient at w - eta g: the loss's range, the largest gradient change ("predictiveness") and
    the effective beta-smoothness max ||grad(w - eta g) - g|| / ||eta g||;
  * the top eigenvalue of the Hessian, by power iteration on Hessian-vector products (double
    backward through bnpaper's BN);
  * the norm of each scale-invariant weight matrix (the ones before a BN) and the effective
    learning rate lr / ||W||^2.

Separately, at initialization only (Yang et al.): deep ReLU MLPs of DEPTHS hidden layers with BN
and without (He init), the ratio of the first to the last hidden layer's gradient norm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as TF
from torch import nn
from torch.func import functional_call, vmap

from bnpaper import counting, profiles
from bnpaper import data as data_mod
from bnpaper.bidi import ltr
from bnpaper.device import resolve_device
from bnpaper.engine import map_tasks, train_many
from bnpaper.experiments.figure1 import LR_GRID, paper_network, tuning_base
from bnpaper.protocol import Claim, Protocol, confirmatory, log_ratio_t, one_sample_t, paired_t
from bnpaper.train import TrainConfig, build_model
from bnpaper.tuning import Tuning

settings = partial(profiles.settings, "ics")  # (profile, steps=0) -> this experiment's numbers

ARMS = ("no_bn", "bn", "noisy_bn", "bn_low_lr", "bn_wd")
NOISE = 1.0  # BNNoise level: shift ~ U(-1, 1), scale ~ U(1, 2) per unit and step
WEIGHT_DECAY = 1e-3  # the bn_wd arm's L2 coefficient
ETA = (0.25, 0.5, 1.0, 2.0, 4.0)  # landscape steps, in multiples of the arm's learning rate
DEPTHS = (5, 10, 20, 30, 50)  # hidden layers of the deep nets at initialization (Yang et al.)


TUNINGS = (  # the Sec. 4.1 network, tuned at this chapter's run length
    Tuning("ics/no_bn", "lr", LR_GRID, tuning_base(False, "ics")),
    Tuning("ics/bn", "lr", LR_GRID, tuning_base(True, "ics")),
)


@dataclass
class ICSConfig:
    steps: int = 1000  # SGD steps per run
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    lr: dict = field(default_factory=lambda: {"no_bn": 0.08, "bn": 0.32})  # the tuned rates
    eval_every: int = 100
    measure_every: int = 100  # steps between measurements (and at step 1)
    measure_images: int = 500  # fixed training digits the measurements use
    power_iters: int = 20  # Hessian power iterations per measurement
    arms: tuple = ARMS
    data_dir: str = ""
    device: str = "cpu"


def arm_configs(cfg: ICSConfig, arm: str) -> list[TrainConfig]:
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    bn = arm != "no_bn"
    lr = cfg.lr["no_bn"] if arm in ("no_bn", "bn_low_lr") else cfg.lr["bn"]
    extra = {"bn_noise": NOISE} if arm == "noisy_bn" else {}
    wd = WEIGHT_DECAY if arm == "bn_wd" else 0.0
    return [
        paper_network(
            cfg.steps,
            s,
            bn,
            lr=lr,
            weight_decay=wd,
            eval_every=cfg.eval_every,
            final_train_acc=False,
            data_dir=cfg.data_dir,
            device=cfg.device,
            **extra,
        )
        for s in cfg.seeds
    ]


# ----------------------------------------------------------------------------- pure measurements


def distribution_drift(means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Drift of a layer's input distribution between consecutive measurements, per run:
    mean over units of |mu_t - mu_{t-1}| / sigma_{t-1} + |log sigma_t - log sigma_{t-1}|.

    means, stds: (T, R, units) -> (T - 1, R). Scale-free: the same for inputs scaled by any a > 0.
    """
    s = np.maximum(stds, 1e-12)
    shift = np.abs(np.diff(means, axis=0)) / s[:-1]
    spread = np.abs(np.diff(np.log(s), axis=0))
    return (shift + spread).mean(-1)


def effective_beta(grad_change: np.ndarray, eta: np.ndarray, grad_norm: np.ndarray) -> np.ndarray:
    """max over steps of ||grad(w - eta g) - g|| / (eta ||g||): (E, R), (E, R), (R,) -> (R,)."""
    return (grad_change / (eta * grad_norm[None, :])).max(0)


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y against x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc**2).sum())


# ----------------------------------------------------------------------------- the sweep


class _Probe:
    """Measurements of R batched runs (bnpaper.engine.Runs) on fixed digits, in train mode."""

    def __init__(self, runs, x: torch.Tensor, y: torch.Tensor, lr: torch.Tensor, power_iters: int):
        self.runs, self.x, self.y, self.lr = runs, x, y, lr  # lr: (R,)
        self.power_iters = power_iters
        seq = list(runs.template)
        self.linear = [i for i, m in enumerate(seq) if isinstance(m, nn.Linear)]  # module indices
        self.before_bn = [i for i in self.linear[:-1] if runs.template[i].bias is None]
        self.R = runs.R

    def losses(self, params: dict) -> torch.Tensor:
        """(R,) cross-entropy of each run on the fixed digits."""
        buffers = {**self.runs.buffers, **self.runs.masks}

        def one(p, b):
            return TF.cross_entropy(functional_call(self.runs.template, (p, b), (self.x,)), self.y)

        return vmap(one, randomness="error")(params, buffers)

    def grads(self, params: dict, create_graph: bool = False) -> tuple[dict, dict, torch.Tensor]:
        """({name: (R, ...) gradient}, the leaves they are taken at, the (R,) losses)."""
        leaf = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in params.items()}
        losses = self.losses(leaf)
        g = torch.autograd.grad(losses.sum(), list(leaf.values()), create_graph=create_graph)
        return dict(zip(leaf, g)), leaf, losses

    def measure(self) -> dict:
        runs, R = self.runs, self.R
        saved = runs.flat_buffers.clone()  # train-mode forwards update running averages
        p0 = {k: v.detach().clone() for k, v in runs.params.items()}
        out: dict = {}
        with torch.no_grad():  # the distribution of each hidden layer's input (layers 2 ..)
            mu, sd = [], []
            for i in self.linear[1:]:  # the inputs of hidden layers 2, 3, ... and of the output layer
                h = runs.prefix(self.x, i, shared_input=True).double()  # (R, N, units)
                mu.append(h.mean(1).tolist())
                sd.append(h.std(1).tolist())
            out["input_mean"], out["input_std"] = mu, sd
        g, _, _ = self.grads(p0)
        flat = lambda d: torch.cat([d[k].reshape(R, -1) for k in d], 1)  # noqa: E731 (R, P)
        gnorm = flat(g).norm(dim=1)  # (R,)
        # gradient-based shift of hidden layers 2 ..: earlier layers step first, same digits
        rel, cos = [], []
        for i in self.linear[1:-1]:
            w = f"{i}.weight"
            earlier = {
                k: (v - self.lr.view(R, *[1] * (v.dim() - 1)) * g[k] if int(k.split(".")[0]) < i else v)
                for k, v in p0.items()
            }
            g2, _, _ = self.grads(earlier)
            a, b = g[w].reshape(R, -1), g2[w].reshape(R, -1)
            rel.append(((a - b).norm(dim=1) / a.norm(dim=1)).tolist())
            cos.append(TF.cosine_similarity(a, b, dim=1).tolist())
        out["ics_rel"], out["ics_cos"] = rel, cos
        # the landscape along -g
        loss_eta, change = [], []
        for e in ETA:
            step = (e * self.lr).view(R, 1)
            moved = {k: v - step.view(R, *[1] * (v.dim() - 1)) * g[k] for k, v in p0.items()}
            g_e, _, losses = self.grads(moved)  # the loss at w - eta g comes with its gradient
            loss_eta.append(losses.tolist())
            change.append((flat(g_e) - flat(g)).norm(dim=1).tolist())
        out["loss_eta"], out["grad_change"], out["grad_norm"] = loss_eta, change, gnorm.tolist()
        out["top_eig"] = self.top_eigenvalue(p0).tolist()
        out["w_norm"] = [p0[f"{i}.weight"].reshape(R, -1).norm(dim=1).tolist() for i in self.before_bn]
        runs.flat_buffers.copy_(saved)
        return out

    def top_eigenvalue(self, p0: dict) -> torch.Tensor:
        """Largest eigenvalue of each run's Hessian, by power iteration on Hessian-vector products."""
        R = self.R
        gen = torch.Generator().manual_seed(0)
        v = {k: torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device) for k, t in p0.items()}
        lam = torch.zeros(R, dtype=torch.float64)
        for _ in range(self.power_iters):
            norm = torch.sqrt(sum(t.reshape(R, -1).pow(2).sum(1) for t in v.values()))  # (R,)
            v = {k: t / norm.view(R, *[1] * (t.dim() - 1)) for k, t in v.items()}
            g, leaf, _ = self.grads(p0, create_graph=True)
            dot = sum((g[k] * v[k]).sum() for k in g)
            hv = torch.autograd.grad(dot, list(leaf.values()))
            hv = dict(zip(leaf, hv))
            lam = sum((hv[k] * v[k]).reshape(R, -1).sum(1) for k in hv).detach().double()
            v = {k: t.detach() for k, t in hv.items()}
        return lam


def run_arm(cfg: ICSConfig, arm: str) -> list[dict]:
    """Every seed of one arm, batched (bnpaper.engine), measured every `measure_every` steps."""
    ds = data_mod.load(cfg.data_dir)
    device = resolve_device(cfg.device)
    cfgs = arm_configs(cfg, arm)
    x = ds.x_train[: cfg.measure_images].to(device)
    y = ds.y_train[: cfg.measure_images].to(device)
    lr = torch.tensor([c.lr for c in cfgs], device=device)
    rows: list[dict] = []
    steps: list[int] = []

    def on_step(step, runs):
        if step % cfg.measure_every == 0 or step == 1:
            rows.append(_Probe(runs, x, y, lr, cfg.power_iters).measure())
            steps.append(step)

    results = train_many(cfgs, on_step=on_step, desc=f"ics {arm}")
    out = []
    for r, ((_, h), c) in enumerate(zip(results, cfgs)):
        stop = len(steps) if not h["diverged"] else sum(s < h["diverged_at"] for s in steps)
        pick = lambda key, stop=stop: [m[key] for m in rows[:stop]]  # noqa: E731 per measurement
        out.append(
            {
                "seed": c.seed,
                "lr": c.lr,
                "steps": steps[:stop],
                "diverged": h["diverged"],
                "final_val_acc": h["final_val_acc"],
                "final_test_acc": h["final_test_acc"],
                "val_acc": h["val_acc"],
                "eval_steps": h["eval_steps"],
                "loss": h["loss"],
                "input_mean": [[layer[r] for layer in m] for m in pick("input_mean")],  # (T, layers, units)
                "input_std": [[layer[r] for layer in m] for m in pick("input_std")],
                "ics_rel": [[layer[r] for layer in m] for m in pick("ics_rel")],  # (T, layers)
                "ics_cos": [[layer[r] for layer in m] for m in pick("ics_cos")],
                "loss_eta": [[e[r] for e in m] for m in pick("loss_eta")],  # (T, eta)
                "grad_change": [[e[r] for e in m] for m in pick("grad_change")],
                "grad_norm": [m[r] for m in pick("grad_norm")],  # (T,)
                "top_eig": [m[r] for m in pick("top_eig")],
                "w_norm": [[layer[r] for layer in m] for m in pick("w_norm")],  # (T, layers)
            }
        )
    return out


def series(r: dict) -> dict:
    """One run's curves over its measurements: steps (T,), drift (T - 1,: between measurements,
    averaged over layers), ics_rel and ics_cos (T,: averaged over layers), beta, predictiveness and
    loss_range (T,: over the landscape steps), top_eig (T,), w_norm and eff_lr (T,: averaged over the
    weight matrices before a BN; empty without BN)."""
    means = [np.asarray(m)[:, None] for m in zip(*r["input_mean"])]  # per layer (T, 1, units)
    stds = [np.asarray(sd)[:, None] for sd in zip(*r["input_std"])]
    drift = np.mean([distribution_drift(m, sd)[:, 0] for m, sd in zip(means, stds)], axis=0)
    change = np.asarray(r["grad_change"])  # (T, eta)
    eta = np.asarray(ETA)[None, :] * r["lr"]
    gn = np.asarray(r["grad_norm"])  # (T,)
    w = np.asarray(r["w_norm"])  # (T, layers before a BN)
    return {
        "steps": r["steps"],
        "drift": drift.tolist(),
        "ics_rel": np.mean(r["ics_rel"], axis=1).tolist(),
        "ics_cos": np.mean(r["ics_cos"], axis=1).tolist(),
        "beta": effective_beta(change.T, eta.T.repeat(len(gn), 1), gn).tolist(),
        "predictiveness": change.max(1).tolist(),
        "loss_range": np.ptp(np.asarray(r["loss_eta"]), axis=1).tolist(),
        "top_eig": list(r["top_eig"]),
        "w_norm": w.mean(1).tolist() if w.size else [],
        "eff_lr": (r["lr"] / w**2).mean(1).tolist() if w.size else [],
    }


SUMMARIZED = ("drift", "ics_rel", "ics_cos", "beta", "predictiveness", "loss_range", "top_eig")


def summarize(runs: list[dict]) -> dict:
    """Per-seed scalars of one arm (None for a diverged run): each curve's mean over measurements,
    the final validation and test accuracy, and the effective learning rate at the last measurement."""
    out: dict = {k: [] for k in (*SUMMARIZED, "eff_lr_final")}
    out["final_val_acc"] = [r["final_val_acc"] for r in runs]
    out["final_test_acc"] = [r["final_test_acc"] for r in runs]
    for r in runs:
        ok = not r["diverged"] and len(r["steps"]) >= 2
        cur = series(r) if ok else {}
        for k in SUMMARIZED:
            out[k].append(float(np.mean(cur[k])) if ok else None)
        out["eff_lr_final"].append(cur["eff_lr"][-1] if ok and cur["eff_lr"] else None)
    return out


def run(cfg: ICSConfig) -> dict:
    """Every arm of the sweep, with per-seed summaries; the arms run side by side in the worker
    processes (bnpaper.engine.map_tasks), each measured by its own training loop."""
    arms = dict(zip(cfg.arms, map_tasks(run_arm, [(cfg, arm) for arm in cfg.arms])))
    return {"arms": arms, "summary": {arm: summarize(rows) for arm, rows in arms.items()}}


# ----------------------------------------------------------------------------- depth at init


@dataclass
class DepthConfig:
    depths: list[int] = field(default_factory=lambda: list(DEPTHS))
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    width: int = 100
    batch: int = 60
    data_dir: str = ""


def gradient_ratio(depth: int, bn: bool, seed: int, x: torch.Tensor, y: torch.Tensor, width: int) -> float:
    """||dL/dW_first|| / ||dL/dW_last hidden|| of a deep ReLU MLP at init (He init without BN)."""
    cfg = TrainConfig(model="mlp", hidden=[width] * depth, activation="relu", bn=bn, init="he", seed=seed)
    torch.manual_seed(seed)
    model = build_model(cfg).train()
    loss = TF.cross_entropy(model(x), y)
    lin = [m for m in model if isinstance(m, nn.Linear)]
    g_first, g_last = torch.autograd.grad(loss, [lin[0].weight, lin[-2].weight])
    return float(g_first.norm() / g_last.norm())


def run_depth(cfg: DepthConfig) -> dict:
    """Per seed, the gradient-norm ratio at each depth and its log's slope against depth."""
    ds = data_mod.load(cfg.data_dir)
    x, y = ds.x_train[: cfg.batch], ds.y_train[: cfg.batch]
    out: dict = {"depths": list(cfg.depths)}
    for key, bn in (("bn", True), ("no_bn", False)):
        ratios = [[gradient_ratio(d, bn, s, x, y, cfg.width) for d in cfg.depths] for s in cfg.seeds]
        out[key] = {
            "ratio": ratios,  # (seeds, depths)
            "slope": [slope(cfg.depths, np.log(r)) for r in ratios],
        }
    return out


# ----------------------------------------------------------------------------- claims

FIXED = "2026-11-26"
_tune, _eval = profiles.tuning_seeds("quick"), profiles.eval_seeds("quick")
_TS = f"{len(_tune)} tuning seeds ({_tune[0]}-{_tune[-1]})"
_TS_AR = f"{len(_tune)} بذور ضبط ({_tune[0]}-{_tune[-1]})"
NET = (
    "the Sec. 4.1 MLP (3 x 100 sigmoid units, mini-batches of 60, SGD momentum 0.9, N(0, 0.1²) init)",
    "شبكة القسم 4.1 (ثلاث طبقات من 100 وحدة سينية، حزم صغيرة من 60 مثالاً، انحدار تدرجي عشوائي بزخم 0.9، تهيئة $N(0, 0.1^2)$)",
)
TUNED = (
    f"the learning rate of the network without BN and of the network with BN, each on its own, on the 2x grid "
    f"{LR_GRID[0]:g} ... {LR_GRID[-1]:g}, by mean final validation accuracy over {_TS} at this chapter's run "
    "length (`bnpaper tune`, keys `ics/no_bn`, `ics/bn`); noisy BN and BN with weight decay use BN's rate",
    f"معدل التعلم للشبكة دون تطبيع الحزمة وللشبكة معه، كلٌّ على حدة، على سلّم القيم (كل قيمة ضعف سابقتها) من "
    f"{LR_GRID[0]:g} إلى {LR_GRID[-1]:g}، بمتوسط دقة التحقق النهائية عبر {_TS_AR} بطول تشغيلات هذا الفصل "
    "(`bnpaper tune`، المفتاحان `ics/no_bn` و`ics/bn`)؛ ويستعمل تطبيع الحزمة المشوَّش وتطبيع الحزمة مع اضمحلال الأوزان معدلَ تطبيع الحزمة",
)
NEW = ("a new claim of this book: version 1", "ادعاء جديد في هذا الكتاب: الإصدار 1")
_q, _p = (profiles.SETTINGS["ics"][k]["measure_images"] for k in ("quick", "paper"))
DIGITS = (  # the fixed training digits every measurement uses, as each profile sets them
    f"the same training digits at every measurement: {_q} in the quick profile, {_p} in the paper profile",
    f"أرقام التدريب نفسها في كل قياس: {counting.counted(_q, 'digit', 'ar')} في نمط التشغيل السريع و"
    f"{counting.counted(_p, 'digit', 'ar')} في نمط الورقة",
)
DIGITS_V2 = (  # version 2 of the three measured-on-digits claims, fixed before any new run
    "2026-11-27",
    (
        "version 2: the statistic now states how many training digits each profile measures on "
        f"({_q} quick, {_p} paper); version 1 said 500 for both, while the quick runs it judged used "
        f"{_q}. The measurement, the arms and the rule are unchanged.",
        f"الإصدار 2: يذكر المقياس الإحصائي الآن عدد أرقام التدريب التي يقيس عليها كل نمط تشغيل "
        f"({_q} في السريع و{_p} في نمط الورقة)؛ وكان الإصدار 1 يذكر 500 للنمطين، مع أن التشغيلات "
        f"السريعة التي حكم عليها استعملت {_q}. القياس والأذرع والقاعدة لم تتغير.",
    ),
)


def _ratio(key: str, num: str, den: str):
    def estimate(m: dict):
        return log_ratio_t(m[num][key], m[den][key])

    return estimate


def _acc(a: str, b: str):
    def estimate(m: dict):
        return paired_t(m[a]["final_val_acc"], m[b]["final_val_acc"])

    return estimate


def _depth_slope(m: dict):
    return one_sample_t(m["bn"]["slope"])


def _depth_gap(m: dict):
    return paired_t(m["bn"]["slope"], m["no_bn"]["slope"])


def _claim(cid, en, ar, where, label, protocol, estimate, paper="-", paper_ar=""):
    """A claim measured in chapter 09; one from a later paper (`where` names it) is a later finding."""
    later = not where.startswith("paper")
    return Claim(
        id=cid,
        en=en,
        ar=ar,
        where=where,
        paper=paper,
        chapter="09_ics",
        label=label,
        protocol=protocol,
        estimate=estimate,
        paper_ar=paper_ar,
        later=later,
    )


def _protocol(arms, statistic, interval, kind, margin, scale="difference", tuned=TUNED, v2=False):
    version, fixed, changes = (2, *DIGITS_V2) if v2 else (1, FIXED, NEW)
    return Protocol(
        version=version,
        fixed=fixed,
        arms=arms,
        tuned=tuned,
        statistic=statistic,
        interval=interval,
        kind=kind,
        margin=margin,
        scale=scale,
        changes=changes,
    )


CLAIMS = (
    _claim(
        "ics-distribution",
        "BN reduces the shift of each layer's input distribution during training (the paper's sense of internal covariate shift).",
        "يقلل تطبيع الحزمة انزياح توزيع مدخل كل طبقة أثناء التدريب (انزياح المتغيرات المشتركة الداخلي بمعنى الورقة).",
        "paper 2",
        "sec-ics-measured",
        _protocol(
            (
                NET[0] + " without BN and with BN, each at its tuned rate",
                NET[1] + " دون تطبيع الحزمة ومعه، كلٌّ بمعدله المضبوط",
            ),
            (
                "per seed, the drift of the inputs of hidden layers 2, 3 and the output layer between measurements (mean over units of |Δμ|/σ + |Δ log σ|, on "
                + DIGITS[0]
                + ", every measurement interval), averaged; the geometric mean over seeds of BN's drift over no BN's",
                "لكل بذرة، انجراف مدخلات الطبقتين المخفيتين 2 و3 وطبقة المخرج بين القياسات (متوسط $|\\Delta\\mu|/\\sigma + |\\Delta\\log\\sigma|$ على الوحدات، على "
                + DIGITS[1]
                + "، في كل فترة قياس)، مأخوذاً متوسطه؛ والمتوسط الهندسي عبر البذور لنسبة انجراف الشبكة المطبَّعة إلى انجراف الشبكة غير المطبَّعة",
            ),
            "t on log ratios",
            "less",
            1.0,
            scale="ratio",
            v2=True,
        ),
        _ratio("drift", "bn", "no_bn"),
    ),
    _claim(
        "ics-gradient",
        "BN does not reduce internal covariate shift measured through gradients (Santurkar et al. 2018).",
        "لا يقلل تطبيع الحزمة انزياح المتغيرات المشتركة الداخلي مقيساً بالتدرجات (سانتوركار وزملاؤه 2018).",
        "Santurkar et al. 2018, Sec. 2.2",
        "sec-ics-measured",
        _protocol(
            (
                NET[0] + " without BN and with BN, each at its tuned rate",
                NET[1] + " دون تطبيع الحزمة ومعه، كلٌّ بمعدله المضبوط",
            ),
            (
                "per seed, ||G - G'|| / ||G|| for hidden layers 2 and 3 (G = dL/dW_i; G' the same after layers 1 .. i-1 take an SGD step of the arm's rate on the same digits: "
                + DIGITS[0]
                + "), averaged over layers and measurements; the geometric mean over seeds of BN's over no BN's. 'Does not reduce' reads: BN's is at least 0.8 of no BN's",
                "لكل بذرة، $\\|G - G'\\| / \\|G\\|$ للطبقتين المخفيتين 2 و3 ($G$ تدرج الخسارة بالنسبة إلى $W_i$، و$G'$ التدرج نفسه بعد أن تخطو الطبقات السابقة خطوة انحدار تدرجي بمعدل الذراع على "
                + DIGITS[1]
                + ")، مأخوذاً متوسطه على الطبقات والقياسات؛ والمتوسط الهندسي عبر البذور لنسبة قيمة الشبكة المطبَّعة إلى قيمة الشبكة غير المطبَّعة. و«لا يقلل» تعني: قيمة الشبكة المطبَّعة لا تقل عن 0.8 من قيمة الشبكة غير المطبَّعة",
            ),
            "t on log ratios",
            "greater",
            0.8,
            scale="ratio",
            v2=True,
        ),
        _ratio("ics_rel", "bn", "no_bn"),
        paper="BN's ICS ≥ no BN's",
        paper_ar="انزياح الشبكة المطبَّعة ≥ انزياح الشبكة غير المطبَّعة",
    ),
    _claim(
        "noisy-bn-as-fast",
        "BN with noise that moves every layer's input distribution at every step still trains as well as BN (Santurkar et al. 2018).",
        "تطبيع الحزمة مع ضجيج يحرّك توزيع مدخل كل طبقة في كل خطوة يتدرب جيداً كتطبيع الحزمة نفسه (سانتوركار وزملاؤه 2018).",
        "Santurkar et al. 2018, Sec. 2.1",
        "sec-ics-noisy",
        _protocol(
            (
                NET[0]
                + " with BN and with noisy BN (after every BN, per unit, a shift ~ U(-1, 1) and a scale ~ U(1, 2) drawn each step), both at BN's tuned rate",
                NET[1]
                + " مع تطبيع الحزمة ومع تطبيع الحزمة المشوَّش (بعد كل تطبيع للحزمة، لكل وحدة، إزاحة من $U(-1, 1)$ ومقياس من $U(1, 2)$ يُسحبان في كل خطوة)، كلاهما بمعدل تطبيع الحزمة المضبوط",
            ),
            (
                "final validation accuracy, noisy BN minus BN, paired by seed; equivalent within ±0.02 (two points)",
                "دقة التحقق النهائية، تطبيع الحزمة المشوَّش ناقص تطبيع الحزمة، مقترنة بالبذرة؛ متكافئان ضمن ±0.02 (نقطتان)",
            ),
            "paired t",
            "equivalent",
            0.02,
        ),
        _acc("noisy_bn", "bn"),
        paper="noisy BN ≈ BN (VGG, CIFAR-10)",
        paper_ar="تطبيع الحزمة المشوَّش ≈ تطبيع الحزمة (VGG، CIFAR-10)",
    ),
    _claim(
        "noisy-bn-beats-no-bn",
        "Noisy BN still trains better than no BN (Santurkar et al. 2018).",
        "لا يزال تطبيع الحزمة المشوَّش يتدرب أفضل من الشبكة دون تطبيع الحزمة (سانتوركار وزملاؤه 2018).",
        "Santurkar et al. 2018, Sec. 2.1",
        "sec-ics-noisy",
        _protocol(
            (
                NET[0] + " with noisy BN at BN's tuned rate, and without BN at its own",
                NET[1] + " مع تطبيع الحزمة المشوَّش بمعدل تطبيع الحزمة المضبوط، ودونه بمعدله",
            ),
            (
                "final validation accuracy, noisy BN minus no BN, paired by seed",
                "دقة التحقق النهائية، تطبيع الحزمة المشوَّش ناقص الشبكة غير المطبَّعة، مقترنة بالبذرة",
            ),
            "paired t",
            "greater",
            0.0,
        ),
        _acc("noisy_bn", "no_bn"),
        paper="noisy BN > no BN (VGG, CIFAR-10)",
        paper_ar="المشوَّش > دون تطبيع الحزمة (VGG، CIFAR-10)",
    ),
    _claim(
        "bn-smoother",
        "BN makes the loss smoother along the gradient: a smaller effective β-smoothness (Santurkar et al. 2018).",
        "يجعل تطبيع الحزمة الخسارة أنعم على امتداد التدرج: نعومة $\\beta$ فعلية أصغر (سانتوركار وزملاؤه 2018).",
        "Santurkar et al. 2018, Sec. 3.1",
        "sec-ics-smooth",
        _protocol(
            (
                NET[0] + " without BN and with BN, each at its tuned rate",
                NET[1] + " دون تطبيع الحزمة ومعه، كلٌّ بمعدله المضبوط",
            ),
            (
                "per seed, the effective β-smoothness max over steps η of ||∇L(w - ηg) - g|| / ||ηg|| (η = 0.25 ... 4 times the arm's rate, on "
                + DIGITS[0]
                + "), averaged over measurements; the geometric mean over seeds of BN's over no BN's",
                "لكل بذرة، نعومة $\\beta$ الفعلية $\\max_\\eta \\|\\nabla L(w - \\eta g) - g\\| / \\|\\eta g\\|$ (بخطوات $\\eta$ من 0.25 إلى 4 أضعاف معدل الذراع، على "
                + DIGITS[1]
                + ")، مأخوذاً متوسطها على القياسات؛ والمتوسط الهندسي عبر البذور لنسبة قيمة الشبكة المطبَّعة إلى قيمة الشبكة غير المطبَّعة",
            ),
            "t on log ratios",
            "less",
            1.0,
            scale="ratio",
            v2=True,
        ),
        _ratio("beta", "bn", "no_bn"),
        paper="smaller β with BN (VGG, CIFAR-10)",
        paper_ar="$\\beta$ أصغر مع تطبيع الحزمة (VGG، CIFAR-10)",
    ),
    _claim(
        "bn-same-lr",
        "At the no-BN network's best learning rate, the networks with and without BN end close together (Bjorck et al. 2018).",
        "عند أفضل معدل تعلم للشبكة دون تطبيع الحزمة، تنتهي الشبكتان مع تطبيع الحزمة ودونه متقاربتين (بيورك وزملاؤه 2018).",
        "Bjorck et al. 2018",
        "sec-ics-lr",
        _protocol(
            (
                NET[0] + " with BN and without BN, both at the no-BN network's tuned rate",
                NET[1] + " مع تطبيع الحزمة ودونه، كلاهما بمعدل الشبكة غير المطبَّعة المضبوط",
            ),
            (
                "final validation accuracy, BN minus no BN at the same rate, paired by seed; equivalent within ±0.01 (one point)",
                "دقة التحقق النهائية، الشبكة المطبَّعة ناقص الشبكة غير المطبَّعة بالمعدل نفسه، مقترنة بالبذرة؛ متكافئتان ضمن ±0.01 (نقطة واحدة)",
            ),
            "paired t",
            "equivalent",
            0.01,
        ),
        _acc("bn_low_lr", "no_bn"),
        paper="close at the same small rate (CIFAR-10)",
        paper_ar="متقاربتان بالمعدل الصغير نفسه (CIFAR-10)",
    ),
    _claim(
        "bn-gain-from-lr",
        "BN's gain comes from the larger learning rate it allows: BN at its own best rate beats BN at the no-BN rate (Bjorck et al. 2018).",
        "مكسب تطبيع الحزمة يأتي من معدل التعلم الأكبر الذي يسمح به: تتفوق الشبكة المطبَّعة بأفضل معدل لها على نفسها بمعدل الشبكة غير المطبَّعة (بيورك وزملاؤه 2018).",
        "Bjorck et al. 2018",
        "sec-ics-lr",
        _protocol(
            (
                NET[0] + " with BN, at its own tuned rate and at the no-BN network's",
                NET[1] + " مع تطبيع الحزمة، بمعدلها المضبوط وبمعدل الشبكة غير المطبَّعة",
            ),
            (
                "final validation accuracy, BN at its rate minus BN at the no-BN rate, paired by seed",
                "دقة التحقق النهائية، الشبكة المطبَّعة بمعدلها ناقص الشبكة المطبَّعة بمعدل الشبكة غير المطبَّعة، مقترنة بالبذرة",
            ),
            "paired t",
            "greater",
            0.0,
        ),
        _acc("bn", "bn_low_lr"),
        paper="the gain comes mostly from the larger rate",
        paper_ar="معظم المكسب من المعدل الأكبر",
    ),
    _claim(
        "wd-raises-effective-lr",
        "Weight decay on the weights before a BN raises their effective learning rate lr/‖W‖² (van Laarhoven 2017).",
        "اضمحلال الأوزان على الأوزان التي تسبق تطبيع الحزمة يرفع معدل تعلمها الفعلي $\\eta/\\|W\\|^2$ (فان لارهوفن 2017).",
        "van Laarhoven 2017",
        "sec-ics-effective-lr",
        _protocol(
            (
                NET[0] + f" with BN at its tuned rate, without and with weight decay {WEIGHT_DECAY:g}",
                NET[1] + f" مع تطبيع الحزمة بمعدله المضبوط، دون اضمحلال الأوزان ومعه بمعامل {WEIGHT_DECAY:g}",
            ),
            (
                "per seed, lr / ||W||² at the last step, averaged over the three weight matrices before a BN; the geometric mean over seeds of with weight decay over without",
                "لكل بذرة، $\\eta/\\|W\\|^2$ عند الخطوة الأخيرة، متوسطاً على مصفوفات الأوزان الثلاث التي تسبق تطبيع الحزمة؛ والمتوسط الهندسي عبر البذور لنسبته مع اضمحلال الأوزان إلى نسبته دونه",
            ),
            "t on log ratios",
            "greater",
            1.0,
            scale="ratio",
        ),
        _ratio("eff_lr_final", "bn_wd", "bn"),
        paper="effective rate ∝ η/‖w‖²",
        paper_ar="المعدل الفعلي $\\propto \\eta/\\|w\\|^2$",
    ),
    _claim(
        "bn-gradients-explode-with-depth",
        "In deep BN networks without skip connections, gradients grow with depth at initialization (Yang et al. 2019).",
        "في الشبكات العميقة المطبَّعة بالحزمة دون وصلات تخطٍّ، تنمو التدرجات مع العمق عند التهيئة (يانغ وزملاؤه 2019).",
        "Yang et al. 2019",
        "sec-ics-depth",
        _protocol(
            (
                "fully-connected ReLU networks of 5, 10, 20, 30 and 50 hidden layers of 100 units, with BN before every ReLU, at initialization, one mini-batch of 60 training digits",
                "شبكات متصلة بالكامل بوحدات ReLU من 5 و10 و20 و30 و50 طبقة مخفية من 100 وحدة، مع تطبيع الحزمة قبل كل ReLU، عند التهيئة، على حزمة صغيرة واحدة من 60 رقم تدريب",
            ),
            (
                "per seed, the least-squares slope over depth of log(||dL/dW_first|| / ||dL/dW_last hidden||); mean over seeds",
                "لكل بذرة، ميل خط المربعات الصغرى على العمق للقيمة $\\log(\\|\\partial L/\\partial W_1\\| / \\|\\partial L/\\partial W_{\\mathrm{last}}\\|)$؛ والمتوسط عبر البذور",
            ),
            "t",
            "greater",
            0.0,
            tuned=("nothing (no training)", "لا شيء (لا تدريب)"),
        ),
        _depth_slope,
        paper="gradients explode with depth",
        paper_ar="التدرجات تنفجر مع العمق",
    ),
    _claim(
        "bn-depth-worse-than-he",
        "That growth with depth is steeper with BN than without BN at He initialization (Yang et al. 2019).",
        "هذا النمو مع العمق أشد مع تطبيع الحزمة منه دونه بتهيئة He (يانغ وزملاؤه 2019).",
        "Yang et al. 2019",
        "sec-ics-depth",
        _protocol(
            (
                "the same networks with BN, and without BN at He initialization",
                "الشبكات نفسها مع تطبيع الحزمة، ودونه بتهيئة He",
            ),
            (
                "per seed, the slope with BN minus the slope without BN (as above), paired by seed",
                "لكل بذرة، الميل مع تطبيع الحزمة ناقص الميل دونه (كما أعلاه)، مقترناً بالبذرة",
            ),
            "paired t",
            "greater",
            0.0,
            tuned=("nothing (no training)", "لا شيء (لا تدريب)"),
        ),
        _depth_gap,
        paper="no initialization removes it",
        paper_ar="لا تزيله أي تهيئة",
    ),
)

# The confirmatory version of every claim above (bnpaper.protocol.confirmatory): each claim's
# smallest effect of interest, and the statistics that are true by construction (checks).
CLAIMS = confirmatory(
    CLAIMS,
    sesoi={
        "ics-distribution": (0.8, "reduction"),
        "noisy-bn-beats-no-bn": (0.005, "accuracy"),
        "bn-smoother": (0.8, "reduction"),
        "bn-gain-from-lr": (0.005, "accuracy"),
        "bn-gradients-explode-with-depth": (0.01, "slope"),
        "bn-depth-worse-than-he": (0.01, "slope"),
    },
    checks={
        "wd-raises-effective-lr": (
            "true by construction: weight decay shrinks the weights' norm and nothing else changes the "
            "learning rate, so the effective rate $\\eta / \\Vert W \\Vert^2$ can only grow; the ratio shows by how much",
            "صحيح بالبناء: اضمحلال الأوزان يصغّر معيار الأوزان ولا شيء آخر يغيّر معدل التعلم، فلا يسع "
            "المعدلَ الفعلي $\\eta / \\Vert W \\Vert^2$ إلا أن يكبر؛ وتُظهر النسبة بكم",
        ),
    },
)


def profile_config(
    profile: str, lr: dict, data_dir: str = "", device: str = "cpu", steps: int = 0
) -> ICSConfig:
    s = settings(profile, steps=steps)
    return ICSConfig(
        steps=s["steps"],
        seeds=profiles.eval_seeds(profile),
        lr=lr,
        eval_every=s["eval_every"],
        measure_every=s["measure_every"],
        measure_images=s["measure_images"],
        power_iters=s["power_iters"],
        data_dir=data_dir,
        device=device,
    )


def depth_config(profile: str, data_dir: str = "") -> DepthConfig:
    s = settings(profile)
    return DepthConfig(depths=list(s["depths"]), seeds=profiles.eval_seeds(profile), data_dir=data_dir)


# ----------------------------------------------------------------------------- the chapter's conclusion

_SAID = {  # (English, Arabic) sentences, picked by verdict; {x} are numbers the code fills in
    "ics-distribution": {
        "holds": (
            "In the paper's own sense BN does reduce internal covariate shift: the inputs of the layers "
            "drift {x} times as much as without BN.",
            "بمعنى الورقة نفسه، يقلل تطبيع الحزمة فعلاً انزياح المتغيرات المشتركة الداخلي: تنجرف مدخلات "
            "الطبقات بنسبة {x} من انجرافها في الشبكة غير المطبَّعة.",
        ),
        "other": (
            "In the paper's own sense this chapter does not show that BN reduces internal covariate shift "
            "(a drift {x} times that without BN).",
            "بمعنى الورقة نفسه، لا يبيّن هذا الفصل أن تطبيع الحزمة يقلل انزياح المتغيرات المشتركة الداخلي "
            "(انجراف بنسبة {x} من انجراف الشبكة غير المطبَّعة).",
        ),
    },
    "noisy-bn-as-fast": {
        "holds": (
            "But a smaller drift is not what BN's benefit needs: with noise that makes the distributions "
            "drift {x} times as much as BN's, noisy BN still ends within {m} of BN.",
            "لكن الانجراف الأصغر ليس ما تحتاج إليه فائدة تطبيع الحزمة: فمع ضجيج يجعل التوزيعات تنجرف "
            "{x} ضعفَ انجرافها مع تطبيع الحزمة، تظل دقة الشبكة المشوَّشة ضمن {m} من دقة الشبكة المطبَّعة.",
        ),
        "does_not_hold": (
            "Noisy BN, whose distributions drift {x} times as much as BN's, trains worse than BN here, so "
            "this experiment does not rule out that steadier distributions help.",
            "أما الشبكة المشوَّشة، التي تنجرف توزيعاتها {x} ضعفَ انجرافها مع تطبيع الحزمة، فتتدرب هنا أسوأ من "
            "الشبكة المطبَّعة، فلا تستبعد هذه التجربة أن التوزيعات الأثبت تساعد.",
        ),
        "other": (
            "Whether noisy BN, whose distributions drift {x} times as much as BN's, trains as well as BN "
            "is not settled by these runs.",
            "ولا تحسم هذه التشغيلات هل تتدرب الشبكة المشوَّشة، التي تنجرف توزيعاتها {x} ضعفَ انجرافها مع "
            "تطبيع الحزمة، كالشبكة المطبَّعة.",
        ),
    },
    "ics-gradient": {
        "holds": (
            "Measured through gradients, BN does not reduce the shift: it is {x} times that without BN.",
            "ومقيساً بالتدرجات، لا يقلل تطبيع الحزمة الانزياح: يبلغ {x} من انزياح الشبكة غير المطبَّعة.",
        ),
        "does_not_hold": (
            "Measured through gradients, BN does reduce the shift here ({x} times that without BN), "
            "unlike in Santurkar et al.'s networks.",
            "ومقيساً بالتدرجات، يقلل تطبيع الحزمة الانزياح هنا ({x} من انزياح الشبكة غير المطبَّعة)، خلافاً "
            "لشبكات سانتوركار وزملائه.",
        ),
        "other": (
            "Measured through gradients, the shift with BN is {x} times that without, and the runs do not "
            "decide whether BN reduces it.",
            "ومقيساً بالتدرجات، يبلغ الانزياح مع تطبيع الحزمة {x} منه دونه، ولا تحسم التشغيلات هل يقلله.",
        ),
    },
    "bn-smoother": {
        "holds": (
            "What BN clearly changes is the loss along the gradient: its effective β-smoothness is {x} "
            "times that without BN, as Santurkar et al.'s explanation has it.",
            "وما يغيّره تطبيع الحزمة بوضوح هو الخسارة على امتداد التدرج: تبلغ نعومة $\\beta$ الفعلية {x} "
            "من نظيرتها دونه، كما يقول تفسير سانتوركار وزملائه.",
        ),
        "other": (
            "The loss is not shown to be smoother with BN here (effective β-smoothness {x} times that "
            "without BN).",
            "ولا يتبيّن هنا أن الخسارة أنعم مع تطبيع الحزمة (نعومة $\\beta$ الفعلية {x} من نظيرتها دونه).",
        ),
    },
    "bn-gain-from-lr": {
        "holds": (
            "And part of what BN gains comes from the larger learning rate it allows: the same BN network "
            "held to the rate of the network without BN ends lower than at its own rate.",
            "ويأتي جزء مما يكسبه تطبيع الحزمة من معدل التعلم الأكبر الذي يسمح به: فالشبكة المطبَّعة نفسها، "
            "إذا قُيِّدت بمعدل الشبكة غير المطبَّعة، تنتهي أدنى مما تنتهي إليه بمعدلها الخاص.",
        ),
        "other": (
            "These runs do not show that BN's gain comes from the larger learning rate it allows.",
            "ولا تبيّن هذه التشغيلات أن مكسب تطبيع الحزمة يأتي من معدل التعلم الأكبر الذي يسمح به.",
        ),
    },
    "wd-raises-effective-lr": {
        "holds": (
            "Weight decay reaches the weights before a BN through their effective learning rate, which "
            "it leaves {x} times as high by the end of training.",
            "ويبلغ اضمحلالُ الأوزان الأوزانَ التي تسبق تطبيع الحزمة عبر معدل تعلمها الفعلي، الذي يتركه في "
            "نهاية التدريب {x} ضعفَ ما يكون دونه.",
        ),
        "other": (
            "These runs do not show weight decay raising the effective learning rate ({x} times).",
            "ولا تبيّن هذه التشغيلات أن اضمحلال الأوزان يرفع معدل التعلم الفعلي (النسبة {x}).",
        ),
    },
    "bn-depth-worse-than-he": {
        "holds": (
            "Nor does BN make a deep network without skip connections well-conditioned at initialization: "
            "the gradients grow with depth, faster than without BN at He initialization.",
            "ولا يجعل تطبيع الحزمة الشبكةَ العميقة دون وصلات تخطٍّ حسنةَ التكييف عند التهيئة: تنمو التدرجات "
            "مع العمق، أسرع منها دون تطبيع الحزمة بتهيئة He.",
        ),
        "other": (
            "Whether BN makes gradients at initialization grow faster with depth than He initialization "
            "without BN is not settled here.",
            "ولا يُحسم هنا هل يجعل تطبيع الحزمة التدرجات عند التهيئة تنمو مع العمق أسرع منها دونه بتهيئة He.",
        ),
    },
}
_ENDPOINT = {  # BN at its rate against no BN at its rate: a description with its interval, not a claim
    "higher": (
        "At their own tuned rates, BN ends {d} points of validation accuracy above the network without BN.",
        "وبمعدليهما المضبوطين، تنتهي الشبكة المطبَّعة أعلى من غير المطبَّعة بفارق {d} نقطة مئوية في دقة التحقق.",
    ),
    "lower": (
        "At their own tuned rates, BN ends {d} points of validation accuracy below the network without BN "
        "on this small network: the rate it tolerates, not a better end point, is its gain here.",
        "وبمعدليهما المضبوطين، تنتهي الشبكة المطبَّعة أدنى من غير المطبَّعة بفارق {d} نقطة مئوية في دقة التحقق على "
        "هذه الشبكة الصغيرة: فمكسب تطبيع الحزمة هنا هو المعدل الذي يحتمله، لا نقطة نهاية أفضل.",
    ),
    "level": (
        "At their own tuned rates, BN and the network without BN end level (validation accuracy, BN minus "
        "no BN: {d} points).",
        "وبمعدليهما المضبوطين، تنتهي الشبكتان متقاربتين (دقة التحقق، المطبَّعة ناقص غير المطبَّعة: {d} نقطة مئوية).",
    ),
}
_VERDICT_OF_MECHANISM = {  # the last sentence, from the verdicts of the shift, noisy BN and smoothness
    "against": (
        "So the evidence here supports the paper's description of what BN does to the distributions, but "
        "not its explanation of why BN helps; it supports {reasons} instead.",
        "فالأدلة هنا تؤيد وصف الورقة لما يفعله تطبيع الحزمة بالتوزيعات، لا تفسيرها لسبب نفعه؛ وتؤيد بدلاً "
        "منه {reasons}.",
    ),
    "open": (
        "So the evidence here does not separate the paper's explanation from the later ones.",
        "فالأدلة هنا لا تفصل بين تفسير الورقة والتفسيرات اللاحقة.",
    ),
    "no_benefit": (
        "But BN ends no higher than the network without BN here, so on this network there is no gain "
        "to explain: the measurements above describe what BN does to the distributions and to the loss, "
        "and cannot say why it helps elsewhere.",
        "لكن الشبكة المطبَّعة لا تنتهي هنا أعلى من غير المطبَّعة، فلا مكسب على هذه الشبكة يحتاج إلى تفسير: "
        "تصف القياسات أعلاه ما يفعله تطبيع الحزمة بالتوزيعات وبالخسارة، ولا تستطيع أن تقول لماذا ينفع في غيرها.",
    ),
}
_REASONS = {
    "bn-smoother": ("a smoother loss", "خسارةً أنعم"),
    "bn-gain-from-lr": ("a licence for larger learning rates", "رخصةً لمعدلات تعلم أكبر"),
    "wd-raises-effective-lr": (
        "an effective learning rate set by the weights' norm",
        "معدلَ تعلم فعلياً يحدده معيار الأوزان",
    ),
}


def conclusion(verdicts: dict, values: dict, endpoint, lang: str) -> str:
    """The closing paragraph, every sentence picked by a verdict and filled with the measured numbers.

    verdicts: claim id -> verdict; values: claim id -> the estimate's value (a ratio); endpoint: the
    Estimate of BN minus no BN in final validation accuracy (each at its tuned rate)."""
    k = 0 if lang == "en" else 1
    by_id = {c.id: c for c in CLAIMS}

    def num(v: float, digits: int = 2) -> str:  # a small ratio keeps two significant digits
        return ltr(f"{v:.2g}" if abs(v) < 0.1 else f"{v:.{digits}f}", lang)

    out = []
    for cid in ("ics-distribution", "noisy-bn-as-fast", "ics-gradient", "bn-smoother", "bn-gain-from-lr"):
        said = _SAID[cid]
        text = said.get(verdicts[cid], said["other"])[k]
        x = values.get("noisy_drift") if cid == "noisy-bn-as-fast" else values.get(cid)
        margin = counting.counted(round(by_id[cid].protocol.margin * 100), "point", lang)
        out.append(
            text.format(x=num(x, 1 if cid == "noisy-bn-as-fast" else 2) if x is not None else "-", m=margin)
        )
    if endpoint is not None and endpoint.n >= 2:
        kind = "higher" if endpoint.lo > 0 else "lower" if endpoint.hi < 0 else "level"
        d = abs(endpoint.value) if kind != "level" else endpoint.value
        interval = (
            f"{d * 100:.1f}"
            if kind != "level"
            else f"{d * 100:.1f} [{endpoint.lo * 100:.1f}, {endpoint.hi * 100:.1f}]"
        )
        out.append(_ENDPOINT[kind][k].format(d=ltr(interval, lang)))
    for cid in ("wd-raises-effective-lr", "bn-depth-worse-than-he"):
        said = _SAID[cid]
        x = values.get(cid)
        out.append(said.get(verdicts[cid], said["other"])[k].format(x=num(x, 1) if x is not None else "-"))
    reasons = [_REASONS[c][k] for c in _REASONS if verdicts.get(c) == "holds"]
    gain = endpoint is not None and endpoint.n >= 2 and endpoint.lo > 0
    if (
        endpoint is not None and endpoint.n >= 2 and not gain
    ):  # nothing to explain: say so, claim no mechanism
        out.append(_VERDICT_OF_MECHANISM["no_benefit"][k])
    elif verdicts["ics-distribution"] == "holds" and verdicts["noisy-bn-as-fast"] == "holds" and reasons:
        joined = (", ".join(reasons[:-1]) + " and " + reasons[-1]) if lang == "en" else "، و".join(reasons)
        if len(reasons) == 1:
            joined = reasons[0]
        out.append(_VERDICT_OF_MECHANISM["against"][k].format(reasons=joined))
    else:
        out.append(_VERDICT_OF_MECHANISM["open"][k])
    return " ".join(out)
