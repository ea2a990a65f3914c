"""Label probabilities from the model's sequence log-probabilities, and their calibration.

The Assessor scores every label sentence of a task at the commit point (contract.commit_prefix) and turns
the sequence log-probabilities into probabilities with a temperature-scaled softmax:

    p(label) = exp(logp(label) / T) / sum over labels of exp(logp(l) / T)

T = 1 is the model's own chain-rule distribution. A model that reasons its way to one sentence puts almost
all mass on it, so its raw confidence is ~1 whether or not it is right; T > 1 flattens that. T is fitted on
validation data by minimising the negative log-likelihood of the gold labels (Guo et al., 2017: "On
Calibration of Modern Neural Networks"), written next to the model as `calibration.json`, and applied by
the service and the evaluation alike. It changes confidences, never which label is most probable.

Per task (format 2, training/fit_calibration.py): a task with enough validation rows gets its own T (tasks
with few rows, and tasks without validation data, use the shared T), and a per-label bias b added after the
temperature, p ∝ exp(logp/T + b), where cross-validation shows it lowers the held-out NLL. b is fitted by
the same criterion with a small L2 penalty (a prior correction: a model trained on class-balanced data
answers the rare class as often as the common one). Unlike T, a bias can change the chosen label. v1 files
(one `temperature`, top-level `label_bias`) load unchanged and give the same probabilities.

Conformal label sets (split conformal prediction; Vovk et al. 2005, Angelopoulos & Bates 2021, "A Gentle
Introduction to Conformal Prediction"): per task, a threshold τ on the calibrated probability, fitted on
validation rows, so that the set {labels with p >= τ} contains the true label for at least 1 - alpha
(90 %) of posts like the validation ones. With the nonconformity score s = 1 - p(true label) over n rows,
q = the ceil((n + 1)(1 - alpha))-th smallest score and τ = 1 - q, i.e. τ = the ceil((n + 1)(1 - alpha))-th
largest true-label probability (`conformal_threshold`, computed in probability space so that the row
which sets τ clears it exactly). The most probable label is always in the set (`label_set`).

Per task, the file may also name a decision rule (`tasks.<id>.decision`: `direct_weight`, `samples`;
mental_r1/decision.py) and, at the top level, the `sample_temperature` of its sampled reasonings: the
log-probabilities this calibration was fitted on are the rule's mixture. No rule: greedy reasoning.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mental_r1.decision import DecisionRule

CALIBRATION_FILE = "calibration.json"
DEFAULT_ALPHA = 0.1  # conformal label sets cover the true label for 90 % of posts
DEFAULT_SAMPLE_TEMPERATURE = 0.8


def softmax(scores: dict[str, float], temperature: float = 1.0) -> dict[str, float]:
    """Label → probability from label → log-probability, scaled by 1/temperature (numerically stable)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    top = max(scores.values())
    exp = {k: math.exp((v - top) / temperature) for k, v in scores.items()}
    z = sum(exp.values())
    return {k: v / z for k, v in exp.items()}


def nll(rows: Sequence[tuple[dict[str, float], str]], temperature: float) -> float:
    """Mean negative log-likelihood of the gold labels; rows are (label → log-probability, gold label)."""
    total = 0.0
    for scores, gold in rows:
        total -= math.log(max(softmax(scores, temperature)[gold], 1e-300))
    return total / len(rows)


def fit_temperature(rows: Sequence[tuple[dict[str, float], str]], lo: float = 0.05, hi: float = 100.0) -> float:
    """The temperature in [lo, hi] that minimises `nll(rows, T)`: a coarse grid over log T, then a golden-
    section search around the best grid point (the NLL is smooth in log T; a grid first avoids the flat
    regions a pure bracket search can stall in)."""
    if not rows:
        raise ValueError("no rows to fit a temperature on")
    grid = [math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / 60) for i in range(61)]
    best = min(range(len(grid)), key=lambda i: nll(rows, grid[i]))
    a, b = math.log(grid[max(best - 1, 0)]), math.log(grid[min(best + 1, len(grid) - 1)])
    g = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = b - g * (b - a), a + g * (b - a)
        if nll(rows, math.exp(c)) < nll(rows, math.exp(d)):
            b = d
        else:
            a = c
    return math.exp((a + b) / 2)


def fit_label_bias(rows: Sequence[tuple[dict[str, float], str]], temperature: float, l2: float = 0.01,
                   steps: int = 300, lr: float = 1.0) -> dict[str, float]:
    """Per-label biases b (mean 0) minimising mean NLL of softmax(logp/T + b) + l2·Σb², by gradient descent
    (the objective is convex in b). Rows share one label set."""
    labels = sorted(rows[0][0])
    b = dict.fromkeys(labels, 0.0)
    for _ in range(steps):
        grad = {lab: 2 * l2 * b[lab] for lab in labels}
        for scores, gold in rows:
            p = softmax({lab: scores[lab] / temperature + b[lab] for lab in labels})
            for lab in labels:
                grad[lab] += (p[lab] - (lab == gold)) / len(rows)
        for lab in labels:
            b[lab] -= lr * grad[lab]
    mean = sum(b.values()) / len(b)
    return {lab: v - mean for lab, v in b.items()}


def conformal_threshold(true_label_probabilities: Sequence[float], alpha: float = DEFAULT_ALPHA) -> float | None:
    """Split-conformal threshold τ from the calibrated probabilities of the true label on n calibration rows:
    the k-th largest, k = ceil((n + 1)(1 - alpha)) (= 1 - the k-th smallest score 1 - p). Sets {p >= τ} then
    cover a new row's true label with probability >= 1 - alpha when the rows are exchangeable. None when
    k > n (fewer than 1/alpha - 1 rows): only the whole label set would guarantee the coverage."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = len(true_label_probabilities)
    k = math.ceil((n + 1) * (1 - alpha) - 1e-9)  # the slack: a product that float error puts just above an integer
    if k > n:
        return None
    return sorted(true_label_probabilities, reverse=True)[k - 1]


def label_set(probs: dict[str, float], threshold: float | None) -> list[str]:
    """The labels whose probability clears `threshold`, in descending probability; never empty: the most
    probable label (the first of equals, as the assessment's label) always comes first. [that label] when
    there is no threshold."""
    top = max(probs, key=probs.get)
    if threshold is None:
        return [top]
    rest = [lab for lab in probs if lab != top and probs[lab] >= threshold]
    return [top, *sorted(rest, key=lambda lab: -probs[lab])]


@dataclass(frozen=True)
class Calibration:
    """What `calibration.json` holds: the shared temperature, and per task id an own temperature, per-label
    biases and a conformal label-set threshold (each optional)."""

    temperature: float = 1.0
    label_bias: dict[str, dict[str, float]] = field(default_factory=dict)
    task_temperature: dict[str, float] = field(default_factory=dict)
    label_set_threshold: dict[str, float] = field(default_factory=dict)
    decision: dict[str, DecisionRule] = field(default_factory=dict)  # per task id; default: greedy reasoning
    sample_temperature: float = DEFAULT_SAMPLE_TEMPERATURE  # of the rules' sampled reasonings

    def decision_for(self, task_id: str) -> DecisionRule:
        """How the task's label distribution is formed (mental_r1/decision.py); the temperatures, biases and
        thresholds of this file were fitted on the distribution that rule gives."""
        return self.decision.get(task_id, DecisionRule())

    def temperature_for(self, task_id: str) -> float:
        return self.task_temperature.get(task_id, self.temperature)

    def probabilities(self, task_id: str, logprobs: dict[str, float]) -> dict[str, float]:
        t, bias = self.temperature_for(task_id), self.label_bias.get(task_id, {})
        return softmax({k: v / t + bias.get(k, 0.0) for k, v in logprobs.items()})

    def label_set(self, task_id: str, probs: dict[str, float]) -> list[str]:
        """The task's conformal label set of these (calibrated) probabilities; [label] without a threshold."""
        return label_set(probs, self.label_set_threshold.get(task_id))


def read_calibration(path: str | Path) -> Calibration:
    """A calibration file: v1 (`temperature`, `label_bias`) or format 2 (plus `tasks`: per task id optional
    `temperature`, `label_bias` and `label_set.threshold`; training/fit_calibration.py writes it)."""
    path = Path(path)
    data = json.loads(path.read_text())

    def positive(t, where: str) -> float:
        t = float(t)
        if not t > 0:
            raise ValueError(f"{path}: {where}temperature must be > 0, got {t}")
        return t

    bias = {task: dict(b) for task, b in (data.get("label_bias") or {}).items()}
    temps, thresholds, rules = {}, {}, {}
    for task, entry in (data.get("tasks") or {}).items():
        if entry.get("decision"):
            try:
                rules[task] = DecisionRule(**entry["decision"])
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}: task {task}: bad decision rule {entry['decision']!r}: {e}") from None
        if "temperature" in entry:
            temps[task] = positive(entry["temperature"], f"task {task}: ")
        if entry.get("label_bias"):
            if task in bias:
                raise ValueError(f"{path}: task {task} has label biases both at the top level and in 'tasks'")
            bias[task] = dict(entry["label_bias"])
        tau = (entry.get("label_set") or {}).get("threshold")
        if tau is not None:
            if not 0 <= tau <= 1:
                raise ValueError(f"{path}: task {task}: label-set threshold must be in [0, 1], got {tau}")
            thresholds[task] = float(tau)
    sample_t = positive(data.get("sample_temperature", DEFAULT_SAMPLE_TEMPERATURE), "sample ")
    return Calibration(positive(data["temperature"], ""), bias, temps, thresholds, rules, sample_t)


def load_calibration(model_dir: str | Path) -> Calibration:
    """The calibration shipped with a checkpoint (`calibration.json`); none (T = 1, no bias) when absent."""
    path = Path(model_dir) / CALIBRATION_FILE
    return read_calibration(path) if path.exists() else Calibration()
