import pytest

from training.eval_report import Prediction, dataset_report, majority_predictions, markdown_table, summarize


def preds(pairs, conf=0.8, valid=True):
    return [Prediction("DR", g, p, conf, valid) for g, p in pairs]


def test_dataset_report_by_hand():
    # gold yes,yes,yes,no ; pred yes,no,yes,no
    rows = preds([("yes", "yes"), ("yes", "no"), ("yes", "yes"), ("no", "no")])
    rows[3] = Prediction("DR", "no", "no", 0.8, False)
    r = dataset_report(rows, ["yes", "no"])
    # yes: P=1 R=2/3 F1=0.8 (support 3); no: P=1/2 R=1 F1=2/3 (support 1) -> (2.4 + 2/3)/4
    assert r["weighted_f1"] == pytest.approx(100 * (2.4 + 2 / 3) / 4)
    assert r["accuracy"] == 0.75
    assert r["per_class_recall"] == pytest.approx({"yes": 2 / 3, "no": 1.0})
    assert r["format_valid_rate"] == 0.75
    assert r["mean_confidence"] == pytest.approx(0.8)
    assert r["ece"] == pytest.approx(abs(0.75 - 0.8))  # one bin
    assert r["confusion_matrix"] == [[2, 1], [0, 1]]


def test_majority_baseline():
    p = majority_predictions("DR", ["yes", "yes", "no"])
    assert [x.label for x in p] == ["yes"] * 3
    assert p[0].confidence == pytest.approx(2 / 3)
    r = dataset_report(p, ["yes", "no"])
    assert r["weighted_f1"] == pytest.approx(100 * (2 / 3) * 0.8)  # F1(yes)=0.8, weight 2/3
    assert r["ece"] == pytest.approx(0.0)


def test_summarize_and_table():
    a = dataset_report(preds([("yes", "yes"), ("no", "no")]), ["yes", "no"])
    b = dataset_report(preds([("yes", "no"), ("no", "no")]), ["yes", "no"])
    res = summarize({"DR": a, "CAMS": b}, generalisation=["CAMS"])
    assert res["average_weighted_f1"] == pytest.approx((100 + b["weighted_f1"]) / 2)
    assert res["average_weighted_f1_trained_tasks"] == pytest.approx(100)
    assert res["average_weighted_f1_generalisation"] == pytest.approx(b["weighted_f1"])
    table = markdown_table(res)
    assert "| DR | 2 | 100.0 |" in table and "**average**" in table
