import math

import pytest

from mental_r1.contract import STAGE_NAMES, format_completion
from mental_r1.data import Example
from mental_r1.tasks import get_task
from training.rewards import (
    AccuracyReward,
    LabelProbReward,
    RewardWeights,
    answer_stats,
    format_reward,
    inverse_frequency,
    prior_weights,
    within_group_share,
)

DR = get_task("DR")
SAD = get_task("SAD")


def completion(answer: str) -> str:
    return format_completion({n: f"{n} text" for n in STAGE_NAMES}, answer)


def test_inverse_frequency_mean_one():
    w = inverse_frequency({"a": 1, "b": 3, "c": 0})
    assert w == pytest.approx({"a": 1.5, "b": 0.5})
    assert sum(w.values()) / len(w) == pytest.approx(1.0)


def test_weights_from_examples():
    ex = [Example("DR", DR, "p", "yes"), Example("DR", DR, "p", "yes"), Example("DR", DR, "p", "no"),
          Example("SAD", SAD, "p", "work")]
    w = RewardWeights.from_examples(ex)
    assert w.dataset == pytest.approx({"DR": 0.5, "SAD": 1.5})  # 1/3 and 1, mean 2/3
    assert w.label["DR"] == pytest.approx({"yes": 2 / 3, "no": 4 / 3})  # 1/2 and 1, mean 3/4
    assert w.label["SAD"] == {"work": 1.0}
    assert w.weight("DR", "DR", "no") == pytest.approx(math.sqrt(4 / 3 * 0.5))
    with pytest.raises(KeyError, match="no reward weight"):
        w.weight("DR", "DR", "maybe")


def test_prior_weights_restore_the_natural_share_of_each_label():
    natural = [Example("DR", DR, "p", "yes")] * 6 + [Example("DR", DR, "p", "no")] * 4 + [
        Example("SAD", SAD, "p", "work")] * 99 + [Example("SAD", SAD, "p", "school")]
    pool = [Example("DR", DR, "p", "yes")] * 5 + [Example("DR", DR, "p", "no")] * 5 + [
        Example("SAD", SAD, "p", "work"), Example("SAD", SAD, "p", "school")]
    w = prior_weights(natural, pool)
    assert w["DR"] == pytest.approx({"yes": 1.2, "no": 0.8})  # 0.6/0.5, 0.4/0.5
    assert w["SAD"] == pytest.approx({"work": 1.98, "school": 0.2})  # 0.99/0.5; 0.01/0.5 = 0.02 clipped to 0.2
    with pytest.raises(KeyError, match="label 'no'"):
        prior_weights([Example("DR", DR, "p", "yes")], [Example("DR", DR, "p", "no")])


def test_format_reward():
    good = completion("yes")
    truncated = good[: good.index("<reaction>") + 20]
    no_answer = good[: good.index("<answer>")]
    assert format_reward([good, truncated, no_answer, "I think so."]) == [0.5, -0.5, -0.5, -0.5]
    assert format_reward([[{"role": "assistant", "content": good}]]) == [0.5]  # conversational form


def test_accuracy_reward():
    w = RewardWeights(dataset={"DR": 0.5, "SAD": 2.0}, label={"DR": {"yes": 2.0, "no": 0.5},
                                                               "SAD": {"work": 1.0, "school": 1.0}})
    reward = AccuracyReward(w)
    assert reward.__name__ == "accuracy"
    got = reward(
        completions=[completion("yes"), completion("Yes, clearly"), completion("none"), completion("no"),
                     "no answer at all", completion("work")],
        dataset=["DR", "DR", "DR", "DR", "DR", "SAD"], task=["DR", "DR", "DR", "DR", "DR", "SAD"],
        label=["yes", "yes", "no", "yes", "no", "work"], options=[DR.label_names] * 5 + [SAD.label_names])
    assert got == pytest.approx([1.0, 1.0, -0.5, -1.0, -0.5, math.sqrt(2.0)])


def test_answer_stats():
    completions = [completion("yes"), completion("no"), completion("no"), "no answer", completion("work")]
    stats = answer_stats(completions, [DR.label_names] * 4 + [SAD.label_names], ["yes", "yes", "no", "no", "work"],
                         ["DR", "DR", "DR", "DR", "SAD"], [1.0, 0.0, 0.5, float("nan"), 0.25])
    assert stats == pytest.approx({"crpo/binary/gold_yes": 0.5,  # 2 of the 4 yes/no completions
                                   "crpo/binary/answer_yes": 1 / 3,  # of the 3 that answer yes or no
                                   "crpo/reward/DR": 0.5, "crpo/reward/SAD": 0.25})  # NaN (unscorable) left out
    assert answer_stats([completion("work")], [SAD.label_names], ["work"], ["SAD"], [1.0]) == {"crpo/reward/SAD": 1.0}


def test_label_prob_reward_is_the_gold_probability_at_the_commit_point(tiny_model, tokenizer):
    from training.label_scoring import LabelScorer
    from training.prompts import build_prompt

    prompts = [build_prompt(tokenizer, "I cannot sleep.", DR.question, DR.label_names)] * 2 + \
        [build_prompt(tokenizer, "Exams.", SAD.question, SAD.label_names)]
    completions = [completion("yes"), completion("no")[:40], completion("work")]
    texts = [[lab.text for lab in DR.labels]] * 2 + [[lab.text for lab in SAD.labels]]
    reward = LabelProbReward()
    assert reward.__name__ == "label_prob"
    logged = {}
    scorer = LabelScorer(tokenizer)
    reward.bind(lambda p, c, t: scorer.probabilities(tiny_model, p, c, t))  # what CRPOTrainer binds without vLLM
    got = reward(prompts=prompts, completions=completions, label=["yes", "no", "school"],
                 options=[DR.label_names] * 2 + [SAD.label_names], label_texts=texts,
                 log_metric=lambda k, v: logged.__setitem__(k, v))
    probs = LabelScorer(tokenizer).probabilities(tiny_model, prompts, completions, texts)
    assert got == pytest.approx([probs[0][0], probs[1][1], probs[2][SAD.label_names.index("school")]])
    assert all(0 < g < 1 for g in got)
    gold = [probs[0][0], probs[1][1], probs[2][SAD.label_names.index("school")]]
    assert logged == {"crpo/binary/p_yes": pytest.approx((probs[0][0] + probs[1][0]) / 2),
                      "crpo/p_gold": pytest.approx(sum(gold) / 3)}
    weighted = reward(prompts=prompts, completions=completions, label=["yes", "no", "school"],
                      options=[DR.label_names] * 2 + [SAD.label_names], label_texts=texts,
                      prior_weight=[1.2, 0.8, 0.5])
    assert weighted == pytest.approx([gold[0] * 1.2, gold[1] * 0.8, gold[2] * 0.5])


def test_label_logprob_reward_is_the_floored_log_of_the_gold_probability():
    from training.rewards import LOG_FLOOR

    reward = LabelProbReward(log=True)
    assert reward.__name__ == "label_logprob"
    reward.bind(lambda p, c, t: [[0.8, 0.2], [0.8, 0.2], [1e-6, 1 - 1e-6]])  # as the trainer's scorer returns
    logged = {}
    got = reward(prompts=["a", "b", "c"], completions=["x"] * 3, label=["yes", "no", "yes"],
                 options=[DR.label_names] * 3, label_texts=[[lab.text for lab in DR.labels]] * 3,
                 prior_weight=[1.6, 0.4, 1.6], log_metric=lambda k, v: logged.__setitem__(k, v))
    assert got == pytest.approx([1.6 * math.log(0.8), 0.4 * math.log(0.2), 1.6 * LOG_FLOOR])
    assert logged["crpo/p_gold"] == pytest.approx((0.8 + 0.2 + 1e-6) / 3)  # logged as a probability either way
    # each row's decision, log P(yes) − log P(no) (DR's options are yes, no), for the decision-neutral advantages
    assert reward.last_direction == pytest.approx([math.log(4), math.log(4), math.log(1e-3) - math.log(1 - 1e-6)])


def test_the_log_score_is_proper_and_the_gold_probability_is_not():
    """Why label_logprob: on a post whose true P(yes) is q, the expected reward of predicting P(yes) = p peaks
    at p = q for the log score, but at p = 1 (the majority label, with certainty) for P(gold)."""
    grid = [i / 100 for i in range(1, 100)]
    for q in (0.3, 0.6, 0.7):
        linear = max(grid, key=lambda p: q * p + (1 - q) * (1 - p))
        log = max(grid, key=lambda p: q * math.log(p) + (1 - q) * math.log(1 - p))
        assert log == pytest.approx(q) and linear in (0.01, 0.99) and linear == (0.99 if q > 0.5 else 0.01)


def test_within_group_share_is_the_part_of_the_reward_variance_the_advantages_carry():
    assert within_group_share([0.1, 0.1, 0.9, 0.9], group=2) == pytest.approx(0.0)  # easy vs hard prompts only
    assert within_group_share([0.1, 0.9, 0.1, 0.9], group=2) == pytest.approx(1.0)  # all contrast inside groups
    assert within_group_share([0.0, 0.2, 0.8, 1.0], group=2) == pytest.approx(0.04 / 0.68)
    assert within_group_share([0.5] * 4, group=2) is None and within_group_share([0.1, float("nan")], group=2) is None
