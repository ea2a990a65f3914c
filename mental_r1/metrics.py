"""Classification metrics as the field reports them (IMHI / MentaLLaMA / Mental-R1).

`weighted_f1` equals sklearn's `f1_score(average="weighted") * 100`: per-class F1 weighted by the
class's support in the gold labels; classes that only appear in predictions count with weight 0
(their false positives still lower the other classes' precision).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassReport:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


def per_class(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> list[ClassReport]:
    if len(gold) != len(pred):
        raise ValueError(f"gold and pred differ in length: {len(gold)} vs {len(pred)}")
    labels = list(labels) if labels is not None else sorted(set(gold) | set(pred))
    out = []
    for lab in labels:
        tp = sum(g == lab and p == lab for g, p in zip(gold, pred))
        n_pred = sum(p == lab for p in pred)
        n_gold = sum(g == lab for g in gold)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_gold if n_gold else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out.append(ClassReport(lab, prec, rec, f1, n_gold))
    return out


def weighted_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Support-weighted mean of per-class F1, ×100 (sklearn average="weighted")."""
    if not gold:
        raise ValueError("weighted_f1 of an empty set")
    reports = per_class(gold, pred, sorted(set(gold)))
    return 100.0 * sum(r.f1 * r.support for r in reports) / len(gold)


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    if not gold:
        raise ValueError("accuracy of an empty set")
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def confusion_matrix(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """rows = gold label, columns = predicted label, in the order of `labels`."""
    index = {lab: i for i, lab in enumerate(labels)}
    m = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred, strict=True):
        m[index[g]][index[p]] += 1
    return m


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> list[dict]:
    """Non-empty equal-width confidence bins (b/n, (b+1)/n] (0 goes into the first), each with its
    count, mean confidence and accuracy; the data of a reliability diagram."""
    if len(confidences) != len(correct):
        raise ValueError("confidences and correct differ in length")
    bins: dict[int, list[tuple[float, bool]]] = {}
    for c, ok in zip(confidences, correct):
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"confidence {c} outside [0, 1]")
        b = min(n_bins - 1, max(0, math.ceil(c * n_bins) - 1))
        bins.setdefault(b, []).append((c, bool(ok)))
    return [{"lo": b / n_bins, "hi": (b + 1) / n_bins, "n": len(v),
             "confidence": sum(c for c, _ in v) / len(v), "accuracy": sum(ok for _, ok in v) / len(v)}
            for b, v in sorted(bins.items())]


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE = Σ_bins (n_bin/N)·|accuracy_bin − mean confidence_bin| over `reliability_bins`."""
    if not confidences:
        raise ValueError("expected_calibration_error of an empty set")
    bins = reliability_bins(confidences, correct, n_bins)
    return sum(b["n"] / len(confidences) * abs(b["accuracy"] - b["confidence"]) for b in bins)


def auroc(confidences: Sequence[float], correct: Sequence[bool]) -> float | None:
    """How well confidence separates right from wrong answers: the probability that a random right answer
    has a higher confidence than a random wrong one, ties counting half (the Mann-Whitney U statistic over
    average ranks; equals sklearn's roc_auc_score). None when every answer is right or every one wrong."""
    if len(confidences) != len(correct):
        raise ValueError("confidences and correct differ in length")
    n_pos = sum(bool(ok) for ok in correct)
    n_neg = len(correct) - n_pos
    if not n_pos or not n_neg:
        return None
    order = sorted(range(len(confidences)), key=lambda i: confidences[i])
    ranks = [0.0] * len(order)
    i = 0
    while i < len(order):  # average rank (1-based) over each run of tied confidences
        j = i
        while j + 1 < len(order) and confidences[order[j + 1]] == confidences[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, ok in zip(ranks, correct) if ok)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def mean_nll(probabilities: Sequence[dict[str, float]], gold: Sequence[str]) -> float:
    """Mean negative log-likelihood of the gold labels under each row's label → probability (floored at 1e-300)."""
    if not gold:
        raise ValueError("mean_nll of an empty set")
    return -sum(math.log(max(p[g], 1e-300)) for p, g in zip(probabilities, gold, strict=True)) / len(gold)


def label_set_coverage(sets: Sequence[Sequence[str]], gold: Sequence[str]) -> float:
    """The share of rows whose label set holds the gold label (conformal prediction's empirical coverage)."""
    if not gold:
        raise ValueError("label_set_coverage of an empty set")
    return sum(g in s for s, g in zip(sets, gold, strict=True)) / len(gold)
