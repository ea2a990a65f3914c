"""End-to-end evaluation of a tiny model (real vLLM engine, real tokenizer) on a few rows of each dataset."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mental_r1.tasks import IMHI_DATASETS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_evaluate_tiny_model_on_every_dataset(tmp_path, base_model_dir, data_dir):
    from training.models import build_tiny_model

    model = build_tiny_model(base_model_dir, tmp_path / "tiny", seed=0)
    # a calibration with a label-set threshold for DR only: 0 puts both labels in every DR set
    (Path(model) / "calibration.json").write_text(json.dumps(
        {"format": 2, "temperature": 1.0, "tasks": {"DR": {"label_set": {"alpha": 0.1, "threshold": 0.0}}}}))
    out = tmp_path / "res.json"
    proc = subprocess.run([sys.executable, "training/evaluate.py", "--model", str(model), "--data-dir", str(data_dir),
                           "--limit", "3", "--max-tokens", "16", "--concurrency", "8", "--kv-cache-gib", "0.25",
                           "--output", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert set(res["datasets"]) == set(IMHI_DATASETS)
    for name, r in res["datasets"].items():
        assert r["n"] == 3, name
        assert 0 <= r["weighted_f1"] <= 100 and 0 <= r["ece"] <= 1
        assert sum(map(sum, r["confusion_matrix"])) == 3
    assert set(res) >= {"average_weighted_f1", "average_weighted_f1_generalisation", "pooled"}
    assert len(res["predictions"]) == 3 * len(IMHI_DATASETS)
    assert all(set(p["label_logprobs"]) for p in res["predictions"])  # kept for refitting calibration
    assert (tmp_path / "res_f1.png").stat().st_size > 0 and (tmp_path / "res_reliability.png").exists()
    assert "| **average** |" in proc.stdout
    # label sets through the service's Assessor: DR's hold both labels, the other tasks have none to report
    assert res["datasets"]["DR"]["label_set_coverage"] == 1.0 and res["datasets"]["DR"]["mean_label_set_size"] == 2
    assert not any("label_set_coverage" in r for name, r in res["datasets"].items() if name != "DR")
    assert all((p["label_set"] is not None) == (p["task"] == "DR") for p in res["predictions"])
    assert "set coverage | mean set size |" in proc.stdout and "label sets cover 100.0 % of 3 rows" in proc.stdout


def test_evaluate_rejects_a_folder_that_is_not_a_checkpoint(tmp_path, data_dir):
    proc = subprocess.run([sys.executable, "training/evaluate.py", "--model", str(tmp_path), "--data-dir",
                           str(data_dir), "--output", str(tmp_path / "r.json")], cwd=REPO, capture_output=True, check=False,
                          text=True)
    assert proc.returncode != 0 and "not a checkpoint folder" in proc.stderr


def test_evaluate_rejects_a_missing_data_dir(tmp_path):
    proc = subprocess.run([sys.executable, "training/evaluate.py", "--model", "majority", "--data-dir",
                           str(tmp_path / "nope"), "--output", str(tmp_path / "r.json")], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "--data-dir" in proc.stderr


def test_evaluate_names_the_layout_when_pointed_inside_it(tmp_path, data_dir):
    proc = subprocess.run([sys.executable, "training/evaluate.py", "--model", "majority", "--data-dir",
                           str(data_dir / "test"), "--output", str(tmp_path / "r.json")], cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode != 0 and "expected the IMHI layout DIR/{train,val,test}/NAME.csv" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r.json").exists()



def test_an_adapter_is_merged_once_into_a_published_folder(tmp_path, monkeypatch):
    """merged_adapter builds in a temp sibling (mental_r1.publish) and reuses the folder afterwards."""
    import mental_r1.base_model
    import mental_r1.default_model
    from training.evaluate import merged_adapter

    calls = []

    def merge(base, adapter, out):
        calls.append(out)
        assert out.name.startswith(".merged-ckpt-") and not (tmp_path / "runs" / "merged-ckpt-abcdef012345").exists()
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(mental_r1.default_model, "merge_adapter", merge)
    monkeypatch.setattr(mental_r1.default_model, "adapter_sha256", lambda adapter: "abcdef0123456789")
    monkeypatch.setattr(mental_r1.base_model, "ensure_base_model", lambda: tmp_path / "base")
    first = merged_adapter(tmp_path / "ckpt", tmp_path / "runs")
    again = merged_adapter(tmp_path / "ckpt", tmp_path / "runs")
    assert first == again == tmp_path / "runs" / "merged-ckpt-abcdef012345"
    assert (first / "config.json").exists() and len(calls) == 1
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [first.name]  # no temp folder left behind
