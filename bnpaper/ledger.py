"""The claims ledger: every claim the book tests, the paper's number, ours, and the verdict.

Chapters call `record(claim_id, measurement, ...)` with the numbers they computed; the ledger page
calls `rows(profile, data_dir)`, which applies each claim's rule to its latest measurement. A claim
with no measurement shows as "not run", never as a pass. Nothing here is typed by hand except the
claims themselves, where they are made, and the paper's published numbers.

Records live in $BNPAPER_LEDGER/<profile>/<data>/<claim>.json (the pipeline points
BNPAPER_LEDGER at _build/ledger for `bnpaper book`, and elsewhere for one-off `bnpaper execute`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bnpaper.cache import source_hash, write_json_atomic

VERDICTS = ("holds", "partly", "does_not_hold", "not_testable", "not_run")


@dataclass(frozen=True)
class Claim:
    id: str
    en: str  # the claim in one line
    ar: str
    where: str  # where it is made: paper section (source text section)
    paper: str  # the paper's number, or "-"
    chapter: str  # the chapter that measures it
    label: str  # the MyST label of the section that measures it
    rule: Callable[[dict], tuple[str, str]] | None  # measurement -> (verdict, numbers as text)
    untestable_en: str = ""  # why it cannot be tested here (rule is None)
    untestable_ar: str = ""


def _pm(ms) -> str:
    return f"{ms[0]:.4f} ± {ms[1]:.4f}"


def _rule_bias(m):
    ok = m["max_output_diff"] < 1e-10 and m["max_abs_grad_bias"] < 1e-10
    return (
        "holds" if ok else "does_not_hold",
        f"max |Δz| = {m['max_output_diff']:.1e}, max |∂ℓ/∂b| = {m['max_abs_grad_bias']:.1e} "
        f"(bias up to {m['max_abs_bias']:.1f}; float64)",
    )


def _rule_per_map(m):
    ok = m["per_map"] < 1e-10 and m["per_activation"] > 1e-3
    return (
        "holds" if ok else "does_not_hold",
        f"shift test, max |diff|: per feature map {m['per_map']:.1e}, "
        f"per activation {m['per_activation']:.2g}",
    )


def _rule_fold(m):
    ok = m["max_logit_diff"] < 1e-3 and m["acc_bn"] == m["acc_folded"]
    return (
        "holds" if ok else "does_not_hold",
        f"max |Δlogit| = {m['max_logit_diff']:.1e}; accuracy {m['acc_bn']:.4f} → {m['acc_folded']:.4f}; "
        f"CPU speed-up {m['speedup']:.2f}x",
    )


def _rule_alg2(m):
    gap = abs(m["algorithm2"] - m["moving_average"])
    ok = gap <= max(m["noise"], 0.005)
    return (
        "holds" if ok else "partly",
        f"test accuracy: Alg. 2 {m['algorithm2']:.4f}, moving average {m['moving_average']:.4f}, "
        f"cumulative {m['cumulative']:.4f}, test-batch statistics {m['test_batch']:.4f}",
    )


def _rule_identities(m):
    ok = m["exact_max"] < 1e-10 and m["within_bound"]
    return (
        "holds" if ok else "does_not_hold",
        f"eps = 0: max deviation {m['exact_max']:.1e} over a ∈ [{m['a_min']:g}, {m['a_max']:g}]; eps = 1e-3: "
        f"{'all' if m['within_bound'] else 'not all'} within the eps-sized bound",
    )


def _rule_growth(m):
    ok = m["rescale_rel_dev"] < 0.05
    return (
        "holds" if ok else "does_not_hold",
        f"||∂ℓ/∂W|| × a constant to {m['rescale_rel_dev']:.1e} (relative) for a ∈ [0.25, 4]; "
        f"||W_1|| grew {m['w_growth_bn']:.2f}x with BN, {m['w_growth_no_bn']:.2f}x without",
    )


def _rule_jacobian(m):
    bn, no = m["near1_bn"], m["near1_no_bn"]
    verdict = "holds" if bn >= 0.5 and bn > no else ("partly" if bn > no else "does_not_hold")
    return (
        verdict,
        f"share of singular values in [0.5, 2]: {bn:.1%} with BN, {no:.1%} without; "
        f"median {m['median_bn']:.3f} vs {m['median_no_bn']:.3f} "
        "(sigmoid MLP, not the conjecture's linear Gaussian setting)",
    )


def _rule_lr(m):
    ratios = {k: v for k, v in m["ratios"].items()}
    good = [k for k, v in ratios.items() if v is not None and v >= 3]
    verdict = "holds" if len(good) == len(ratios) else ("partly" if good else "does_not_hold")
    txt = ", ".join(
        f"{k}: {m['lr_no_bn'][k]} → {m['lr_bn'][k]} (x{v:.0f})"
        if v is not None
        else f"{k}: {m['lr_no_bn'][k]} → {m['lr_bn'][k]}"
        for k, v in ratios.items()
    )
    return verdict, f"largest stable learning rate without → with BN: {txt}"


def _rule_sigmoid(m):
    bn, no = m["bn"], m["no_bn"]
    ok = bn[0] > 0.5 and bn[0] - no[0] > 2 * max(bn[1], no[1], 1e-3)
    return (
        "holds" if ok else ("partly" if bn[0] > no[0] else "does_not_hold"),
        f"{m['depth']}-layer sigmoid MLP, test accuracy {_pm(bn)} with BN vs {_pm(no)} without (n={m['n']})",
    )


def _rule_nondeterminism(m):
    ok = m["std_small"] > m["std_large"] > 0 and m["eval_diff"] == 0
    return (
        "holds" if ok else "does_not_hold",
        f"std of one example's logits over companions: {m['std_small']:.3f} at m={m['m_small']}, "
        f"{m['std_large']:.3f} at m={m['m_large']}; eval mode deterministic (Δ = {m['eval_diff']:g})",
    )


def _rule_dropout(m):
    v = m["verdict"]
    return (
        v,
        f"test accuracy: BN {_pm(m['bn0'])}, no BN + Dropout {_pm(m['nb5'])}, "
        f"BN + Dropout {_pm(m['bn5'])} (n={m['n']})",
    )


def _rule_generalization(m):
    diff, noise = m["bn0"][0] - m["nb0"][0], max(m["bn0"][1], m["nb0"][1], 1e-4)
    verdict = "holds" if diff > noise else ("does_not_hold" if diff < -noise else "partly")
    return (
        verdict,
        f"test accuracy without Dropout: BN {_pm(m['bn0'])} vs no BN {_pm(m['nb0'])}; "
        f"gap {m['bn0_gap']:.4f} vs {m['nb0_gap']:.4f} (n={m['n']})",
    )


def _rule_fig1_acc(m):
    bn, no = m["bn"], m["no_bn"]
    higher = bn[0] - no[0] > max(bn[1], no[1], 1e-3)
    faster = m["steps_bn_to_no_bn_final"] is not None and m["steps_bn_to_no_bn_final"] < m["steps"]
    verdict = "holds" if higher and faster else ("partly" if higher or faster else "does_not_hold")
    reach = (
        f"BN reached no-BN's final accuracy at step {m['steps_bn_to_no_bn_final']}"
        if faster
        else "BN never reached no-BN's final accuracy"
    )
    return (
        verdict,
        f"final test accuracy {_pm(bn)} with BN vs {_pm(no)} without after {m['steps']} steps "
        f"(n={m['n']}); {reach}",
    )


def _rule_fig1_drift(m):
    bn, no = m["bn"], m["no_bn"]
    verdict = "holds" if bn[0] < 0.5 * no[0] else ("partly" if bn[0] < no[0] else "does_not_hold")
    return verdict, (
        f"median over the 100 last-layer sigmoids of the median's range over training / mean spread: "
        f"{_pm(bn)} with BN vs {_pm(no)} without (n={m['n']})"
    )


def _rule_init(m):
    bn, no = m["range_bn"], m["range_no_bn"]
    verdict = "holds" if bn < no else "does_not_hold"
    return (
        verdict,
        f"spread of mean final test accuracy across initial std {m['inits']}: "
        f"{bn:.4f} with BN, {no:.4f} without",
    )


def _speed_rule(name, threshold):
    def rule(m):
        s = m["speedup"].get(name)
        verdict = "does_not_hold" if s is None or s <= 1 else ("holds" if s >= threshold else "partly")
        return verdict, (
            f"steps to the Baseline's best ({m['target']:.4f}): speed-up {s:.1f}x"
            if s
            else f"never reached the Baseline's best ({m['target']:.4f})"
        ) + f" (n={m['n']})"

    return rule


def _rule_sigmoid_inception(m):
    bn, no = m["max_acc"]["BN-x5-Sigmoid"], m["max_acc"]["Inception-Sigmoid"]
    trains = bn[0] - no[0] > 2 * max(bn[1], no[1], 1e-3)
    stuck = no[0] < 0.2
    verdict = "holds" if trains and stuck else ("partly" if trains else "does_not_hold")
    return (
        verdict,
        f"max accuracy: BN-x5-Sigmoid {_pm(bn)}, Inception-Sigmoid (no BN) {_pm(no)}; "
        f"chance 0.1 (n={m['n']})",
    )


def _rule_x30_max(m):
    x30, base = m["max_acc"]["BN-x30"], m["max_acc"]["Baseline"]
    diff, noise = x30[0] - base[0], max(x30[1], base[1], 1e-4)
    verdict = "holds" if diff > noise else ("does_not_hold" if diff < -noise else "partly")
    return verdict, f"max accuracy BN-x30 {_pm(x30)} vs Baseline {_pm(base)} (n={m['n']})"


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "conv-bias",
        "A bias before BN has no effect and can be dropped; β takes its role.",
        "الانحياز قبل تطبيع الحزمة بلا أثر ويمكن حذفه؛ ويحل β محله.",
        "paper 3.2 (source §4)",
        "-",
        "02_conv",
        "sec-conv-bias",
        _rule_bias,
    ),
    Claim(
        "conv-per-map",
        "Normalizing per feature map (over m' = m·p·q values) treats every location alike.",
        "التطبيع لكل خريطة ميزات (على m' = m·p·q قيمة) يعامل كل المواقع بالطريقة نفسها.",
        "paper 3.2 (source §4)",
        "-",
        "02_conv",
        "sec-conv-per-map",
        _rule_per_map,
    ),
    Claim(
        "conv-fold",
        "At inference BN is one affine map per feature map and folds into the convolution.",
        "عند الاستدلال تطبيع الحزمة تحويل أفيني واحد لكل خريطة ميزات ويندمج في الالتفاف.",
        "paper 3.2 (source §4)",
        "-",
        "02_conv",
        "sec-conv-fold",
        _rule_fold,
    ),
    Claim(
        "alg2-moving-average",
        "Moving averages can stand in for Algorithm 2's population statistics.",
        "يمكن للمتوسطات المتحركة أن تحل محل إحصاءات المجتمع في الخوارزمية 2.",
        "paper 3.1, Alg. 2",
        "-",
        "03_inference",
        "sec-alg2-methods",
        _rule_alg2,
    ),
    Claim(
        "scale-identities",
        "BN(Wu) = BN((aW)u); ∂/∂u unchanged; ∂/∂(aW) = (1/a) ∂/∂W.",
        "BN(Wu) = BN((aW)u)؛ و∂/∂u لا يتغير؛ و∂/∂(aW) = (1/a) ∂/∂W.",
        "paper 3.3 (source §4.1)",
        "exact (for ε = 0)",
        "05_learning_rates",
        "sec-lr-identities",
        _rule_identities,
    ),
    Claim(
        "larger-weights-smaller-gradients",
        "Larger weights lead to smaller gradients, stabilizing parameter growth.",
        "الأوزان الأكبر تؤدي إلى تدرجات أصغر، فيستقر نمو المعاملات.",
        "paper 3.3 (source §4.1)",
        "-",
        "05_learning_rates",
        "sec-lr-growth",
        _rule_growth,
    ),
    Claim(
        "jacobian-singular-values",
        "BN may make layer Jacobians have singular values close to 1 (conjecture).",
        "قد يجعل تطبيع الحزمة القيم المفردة لمصفوفات جاكوبي الطبقات قريبة من 1 (حدس).",
        "paper 3.3",
        "-",
        "05_learning_rates",
        "sec-lr-jacobians",
        _rule_jacobian,
    ),
    Claim(
        "higher-learning-rates",
        "BN allows much higher learning rates without divergence.",
        "يسمح تطبيع الحزمة بمعدلات تعلم أعلى بكثير دون تباعد.",
        "paper 3.3 (source §4.1)",
        "-",
        "05_learning_rates",
        "sec-lr-sweep",
        _rule_lr,
    ),
    Claim(
        "saturating-nonlinearities",
        "BN lets networks with saturating nonlinearities (sigmoid) train.",
        "يمكّن تطبيع الحزمة الشبكات ذات اللاخطيات المشبعة (السينية) من التدريب.",
        "paper 3.3 (source §4.1)",
        "-",
        "05_learning_rates",
        "sec-lr-sigmoid",
        _rule_sigmoid,
    ),
    Claim(
        "nondeterministic-output",
        "In training, an example's output depends on its mini-batch companions.",
        "أثناء التدريب يعتمد مخرج المثال على رفاقه في الحزمة الصغيرة.",
        "paper 3.4 (source §4.2)",
        "-",
        "04_regularization",
        "sec-reg-nondeterminism",
        _rule_nondeterminism,
    ),
    Claim(
        "reduces-dropout",
        "BN acts as a regularizer and reduces the need for Dropout.",
        "يعمل تطبيع الحزمة كمنظم ويقلل الحاجة إلى الإسقاط.",
        "paper 3.4 (source §4.2)",
        "-",
        "04_regularization",
        "sec-reg-dropout",
        _rule_dropout,
    ),
    Claim(
        "improves-generalization",
        "BN improves the generalization of trained models.",
        "يحسّن تطبيع الحزمة تعميم النماذج المدرَّبة.",
        "source §4.2",
        "-",
        "04_regularization",
        "sec-reg-dropout",
        _rule_generalization,
    ),
    Claim(
        "init-insensitive",
        "With BN we need not be as careful about parameter initialization.",
        "مع تطبيع الحزمة لا نحتاج إلى الحذر نفسه في تهيئة المعاملات.",
        "paper 3.3 (source §4.1)",
        "-",
        "07_figure1",
        "sec-fig1-neighbours",
        _rule_init,
    ),
    Claim(
        "fig1-accuracy",
        "On MNIST the BN network reaches higher test accuracy, faster (Figure 1a).",
        "على MNIST تبلغ الشبكة المطبعة بالحزمة دقة اختبار أعلى وأسرع (الشكل 1أ).",
        "paper 4.1, Fig. 1(a)",
        "no number (reproduction: 94.92% → 98.15%)",
        "07_figure1",
        "sec-fig1-accuracy",
        _rule_fig1_acc,
    ),
    Claim(
        "fig1-stable-inputs",
        "With BN the distribution of sigmoid inputs stays stable; without it drifts (Figure 1b, c).",
        "مع تطبيع الحزمة يبقى توزيع مدخلات الدالة السينية مستقراً؛ ودونه ينجرف (الشكل 1ب، ج).",
        "paper 4.1, Fig. 1(b, c)",
        "-",
        "07_figure1",
        "sec-fig1-drift",
        _rule_fig1_drift,
    ),
    Claim(
        "bn-baseline-faster",
        "BN alone speeds training up (BN-Baseline reaches Inception's best in fewer steps).",
        "تطبيع الحزمة وحده يسرّع التدريب (يبلغ BN-Baseline أفضل دقة لـ Inception بخطوات أقل).",
        "paper 4.2, Fig. 3",
        "13.3M vs 31.0M steps (2.3x)",
        "06_inception",
        "sec-inception-table",
        _speed_rule("BN-Baseline", 2.0),
    ),
    Claim(
        "bn-x5-faster",
        "BN with the accelerated recipe reaches the Baseline's best far sooner (BN-x5).",
        "تطبيع الحزمة مع الوصفة المسرَّعة يبلغ أفضل دقة لـ Baseline أسرع بكثير (BN-x5).",
        "paper 4.2, Fig. 3",
        "2.1M vs 31.0M steps (14x)",
        "06_inception",
        "sec-inception-table",
        _speed_rule("BN-x5", 5.0),
    ),
    Claim(
        "bn-x30-higher-max",
        "A 30x learning rate with BN ends at a higher accuracy than the Baseline.",
        "معدل تعلم أكبر 30 مرة مع تطبيع الحزمة ينتهي بدقة أعلى من Baseline.",
        "paper 4.2, Fig. 3",
        "74.8% vs 72.2%",
        "06_inception",
        "sec-inception-table",
        _rule_x30_max,
    ),
    Claim(
        "sigmoid-inception",
        "With BN, an Inception with sigmoid nonlinearities trains; without BN it does not.",
        "مع تطبيع الحزمة تتدرب شبكة Inception بلاخطيات سينية؛ ودونه لا تتدرب.",
        "paper 4.2, Fig. 3",
        "69.8% (without BN: < 0.1%)",
        "06_inception",
        "sec-inception-table",
        _rule_sigmoid_inception,
    ),
    Claim(
        "ensemble-imagenet",
        "An ensemble of BN-Inception networks reaches 4.9% top-5 validation error on ImageNet.",
        "مجموعة من شبكات BN-Inception تبلغ خطأ top-5 قدره 4.9% على بيانات التحقق في ImageNet.",
        "paper 4.2.3, Fig. 4",
        "4.9% top-5 (4.82% test)",
        "06_inception",
        "sec-inception-table",
        None,
        "needs ImageNet and six full-size Inception networks; nothing at this scale can test it",
        "يتطلب ImageNet وست شبكات Inception بالحجم الكامل؛ ولا شيء بهذا النطاق يمكنه اختباره",
    ),
)
BY_ID = {c.id: c for c in CLAIMS}


def ledger_dir() -> Path:
    return Path(os.environ.get("BNPAPER_LEDGER", "_build/ledger")).resolve()


def data_key(data_dir: str) -> str:
    return (
        "embedded"
        if not data_dir
        else "idx-" + hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:8]
    )


def record(
    claim_id: str,
    measurement: dict,
    *,
    profile: str,
    data_dir: str = "",
    n: int | None = None,
    data: str = "",
) -> Path:
    """Store a chapter's measurement for a claim (overwriting the previous one for this profile and data)."""
    if claim_id not in BY_ID:
        raise KeyError(f"unknown claim {claim_id!r}; known: {', '.join(BY_ID)}")
    path = ledger_dir() / profile / data_key(data_dir) / f"{claim_id}.json"
    content = {"claim": claim_id, "measurement": measurement, "profile": profile, "n": n, "data": data}
    if path.exists():  # the same measurement again (the other edition, a re-run): keep the record as it is
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            if _content(old) == json.loads(json.dumps(content, default=str)):
                return path
        except (json.JSONDecodeError, OSError):
            pass
    stamp = {"source": source_hash(), "recorded": datetime.now(UTC).isoformat(timespec="seconds")}
    write_json_atomic(path, {**content, **stamp})
    return path


def _content(record: dict) -> dict:
    """A record without its provenance stamp (when and by which source it was written)."""
    return {k: v for k, v in record.items() if k not in ("source", "recorded")}


def rows(profile: str, data_dir: str = "", folder: Path | None = None) -> list[dict]:
    """One row per claim: verdict from its rule and latest measurement, or not_run / not_testable."""
    base = (folder or ledger_dir()) / profile / data_key(data_dir)
    out = []
    for c in CLAIMS:
        row = {"claim": c, "verdict": "not_run", "measured": "", "record": None}
        if c.rule is None:
            row["verdict"] = "not_testable"
        else:
            path = base / f"{c.id}.json"
            if path.exists():
                try:
                    rec = json.loads(path.read_text(encoding="utf-8"))
                    row["verdict"], row["measured"] = c.rule(rec["measurement"])
                    row["record"] = rec
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    row["verdict"], row["measured"] = "not_run", f"unreadable record {path.name}: {e}"
        if row["verdict"] not in VERDICTS:
            raise ValueError(f"claim {c.id}: rule returned unknown verdict {row['verdict']!r}")
        out.append(row)
    return out


def records_hash(profile: str, data_dir: str = "", folder: Path | None = None) -> str:
    """A hash of every record for this profile and data: the ledger page re-executes when it changes."""
    base = (folder or ledger_dir()) / profile / data_key(data_dir)
    h = hashlib.sha256()
    for p in sorted(base.glob("*.json")) if base.exists() else []:
        h.update(p.name.encode())
        try:  # the measurement, not when it was written: an unchanged rewrite re-executes nothing
            h.update(json.dumps(_content(json.loads(p.read_bytes())), sort_keys=True).encode())
        except json.JSONDecodeError:
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
