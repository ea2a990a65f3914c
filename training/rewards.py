"""CRPO's two rewards, both computed with the shared contract (mental_r1.contract), equal weights.

- format: +0.5 when `parse_completion(completion).valid` (think/answer once each and in order, the five
  stage tags once each, in order, non-empty, non-empty answer, nothing around them), else −0.5.
- accuracy: +w when `match_label(answer, options)` is the gold label (the answer starts with it,
  case-insensitively, followed by a non-word character), else −w, including when there is no answer;
  w = sqrt(w_class · w_dataset).

Weights are inverse frequencies normalised to mean 1, computed from the training data: w_dataset over the
datasets' training-set sizes; w_class over the label counts *within each task* (a dataset with several
questions, e.g. MultiWD's six wellness dimensions, has one label set per question; for a one-question
dataset, task = dataset as in the paper). Labels absent from the training data get no weight.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mental_r1.contract import match_label, parse_completion
from mental_r1.data import Example

FORMAT_REWARD = 0.5


def inverse_frequency(counts: Mapping[str, int]) -> dict[str, float]:
    """w_k ∝ 1/n_k over the keys with n_k > 0, scaled so that the mean weight is 1."""
    inv = {k: 1.0 / n for k, n in counts.items() if n > 0}
    if not inv:
        raise ValueError("inverse_frequency needs at least one non-zero count")
    mean = sum(inv.values()) / len(inv)
    return {k: v / mean for k, v in inv.items()}


@dataclass(frozen=True)
class RewardWeights:
    dataset: dict[str, float]  # dataset -> w_dataset
    label: dict[str, dict[str, float]]  # task id -> short label -> w_class

    @classmethod
    def from_examples(cls, examples: Iterable[Example]) -> RewardWeights:
        examples = list(examples)
        per_task: dict[str, Counter] = {}
        for ex in examples:
            per_task.setdefault(ex.task.id, Counter())[ex.label] += 1
        return cls(dataset=inverse_frequency(Counter(ex.dataset for ex in examples)),
                   label={t: inverse_frequency(c) for t, c in per_task.items()})

    def weight(self, dataset: str, task: str, label: str) -> float:
        try:
            return math.sqrt(self.label[task][label] * self.dataset[dataset])
        except KeyError:
            raise KeyError(f"no reward weight for dataset {dataset!r}, task {task!r}, label {label!r}: the "
                           "weights come from the training data, which has no such example") from None


def _text(completion) -> str:
    """Completion text: TRL passes strings for text prompts and message lists for conversational ones."""
    if isinstance(completion, str):
        return completion
    return completion[-1]["content"]


def format_reward(completions: Sequence, **_) -> list[float]:
    """+0.5 for a completion in the contract's format, −0.5 otherwise."""
    return [FORMAT_REWARD if parse_completion(_text(c)).valid else -FORMAT_REWARD for c in completions]


class AccuracyReward:
    """±sqrt(w_class·w_dataset) for a right/wrong answer; TRL passes the dataset columns as keywords."""

    __name__ = "accuracy"  # TRL names a reward function after its __name__ (metric `rewards/accuracy/mean`)

    def __init__(self, weights: RewardWeights):
        self.weights = weights

    def __call__(self, completions: Sequence, dataset: Sequence[str], task: Sequence[str],
                 label: Sequence[str], options: Sequence[Sequence[str]], **_) -> list[float]:
        out = []
        for c, d, t, gold, opts in zip(completions, dataset, task, label, options, strict=True):
            w = self.weights.weight(d, t, gold)
            out.append(w if match_label(parse_completion(_text(c)).answer, opts) == gold else -w)
        return out
