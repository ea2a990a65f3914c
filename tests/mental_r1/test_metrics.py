import pytest
from sklearn.metrics import f1_score

from mental_r1.metrics import (
    accuracy,
    confusion_matrix,
    expected_calibration_error,
    per_class,
    reliability_bins,
    weighted_f1,
)

GOLD = ["a", "a", "a", "b", "b", "c"]
PRED = ["a", "a", "b", "b", "c", "c"]


def test_weighted_f1_by_hand():
    # a: P=2/2 R=2/3 F1=0.8; b: P=1/2 R=1/2 F1=0.5; c: P=1/2 R=1/1 F1=2/3
    expected = 100 * (3 * 0.8 + 2 * 0.5 + 1 * (2 / 3)) / 6
    assert weighted_f1(GOLD, PRED) == pytest.approx(expected)
    assert weighted_f1(GOLD, PRED) == pytest.approx(67.7777778)


def test_weighted_f1_matches_sklearn_with_prediction_only_classes():
    gold = ["x", "y", "y", "x", "y"]
    pred = ["z", "y", "x", "x", "y"]  # 'z' never gold
    assert weighted_f1(gold, pred) == pytest.approx(100 * f1_score(gold, pred, average="weighted"))


def test_per_class_and_accuracy():
    r = {c.label: c for c in per_class(GOLD, PRED)}
    assert (r["a"].precision, r["a"].recall, r["a"].support) == (1.0, pytest.approx(2 / 3), 3)
    assert r["c"].precision == 0.5 and r["c"].recall == 1.0
    assert accuracy(GOLD, PRED) == pytest.approx(4 / 6)


def test_confusion_matrix():
    assert confusion_matrix(GOLD, PRED, ["a", "b", "c"]) == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_expected_calibration_error_by_hand():
    conf = [0.95, 0.95, 0.55, 0.55, 0.0]
    ok = [True, False, True, True, False]
    # bin (0.9,1]: acc .5 conf .95 -> .45·2/5; bin (.5,.6]: acc 1 conf .55 -> .45·2/5; bin [0,.1]: 0
    assert expected_calibration_error(conf, ok) == pytest.approx(0.36)
    bins = reliability_bins(conf, ok)
    assert [b["n"] for b in bins] == [1, 2, 2] and bins[0]["lo"] == 0.0
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0


def test_metric_errors():
    with pytest.raises(ValueError):
        weighted_f1([], [])
    with pytest.raises(ValueError, match="outside"):
        expected_calibration_error([1.2], [True])
    with pytest.raises(ValueError, match="length"):
        per_class(["a"], ["a", "b"])


def test_auroc_by_hand():
    from mental_r1.metrics import auroc

    # right answers at 0.9, 0.6; wrong at 0.7, 0.2: pairs (0.9>0.7, 0.9>0.2, 0.6<0.7, 0.6>0.2) -> 3/4
    assert auroc([0.9, 0.7, 0.6, 0.2], [True, False, True, False]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [True, False]) == pytest.approx(0.5)  # a tie counts half
    assert auroc([0.9, 0.8], [True, True]) is None  # nothing to separate


def test_auroc_equals_sklearn_on_random_data_with_ties():
    import random

    from sklearn.metrics import roc_auc_score

    from mental_r1.metrics import auroc

    rng = random.Random(1)
    conf = [round(rng.random(), 1) for _ in range(300)]  # many ties
    correct = [rng.random() < c for c in conf]
    assert auroc(conf, correct) == pytest.approx(roc_auc_score(correct, conf))


def test_mean_nll_and_label_set_coverage_by_hand():
    import math

    from mental_r1.metrics import label_set_coverage, mean_nll

    probs = [{"yes": 0.8, "no": 0.2}, {"yes": 0.25, "no": 0.75}]
    assert mean_nll(probs, ["yes", "yes"]) == pytest.approx(-(math.log(0.8) + math.log(0.25)) / 2)
    assert mean_nll([{"a": 0.0, "b": 1.0}], ["a"]) == pytest.approx(-math.log(1e-300))  # floored, not inf
    assert label_set_coverage([["yes"], ["no", "yes"], ["no"]], ["yes", "yes", "yes"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        label_set_coverage([], [])
