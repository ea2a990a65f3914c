import math

import pytest

from app.assessor import softmax


def test_softmax_of_label_logprobs():
    p = softmax({"yes": math.log(0.3), "no": math.log(0.1)})
    assert p == pytest.approx({"yes": 0.75, "no": 0.25})
    # stable for very negative sequence log-probabilities
    q = softmax({"a": -1000.0, "b": -1001.0})
    assert q["a"] == pytest.approx(1 / (1 + math.exp(-1))) and sum(q.values()) == pytest.approx(1.0)
