import pytest

from mental_r1.calibration import Calibration
from training.eval_report import (
    Prediction,
    dataset_report,
    majority_predictions,
    markdown_table,
    pooled_report,
    recalibrated,
    summarize,
)


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


def test_label_sets_coverage_and_size_when_the_tasks_have_thresholds():
    rows = [Prediction("DR", "yes", "yes", 0.6, True, "DR", label_set=("yes", "no")),
            Prediction("DR", "no", "yes", 0.9, True, "DR", label_set=("yes",)),
            Prediction("DR", "no", "no", 0.7, True, "DR", label_set=("no",))]
    r = dataset_report(rows, ["yes", "no"])
    assert r["label_set_n"] == 3 and r["label_set_coverage"] == pytest.approx(2 / 3)
    assert r["mean_label_set_size"] == pytest.approx(4 / 3)
    assert pooled_report(rows)["label_set_coverage"] == pytest.approx(2 / 3)
    plain = dataset_report(preds([("yes", "yes")]), ["yes", "no"])
    assert "label_set_coverage" not in plain  # no thresholds: nothing to report
    table = markdown_table(summarize({"DR": r, "SAD": plain}))
    assert "set coverage | mean set size |" in table
    assert "| 66.7 % | 1.33 |" in table and "| n/a | n/a |" in table
    assert "set coverage" not in markdown_table(summarize({"SAD": plain}))
    assert all(line.count("|") == table.splitlines()[0].count("|") for line in table.splitlines())


def test_recalibrated_gives_label_sets_for_tasks_with_a_threshold():
    p = [Prediction("DR", "no", "yes", 0.0, True, "DR", {"yes": -1.0, "no": -1.5}),
         Prediction("SAD", "work", "work", 0.0, True, "SAD", {"work": -1.0, "school": -1.5})]
    out = recalibrated(p, Calibration(label_set_threshold={"DR": 0.3}))
    # p(no) = 1 / (1 + e^0.5) = 0.378 >= 0.3: in DR's set; SAD has no threshold
    assert out[0].label_set == ("yes", "no") and out[1].label_set is None


def test_reasoning_report_raw_auroc_agreement_and_whole_sentences():
    import math

    from training.eval_report import raw_confidence, reasoning_report

    ln = math.log
    preds = [  # raw probabilities yes 0.9 / 0.6 / 0.3; the last label was overruled by calibration
        Prediction("DR", "yes", "yes", 0.8, True, "DR", {"yes": ln(0.9), "no": ln(0.1)}, stages_whole=True),
        Prediction("DR", "no", "yes", 0.6, True, "DR", {"yes": ln(0.6), "no": ln(0.4)}, stages_whole=False),
        Prediction("DR", "no", "yes", 0.55, True, "DR", {"yes": ln(0.3), "no": ln(0.7)}, stages_whole=True),
    ]
    assert raw_confidence(preds[0]) == pytest.approx(0.9)
    assert raw_confidence(preds[2]) == pytest.approx(0.3)  # the raw probability of the returned label
    r = reasoning_report(preds)
    assert r["label_is_raw_argmax"] == pytest.approx(2 / 3)
    assert r["stages_whole_sentence_rate"] == pytest.approx(2 / 3)
    # raw confidence 0.9 (right) vs 0.6 and 0.3 (wrong): the right answer ranks first
    assert r["auroc_raw"] == pytest.approx(1.0)
    assert reasoning_report([Prediction("DR", "yes", "yes", 0.5, True)]) == {}
