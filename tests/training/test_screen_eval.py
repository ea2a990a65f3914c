"""The crisis-screen measurement: parts, the threshold fit (hand-made rows) and the text-only command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.screen_eval import RISK, Row, fit_thresholds, markdown, part, rates, report

REPO = Path(__file__).resolve().parents[2]
SID, PB = "t-sid", "Irf:perceived_burdensomeness"


def row(label, sid, pb=0.5, text="none", p="A"):
    return Row(p, label, text, {SID: sid, PB: pb})


def test_parts_are_fixed_and_about_half():
    texts = [f"post number {i}" for i in range(2000)]
    share = sum(part(t) == "A" for t in texts) / len(texts)
    assert 0.45 < share < 0.55 and part("same post") == part("same post")


def test_fit_maximises_recall_within_the_flag_budget():
    rows = ([row(RISK, p) for p in (0.9, 0.8, 0.6, 0.4)] + [row(RISK, 0.1, text="crisis")]
            + [row("no mental disorders", p) for p in (0.7, 0.5, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)])
    # budget 10 % of 10 = 1 flag: t-sid ≥ 0.6 flags one calm post (0.7), catches 3 of 4 + the text one
    th = fit_thresholds(rows, max_flag_rate=0.1)
    assert th[SID] == 0.6
    r = rates(rows, "text + model", th)
    assert r[RISK]["flagged"] == 4 and r["no mental disorders"]["flagged"] == 1
    # no budget: only thresholds that flag no calm post (t-sid 0.8, or off for Irf whose 0.5 flags all)
    th0 = fit_thresholds(rows, max_flag_rate=0.0)
    assert th0 == {SID: 0.8, PB: None}


def test_fit_turns_a_useless_task_off():
    rows = [row(RISK, 0.9, pb=0.5), row("no mental disorders", 0.1, pb=0.5), row("depression", 0.1, pb=0.5)]
    assert fit_thresholds(rows, max_flag_rate=0.0) == {SID: 0.9, PB: None}


def test_report_and_table_have_every_source_and_part():
    rows = [row(RISK, 0.9), row("no mental disorders", 0.1), row("depression", 0.7, text="concern"),
            row("PTSD", 0.2), row(RISK, 0.3, text="crisis", p="B"), row("no mental disorders", 0.6, p="B")]
    th = {SID: 0.5, PB: None}
    rep = report(rows, th, with_model=True)
    assert rep["B"]["text"][RISK] == {"n": 1, "flagged": 1, "rate": 1.0}
    assert rep["B"]["model"]["no mental disorders"]["rate"] == 1.0
    assert rep["A"]["text + model"]["depression"]["flagged"] == 1 and rep["A"]["text_crisis_level_recall"] == 0.0
    table = markdown({"parts": rep, "thresholds": th, "max_flag_rate": 0.08})
    assert table.count("| text + model |") == 2 and "**B (report)**" in table and "0.5" in table


def test_text_only_command_on_a_few_rows(tmp_path, data_dir):
    out = tmp_path / "screen.json"
    proc = subprocess.run([sys.executable, "training/screen_eval.py", "--data-dir", str(data_dir), "--text-only",
                           "--limit", "2", "--output", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["thresholds"] is None and set(res["parts"]) == {"A", "B"}
    assert all(r["probabilities"] == {} for r in res["rows"]) and len(res["rows"]) == 16  # 2 × 4 labels × 2 parts
    assert "text" in res["parts"]["B"] and "model" not in res["parts"]["B"]
    assert set(res["rows"][0]) == {"part", "label", "text_level", "probabilities"}  # no text
    assert (tmp_path / "screen.md").read_text().startswith("| source | part |")


def test_write_thresholds_needs_every_row(tmp_path, data_dir):
    proc = subprocess.run([sys.executable, "training/screen_eval.py", "--data-dir", str(data_dir), "--limit", "2",
                           "--write-thresholds", "--output", str(tmp_path / "s.json")], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "--write-thresholds needs the model on every row" in proc.stderr


@pytest.mark.slow
def test_model_source_on_a_tiny_model(tmp_path, base_model_dir, data_dir):
    """The whole command with a real engine (a tiny model: the figures mean nothing, the plumbing does)."""
    from training.models import build_tiny_model

    model = build_tiny_model(base_model_dir, tmp_path / "tiny", seed=0)
    out = tmp_path / "screen.json"
    proc = subprocess.run([sys.executable, "training/screen_eval.py", "--data-dir", str(data_dir), "--model",
                           str(model), "--limit", "3", "--concurrency", "8", "--kv-cache-gib", "0.25",
                           "--output", str(out)], cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert set(res["thresholds"]) == {SID, PB} and res["model"].startswith("tiny@")
    assert all(set(r["probabilities"]) == {SID, PB} and all(0 <= v <= 1 for v in r["probabilities"].values())
               for r in res["rows"])
    assert set(res["parts"]["B"]) >= {"text", "model", "text + model", "model_auroc"}
