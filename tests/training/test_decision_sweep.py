"""decision_sweep.py without a model: rules chosen per dataset from saved candidate scores, written so that
fit_calibration.py fits on the chosen rule's log-probabilities and ships the rules."""

import json
import math
import random

from mental_r1.calibration import read_calibration
from mental_r1.decision import DecisionRule
from training import decision_sweep, fit_calibration


def scores(p_yes: float) -> dict[str, float]:
    return {"yes": math.log(p_yes), "no": math.log(1 - p_yes)}


def candidates_file(tmp_path):
    """DR: the direct decision is informative and greedy reasoning is not; dreaddit: the reverse (and the
    direct scores are noise there)."""
    rng = random.Random(0)
    rows = []
    for i in range(60):
        gold = "yes" if i % 2 else "no"
        good = 0.8 if gold == "yes" else 0.2
        for ds, direct_good in (("DR", True), ("dreaddit", False)):
            direct = good if direct_good else rng.choice([0.3, 0.7])
            greedy = rng.choice([0.05, 0.95]) if direct_good else (0.95 if gold == "yes" else 0.05)
            sampled = [rng.choice([0.1, 0.9]), good, rng.choice([0.1, 0.9])]
            rows.append({"dataset": ds, "task": ds, "gold": gold, "direct": scores(direct),
                         "reasonings": [{"scores": scores(p), "tokens": 10, "reached": True}
                                        for p in [greedy, *sampled]]})
    f = tmp_path / "val_candidates.json"
    f.write_text(json.dumps({"model": "m", "split": "val", "limit": None, "seed": 0, "samples": 3,
                             "sample_temperature": 0.8, "max_tokens": 64, "trained_datasets": ["DR", "dreaddit"],
                             "rows": rows}))
    return f


def test_rules_are_chosen_per_dataset_and_carried_into_the_calibration(tmp_path):
    out = tmp_path / "val_rules.json"
    decision_sweep.main(["--from-candidates", str(candidates_file(tmp_path)), "--output", str(out)])
    sweep = json.loads((tmp_path / "val_rules_sweep.json").read_text())
    assert sweep["chosen"]["DR"]["direct_weight"] > 0  # the direct decision is what separates DR's classes
    assert sweep["chosen"]["dreaddit"]["direct_weight"] < 1  # there it is noise: the reasoning must take part
    results = json.loads(out.read_text())
    assert results["datasets"]["DR"]["weighted_f1"] == 100.0  # direct alone is right on every synthetic DR row
    assert results["decision"]["tasks"]["DR"] == sweep["chosen"]["DR"]
    assert len(results["predictions"]) == 120

    cal_path = tmp_path / "calibration.json"
    fit_calibration.main([str(out), "--min-rows", "15", "--output", str(cal_path)])
    cal = read_calibration(cal_path)
    assert cal.decision_for("DR") == DecisionRule(**sweep["chosen"]["DR"])
    assert cal.sample_temperature == 0.8


def test_only_rules_whose_reasoning_agrees_often_enough_are_eligible():
    table = {"DR": [{"direct_weight": 1.0, "samples": 0, "weighted_f1": 90.0, "agreement": 0.5},
                    {"direct_weight": 1.0, "samples": 3, "weighted_f1": 88.0, "agreement": 0.95},
                    {"direct_weight": 0.0, "samples": 0, "weighted_f1": 88.0, "agreement": 1.0}]}
    assert decision_sweep.choose(table, 0.9) == {"DR": DecisionRule(0.0, 0)}  # a tie: fewer samples
    assert decision_sweep.choose(table, 0.4) == {"DR": DecisionRule(1.0, 0)}
    table["DR"][1]["weighted_f1"] = 88.5
    assert decision_sweep.choose(table, 0.9, min_gain=1.0) == {"DR": DecisionRule(0.0, 0)}  # +0.5 buys no samples
    assert decision_sweep.choose(table, 0.9, min_gain=0.0) == {"DR": DecisionRule(1.0, 3)}


def test_an_f1_tolerance_lets_the_better_ranked_confidence_win_a_near_tie():
    table = {"loneliness": [
        {"direct_weight": 0.0, "samples": 0, "weighted_f1": 75.0, "auroc": 0.43, "agreement": 1.0},
        {"direct_weight": 0.5, "samples": 0, "weighted_f1": 74.5, "auroc": 0.68, "agreement": 1.0},
        {"direct_weight": 0.75, "samples": 0, "weighted_f1": 70.0, "auroc": 0.72, "agreement": 0.95},
        {"direct_weight": 0.5, "samples": 3, "weighted_f1": 74.8, "auroc": 0.90, "agreement": 1.0},
        {"direct_weight": 1.0, "samples": 0, "weighted_f1": 75.0, "auroc": 0.95, "agreement": 0.5}]}
    assert decision_sweep.choose(table, 0.9, min_gain=1.0) == {"loneliness": DecisionRule(0.0, 0)}  # F1 alone
    # within 1 point: 0.5 (AUROC 0.68) wins; 0.75 is 5 points down, the sampled rule costs more generation and
    # w 1 is not eligible (its reasoning agrees with its label on half the rows)
    assert decision_sweep.choose(table, 0.9, min_gain=1.0, f1_tolerance=1.0) == {"loneliness": DecisionRule(0.5, 0)}
    assert decision_sweep.choose(table, 0.9, min_gain=1.0, f1_tolerance=5.0) == {"loneliness": DecisionRule(0.75, 0)}
