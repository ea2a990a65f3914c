import math

import pytest

from mental_r1.decision import DecisionRule, decide


def lp(**p):
    return {k: math.log(v) for k, v in p.items()}


def test_the_default_rule_is_the_greedy_reasonings_decision():
    d = decide(DecisionRule(), None, [lp(yes=0.9, no=0.1), lp(yes=0.0001, no=0.9999)])  # samples ignored
    assert d.shown == 0 and d.agrees
    assert math.exp(d.logprobs["yes"]) == pytest.approx(0.9)


def test_sampled_reasonings_are_averaged_as_soft_votes():
    d = decide(DecisionRule(samples=2), None, [lp(yes=0.9, no=0.1), lp(yes=0.2, no=0.8), lp(yes=0.1, no=0.9)])
    assert math.exp(d.logprobs["no"]) == pytest.approx((0.1 + 0.8 + 0.9) / 3)
    assert d.shown == 2 and d.agrees  # the candidate that gives "no" the highest probability


def test_the_direct_decision_decides_and_the_shown_reasoning_agrees_with_it():
    direct = lp(yes=0.3, no=0.7)
    d = decide(DecisionRule(direct_weight=1.0, samples=1), direct, [lp(yes=0.9, no=0.1), lp(yes=0.4, no=0.6)])
    assert d.logprobs == pytest.approx(direct)
    assert d.shown == 1 and d.agrees


def test_a_mixture_weighs_direct_and_reasoning_and_reports_when_no_reasoning_agrees():
    d = decide(DecisionRule(direct_weight=0.75), lp(yes=0.1, no=0.9), [lp(yes=0.8, no=0.2)])
    assert math.exp(d.logprobs["no"]) == pytest.approx(0.75 * 0.9 + 0.25 * 0.2)
    assert sum(math.exp(v) for v in d.logprobs.values()) == pytest.approx(1.0)
    assert d.shown == 0 and not d.agrees  # the only reasoning leads to "yes"


def test_ties_show_the_greedy_reasoning():
    same = lp(yes=0.6, no=0.4)
    assert decide(DecisionRule(samples=2), None, [same, same, same]).shown == 0


@pytest.mark.parametrize("kwargs", [{"direct_weight": 1.5}, {"direct_weight": -0.1}, {"samples": -1}])
def test_bad_rules_are_refused(kwargs):
    with pytest.raises(ValueError):
        DecisionRule(**kwargs)


def test_a_rule_with_a_direct_weight_needs_direct_scores():
    with pytest.raises(ValueError, match="direct"):
        decide(DecisionRule(direct_weight=0.5), None, [lp(yes=0.5, no=0.5)])
