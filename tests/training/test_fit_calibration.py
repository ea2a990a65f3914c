"""fit_calibration.py: the per-task fit (folds, bias decision, cross-fitted conformal thresholds) on hand-made rows,
the reports, and the command on hand-made evaluate.py runs (fit on val, apply on test, test refused for fitting)."""

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
    read_calibration,
)
from training.fit_calibration import (
    Choice,
    bias_helps,
    choose,
    fit_all,
    fit_with,
    main,
    measure,
    out_of_fold,
    stratified_folds,
    task_metrics,
)


def overconfident(n: int, p_yes: float, acc: float, seed: int, answer_yes: float = 0.5) -> list:
    """Rows of a yes/no task: gold "yes" with probability p_yes; the model answers with ~12 nats of log-odds,
    "yes" for a share answer_yes of the posts, right for a share acc."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        gold = "yes" if rng.random() < p_yes else "no"
        answer = gold if rng.random() < acc else ("no" if gold == "yes" else "yes")
        rows.append(({answer: -1e-4, ("no" if answer == "yes" else "yes"): -12.0}, gold))
    return rows


# ----------------------------------------------------------------------------------------------- pure parts
def test_stratified_folds_by_hand():
    # ordered by gold: a(0) a(2) a(4) b(1) b(3), dealt 0 1 0 1 0
    assert stratified_folds(["a", "b", "a", "b", "a"], 2) == [0, 1, 1, 0, 0]
    folds = stratified_folds(["x"] * 7 + ["y"] * 3, 3)
    assert sorted(folds.count(j) for j in range(3)) == [3, 3, 4]


def test_bias_helps_only_beyond_one_standard_error():
    # differences 0.2, 0.0, 0.1, 0.1: mean 0.1, sample sd sqrt(0.02 / 3), se = sd / 2 = 0.0408 < 0.1: kept
    keep, gain, se = bias_helps([1.2, 1.0, 1.1, 1.1], [1.0, 1.0, 1.0, 1.0])
    assert keep and gain == pytest.approx(0.1) and se == pytest.approx(math.sqrt(0.02 / 3) / 2)
    # differences 0.4, -0.3, 0.3, -0.2: mean 0.05 < its se: not kept
    keep, gain, se = bias_helps([1.4, 0.7, 1.3, 0.8], [1.0, 1.0, 1.0, 1.0])
    assert not keep and gain == pytest.approx(0.05) and se > 0.05


def test_fit_with_gives_own_temperatures_shared_ones_and_biases():
    rows = {"DR": overconfident(60, 0.8, 0.75, 0), "SAD": overconfident(10, 0.5, 0.9, 1)}
    cal = fit_with(rows, {"DR": Choice(True, True), "SAD": Choice(False)})
    assert cal.temperature == pytest.approx(fit_temperature(rows["DR"] + rows["SAD"]))
    assert cal.task_temperature == {"DR": pytest.approx(fit_temperature(rows["DR"]))}
    assert cal.label_bias == {"DR": pytest.approx(fit_label_bias(rows["DR"], cal.task_temperature["DR"]))}
    assert cal.temperature_for("SAD") == cal.temperature


def test_out_of_fold_scores_each_row_with_a_fit_on_the_other_fold():
    rows = {"DR": overconfident(40, 0.7, 0.8, 2)}
    folds = {"DR": stratified_folds([g for _, g in rows["DR"]], 2)}
    oof = out_of_fold(rows, folds, 2, lambda tr: fit_with(tr, {"DR": Choice(True)}))
    for j in (0, 1):
        other = Calibration(task_temperature={"DR": fit_temperature(
            [r for r, f in zip(rows["DR"], folds["DR"]) if f != j])})
        for (lp, _), f, p in zip(rows["DR"], folds["DR"], oof["DR"]):
            if f == j:
                assert p == pytest.approx(other.probabilities("DR", lp))


def test_choose_keeps_biases_only_where_cv_shows_they_help():
    rows = {
        # 85 % "yes" but the model answers "no" as often as "yes": a bias towards "yes" helps
        "DR": overconfident(200, 0.85, 0.6, 3),
        # balanced and answered evenly: nothing for a bias to correct
        "dreaddit": overconfident(200, 0.5, 0.75, 4),
        "MultiWD:spiritual": overconfident(12, 0.5, 0.75, 5),
    }
    choice, why = choose(rows, label_bias=True, min_rows=20, k=2)
    assert choice == {"DR": Choice(True, True), "dreaddit": Choice(True, False), "MultiWD:spiritual": Choice(False)}
    cv = why["DR"]["label_bias_cv"]
    assert cv["kept"] and cv["held_out_nll"]["temperature + label bias"] < cv["held_out_nll"]["temperature"]
    assert cv["improvement"] > cv["standard_error"] and cv["folds"] == 2
    assert not why["dreaddit"]["label_bias_cv"]["kept"]
    assert why["MultiWD:spiritual"]["temperature_from"] == "shared (the top-level temperature): 12 rows < --min-rows 20"
    assert choose(rows, label_bias=False, min_rows=20, k=2)[0]["DR"] == Choice(True, False)


def test_fit_all_cross_fits_the_threshold_and_records_every_decision():
    rows = {"DR": overconfident(200, 0.85, 0.6, 3), "MultiWD:spiritual": overconfident(12, 0.5, 0.75, 5)}
    cal, tasks, oof = fit_all(rows, label_bias=True, min_rows=20, k=2, alpha=0.1)
    # the threshold is the conformal quantile of the out-of-fold true-label probabilities ...
    true_p = [p[g] for p, (_, g) in zip(oof["DR"], rows["DR"])]
    assert cal.label_set_threshold == {"DR": conformal_threshold(true_p, 0.1)}
    assert sum(p >= cal.label_set_threshold["DR"] for p in true_p) >= 0.9 * 200
    # ... and the calibration shipped is the same structure fitted on all rows
    assert cal.task_temperature == {"DR": pytest.approx(fit_temperature(rows["DR"]))}
    assert set(cal.label_bias) == {"DR"}
    assert tasks["DR"]["label_set"]["threshold"] == cal.label_set_threshold["DR"]
    assert tasks["DR"]["label_set"]["fitted"].startswith("cross-fitted")
    small = tasks["MultiWD:spiritual"]
    assert small["label_set"] == {"alpha": 0.1, "threshold": None, "n": 12, "why": "12 rows < --min-rows 20"}
    assert "temperature" not in small and "label_bias" not in small and small["temperature_from"].startswith("shared")


def test_task_metrics_and_measure_by_hand():
    probs = [{"yes": 0.8, "no": 0.2}, {"yes": 0.4, "no": 0.6}, {"yes": 0.7, "no": 0.3}]
    gold = ["yes", "yes", "no"]
    m = task_metrics(probs, gold, [["yes"], ["no", "yes"], ["yes"]])
    assert m["nll"] == pytest.approx(-(math.log(0.8) + math.log(0.4) + math.log(0.3)) / 3)
    assert m["accuracy"] == pytest.approx(1 / 3)
    # right answer at 0.8, wrong ones at 0.6 and 0.7: every right one above every wrong one
    assert m["auroc"] == 1.0
    assert m["label_set_coverage"] == pytest.approx(2 / 3) and m["mean_label_set_size"] == pytest.approx(4 / 3)

    # T = 1 plus a threshold of 0.3 on two rows: log-odds 2 (yes right) and -1 (gold yes, answered no)
    rows = {"DR": [({"yes": 0.0, "no": -2.0}, "yes"), ({"yes": -1.0, "no": 0.0}, "yes")]}
    r = measure(Calibration(label_set_threshold={"DR": 0.3}), rows)
    p2 = 1 / (1 + math.exp(1.0))  # p(yes) of the second row = 0.269 < 0.3: not in its set
    assert r["DR"]["calibrated"]["label_set_coverage"] == 0.5
    assert r["DR"]["calibrated"]["nll"] == pytest.approx(-(math.log(1 / (1 + math.exp(-2))) + math.log(p2)) / 2)
    assert r["DR"]["raw"]["nll"] == r["DR"]["calibrated"]["nll"] and r["DR"]["threshold"] == 0.3
    assert r["pooled"]["calibrated"]["label_set_n"] == 2


# ---------------------------------------------------------------------------------------------- the command
def run_file(path: Path, split: str = "val", seed: int = 0) -> Path:
    preds = []
    for task, ds, p_yes in (("DR", "DR", 0.8), ("Irf:perceived_burdensomeness", "Irf", 0.4),
                            ("MultiWD:spiritual", "MultiWD", 0.5)):
        n = 12 if ds == "MultiWD" else 150
        for lp, gold in overconfident(n, p_yes, 0.7, seed + len(preds)):
            preds.append({"dataset": ds, "task": task, "gold": gold, "label": max(lp, key=lp.get),
                          "format_valid": True, "label_logprobs": lp})
    path.write_text(json.dumps({"split": split, "limit": None, "seed": 0, "model": "m", "predictions": preds}))
    return path


def test_fit_writes_a_per_task_calibration_with_label_sets(tmp_path, capsys):
    out = tmp_path / "calibration.json"
    main([str(run_file(tmp_path / "val.json")), "--label-bias", "--output", str(out)])
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["format"] == 2 and doc["alpha"] == 0.1 and doc["temperature"] > 3  # 12 nats for 70 %: flatten
    assert set(doc["tasks"]) == {"DR", "Irf:perceived_burdensomeness", "MultiWD:spiritual"}
    cal = read_calibration(out)
    assert set(cal.label_set_threshold) == set(cal.task_temperature) == {"DR", "Irf:perceived_burdensomeness"}
    cv = doc["cross_validated"]
    assert cv["temperature per task"]["ece"] < cv["raw (T = 1)"]["ece"] - 0.1
    assert "label_set_coverage" in cv["temperature per task"]  # label sets fitted on one half, measured on the other
    assert doc["report"]["DR"]["calibrated"]["label_set_coverage"] >= 0.9
    assert "| temperature per task + label bias where CV keeps it |" in printed and "| DR | 150 |" in printed


def test_apply_measures_a_calibration_on_another_run(tmp_path, capsys):
    cal_file = tmp_path / "calibration.json"
    main([str(run_file(tmp_path / "val.json")), "--output", str(cal_file)])
    capsys.readouterr()
    test = run_file(tmp_path / "test.json", split="test", seed=100)
    report = tmp_path / "report.json"
    main(["--apply", str(cal_file), "--on", str(test), "--output", str(report)])
    captured = capsys.readouterr()
    r = json.loads(report.read_text())["report"]
    assert 0.75 < r["DR"]["calibrated"]["label_set_coverage"] <= 1.0
    assert r["DR"]["calibrated"]["ece"] < r["DR"]["raw"]["ece"]
    assert "label_set_coverage" not in r["MultiWD:spiritual"]["calibrated"]  # no threshold: no set reported
    assert "| pooled |" in captured.out and "warning" not in captured.err
    main(["--apply", str(cal_file), "--on", str(tmp_path / "val.json")])  # the rows it was fitted on
    assert "not held out" in capsys.readouterr().err


def test_a_test_split_run_is_refused_for_fitting(tmp_path):
    with pytest.raises(SystemExit, match="validation data only"):
        main([str(run_file(tmp_path / "test.json", split="test")), "--output", str(tmp_path / "c.json")])
    assert not (tmp_path / "c.json").exists()
    with pytest.raises(SystemExit):
        main(["--apply", str(tmp_path / "c.json")])  # --apply needs --on
