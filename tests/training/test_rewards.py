import math

import pytest

from mental_r1.contract import STAGE_NAMES, format_completion
from mental_r1.data import Example
from mental_r1.tasks import get_task
from training.rewards import AccuracyReward, RewardWeights, format_reward, inverse_frequency

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
