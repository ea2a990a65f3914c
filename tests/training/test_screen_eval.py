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
    # budget 10 % of 10 = 1 flag (the text flags none): t-sid ≥ 0.6 flags one calm post (0.7), catches 3 of 4
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


def synthetic_tsid(root: Path) -> Path:
    """An IMHI-layout data folder with a small made-up t-sid test file (written here, not real posts)."""
    answers = {"suicide or self-harm tendency": ["I want to kill myself tonight", "I just need to die",
                                                 "planning my overdose", "I cut myself again"],
               "no mental disorders": ["lovely walk today", "new phone arrived", "game night was fun",
                                       "exams next week"],
               "depression": ["I feel empty all the time", "nothing makes me happy"],
               "PTSD": ["the flashbacks came back", "loud noises make me freeze"]}
    lines = ['query,gpt-3.5-turbo']
    for label, posts in answers.items():
        for i, post in enumerate(posts * 3):  # variants so both parts get rows of every label
            lines.append(f'"Consider this post: ""{post} ({i})"" Question: What mental disorder does this post show?",'
                         f'"This post shows {label}. Reasoning: made up."')
    (root / "test").mkdir(parents=True)
    (root / "test" / "t-sid.csv").write_text("\n".join(lines) + "\n")
    return root


def test_fit_and_write_thresholds_with_a_stub_model(tmp_path, monkeypatch):
    """The whole command with the model stubbed: probabilities high for the made-up self-harm posts."""
    import asyncio

    import mental_r1.loading
    import training.screen_eval as se
    from mental_r1.schemas import ModelInfo
    from mental_r1.screen.model import load_model_screen

    async def stub(model, texts, concurrency, kv_cache_gib):
        await asyncio.sleep(0)
        return [{SID: 0.9 if any(w in t for w in ("kill", "die", "overdose", "cut")) else 0.1, PB: 0.5}
                for t in texts]

    monkeypatch.setattr(se, "model_probabilities", stub)
    monkeypatch.setattr(mental_r1.loading, "model_info",
                        lambda folder, name: ModelInfo(name="stub", version="2.0.0+sha256:ab"))
    (tmp_path / "config.json").write_text("{}")  # a checkpoint folder, as far as the command checks
    th = tmp_path / "thresholds.json"
    th.write_text("{}")
    out = tmp_path / "screen.json"
    se.main(["--data-dir", str(synthetic_tsid(tmp_path / "data")), "--model", str(tmp_path), "--output", str(out),
             "--write-thresholds", "--thresholds-file", str(th)])
    res = json.loads(out.read_text())
    assert res["model"] == "stub@2.0.0" and res["thresholds"] == {SID: 0.9, PB: None}
    assert res["parts"]["B"]["text + model"][RISK]["rate"] == 1.0
    assert res["parts"]["B"]["model"]["no mental disorders"]["rate"] == 0.0
    screen = load_model_screen("stub", "2.0.0+sha256:ab", th)
    assert screen.thresholds == {SID: 0.9} and not screen.provisional
    assert json.loads(th.read_text())["stub@2.0.0"]["fitted"]["part_b"]["recall"] == 1.0


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


def test_the_text_sources_flags_come_out_of_the_models_budget():
    rows = ([row(RISK, 0.9), row(RISK, 0.6), row("no mental disorders", 0.1, text="concern"),
             row("no mental disorders", 0.7)] + [row("no mental disorders", 0.1)] * 8)
    # 10 % of 10 calm posts = 1 flag, spent by the text source: the model may not flag the 0.7 one
    assert fit_thresholds(rows, max_flag_rate=0.1)[SID] == 0.9
    assert fit_thresholds(rows, max_flag_rate=0.2)[SID] == 0.6  # one flag left for the model
