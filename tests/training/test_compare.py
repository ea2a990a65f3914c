"""training/compare.py: uncalibrated labels, row subsets of a larger evaluation, the comparison table."""

import json
from argparse import Namespace

import pytest

from training.compare import RUNS, report, uncalibrated
from training.eval_report import Prediction, results_report


def write_eval(path, rows):
    preds = {}
    for ds, gold, stored, lps in rows:
        preds.setdefault(ds, []).append(Prediction(ds, gold, stored, 0.9, True, ds, lps))
    doc = results_report(preds, {"DR": ["yes", "no"], "SAD": ["a", "b", "c"]})
    doc["predictions"] = [{"dataset": p.dataset, "task": p.task, "gold": p.gold, "label": p.label,
                           "format_valid": p.format_valid, "label_logprobs": p.label_logprobs}
                          for v in preds.values() for p in v]
    path.write_text(json.dumps(doc))


ROWS = [("DR", "yes", "no", {"yes": -0.1, "no": -2.0}),  # stored (calibrated) label differs from the argmax
        ("DR", "no", "no", {"yes": -0.5, "no": -0.9}),
        ("DR", "no", "no", {"yes": -3.0, "no": -0.1}),
        ("SAD", "a", "a", {"a": -0.2, "b": -2.0, "c": -3.0}),
        ("SAD", "b", "c", {"a": -2.0, "b": -1.0, "c": -0.6})]


def test_uncalibrated_takes_the_argmax_and_the_first_rows_of_each_dataset(tmp_path):
    write_eval(tmp_path / "e.json", ROWS)
    full, gold = uncalibrated(tmp_path / "e.json")
    assert gold == {"DR": ["yes", "no", "no"], "SAD": ["a", "b"]}
    assert full["datasets"]["DR"]["accuracy"] == 2 / 3  # yes✓ yes✗ no✓ (argmax, not the stored labels)
    assert full["datasets"]["SAD"]["accuracy"] == 1 / 2
    part, gold = uncalibrated(tmp_path / "e.json", limit=1)
    assert gold == {"DR": ["yes"], "SAD": ["a"]} and part["datasets"]["DR"]["accuracy"] == 1.0


def test_report_puts_the_start_first_and_refuses_other_rows(tmp_path):
    out = tmp_path / "cmp"
    (out / "eval").mkdir(parents=True)
    write_eval(out / "eval" / "crpo.json", [r for i, r in enumerate(ROWS) if i != 2])
    write_eval(tmp_path / "start.json", ROWS[:2] + [ROWS[2]] + ROWS[3:])
    (out / "crpo").mkdir()
    (out / "crpo" / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.1, "step_time": 30.0}) + "\n")
    args = Namespace(out=out, reference=[], eval_limit=None, split="test", max_steps=1, config="c.yaml",
                     unseen=["SAD"])
    summary = report(["crpo"], args)
    assert summary["crpo"]["steps"] == 1 and summary["crpo"]["train_wall_min"] == 0.5
    args.reference, args.eval_limit = [f"sft_start={tmp_path / 'start.json'}"], 2
    summary = report(["crpo"], args)
    assert list(summary) == ["sft_start", "crpo"]
    assert summary["crpo"]["unseen"] == summary["crpo"]["weighted_f1"]["SAD"]
    assert (out / "comparison.md").read_text().splitlines()[2].startswith("| sft_start |")
    args.eval_limit = 3  # DR's first 3 rows of the start are not the 2 rows the run was evaluated on
    try:
        report(["crpo"], args)
    except AssertionError as e:
        assert "other rows" in str(e)
    else:
        raise AssertionError("rows were not checked")


def test_every_run_is_an_algorithm_of_the_harness():
    assert {"crpo", "grpo", "dapo", "dr_grpo"} <= set(RUNS)
    assert all(r[0] == "--algorithm" for r in RUNS.values())


def test_flat_ablation_uses_the_schedules_mean_on_the_stages_the_term_acts_on():
    from pathlib import Path

    import pytest

    from training.compare import flat_coefficient, run_overrides
    from training.schedule import stage_betas

    configs = Path(__file__).resolve().parents[2] / "training" / "configs"
    paper = stage_betas()
    v2 = str(configs / "crpo_smollm2_v2.yaml")
    assert flat_coefficient(v2) == pytest.approx(sum(paper[1:4]) / 3)  # primary, secondary, reaction
    assert flat_coefficient(str(configs / "crpo_smollm2_lora.yaml")) == pytest.approx(sum(paper) / 5)
    args = run_overrides("crpo_flat", v2)
    assert args[:2] == ["--algorithm", "crpo"] and len(set(args[3:])) == 1 and len(args[3:]) == 5
    assert run_overrides("grpo", v2) == ["--algorithm", "grpo"]


def test_eval_paths_per_split_and_the_clipping_note(tmp_path):
    from training.compare import eval_path

    assert eval_path(tmp_path, "crpo", "test") == tmp_path / "eval" / "crpo.json"  # as before
    assert eval_path(tmp_path, "crpo", "val") == tmp_path / "eval" / "val" / "crpo.json"
    out = tmp_path / "cmp"
    (out / "eval").mkdir(parents=True)
    write_eval(out / "eval" / "crpo.json", ROWS)
    args = Namespace(out=out, reference=[], eval_limit=None, split="test", max_steps=1, config="c.yaml", unseen=[])
    report(["crpo"], args)
    assert "clip-higher is inert" in (out / "comparison.md").read_text()


def val_row(step, f1, yes, dr):
    return {"step": step, "val/avg_weighted_f1": f1, "val/avg_auroc": 0.6, "val/binary/pred_yes": yes,
            "val/binary/gold_yes": 0.5, "val/weighted_f1/DR": dr, "val/weighted_f1/SAD": 2 * f1 - dr}


def test_history_tabulates_each_runs_validation_and_its_best_step(tmp_path, capsys):
    from training.compare import main

    for name, vals in {"crpo": [(0, 50.0, 0.5, 60.0), (20, 53.0, 0.55, 70.0), (40, 51.0, 0.6, 64.0)],
                       "grpo": [(0, 50.0, 0.5, 60.0), (20, 47.0, 0.7, 50.0)]}.items():
        (tmp_path / name).mkdir()
        rows = [val_row(*v) for v in vals] + [{"step": 1, "loss": 0.1, "crpo/entropy/reaction": 1.5}]
        rows.append(val_row(20, 54.0, 0.55, 70.0) if name == "crpo" else {"step": 2, "loss": 0.2})  # resumed
        if name == "grpo":  # logs since the log P(gold) column carry it; older ones show n/a
            rows[1]["val/avg_log_p_gold"] = -0.75
        (tmp_path / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "cmp"
    main(["--history", f"crpo={tmp_path / 'crpo'}", "--history", f"grpo={tmp_path / 'grpo'}", "--out", str(out)])
    doc = json.loads((out / "validation.json").read_text())
    assert doc["crpo"]["best_step"] == 20 and doc["grpo"]["best_step"] == 0
    assert [s["avg_weighted_f1"] for s in doc["crpo"]["steps"]] == [50.0, 54.0, 51.0]  # the resumed step's last
    assert doc["grpo"]["steps"][1]["pred_yes"] == 0.7
    md = (out / "validation.md").read_text()
    assert "| crpo | 20 | 54.00 | +4.00 | 0.600 | n/a | 0.550 (0.500) |" in md
    assert "| grpo | 20 | 47.00 | -3.00 | 0.600 | -0.750 | 0.700 (0.500) |" in md
    assert doc["grpo"]["steps"][1]["avg_log_p_gold"] == -0.75 and doc["crpo"]["steps"][0]["avg_log_p_gold"] is None
    assert "| crpo | 20 (best) | 70.0 | 38.0 |" in md and "| grpo | 0 (best) |" in md
    assert (out / "stage_entropy.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="NAME=RUN_DIR"):
        main(["--history", str(tmp_path / "crpo"), "--out", str(out)])
