"""Label probabilities from the model's sequence log-probabilities, and their calibration.

The Assessor scores every label sentence of a task at the commit point (contract.commit_prefix) and turns
the sequence log-probabilities into probabilities with a temperature-scaled softmax:

    p(label) = exp(logp(label) / T) / sum over labels of exp(logp(l) / T)

T = 1 is the model's own chain-rule distribution. A model that reasons its way to one sentence puts almost
all mass on it, so its raw confidence is ~1 whether or not it is right; T > 1 flattens that. T is fitted on
validation data by minimising the negative log-likelihood of the gold labels (Guo et al., 2017: "On
Calibration of Modern Neural Networks"), written next to the model as `calibration.json`, and applied by
the service and the evaluation alike. It changes confidences, never which label is most probable.

Optionally, for tasks with validation data, a per-label bias b is added after the temperature,
p ∝ exp(logp/T + b), fitted by the same criterion with a small L2 penalty (a prior correction: a model
trained on class-balanced data answers the rare class as often as the common one). Unlike T, a bias can
change the chosen label; tasks without validation data keep b = 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CALIBRATION_FILE = "calibration.json"


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


@dataclass(frozen=True)
class Calibration:
    """What `calibration.json` holds: the temperature and, per task id, optional per-label biases."""

    temperature: float = 1.0
    label_bias: dict[str, dict[str, float]] = field(default_factory=dict)

    def probabilities(self, task_id: str, logprobs: dict[str, float]) -> dict[str, float]:
        bias = self.label_bias.get(task_id, {})
        return softmax({k: v / self.temperature + bias.get(k, 0.0) for k, v in logprobs.items()})


def load_calibration(model_dir: str | Path) -> Calibration:
    """The calibration shipped with a checkpoint (`calibration.json`); none (T = 1, no bias) when absent."""
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.exists():
        return Calibration()
    data = json.loads(path.read_text())
    t = float(data["temperature"])
    if not t > 0:
        raise ValueError(f"{path}: temperature must be > 0, got {t}")
    return Calibration(t, {task: dict(b) for task, b in (data.get("label_bias") or {}).items()})
