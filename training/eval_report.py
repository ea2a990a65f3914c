"""Per-dataset evaluation reports (pure functions) and their rendering: JSON, markdown, PNG charts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mental_r1.calibration import Calibration, softmax
from mental_r1.metrics import (
    accuracy,
    auroc,
    confusion_matrix,
    expected_calibration_error,
    label_set_coverage,
    per_class,
    reliability_bins,
    weighted_f1,
)


@dataclass(frozen=True)
class Prediction:
    dataset: str
    gold: str
    label: str
    confidence: float
    format_valid: bool
    task: str = ""
    label_logprobs: dict[str, float] = field(default_factory=dict)  # uncalibrated, for refitting calibration
    label_set: tuple[str, ...] | None = None  # the conformal label set; None when the task has no threshold
    stages_whole: bool | None = None  # every shown stage ends with a sentence end (None: not recorded)


def raw_confidence(p: Prediction) -> float | None:
    """The uncalibrated probability of the returned label: softmax of the label log-probabilities."""
    if not p.label_logprobs or p.label not in p.label_logprobs:
        return None
    return softmax(p.label_logprobs)[p.label]


def reasoning_report(preds: Sequence[Prediction]) -> dict:
    """What the raw model says beside the calibrated answer: AUROC of the raw confidence, the share of rows
    whose label is the raw model's own argmax (calibration did not overrule what the reasoning led to), and
    the share whose shown stages all end with a sentence end."""
    out: dict = {}
    raw = [(p, c) for p in preds if (c := raw_confidence(p)) is not None]
    if raw:
        out["auroc_raw"] = auroc([c for _, c in raw], [p.label == p.gold for p, _ in raw])
        out["label_is_raw_argmax"] = sum(
            p.label == max(p.label_logprobs, key=p.label_logprobs.get) for p, _ in raw) / len(raw)
    whole = [p.stages_whole for p in preds if p.stages_whole is not None]
    if whole:
        out["stages_whole_sentence_rate"] = sum(whole) / len(whole)
    return out


def recalibrated(preds: Sequence[Prediction], calibration: Calibration) -> list[Prediction]:
    """The same predictions with label, confidence and label set recomputed from their label log-probabilities
    under another calibration (a temperature keeps the label; a label bias may change it)."""
    out = []
    for p in preds:
        probs = calibration.probabilities(p.task, p.label_logprobs)
        label = max(probs, key=probs.get)
        sets = (tuple(calibration.label_set(p.task, probs)) if p.task in calibration.label_set_threshold
                else None)
        out.append(Prediction(p.dataset, p.gold, label, probs[label], p.format_valid, p.task, p.label_logprobs,
                              sets))
    return out


def label_set_report(preds: Sequence[Prediction]) -> dict:
    """Coverage and mean size of the conformal label sets over the rows that have one (tasks with a
    threshold); empty when none has."""
    rows = [p for p in preds if p.label_set is not None]
    if not rows:
        return {}
    return {"label_set_n": len(rows),
            "label_set_coverage": label_set_coverage([p.label_set for p in rows], [p.gold for p in rows]),
            "mean_label_set_size": sum(len(p.label_set) for p in rows) / len(rows)}


def dataset_report(preds: Sequence[Prediction], labels: Sequence[str]) -> dict:
    """Metrics of one dataset: weighted F1 ×100, accuracy, per-class recall, format-valid rate,
    mean confidence, ECE, confusion matrix (rows gold, columns predicted, in `labels` order), and the label
    sets' coverage and mean size when its tasks have conformal thresholds."""
    gold = [p.gold for p in preds]
    pred = [p.label for p in preds]
    conf = [p.confidence for p in preds]
    correct = [g == q for g, q in zip(gold, pred)]
    return {
        "n": len(preds),
        "weighted_f1": weighted_f1(gold, pred),
        "accuracy": accuracy(gold, pred),
        "per_class_recall": {r.label: r.recall for r in per_class(gold, pred, labels) if r.support},
        "format_valid_rate": sum(p.format_valid for p in preds) / len(preds),
        "mean_confidence": sum(conf) / len(conf),
        "ece": expected_calibration_error(conf, correct),
        "auroc": auroc(conf, correct),
        "labels": list(labels),
        "confusion_matrix": confusion_matrix(gold, pred, labels),
        "reliability": reliability_bins(conf, correct),
        **label_set_report(preds),
        **reasoning_report(preds),
    }


def pooled_report(preds: Sequence[Prediction]) -> dict:
    """Confidence over every row of every dataset: accuracy, mean confidence, ECE and AUROC (and the label
    sets' coverage and mean size over the rows that have one)."""
    conf = [p.confidence for p in preds]
    correct = [p.label == p.gold for p in preds]
    return {"n": len(conf), "accuracy": sum(correct) / len(correct), "mean_confidence": sum(conf) / len(conf),
            "ece": expected_calibration_error(conf, correct), "auroc": auroc(conf, correct),
            **label_set_report(preds), **reasoning_report(preds)}


def results_report(preds: dict[str, list[Prediction]], labels: dict[str, Sequence[str]],
                   generalisation: Sequence[str] = ()) -> dict:
    """The results document: per-dataset reports, the averages (summarize) and confidence pooled over every row."""
    results = summarize({name: dataset_report(v, labels[name]) for name, v in preds.items()}, generalisation)
    results["pooled"] = pooled_report([p for v in preds.values() for p in v])
    return results


def majority_predictions(dataset: str, gold: Sequence[str]) -> list[Prediction]:
    """The majority-class baseline: every row gets the most frequent gold label (confidence = its share)."""
    label, count = Counter(gold).most_common(1)[0]
    return [Prediction(dataset, g, label, count / len(gold), True) for g in gold]


def summarize(reports: dict[str, dict], generalisation: Sequence[str] = ()) -> dict:
    """The results document: per-dataset reports plus averages over all, seen and unseen datasets."""
    def avg(names):
        names = [n for n in names if n in reports]
        return sum(reports[n]["weighted_f1"] for n in names) / len(names) if names else None

    seen = [n for n in reports if n not in generalisation]
    return {"datasets": reports, "average_weighted_f1": avg(list(reports)),
            "average_weighted_f1_trained_tasks": avg(seen),
            "average_weighted_f1_generalisation": avg(list(generalisation))}


def markdown_table(results: dict) -> str:
    """One row per dataset; two more columns (label-set coverage, mean set size) when any dataset has sets."""
    sets = any("label_set_coverage" in r for r in results["datasets"].values())
    rows = ["| dataset | n | weighted F1 | accuracy | format valid | mean conf. | ECE | AUROC |"
            + (" set coverage | mean set size |" if sets else ""),
            "|---|" + "---:|" * (9 if sets else 7)]
    for name, r in results["datasets"].items():
        roc = "n/a" if r.get("auroc") is None else f"{r['auroc']:.3f}"
        line = (f"| {name} | {r['n']} | {r['weighted_f1']:.1f} | {r['accuracy']:.3f} | "
                f"{100 * r['format_valid_rate']:.1f} % | {r['mean_confidence']:.3f} | {r['ece']:.3f} | {roc} |")
        if sets:
            line += (f" {100 * r['label_set_coverage']:.1f} % | {r['mean_label_set_size']:.2f} |"
                     if "label_set_coverage" in r else " n/a | n/a |")
        rows.append(line)
    rows.append(f"| **average** | | **{results['average_weighted_f1']:.1f}** |" + " |" * (7 if sets else 5))
    return "\n".join(rows)


def plot(results: dict, out_prefix: Path) -> list[Path]:
    """A per-dataset weighted-F1 bar chart and a pooled reliability diagram, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["datasets"])
    f1 = [results["datasets"][n]["weighted_f1"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(names, f1, color="#4c72b0")
    ax.axhline(results["average_weighted_f1"], color="k", ls="--", lw=1, label="average")
    ax.set_ylabel("weighted F1 ×100")
    ax.set_ylim(0, 100)
    ax.legend()
    fig.tight_layout()
    bars = out_prefix.with_name(out_prefix.name + "_f1.png")
    fig.savefig(bars, dpi=120)
    plt.close(fig)

    pooled: dict[float, list] = {}
    for r in results["datasets"].values():
        for b in r["reliability"]:
            pooled.setdefault(b["lo"], []).append(b)
    los = sorted(pooled)
    conf = [sum(b["confidence"] * b["n"] for b in pooled[lo]) / sum(b["n"] for b in pooled[lo]) for lo in los]
    acc = [sum(b["accuracy"] * b["n"] for b in pooled[lo]) / sum(b["n"] for b in pooled[lo]) for lo in los]
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.plot(conf, acc, "o-", color="#dd8452", label="model")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend()
    fig.tight_layout()
    rel = out_prefix.with_name(out_prefix.name + "_reliability.png")
    fig.savefig(rel, dpi=120)
    plt.close(fig)
    return [bars, rel]
