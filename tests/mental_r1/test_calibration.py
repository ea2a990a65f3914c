import json
import math
import random
from pathlib import Path

import pytest

from mental_r1.calibration import (
    Calibration,
    conformal_threshold,
    fit_label_bias,
    fit_temperature,
    label_set,
    load_calibration,
    nll,
    read_calibration,
    softmax,
)
from mental_r1.default_model import ADAPTER_DIR


def test_softmax_with_temperature():
    p = softmax({"yes": math.log(0.3), "no": math.log(0.1)})
    assert p == pytest.approx({"yes": 0.75, "no": 0.25})
    # T = 2 takes the square root of the odds: 3:1 -> sqrt(3):1
    q = softmax({"yes": math.log(0.3), "no": math.log(0.1)}, temperature=2.0)
    assert q["yes"] / q["no"] == pytest.approx(math.sqrt(3))
    # stable for very negative sequence log-probabilities
    r = softmax({"a": -1000.0, "b": -1001.0})
    assert r["a"] == pytest.approx(1 / (1 + math.exp(-1))) and sum(r.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="temperature"):
        softmax({"a": 0.0}, 0.0)


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels():
    # labels drawn from softmax(logits / 3): the NLL-optimal temperature for the raw logits is ~3
    rng = random.Random(0)
    rows = []
    for _ in range(4000):
        logits = {"a": rng.gauss(0, 6), "b": rng.gauss(0, 6), "c": rng.gauss(0, 6)}
        p = softmax(logits, 3.0)
        gold = rng.choices(list(p), weights=list(p.values()))[0]
        rows.append((logits, gold))
    t = fit_temperature(rows)
    assert 2.6 < t < 3.4
    assert nll(rows, t) < nll(rows, 1.0)


def test_overconfident_wrong_answers_give_a_temperature_above_one():
    rows = [({"yes": 0.0, "no": -20.0}, "yes")] * 7 + [({"yes": 0.0, "no": -20.0}, "no")] * 3
    t = fit_temperature(rows)
    # the best constant confidence is 0.7: 20 / T = log(0.7 / 0.3)
    assert t == pytest.approx(20 / math.log(7 / 3), rel=1e-3)


def test_label_bias_corrects_a_prior_the_model_gets_wrong():
    # the model says 50/50 on every row, but 80 % of the rows are "yes": the bias moves p(yes) to ~0.8
    rows = [({"yes": -0.7, "no": -0.7}, "yes")] * 80 + [({"yes": -0.7, "no": -0.7}, "no")] * 20
    b = fit_label_bias(rows, temperature=1.0, l2=0.0, steps=2000)
    assert sum(b.values()) == pytest.approx(0.0, abs=1e-9)
    p = Calibration(1.0, {"DR": b}).probabilities("DR", {"yes": -0.7, "no": -0.7})
    assert p["yes"] == pytest.approx(0.8, abs=0.01)
    # a task without a fitted bias is only temperature-scaled
    assert Calibration(2.0, {"DR": b}).probabilities("SAD", {"a": 0.0, "b": -2.0}) == pytest.approx(
        softmax({"a": 0.0, "b": -2.0}, 2.0))


def test_load_calibration(tmp_path):
    assert load_calibration(tmp_path) == Calibration()  # none shipped: T = 1, no bias
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": 2.5, "label_bias": {"DR": {"yes": 0.3}}}))
    cal = load_calibration(tmp_path)
    assert cal.temperature == 2.5 and cal.label_bias == {"DR": {"yes": 0.3}}
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": -1}))
    with pytest.raises(ValueError, match="must be > 0"):
        load_calibration(tmp_path)


# ------------------------------------------------------------------------------------------ per task (format 2)
def test_a_task_temperature_overrides_the_shared_one():
    cal = Calibration(2.0, {"DR": {"yes": 0.5, "no": -0.5}}, {"DR": 4.0})
    # DR: logits (-1/4 + 0.5, -3/4 - 0.5) = (0.25, -1.25): p(yes) = 1 / (1 + e^-1.5)
    assert cal.probabilities("DR", {"yes": -1.0, "no": -3.0})["yes"] == pytest.approx(1 / (1 + math.exp(-1.5)))
    # SAD: the shared T = 2, no bias: 2 nats of log-odds become 1
    assert cal.probabilities("SAD", {"a": 0.0, "b": -2.0})["a"] == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert cal.temperature_for("DR") == 4.0 and cal.temperature_for("SAD") == 2.0


def test_v1_shipped_file_loads_and_gives_v1_probabilities():
    # v1's shipped calibration (kept as docs/results/calibration_sft250.json): T = 6.978970913603949 for every
    # task, DR bias yes +0.842389831290191 / no -…
    cal = read_calibration(Path(__file__).resolve().parents[2] / "docs" / "results" / "calibration_sft250.json")
    t, b = 6.978970913603949, 0.842389831290191
    p = cal.probabilities("DR", {"yes": -3.0, "no": -5.5})
    # p(yes) = 1 / (1 + exp((-5.5 - (-3.0)) / T - 2b))
    assert p["yes"] == pytest.approx(1 / (1 + math.exp(-2.5 / t - 2 * b)), abs=1e-12)
    # CAMS has no bias in v1: temperature only
    q = cal.probabilities("CAMS", {"none": -1.0, "bias or abuse": -4.0})
    assert q["none"] == pytest.approx(1 / (1 + math.exp(-3.0 / t)), abs=1e-12)
    assert cal.task_temperature == {} and cal.label_set_threshold == {}
    assert cal.label_set("DR", p) == ["yes"]  # no conformal thresholds in v1: the label alone
    assert len(cal.label_bias) == 11


def test_the_shipped_calibration_has_a_temperature_and_a_label_set_per_task():
    cal = load_calibration(ADAPTER_DIR)
    assert cal.task_temperature and all(t > 0 for t in cal.task_temperature.values())
    assert set(cal.label_set_threshold) == set(cal.task_temperature)
    assert not cal.label_bias  # v2 ships no label biases: they would overrule the label the reasoning led to


def test_read_format_2(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"format": 2, "temperature": 3.0, "tasks": {
        "DR": {"temperature": 5.0, "label_bias": {"yes": 0.2, "no": -0.2}, "label_set": {"threshold": 0.3}},
        "SAD": {"temperature_from": "shared (the top-level temperature): 12 rows < --min-rows 20",
                "label_set": {"threshold": None, "why": "12 rows < --min-rows 20"}}}}))
    cal = read_calibration(f)
    assert cal == Calibration(3.0, {"DR": {"yes": 0.2, "no": -0.2}}, {"DR": 5.0}, {"DR": 0.3})
    assert cal.label_set("DR", {"yes": 0.65, "no": 0.35}) == ["yes", "no"]
    assert cal.label_set("SAD", {"a": 0.5, "b": 0.4, "c": 0.1}) == ["a"]
    for bad, match in ((0.0, "temperature must be > 0"), ({"threshold": 1.5}, "threshold must be in")):
        entry = {"temperature": bad} if not isinstance(bad, dict) else {"label_set": bad}
        f.write_text(json.dumps({"temperature": 1.0, "tasks": {"DR": entry}}))
        with pytest.raises(ValueError, match=match):
            read_calibration(f)
    f.write_text(json.dumps({"temperature": 1.0, "label_bias": {"DR": {"yes": 1}},
                             "tasks": {"DR": {"label_bias": {"yes": 2}}}}))
    with pytest.raises(ValueError, match="both"):
        read_calibration(f)



def test_read_decision_rules(tmp_path):
    from mental_r1.decision import DecisionRule

    f = tmp_path / "c.json"
    f.write_text(json.dumps({"temperature": 2.0, "sample_temperature": 0.7, "tasks": {
        "DR": {"temperature": 3.0, "decision": {"direct_weight": 0.75, "samples": 3}}}}))
    cal = read_calibration(f)
    assert cal.decision_for("DR") == DecisionRule(0.75, 3) and cal.sample_temperature == 0.7
    assert cal.decision_for("SAD") == DecisionRule()  # no rule: the greedy reasoning decides
    for bad in ({"direct_weight": 2}, {"samples": -1}, {"votes": 3}):
        f.write_text(json.dumps({"temperature": 1.0, "tasks": {"DR": {"decision": bad}}}))
        with pytest.raises(ValueError, match="task DR: bad decision rule"):
            read_calibration(f)
    f.write_text(json.dumps({"temperature": 1.0, "sample_temperature": 0}))
    with pytest.raises(ValueError, match="sample temperature"):
        read_calibration(f)

# -------------------------------------------------------------------------------------------- conformal sets
def test_conformal_threshold_by_hand():
    true_p = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    # n = 9, alpha = 0.1: k = ceil(10 * 0.9) = 9: the 9th largest true-label probability (scores 1 - p: q = 0.9)
    assert conformal_threshold(true_p, 0.1) == 0.1
    # alpha = 0.2: k = ceil(10 * 0.8) = 8 -> 0.2; alpha = 0.5: k = ceil(5) = 5 -> 0.5
    assert conformal_threshold(true_p, 0.2) == 0.2 and conformal_threshold(true_p, 0.5) == 0.5
    # n = 8 at alpha = 0.1: k = ceil(8.1) = 9 > 8: no threshold short of every label
    assert conformal_threshold(true_p[:8], 0.1) is None
    # n = 19: k = ceil(20 * 0.9) = 18: the second smallest
    p19 = [i / 20 for i in range(1, 20)]
    assert conformal_threshold(p19, 0.1) == 2 / 20
    # the order of the rows does not matter; equals 1 - (k-th smallest score)
    assert conformal_threshold(list(reversed(p19)), 0.1) == pytest.approx(1 - sorted(1 - p for p in p19)[17])
    with pytest.raises(ValueError, match="alpha"):
        conformal_threshold(true_p, 1.0)


def test_label_set_by_hand():
    probs = {"a": 0.5, "b": 0.3, "c": 0.2}
    assert label_set(probs, None) == ["a"]
    assert label_set(probs, 0.25) == ["a", "b"]
    assert label_set(probs, 0.2) == ["a", "b", "c"]  # p >= threshold: the boundary is in
    assert label_set(probs, 0.0) == ["a", "b", "c"]
    assert label_set(probs, 0.9) == ["a"]  # never empty: the most probable label always
    assert label_set({"c": 0.2, "b": 0.3, "a": 0.5}, 0.1) == ["a", "b", "c"]  # descending probability
    assert label_set({"x": 0.4, "y": 0.4, "z": 0.2}, 0.3) == ["x", "y"]  # ties: the first, as the assessment's label


def test_label_sets_reach_the_coverage_on_exchangeable_rows():
    # fit the threshold on one half of random rows, measure the other: coverage ~ 1 - alpha, never far below
    rng = random.Random(1)
    rows = []
    for _ in range(4000):
        p = softmax({"a": rng.gauss(0, 2), "b": rng.gauss(0, 2), "c": rng.gauss(0, 2)})
        rows.append((p, rng.choices(list(p), weights=list(p.values()))[0]))
    fit, test = rows[:2000], rows[2000:]
    tau = conformal_threshold([p[g] for p, g in fit], 0.1)
    covered = [g in label_set(p, tau) for p, g in test]
    assert 0.88 < sum(covered) / len(covered) < 0.92
    assert sum(g in label_set(p, tau) for p, g in fit) / len(fit) >= 0.9  # on its own rows: by construction
