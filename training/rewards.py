"""CRPO's rewards, computed with the shared contract (mental_r1.contract), equal weights: the format reward plus
one of three decision rewards (`reward` in training/config.py).

- format: +0.5 when `parse_completion(completion).valid` (think/answer once each and in order, the five
  stage tags once each, in order, non-empty, non-empty answer, nothing around them), else −0.5.
- answer_match (the paper's accuracy reward): +w when `match_label(answer, options)` is the gold label (the
  answer starts with it, case-insensitively, followed by a non-word character), else −w, including when
  there is no answer; w = sqrt(w_class · w_dataset).
- label_prob: P(gold label) at the completion's own commit point, as the service scores it (decoding
  constrained to the label set; by the trainer's vLLM engine or from the policy's logits), in [0, 1].
- label_logprob: log P(gold label) there, floored at log(1e-3) (LOG_FLOOR). P(gold) is an improper score: on a
  post whose true P(yes) is 0.7 its expectation 0.7·p + 0.3·(1 − p) grows all the way to p = 1, so it rewards
  reasonings that push ambiguous posts to the task's majority label, and a batch of majority-"yes" tasks to
  "yes" everywhere. The log score is proper: its expectation is highest at the true probability, so a policy
  already calibrated on the natural mix (SFT by cross-entropy) feels no pull on its prior, only on what
  separates posts.
  Both are dense, so a group's rewards are rarely tied. Times the row's
  `prior_weight` when the rows carry one (label_prior natural, `prior_weights` below): a per-example weight
  is constant within a group, so it only acts when advantages are not divided by the group's own std
  (scale_rewards batch or none); under group scaling it cancels, as the answer_match weights do whenever
  the format reward is tied.

Weights are inverse frequencies normalised to mean 1, computed from the training data: w_dataset over the
datasets' training-set sizes; w_class over the label counts *within each task* (a dataset with several
questions, e.g. MultiWD's six wellness dimensions, has one label set per question; for a one-question
dataset, task = dataset as in the paper). Labels absent from the training data get no weight.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import pvariance

from mental_r1.contract import match_label, parse_completion
from mental_r1.data import Example
from training.advantages import decision_direction

FORMAT_REWARD = 0.5
PROB_FLOOR = 1e-3  # label_logprob: one near-impossible label must not dominate the step's reward std
LOG_FLOOR = math.log(PROB_FLOOR)


def inverse_frequency(counts: Mapping[str, int]) -> dict[str, float]:
    """w_k ∝ 1/n_k over the keys with n_k > 0, scaled so that the mean weight is 1."""
    inv = {k: 1.0 / n for k, n in counts.items() if n > 0}
    if not inv:
        raise ValueError("inverse_frequency needs at least one non-zero count")
    mean = sum(inv.values()) / len(inv)
    return {k: v / mean for k, v in inv.items()}


def label_counts(examples: Iterable[Example]) -> dict[str, Counter]:
    """task id -> label -> number of examples."""
    counts: dict[str, Counter] = {}
    for ex in examples:
        counts.setdefault(ex.task.id, Counter())[ex.label] += 1
    return counts


@dataclass(frozen=True)
class RewardWeights:
    dataset: dict[str, float]  # dataset -> w_dataset
    label: dict[str, dict[str, float]]  # task id -> short label -> w_class

    @classmethod
    def from_examples(cls, examples: Iterable[Example]) -> RewardWeights:
        examples = list(examples)
        return cls(dataset=inverse_frequency(Counter(ex.dataset for ex in examples)),
                   label={t: inverse_frequency(c) for t, c in label_counts(examples).items()})

    def weight(self, dataset: str, task: str, label: str) -> float:
        try:
            return math.sqrt(self.label[task][label] * self.dataset[dataset])
        except KeyError:
            raise KeyError(f"no reward weight for dataset {dataset!r}, task {task!r}, label {label!r}: the "
                           "weights come from the training data, which has no such example") from None


PRIOR_WEIGHT_RANGE = (0.2, 5.0)


def prior_weights(natural: Iterable[Example], pool: Iterable[Example],
                  clip: tuple[float, float] = PRIOR_WEIGHT_RANGE) -> dict[str, dict[str, float]]:
    """task id -> label -> (the label's share of the task in `natural`) / (its share in `pool`), clipped.

    The RL pool is balanced over labels so that every step holds both classes (training/step_order.py); these
    weights make the expected gradient that of the natural mix the model is evaluated and served on (an
    importance weight per group). A label of the pool that `natural` lacks is an error: it has no share."""
    def shares(examples):
        return {t: {lab: n / c.total() for lab, n in c.items()} for t, c in label_counts(examples).items()}

    nat, got = shares(natural), shares(pool)
    out: dict[str, dict[str, float]] = {}
    for task, labels in got.items():
        for lab, share in labels.items():
            if lab not in nat.get(task, {}):
                raise KeyError(f"no natural share for task {task!r}, label {lab!r}: the pool holds a label the "
                               "training split lacks")
            out.setdefault(task, {})[lab] = min(max(nat[task][lab] / share, clip[0]), clip[1])
    return out


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


def is_binary(options: Sequence[str]) -> bool:
    return {o.lower() for o in options} == {"yes", "no"}


def binary_pair(probs: Sequence[float], options: Sequence[str]) -> tuple[float, float]:
    """(P(yes), P(no)) of a yes/no row, whatever the options' order."""
    lower = [o.lower() for o in options]
    return probs[lower.index("yes")], probs[lower.index("no")]


class LabelProbReward:
    """P(gold label) (or its log) at the rollout's commit point, from the current policy (no gradient). The
    trainer binds a scorer (`bind`) before the first rollout: `score(prompts, completions, label_texts)` →
    P(label) per row in `label_texts` order (CRPOTrainer.label_probabilities). The rows carry `label_texts`
    (the label sentences, in `options` order) next to the accuracy columns. Logs `crpo/binary/p_yes`: the mean
    P(yes) over the step's yes/no completions, and `crpo/p_gold`: the mean P(gold) before any `prior_weight`.
    Keeps `last_direction`, each row's log P(yes) − log P(no) (NaN for other tasks), for the trainer's
    decision-neutral advantages (training/advantages.py)."""

    def __init__(self, log: bool = False):
        """log: reward log P(gold) (floored at LOG_FLOOR, the reward `label_logprob`) instead of P(gold)."""
        self.log = log
        self.__name__ = "label_logprob" if log else "label_prob"  # TRL logs rewards/<__name__>/mean
        self._score: Callable[..., list[list[float]]] | None = None
        self.last_direction: list[float] = []  # per row of the last call: log P(yes) − log P(no), NaN if not yes/no

    def bind(self, score: Callable[[Sequence[str], Sequence[str], Sequence[Sequence[str]]], list[list[float]]]):
        self._score = score

    def __call__(self, prompts: Sequence, completions: Sequence, label: Sequence[str],
                 options: Sequence[Sequence[str]], label_texts: Sequence[Sequence[str]], log_metric=None,
                 prior_weight: Sequence[float] | None = None, **_) -> list[float]:
        assert self._score is not None, "LabelProbReward needs the policy's scorer: the trainer calls bind() first"
        probs = self._score(list(prompts), [_text(c) for c in completions], label_texts)
        p_yes = [binary_pair(p, opts)[0] for p, opts in zip(probs, options, strict=True) if is_binary(opts)]
        p_gold = [p[list(opts).index(gold)] for p, opts, gold in zip(probs, options, label, strict=True)]
        self.last_direction = [decision_direction(*binary_pair(p, opts)) if is_binary(opts) else math.nan
                               for p, opts in zip(probs, options, strict=True)]
        if log_metric is not None:
            if p_yes:
                log_metric("crpo/binary/p_yes", sum(p_yes) / len(p_yes))
            log_metric("crpo/p_gold", sum(p_gold) / len(p_gold))
        reward = [math.log(max(p, PROB_FLOOR)) for p in p_gold] if self.log else p_gold
        if prior_weight is None:
            return reward
        return [r * w for r, w in zip(reward, prior_weight, strict=True)]


def answer_stats(completions: Sequence, options: Sequence[Sequence[str]], labels: Sequence[str],
                 datasets: Sequence[str], rewards: Sequence[float]) -> dict[str, float]:
    """What a step's rollouts decided, for the run log: over yes/no completions, the fraction whose answer is
    "yes" (of those answering yes or no; `crpo/binary/answer_yes`) beside the gold "yes" fraction
    (`crpo/binary/gold_yes`), and the mean total reward per dataset (`crpo/reward/<dataset>`). Keys with no
    completions behind them are left out."""
    out: dict[str, float] = {}
    answers, golds = [], []
    for c, opts, gold in zip(completions, options, labels, strict=True):
        if is_binary(opts):
            golds.append(gold.lower() == "yes")
            answer = match_label(parse_completion(_text(c)).answer, opts)
            if answer is not None:
                answers.append(answer.lower() == "yes")
    if golds:
        out["crpo/binary/gold_yes"] = sum(golds) / len(golds)
    if answers:
        out["crpo/binary/answer_yes"] = sum(answers) / len(answers)
    per_ds: dict[str, list[float]] = {}
    for d, r in zip(datasets, rewards, strict=True):
        if not math.isnan(r):
            per_ds.setdefault(d, []).append(r)
    out.update({f"crpo/reward/{d}": sum(v) / len(v) for d, v in sorted(per_ds.items())})
    return out


def within_group_share(rewards: Sequence[float], group: int) -> float | None:
    """The share of a step's reward variance that lies within groups (completions of one prompt): the only part
    GRPO's advantages carry, since each group's mean is subtracted. Near 0, the rewards mostly say which prompts
    are easy, and the step's advantages are small against the batch std (`scale_rewards: batch`). None when the
    step's rewards do not vary (or any is NaN)."""
    if len(rewards) % group or any(math.isnan(r) for r in rewards):
        return None
    total = pvariance(rewards) * len(rewards)
    if total <= 0:
        return None
    return sum(pvariance(rewards[i:i + group]) * group for i in range(0, len(rewards), group)) / total
