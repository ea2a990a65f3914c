import json
import math
import random

import pytest

from mental_r1.calibration import Calibration, fit_label_bias, fit_temperature, load_calibration, nll, softmax


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
