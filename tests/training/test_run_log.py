import json
from types import SimpleNamespace

import pytest

from training.run_log import JsonlMetricsCallback, final_metrics, plot_metrics, read_jsonl


def state(step):
    return SimpleNamespace(is_world_process_zero=True, global_step=step, epoch=step / 10)


def test_rows_resume_cut_and_final_metrics_skip_validation_rows(tmp_path):
    path = tmp_path / "metrics.jsonl"
    cb = JsonlMetricsCallback(path)
    cb.on_train_begin(None, state(0), None)
    cb.on_log(None, state(0), None, logs={"val/avg_weighted_f1": 50.0})
    for step in (1, 2, 3):
        cb.on_log(None, state(step), None, logs={"loss": 0.1 * step, "reward": step, "crpo/binary/answer_yes": 0.5,
                                                 "text": "never written"})
    cb.on_log(None, state(3), None, logs={"val/avg_weighted_f1": 60.0})
    rows = read_jsonl(path)
    assert len(rows) == 5 and all("text" not in r for r in rows)
    assert final_metrics(rows, last=2) == pytest.approx({"loss": 0.25, "reward": 2.5, "crpo/binary/answer_yes": 0.5})
    cb.on_train_begin(None, state(2), None)  # resumed from checkpoint-2: steps after it are cut
    assert [r["step"] for r in read_jsonl(path)] == [0, 1, 2]


def test_plot_has_the_decision_panel(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": 0, "val/avg_weighted_f1": 50.0, "val/binary/pred_yes": 0.4, "val/binary/gold_yes": 0.5}] + [
        {"step": s, "loss": 0.0, "reward": 0.1 * s, "rewards/label_prob/mean": 0.5, "crpo/entropy/reaction": 1.0,
         "crpo/binary/answer_yes": 0.5, "crpo/binary/p_yes": 0.45, "crpo/binary/gold_yes": 0.5} for s in (1, 2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    png = plot_metrics(path, tmp_path / "m.png", title="t")
    assert png.stat().st_size > 10_000


def test_summary_table_windows_and_validations(tmp_path, capsys):
    from training.run_log import main, summarize

    rows = [{"step": 0, "val/avg_weighted_f1": 50.0, "val/weighted_f1/DR": 60.0, "val/weighted_f1/t-sid": 40.0,
             "val/binary/pred_yes": 0.6, "val/binary/gold_yes": 0.61}]
    rows += [{"step": s, "loss": 0.0, "reward": 1.0, "crpo/p_gold": 0.1 * s, "step_time": 10.0 * s} for s in (1, 2, 3)]
    assert summarize(rows[:1]).startswith("no training step logged yet\n\n| validation step")
    rows += [{"step": 3, "val/avg_weighted_f1": 55.5, "val/weighted_f1/DR": 71.0, "val/weighted_f1/t-sid": 40.0}]
    table = summarize(rows, window=2).splitlines()
    assert table[0] == "| steps | P(gold) | step s |"  # only the columns the run logged
    assert table[2] == "| 1-2 | 0.150 | 20.0 |" and table[3] == "| 3-3 | 0.300 | 30.0 |"  # mean; median step time
    assert table[-4].startswith("| validation step | average | pred yes (gold) | DR | t-sid |")
    assert table[-2] == "| 0 | 50.00 | 0.600 (0.610) | 60.0 | 40.0 |"
    assert table[-1].startswith("| 3 | 55.50 | nan (nan) | 71.0 |")
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    main([str(path), "--window", "3"])
    assert "| 1-3 | 0.200 | 20.0 |" in capsys.readouterr().out
    rows[-1]["val/avg_auroc"] = 0.6123  # runs since 2026-12-07 log the AUROC: a column of its own
    table = summarize(rows, window=2).splitlines()
    assert table[-4].startswith("| validation step | average | pred yes (gold) | AUROC | DR | t-sid |")
    assert table[-2].startswith("| 0 | 50.00 | 0.600 (0.610) | nan | 60.0 |")
    assert table[-1].startswith("| 3 | 55.50 | nan (nan) | 0.612 | 71.0 |")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.jsonl")])
    assert "is not a file" in capsys.readouterr().err
